"""Lazy loading of pretrained depth models: device/dtype choice, offline mode, and one error type for
missing weights (``MissingWeightsError``) whatever library raised it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from ex4d.utils.device import resolve_device  # noqa: F401 (re-exported)

from ex4d.utils.errors import InputError, MissingWeightsError, download_command

log = logging.getLogger(__name__)

T = TypeVar("T")

DTYPES = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float32": torch.float32, "fp32": torch.float32}


def resolve_dtype(name: str | torch.dtype, device: torch.device, key: str = "dtype") -> torch.dtype:
    """Parse a dtype name. Half precision on CPU falls back to float32 (CPU half kernels are slow or missing)."""
    if isinstance(name, torch.dtype):
        dtype = name
    elif str(name) in DTYPES:
        dtype = DTYPES[str(name)]
    else:
        raise InputError(f"{key}: expected one of {sorted(DTYPES)}, got {name!r}")
    if device.type == "cpu" and dtype in (torch.float16, torch.bfloat16):
        log.warning("%s=%s on CPU: running in float32 instead", key, name)
        dtype = torch.float32
    return dtype


def hf_offline() -> bool:
    """True when Hugging Face offline mode is on (``HF_HUB_OFFLINE``), read now rather than at import."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return False


def looks_local(source: str) -> bool:
    """A filesystem path rather than a hub id ``org/name`` (hub ids have exactly one '/', no leading '/' or '.')."""
    s = str(source)
    return Path(s).expanduser().exists() or s.startswith(("/", ".", "~")) or s.count("/") != 1 or "\\" in s


def load_pretrained(load: Callable[[], T], source: str, what: str, hint: str) -> T:
    """Call ``load()`` (a ``from_pretrained``); turn a missing local folder or any not-found / offline
    error of diffusers, transformers or huggingface_hub into ``MissingWeightsError`` naming ``source`` and ``hint``.
    """
    if looks_local(source) and not Path(source).expanduser().exists():
        raise MissingWeightsError(f"{what}: weights folder {source} does not exist. {hint}")
    try:
        from huggingface_hub.errors import HFValidationError
    except ImportError:  # pragma: no cover
        HFValidationError = ValueError  # noqa: N806
    try:
        return load()
    except (OSError, HFValidationError) as e:  # library not-found/offline errors are OSError subclasses
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        offline = " (Hugging Face offline mode is on)" if hf_offline() else ""
        raise MissingWeightsError(f"{what}: cannot load weights from {source}{offline}: {first}. {hint}") from e


def download_hint(source: str, repo_id: str, tool_args: list[str], tool_folder: str, include: list[str] | None = None,
                  gated: bool = False) -> str:
    """The commands that fetch ``repo_id`` into ``source`` (a local folder) or the HF cache (a hub id).

    ``tool_args``: the ``tools/download_weights.py`` items/options that fetch it, into ``<local-dir>/<tool_folder>``;
    the tool's command gets ``--local-dir`` when ``source`` is such a folder (elsewhere only ``hf download`` writes
    exactly ``source``).
    """
    local = looks_local(source)
    target = f" --local-dir {source}" if local else ""
    inc = "".join(f' --include "{p}"' for p in include or [])
    src = Path(source).expanduser()
    tool = download_command(*tool_args, local_dir=src.parent if local and src.name == tool_folder else None)
    msg = f"Download with `{tool}` or `hf download {repo_id}{inc}{target}`"
    if gated:
        msg += f" (gated: accept the licence on https://huggingface.co/{repo_id} and run `hf auth login` first)"
    return msg + "."
