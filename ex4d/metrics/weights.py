"""Local weight files of the metric extractors, their checks, and how a missing file skips a metric.

Nothing here downloads: every extractor loads from a local path, checked by sha256 when a hash is
configured. A missing (or wrongly hashed) file raises :class:`ex4d.utils.errors.MissingWeightsError`
whose message names the file and where to get it; :func:`run_or_skip` turns that into a
:class:`Skipped` result for the report, never a silent zero.

Where files live: ``<weights_dir>/metrics/<filename>``, with ``weights_dir`` from the argument, else the
``EX4D_WEIGHTS_DIR`` environment variable, else ``./weights``. Hugging Face models are folders
(``config.json`` + ``model.safetensors``) saved with ``save_pretrained`` / ``huggingface-cli download``.

Hashes: ``sha256`` may be the full 64-hex digest or a prefix of at least 8 hex digits. Files named the
torch.hub way (``name-<hex>.pth``) carry the first hex digits of their sha256 in the name; we check those
by default, so a truncated or wrong download is caught even where the full digest is not recorded here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ex4d.utils.errors import InputError, MissingWeightsError, download_command
from ex4d.utils.hashing import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsFile:
    """A weights file (or Hugging Face model folder) that a metric needs.

    Attributes:
        key: short id used in configs and by ``tools/download_weights.py``.
        filename: file or folder name under ``<weights_dir>/metrics``.
        source: where to get it (URL or hub id), quoted in the missing-file message.
        sha256: full digest or >= 8-hex prefix of the file (for a folder: of ``hashed_member``); None: no check.
        hashed_member: for a folder, the file inside it that ``sha256`` refers to.
        used_by: the metric(s) that need it (for messages).
    """

    key: str
    filename: str
    source: str
    sha256: str | None = None
    hashed_member: str | None = None
    used_by: str = ""


# The files the evaluation protocol needs (ex4d-method.md section 7). Sources are the files the
# reference implementations load; the Hugging Face folders hold the same weights converted.
METRIC_WEIGHTS: dict[str, WeightsFile] = {
    w.key: w
    for w in [
        WeightsFile(
            "fid_inception",
            "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth "
            "(the same file as torch-fidelity's weights-inception-2015-12-05-6726825d.pth, which it loads)",
            sha256="6726825d",
            used_by="FID, KID",
        ),
        WeightsFile(
            "i3d_styleganv",
            "i3d_torchscript.pt",
            "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1 (StyleGAN-V FVD detector)",
            used_by="FVD",
        ),
        WeightsFile(
            "dino_vitb16",
            "dino-vitb16",
            "Hugging Face facebook/dino-vitb16 (VBench loads the same DINO ViT-B/16 through torch.hub)",
            hashed_member="model.safetensors",
            used_by="vbench subject_consistency",
        ),
        WeightsFile(
            "clip_vitb32",
            "clip-vit-base-patch32",
            "Hugging Face openai/clip-vit-base-patch32 (VBench: OpenAI CLIP ViT-B/32)",
            hashed_member="model.safetensors",
            used_by="vbench background_consistency",
        ),
        WeightsFile(
            "clip_vitl14",
            "clip-vit-large-patch14",
            "Hugging Face openai/clip-vit-large-patch14 (VBench: OpenAI CLIP ViT-L/14)",
            hashed_member="model.safetensors",
            used_by="vbench aesthetic_quality",
        ),
        WeightsFile(
            "laion_aesthetic",
            "sa_0_4_vit_l_14_linear.pth",
            "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth",
            used_by="vbench aesthetic_quality",
        ),
        WeightsFile(
            "musiq_spaq",
            "musiq_spaq_ckpt-358bb6af.pth",
            "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1.0-weights/musiq_spaq_ckpt-358bb6af.pth "
            "(needs the pyiqa package to build MUSIQ)",
            sha256="358bb6af",
            used_by="vbench imaging_quality",
        ),
        WeightsFile(
            "raft_large",
            "raft_large_C_T_V1-22a6c225.pth",
            "https://download.pytorch.org/models/raft_large_C_T_V1-22a6c225.pth (torchvision's port of RAFT "
            "raft-things, the model VBench uses; loaded into torchvision's raft_large)",
            sha256="22a6c225",
            used_by="vbench dynamic_degree (RAFT)",
        ),
        WeightsFile(
            "lpips_alexnet",
            "alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (torchvision's AlexNet, the LPIPS "
            "backbone; the LPIPS linear heads ship inside torchmetrics)",
            sha256="7be5be79",
            used_by="LPIPS",
        ),
    ]
}


def weights_dir(root: str | Path | None = None) -> Path:
    """``<root>/metrics`` with root from the argument, ``$EX4D_WEIGHTS_DIR`` or ``./weights``."""
    base = Path(root) if root is not None else Path(os.environ.get("EX4D_WEIGHTS_DIR", "weights"))
    return base / "metrics"


def _missing_message(spec: WeightsFile, path: Path, what: str) -> str:
    used = f" (needed by {spec.used_by})" if spec.used_by else ""
    # The tool writes into <local-dir>/metrics/: point it at the folder above this file's metrics/ folder.
    root = next((q.parent for q in Path(path).parents if q.name == "metrics"), None)
    return (
        f"{what}: {path}{used}. Get '{spec.filename}' from {spec.source} and put it at {path}, or set the "
        f"metric's weights path. Run `{download_command('metrics', '--metric-keys', spec.key, local_dir=root)}` "
        "on a machine with internet."
    )


def resolve_weights(
    key_or_spec: str | WeightsFile, path: str | Path | None = None, sha256: str | None = None, root: str | Path | None = None
) -> Path:
    """Check and return the local path of a metric's weights.

    Args:
        key_or_spec: a key of :data:`METRIC_WEIGHTS` or a :class:`WeightsFile`.
        path: explicit file/folder path (config); default ``weights_dir(root) / spec.filename``.
        sha256: digest or prefix to check instead of the spec's ("" disables the check).
        root: weights root (see :func:`weights_dir`).

    Raises:
        MissingWeightsError: the file is missing or its hash does not match; the message names the file
            and where to get it.
    """
    spec = METRIC_WEIGHTS[key_or_spec] if isinstance(key_or_spec, str) else key_or_spec
    p = Path(path) if path is not None else weights_dir(root) / spec.filename
    if not p.exists():
        raise MissingWeightsError(_missing_message(spec, p, "missing weights file"))
    expected = spec.sha256 if sha256 is None else (sha256 or None)
    if expected:
        expected = expected.lower()
        if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
            raise InputError(f"sha256 for {spec.key}: expected a hex digest or a prefix of >= 8 hex digits, got {expected!r}")
        target = p
        if p.is_dir():
            if spec.hashed_member is None:
                raise InputError(f"{p}: is a folder, but {spec.key} names no file inside it to hash")
            target = p / spec.hashed_member
            if not target.exists():
                raise MissingWeightsError(_missing_message(spec, target, "missing weights file"))
        digest = sha256_file(target)
        if not digest.startswith(expected):
            raise MissingWeightsError(
                _missing_message(spec, target, f"sha256 mismatch (got {digest[:16]}..., expected {expected[:16]}...)")
            )
    return p


@dataclass(frozen=True)
class Skipped:
    """A metric that could not run (missing weights or an optional package); printed in the report."""

    metric: str
    reason: str

    def __str__(self) -> str:
        return f"{self.metric}: skipped ({self.reason})"

    def to_dict(self) -> dict:
        return {"skipped": True, "reason": self.reason}


class MetricUnavailable(MissingWeightsError):
    """An optional package a metric needs is not importable; the message says which and how to install it."""


@contextlib.contextmanager
def eval_extra_imports(metric: str, packages: str, hint: str = "") -> Iterator[None]:
    """Wrap the imports of a metric network from the ``eval`` extra: a failure (ImportError, or a
    RuntimeError from a torchvision built for another torch) becomes :class:`MetricUnavailable` saying
    ``<metric> needs <packages> matching torch <version> (pip install -e '.[eval]')``, then ``hint``."""
    try:
        yield
    except Exception as e:
        import torch

        raise MetricUnavailable(
            f"{metric} needs {packages} matching torch {torch.__version__} (pip install -e '.[eval]'): {e}{hint}"
        ) from e


@contextlib.contextmanager
def strict_weights_load(path: str | Path, expected: str) -> Iterator[None]:
    """Wrap a strict state-dict load of a metric network: a key / shape mismatch or a file that is not a
    torch checkpoint becomes an :class:`InputError` naming the file and the weights ``expected``."""
    try:
        yield
    except (RuntimeError, pickle.UnpicklingError, EOFError) as e:
        raise InputError(f"{path}: not {expected} ({str(e)[:300]})") from e


def run_or_skip(metric: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)``; on missing weights / packages return :class:`Skipped` and log why.

    Only :class:`MissingWeightsError` (which :class:`MetricUnavailable` is) becomes a skip: any other
    error (bad input, a bug) propagates.
    """
    try:
        return fn(*args, **kwargs)
    except MissingWeightsError as e:
        skipped = Skipped(metric, str(e))
        log.warning("%s", skipped)
        return skipped
