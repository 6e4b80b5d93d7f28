"""Which generator weights are present, without importing diffusers (a recon-only run decides ``stage=auto``
and validates ``stage=all`` from here, in milliseconds instead of the seconds diffusers takes to import)."""

from __future__ import annotations

import logging
from pathlib import Path

from ex4d.utils.errors import download_command

log = logging.getLogger("ex4d.model")

DOWNLOAD_HINT = download_command("wan_i2v_14b_480p", "ex4d")
RANDOM_ADAPTER = "random"  # checkpoint=random: a seeded random adapter (TEST / BENCHMARK ONLY)


def is_random_adapter(checkpoint) -> bool:
    """``checkpoint=random`` (a seeded random adapter, TEST / BENCHMARK ONLY) rather than a file."""
    return isinstance(checkpoint, str) and checkpoint == RANDOM_ADAPTER


def random_adapter_stands_in(model, checkpoint: str | Path) -> bool:
    """A benchmark loader (random real-shape weights) replaces an absent adapter file by a random adapter."""
    return bool(getattr(model, "random_adapter_if_missing", False)) and not Path(checkpoint).expanduser().exists()


def missing_weights(model, checkpoint: str | Path | None) -> list[str]:
    """Files ``build_generator(model, ..., checkpoint)`` needs that are absent (empty: ready). Never downloads.

    ``model`` is a config-group object (``WanLoader`` / ``TinyWanLoader`` / ``RandomWanLoader``). Fetch what is
    missing with ``DOWNLOAD_HINT`` (plus ``--local-dir <paths.weights_dir>``).
    """
    out = list(model.missing_files()) if hasattr(model, "missing_files") else []
    if checkpoint is not None and not is_random_adapter(checkpoint) and not Path(checkpoint).expanduser().exists() \
            and not random_adapter_stands_in(model, checkpoint):
        out.append(str(checkpoint))
    return out


def resolve_checkpoint(checkpoint, model, weights_dir: str | Path) -> str | None:
    """A benchmark's ``checkpoint=auto``: the released adapter (``<weights_dir>/EX-4D/ex4d.ckpt``), except for a
    TEST-ONLY tiny model (no 14B adapter fits it): there a seeded random adapter (``checkpoint=random``), so that
    the rendered colour and mask reach the output and smoke tables of different camera paths differ (a zero
    adapter is an exact no-op: every path would give one table). Any other value is returned as a string
    (None: the untrained adapter)."""
    if checkpoint is None:
        return None
    if str(checkpoint) == "auto":
        if getattr(model, "is_tiny", False):
            log.warning("checkpoint=auto with a TEST-ONLY tiny model: checkpoint=%s, a seeded random adapter "
                        "(outputs are noise)", RANDOM_ADAPTER)
            return RANDOM_ADAPTER
        return f"{weights_dir}/EX-4D/ex4d.ckpt"
    return str(checkpoint)
