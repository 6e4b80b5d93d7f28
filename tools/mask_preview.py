"""Contact sheet of what the model is trained on: source / mask / masked input for any clip.

Examples:
    python tools/mask_preview.py input=<clip_id>                           # a shard of data.shards_dir
    python tools/mask_preview.py input=path/to/clip.safetensors            # any shard file
    python tools/mask_preview.py input=my.mp4 masking=track depth=depth_anything
    python tools/mask_preview.py data=tiny depth=planes masking=mixed index=2
Writes <run dir>/mask_preview.png (or out=PATH).
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


@hydra.main(version_base="1.3", config_path="../conf", config_name="mask_preview")
def main(cfg: DictConfig) -> dict:
    from ex4d.runners.cli import run_app
    from ex4d.runners.mask_preview import run_mask_preview

    return run_app(run_mask_preview, cfg, write_summary=True)  # user errors: one line, exit 2/3 (ex4d/runners/cli.py)


if __name__ == "__main__":
    from ex4d.runners.cli import main as cli_main

    cli_main(main)
