"""``python tools/mask_preview.py``: contact sheet of source / mask / masked input for any clip."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ex4d.data.datasets import load_training_clip
from ex4d.data.prepare import mask_preview, process_clip, resolve_device
from ex4d.data.shards import read_shard, shard_path
from ex4d.runners.common import run_dir
from ex4d.utils.errors import InputError

log = logging.getLogger("ex4d.mask_preview")


def _clip_and_mask(cfg: DictConfig) -> tuple:
    """(frames (T, H, W, 3) uint8 numpy, mask (T, H, W) bool numpy, source, info) for ``cfg.input``."""
    src = cfg.input
    if src is not None:
        p = Path(str(src))
        shard = p if p.suffix == ".safetensors" else shard_path(cfg.data.shards_dir, str(src))
        if shard.is_file():
            tensors, meta = read_shard(shard)
            return tensors["frames"].numpy(), tensors["mask"].numpy(), str(shard), meta.get("masking", {})
        if p.suffix == ".safetensors":
            raise InputError(f"input={src}: shard file does not exist")
        if not p.is_file():
            raise InputError(f"input={src} is neither a shard file, a clip id in data.shards_dir "
                             f"({cfg.data.shards_dir}) nor a video file")
        d = cfg.data
        item = load_training_clip(p, d.num_frames, d.stride, d.height, d.width, d.resize, d.frame_mode)
    else:
        dataset = instantiate(cfg.data.videos)(split="all")
        if not 0 <= cfg.index < len(dataset):
            raise InputError(f"index={cfg.index} is out of range: data has {len(dataset)} clips")
        item = dataset[cfg.index]
    out = process_clip(item, instantiate(cfg.depth), instantiate(cfg.masking), cfg.seed, resolve_device(cfg.device))
    return out["frames"].numpy(), out["mask"].numpy(), item["source"], out["masking"]


@torch.no_grad()  # scoped: a process-wide switch would leak into callers (tests, notebooks)
def run_mask_preview(cfg: DictConfig) -> dict:
    frames, mask, source, info = _clip_and_mask(cfg)
    out = Path(cfg.out) if cfg.out else run_dir(cfg) / "mask_preview.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    e = cfg.data.erosion
    path = mask_preview(frames, mask, out, erode=cfg.erode, seed=cfg.seed, k_min=e.k_min, k_max=e.k_max,
                        num_columns=cfg.columns)
    summary = {"path": str(path), "source": source, "hole_fraction": float(1.0 - mask.mean()), "masking": info}
    log.info("wrote %s (%s, %.1f%% holes)", path, source, 100 * summary["hole_fraction"])
    return summary
