"""Preprocess training videos: depth + simulated masking once per clip, written as shards.

Examples:
    python tools/prepare_data.py data.root=/data/videos                   # DepthCrafter depth, render masks
    python tools/prepare_data.py data=tiny depth=planes masking=mixed    # smoke run on the sample videos
    python tools/prepare_data.py data.root=/data/list.jsonl masking=track depth=depth_anything
Rerunning the same command resumes (finished clips are skipped). Shards: data.shards_dir
(index.jsonl + clips/*.safetensors, see ex4d/data/shards.py); training reads them with data=<same>.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare_data")
def main(cfg: DictConfig) -> dict:
    from ex4d.runners.cli import run_app
    from ex4d.runners.prepare_data import run_prepare_data

    return run_app(run_prepare_data, cfg, write_summary=True)  # user errors: one line, exit 2/3 (ex4d/runners/cli.py)


if __name__ == "__main__":
    from ex4d.runners.cli import main as cli_main

    cli_main(main)
