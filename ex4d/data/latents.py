"""Cached model inputs in the training shards: VAE latents and CLIP tokens, computed once per clip.

``tools/cache_latents.py`` runs the frozen Wan VAE and CLIP image encoder over every prepared shard and
adds the model inputs of :func:`ex4d.pipelines.conditioning.encode_clip` (``LATENT_KEYS``: ``latent_video``,
``i2v_condition``, ``clip_tokens``, ``latent_cond``, ``latent_mask``, without the batch dimension) to the
same safetensors file. ``ShardDataset`` passes extra tensors through and the training module uses cached
inputs as they are, so a training step is then the DiT step alone: 4 VAE encodes and a CLIP forward
fewer per clip (1.5x faster per step at 512x512x49 on an H100, docs/performance.md, ``online`` vs
``cached``).

What caching fixes once: the mask erosion. Without a cache the loader draws a new erosion (k in
``k_min..k_max`` per frame) every epoch; the cached geometry latents hold one draw, seeded by
(``seed``, clip id). The shard's ``mask`` stays the un-eroded one, so re-caching with other settings
is always possible.

Every cached shard records the settings its inputs depend on (``meta["latents"]``: the backbone, the
conditioning variants, the erosion); ``check_cached_latents`` compares them with the training config, so
a run never trains on inputs encoded another way. Reruns skip clips whose record matches (resumable).
A complete run also writes ``latents.json`` beside the index: the settings and the sha256 of the
``index.jsonl`` they cover, so the check at training start reads one file instead of every shard header;
it falls back to reading the headers when that file is missing or the index changed since.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ex4d.data.shards import (
    CORE_KEYS,
    INDEX_NAME,
    read_index,
    read_shard,
    read_shard_meta,
    sample_seed,
    write_shard,
)
from ex4d.masking.erosion import erode_masks
from ex4d.utils.errors import InputError
from ex4d.utils.hashing import sha256_file

log = logging.getLogger(__name__)

LATENTS_META = "latents"
SUMMARY_NAME = "latents.json"  # settings of a complete cache + the index it covers


def latent_settings(backbone: str, mask_encoding: str, first_frame_rounding: str, clip_preprocess: str,
                    erode: bool, k_min: int, k_max: int, seed: int) -> dict:
    """The record stored with cached inputs (and compared by :func:`check_cached_latents`)."""
    return {"backbone": str(backbone), "mask_encoding": mask_encoding, "first_frame_rounding": first_frame_rounding,
            "clip_preprocess": clip_preprocess,
            "erosion": {"enabled": bool(erode), "k_min": int(k_min), "k_max": int(k_max), "seed": int(seed)}}


@torch.no_grad()
def cache_latents(shards_dir: str | Path, encode: Callable[[Tensor, Tensor], dict[str, Tensor]], settings: dict, *,
                  overwrite: bool = False, limit: int | None = None, progress: bool = True) -> dict:
    """Add the cached model inputs to every shard of ``shards_dir`` (all splits).

    Args:
        encode: (frames (T, H, W, 3) uint8, eroded mask (T, H, W) bool) -> dict of (1, ...) model-input tensors,
            e.g. :func:`ex4d.pipelines.conditioning.encode_clip` bound to a generator over the training backbone
            and this run's ``settings`` (the runner binds it: the data layer runs no model of its own).
        settings: :func:`latent_settings` of this run; clips cached with other settings are an error unless
            ``overwrite``.
    Returns:
        summary: ``written``, ``existing`` (already cached with these settings), ``clips``.
    """
    from tqdm.auto import tqdm

    root = Path(shards_dir)
    records = read_index(root)
    complete = limit is None or int(limit) >= len(records)
    if limit is not None:
        records = records[: int(limit)]
    (root / SUMMARY_NAME).unlink(missing_ok=True)  # rewritten below once every clip holds these settings
    erosion = settings["erosion"]
    written = existing = 0
    for rec in tqdm(records, desc="cache latents", unit="clip", disable=not progress):
        path = root / rec["file"]
        meta = read_shard_meta(path)
        cached = meta.get(LATENTS_META)
        if cached is not None and not overwrite:
            if cached == settings:
                existing += 1
                continue
            raise InputError(f"{path} holds inputs cached with other settings ({_diff(cached, settings)}); "
                             "rerun with overwrite=true to replace them")
        tensors, meta = read_shard(path)
        mask = tensors["mask"]
        if erosion["enabled"]:
            g = torch.Generator().manual_seed(sample_seed(erosion["seed"], "cached", rec["clip_id"]))
            mask = erode_masks(mask, g, erosion["k_min"], erosion["k_max"])
        inputs = encode(tensors["frames"], mask)
        extra = {k: v for k, v in tensors.items() if k not in CORE_KEYS}
        extra.update({k: v[0].cpu() for k, v in inputs.items()})
        write_shard(path, tensors["frames"], tensors["mask"], tensors["depth"], tensors["K"],
                    {**meta, LATENTS_META: settings}, extra=extra)
        written += 1
    if complete:
        _write_summary(root, settings, len(records))
    summary = {"shards_dir": str(root), "clips": len(records), "written": written, "existing": existing}
    log.info("cached inputs in %s: %d written, %d already cached", root, written, existing)
    return summary


def _write_summary(root: Path, settings: dict, clips: int) -> None:
    import json

    from ex4d.utils.files import atomic_path

    with atomic_path(root / SUMMARY_NAME) as tmp:
        tmp.write_text(json.dumps({"settings": settings, "clips": clips,
                                   "index_sha256": sha256_file(root / INDEX_NAME)}, indent=1))


def _read_summary(root: Path) -> dict | None:
    """The settings of ``latents.json`` when it covers the current index, else None."""
    import json

    path = root / SUMMARY_NAME
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
        if summary["index_sha256"] == sha256_file(root / INDEX_NAME):
            return summary["settings"]
    except (ValueError, KeyError, TypeError, OSError):
        log.warning("%s is unreadable: checking every shard header instead", path)
    return None


def cached_latent_settings(shards_dir: str | Path) -> dict | None:
    """The cache record of the shards (None when they hold no cached inputs); every clip must agree.
    One read of ``latents.json`` when a complete cache run wrote it for the current index; otherwise every
    shard header is read."""
    root = Path(shards_dir)
    fast = _read_summary(root)
    if fast is not None:
        return fast
    found = {}
    for rec in read_index(root):
        found[rec["file"]] = read_shard_meta(root / rec["file"]).get(LATENTS_META)
    values = list(found.values())
    if all(v is None for v in values):
        return None
    first = values[0]
    bad = [f for f, v in found.items() if v != first]
    if bad:
        raise InputError(f"{root}: cached inputs are missing or differ in {len(bad)} of {len(values)} clips "
                         f"(e.g. {bad[0]}): rerun tools/cache_latents.py with the training settings")
    return first


def check_cached_latents(shards_dir: str | Path, expected: dict) -> bool:
    """True when the shards hold cached inputs made with ``expected`` settings, False when they hold none;
    an error naming the differing setting otherwise (the erosion is not compared: caching fixes it)."""
    cached = cached_latent_settings(shards_dir)
    if cached is None:
        return False
    a = {k: v for k, v in cached.items() if k != "erosion"}
    b = {k: v for k, v in expected.items() if k != "erosion"}
    if a != b:
        raise InputError(f"{shards_dir}: the cached VAE latents / CLIP tokens were made with other settings "
                         f"({_diff(a, b)}); rerun tools/cache_latents.py with this training config "
                         "(overwrite=true)")
    return True


def _diff(a: dict, b: dict) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k}: cached {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))
