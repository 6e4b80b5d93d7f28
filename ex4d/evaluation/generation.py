"""Our generated videos of a benchmark: one folder per generation setting, resumable.

Videos go to ``<root>/gen-<fingerprint>/<id>/output.mp4``, where the fingerprint hashes every setting that
changes the pixels (the caller's ``settings`` dict, plus the adapter checkpoint's size and mtime: a
retrained adapter at the same path is a new setting), so a rerun skips finished videos and a changed
setting starts a fresh folder. The generation itself is a callable (the inference pipeline's set runner,
:func:`ex4d.runners.stages.run_many`, in ``evaluate.py``), so this module needs no config.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ex4d.utils.errors import InputError, MissingWeightsError

log = logging.getLogger("ex4d.evaluation")


def fingerprint(settings: dict) -> str:
    """12 hex of the sha256 of ``settings`` (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def with_checkpoint_file(settings: dict, checkpoint: str | None) -> dict:
    """``settings`` plus the checkpoint path and, for a file, its size and mtime."""
    out = {**settings, "checkpoint": checkpoint}
    if checkpoint and Path(checkpoint).is_file():  # a retrained adapter at the same path is a new setting
        st = Path(checkpoint).stat()
        out["checkpoint_file"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return out


def ours_files(gen_dir: Path, ids: Sequence[str]) -> dict[str, Path]:
    """``<gen_dir>/<id>/output.mp4`` of every id (InputError naming the first one generation left out)."""
    out = {}
    for i in ids:
        p = gen_dir / i / "output.mp4"
        if not p.is_file():
            raise InputError(f"generation left no {p} (see {gen_dir / i / 'FAILED.txt'} if present)")
        out[i] = p
    return out


def generate_benchmark_videos(
    sources: Sequence[Path],
    ids: Sequence[str],
    root: str | Path,
    settings: dict,
    generate: Callable[[list[Path], Path], dict],
    missing: Sequence[str] = (),
    download_hint: str = "",
) -> tuple[dict[str, Path], dict]:
    """Generate every source (skipping finished ones) into ``<root>/gen-<fingerprint(settings)>``.

    Args:
        sources, ids: the source videos and their ids (the folder names ``generate`` gives them).
        settings: every setting that changes the pixels, with ``checkpoint`` (:func:`with_checkpoint_file`).
        generate: ``generate(sources, folder) -> summary`` (``processed`` / ``skipped`` counts) writing
            ``<folder>/<id>/output.mp4``.
        missing: generator weight files that are missing: MissingWeightsError naming them and ``download_hint``.

    Returns:
        ({id: output.mp4}, info: dir, fingerprint, checkpoint, processed, skipped).
    """
    if missing:
        raise MissingWeightsError(f"generating the benchmark videos needs {', '.join(missing)}. Download with: "
                                  f"{download_hint}; or score existing videos with generated_dir=<folder>")
    gen_dir = Path(str(root)) / f"gen-{fingerprint(settings)}"
    gen_dir.mkdir(parents=True, exist_ok=True)
    (gen_dir / "generation.json").write_text(json.dumps(settings, indent=1, sort_keys=True, default=str))
    log.info("generated videos: %s", gen_dir)
    with torch.inference_mode():
        summary = generate([Path(p) for p in sources], gen_dir)
    info = {"dir": str(gen_dir), "fingerprint": gen_dir.name, "checkpoint": settings.get("checkpoint"),
            "processed": summary.get("processed"), "skipped": summary.get("skipped")}
    return ours_files(gen_dir, ids), info


def method_label(method: str | None, generated_dir: str | Path | None, checkpoint: str | None, test_only_model: bool) -> str:
    """The row label of the tables: ``method`` if given, else the generated_dir's name, else ``ours (<adapter>)``."""
    if method:
        return str(method)
    if generated_dir:
        return Path(str(generated_dir)).name
    if test_only_model:
        return "ours (TEST ONLY: random tiny model)"
    return f"ours ({Path(checkpoint).name if checkpoint else 'untrained adapter'})"
