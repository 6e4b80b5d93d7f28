"""EX-4D inference: DW-Mesh reconstruction + rendering of a new camera path (and generation).

Examples:
    python infer.py                                   # built-in example, ground-truth depth, 0->90 deg orbit
    python infer.py input=video.mp4 camera=ref_180    # your video, reference 180 loop
    python infer.py input=video.mp4 stage=recon mesh=parity renderer=nvdiffrast
    python infer.py -m camera=ref_30,ref_60,ref_90    # one run directory per camera path
Outputs go to outputs/infer/<date_time>/ (see README, "Outputs").
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> dict:
    from ex4d.runners.cli import run_app
    from ex4d.runners.infer import run_infer

    return run_app(run_infer, cfg)  # user errors: one line, exit 2/3 (ex4d/runners/cli.py)


if __name__ == "__main__":
    from ex4d.runners.cli import main as cli_main

    cli_main(main)
