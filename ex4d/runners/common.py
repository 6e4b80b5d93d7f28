"""Shared runner plumbing: run directories, staged outputs, run records (summary.json), resolved-config dumps.

Output folders follow three rules (docs in the README, "Outputs"):

* a run writes into a staging folder and commits only when it finished, replacing the folder's earlier
  outputs as a whole (:func:`staged_outputs`), so a rerun into the same folder never leaves stale files
  beside new ones;
* a failed run leaves only ``FAILED.txt`` (its one-line reason) and its log (:func:`mark_failed`);
* one run at a time per folder (:func:`run_lock`): a second run with the same ``EX4D_RUN_ID`` is refused
  instead of mixing its files into the first one's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ex4d.utils.errors import InputError, error_reason, one_line
from ex4d.utils.files import atomic_path

log = logging.getLogger("ex4d")

FAILED = "FAILED.txt"
# Files of a run folder that belong to the process, not to its outputs: kept when outputs are replaced.
RUN_FILES = (FAILED, ".hydra")
LOG_SUFFIX = ".log"
STAGE_PREFIX = ".incomplete"
PREVIOUS = ".previous"
SET_MARKER = "set.json"  # a folder of a set of inputs (one subfolder per item): its settings and inputs


def run_dir(cfg: DictConfig) -> Path:
    """The Hydra run directory (or ``cfg.output_dir`` when set, e.g. in tests without Hydra's runtime)."""
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def save_resolved_config(cfg: DictConfig, path: Path) -> Path:
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def write_json(path: Path, obj) -> Path:
    """Write ``obj`` as JSON atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str))
    return path


def _is_process_file(p: Path) -> bool:
    return p.name in RUN_FILES or p.name.endswith(LOG_SUFFIX) or p.name.startswith((STAGE_PREFIX, PREVIOUS))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def clear_outputs(out_dir: Path) -> None:
    """Remove every output of ``out_dir``, keeping the process's own files (logs, lock, Hydra's record)."""
    if not out_dir.is_dir():
        return
    for p in out_dir.iterdir():
        if not _is_process_file(p) or p.name.startswith((STAGE_PREFIX, PREVIOUS)):
            _remove(p)


def commit(stage: Path, out_dir: Path, replace: bool) -> None:
    """Move a finished staging folder's files into ``out_dir``.

    ``replace``: the earlier outputs of ``out_dir`` go first (moved aside into ``.previous`` in one rename
    each, then deleted), so the folder holds exactly this run's files; else files are added (generation
    after recon in the same folder), same names overwritten.
    """
    previous = out_dir / f"{PREVIOUS}-{os.getpid()}"
    if replace:
        old = [p for p in out_dir.iterdir() if not _is_process_file(p)]
        if old:
            previous.mkdir()
            for p in old:
                os.replace(p, previous / p.name)
    for p in stage.iterdir():
        target = out_dir / p.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(p, target)
    stage.rmdir()
    if previous.exists():
        shutil.rmtree(previous)
    failed = out_dir / FAILED
    if failed.exists():
        failed.unlink()


def mark_failed(out_dir: Path, reason: str) -> None:
    """Leave ``out_dir`` holding only ``FAILED.txt`` (one line: the reason) and the logs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(out_dir)
    (out_dir / FAILED).write_text(one_line(reason) + "\n")


@contextmanager
def staged_outputs(out_dir: Path, replace: bool = True):
    """Yield a staging folder inside ``out_dir``; on success commit it (:func:`commit`), on failure delete it
    and :func:`mark_failed` (``replace=False``: on failure only the staging folder goes, for an addition such
    as generation whose failure the caller records), so a failed run never looks like a finished one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / f"{STAGE_PREFIX}-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if replace:
            mark_failed(out_dir, error_reason(e))
        raise
    commit(stage, out_dir, replace)


@contextmanager
def run_lock(out_dir: Path):
    """Hold an exclusive lock on ``out_dir`` for the run (``flock`` on the folder itself: no file left behind,
    released by the kernel if the process dies); a second run on the same folder is refused with an InputError."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(f"output folder {out_dir} is in use by another run; give this run its own folder "
                         f"(another EX4D_RUN_ID, or output_dir=...) or wait for that one to finish") from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Run records: what summary.json says about every run
