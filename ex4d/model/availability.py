"""Which generator weights are present, without importing diffusers (a recon-only run decides ``stage=auto``
and validates ``stage=all`` from here, in milliseconds instead of the seconds diffusers takes to import)."""

from __future__ import annotations

from pathlib import Path

from ex4d.utils.errors import download_command

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
