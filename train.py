"""EX-4D adapter training: frozen Wan2.1-I2V-14B + LoRA + geometry encoder, on prepared monocular shards.

Examples:
    python tools/prepare_data.py data.root=/data/videos masking=mixed      # once: depth + masks -> shards
    python train.py experiment=ex4d_paper data.root=/data/videos            # the reference recipe
    python train.py lora.rank=64 strategy=deepspeed_zero2                    # one knob, DeepSpeed ZeRO-2
    python train.py -m experiment=rank_sweep lora.rank=16,32,64              # one run directory per rank
    python train.py ckpt_path=outputs/train/<run>/checkpoints/last.ckpt      # continue that run in place
    python train.py model=wan_tiny data=tiny trainer=cpu logger=csv          # CPU smoke run (random tiny model)
Outputs go to outputs/train/<run>/ (see ex4d/runners/train.py for the layout).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    from ex4d.runners.cli import run_app
    from ex4d.runners.train import run_train

    return run_app(run_train, cfg, keep_outputs_on_failure=True)  # user errors: one line, exit 2/3 (ex4d/runners/cli.py)


if __name__ == "__main__":
    from ex4d.runners.cli import main as cli_main

    cli_main(main)