# --------------------------------------------------------------------------------------------------

_COMMIT: dict[str, str | None] = {}


def git_commit() -> str | None:
    """The project checkout's commit (``<sha>`` or ``<sha>-dirty`` with uncommitted tracked changes), or None
    outside a git checkout."""
    if "v" in _COMMIT:
        return _COMMIT["v"]
    root = Path(__file__).resolve().parents[2]
    value = None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        value = sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    _COMMIT["v"] = value
    return value


# Keys that name this run's folder (or its files) rather than what it computes: left out of the config hash.
_HASH_EXCLUDE = ("output_dir", "run_name", "hydra", "camera_name")


def config_hash(cfg: DictConfig) -> str:
    """sha256 (16 hex) of the resolved config, without the keys that only name the run's folder."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for k in _HASH_EXCLUDE:
        data.pop(k, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageClock:
    """Wall time and peak GPU memory per stage of a run (``with clock.stage("recon"): ...``)."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}
        self.t0 = time.perf_counter()
        self.started = time.strftime("%Y-%m-%d %H:%M:%S")

    @contextmanager
    def stage(self, name: str):
        import torch

        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
            if cuda:
                torch.cuda.synchronize()
            self.stages[name] = {
                "seconds": round(time.perf_counter() - t0, 3),
                "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
            }

    def record(self) -> dict:
        return {"started": self.started, "stages": self.stages, "seconds": round(time.perf_counter() - self.t0, 3)}


def run_record(cfg: DictConfig) -> dict:
    """The provenance block of every summary.json: commit, config hash, versions, device."""
    import torch

    import ex4d

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"commit": git_commit(), "config_hash": config_hash(cfg), "ex4d": ex4d.__version__,
            "torch": torch.__version__, "gpu": gpu, "host": os.uname().nodename}


def with_effective_defaults(node):
    """``node`` (a plain container of a resolved config) with ``pivot_offset: null`` replaced by the value it means,
    ``ex4d.cameras.DEFAULT_PIVOT_OFFSET``, wherever it occurs (camera options, masking pose samplers).

    Settings fingerprints hash what the outputs depend on: a config that leaves the offset null and one that spells
    out the reference's value make the same files (and shards written before the configs said null stay valid).
    """
    if isinstance(node, dict):
        from ex4d.cameras.trajectories import DEFAULT_PIVOT_OFFSET

        return {k: (DEFAULT_PIVOT_OFFSET if k == "pivot_offset" and v is None else with_effective_defaults(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [with_effective_defaults(v) for v in node]
    return node


def settings_hash(settings: dict) -> str:
    """sha256 (16 hex) of a settings dict (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextmanager
def item_log(folder: Path, name: str = "infer.log"):
    """Log everything of one item of a set into ``folder/<name>`` too; a failure's traceback goes there (and
    not to the console), then the error propagates."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / name)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    except Exception as e:
        handler.handle(logging.LogRecord("ex4d", logging.ERROR, __file__, 0, "failed: %s", (error_reason(e),),
                                         (type(e), e, e.__traceback__)))
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def optional_logger(cfg: DictConfig | None, save_dir: Path, name: str):
    """The configured Lightning logger (``logger`` group) with ``save_dir`` (and a W&B run's ``name``) filled in
    where the config leaves them null; None without one, or when its package is missing (a warning says so)."""
    if not cfg or not cfg.get("_target_"):
        return None
    from hydra.utils import instantiate

    fill = {"save_dir": str(save_dir), **({"name": name} if str(cfg._target_).endswith("WandbLogger") else {})}
    try:
        return instantiate(cfg, **{k: v for k, v in fill.items() if k in cfg and cfg.get(k) is None})
    except (ImportError, ModuleNotFoundError) as e:
        log.warning("logger %s is not available (%s); results are in %s", cfg._target_, e, save_dir)
        return None
