"""Device selection shared by every stage."""

from __future__ import annotations

import torch

from ex4d.utils.errors import InputError


def resolve_device(device: str | torch.device, key: str = "device") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``.

    Raises InputError naming ``key`` for a string torch does not parse, and for a CUDA device on a machine
    without one (torch would only fail at the first tensor moved there, deep inside a stage).
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise InputError(f"{key} must be auto, cpu, cuda or cuda:<index>; got {device!r}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{key}={device}: no CUDA device is available here; use {key}=auto or {key}=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"{key}={device}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                             f"use an index below {torch.cuda.device_count()}")
    return dev
