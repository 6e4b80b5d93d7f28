"""EX-4D evaluation: generate a benchmark's videos (or read another method's), compute every metric, write tables.

Examples:
    python evaluate.py benchmark=extreme_90                                     # Table 1 on your videos
    python evaluate.py benchmark=extreme_90 generated_dir=/data/recammaster_90 method=ReCamMaster
    python evaluate.py -m benchmark=small_30,large_60,extreme_90,full_180       # every view range
    python evaluate.py benchmark=extreme_90 model=wan_tiny benchmark.data=tiny allow_skip=true  # CPU smoke run, no weights
Outputs go to outputs/evaluate/<date_time>/: results.json, table.md, table.tex, per_video.csv (see
docs/evaluation.md); generated videos to outputs/benchmark_videos/<benchmark>/<set>/gen-<fingerprint>/.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    from ex4d.runners.cli import run_app
    from ex4d.runners.evaluate import run_evaluate

    return run_app(run_evaluate, cfg)  # user errors: one line, exit 2/3 (ex4d/runners/cli.py)


if __name__ == "__main__":
    from ex4d.runners.cli import main as cli_main

    cli_main(main)
