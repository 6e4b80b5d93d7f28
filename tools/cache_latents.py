"""Cache the VAE latents and CLIP tokens of prepared training shards (ex4d/data/latents.py).

Examples:
    python tools/cache_latents.py data=monocular                      # same overrides as the training run
    python tools/cache_latents.py data=tiny model=wan_tiny             # smoke run on the sample shards
Rerunning resumes; training then reads the cached inputs (data=<same>).
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


@hydra.main(version_base="1.3", config_path="../conf", config_name="cache_latents")
def main(cfg: DictConfig) -> dict:
    from ex4d.runners.cli import run_app
    from ex4d.runners.cache_latents import run_cache_latents

    return run_app(run_cache_latents, cfg, write_summary=True)  # user errors: one line, exit 2/3 (ex4d/runners/cli.py)


if __name__ == "__main__":
    from ex4d.runners.cli import main as cli_main

    cli_main(main)
