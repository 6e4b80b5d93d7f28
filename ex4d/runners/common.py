"""Shared runner plumbing: run directories, staging, resolved-config dumps."""

from __future__ import annotations

import json
import logging
import shutil
import traceback
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("ex4d")


def run_dir(cfg: DictConfig) -> Path:
    """The Hydra run directory (or ``cfg.output_dir`` when set, e.g. in tests without Hydra's runtime)."""
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    return Path(HydraConfig.get().runtime.output_dir)


def save_resolved_config(cfg: DictConfig, path: Path) -> Path:
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


@contextmanager
def staged_outputs(out_dir: Path):
    """Yield a staging folder inside ``out_dir``; on success move its files up, on failure delete it
    and write FAILED.txt, so a failed run never looks like a finished one."""
    from ex4d.pipelines.recon import commit_staged

    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / ".incomplete"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        (out_dir / "FAILED.txt").write_text(f"{type(e).__name__}: {e}\n\n{traceback.format_exc()}")
        raise
    commit_staged(stage, out_dir)
    failed = out_dir / "FAILED.txt"
    if failed.exists():
        failed.unlink()


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=2, default=str))
    return path
