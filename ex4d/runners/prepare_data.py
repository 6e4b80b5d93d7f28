"""``python tools/prepare_data.py``: depth + simulated masking once per clip -> training shards."""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ex4d.data.prepare import prepare_shards
from ex4d.runners.train import check_shape

log = logging.getLogger("ex4d.prepare_data")


def shard_settings(cfg: DictConfig) -> dict:
    """What the shards' content depends on (its hash guards resumed runs against changed settings)."""
    keep = ("num_frames", "stride", "height", "width", "resize", "frame_mode", "clips_per_video")
    return {
        "data": {k: cfg.data[k] for k in keep},
        "depth": OmegaConf.to_container(cfg.depth, resolve=True),
        "masking": OmegaConf.to_container(cfg.masking, resolve=True),
        "seed": cfg.seed,
    }


@torch.no_grad()  # scoped: a process-wide switch would leak into callers (tests, notebooks)
def run_prepare_data(cfg: DictConfig) -> dict:
    """Instantiate data, depth and masking from ``cfg`` and write the shards; returns the summary."""
    check_shape(cfg.data)  # shards of a shape Wan cannot take would only fail at training, after all the depth work
    dataset = instantiate(cfg.data.videos)(split=cfg.split)
    log.info("data %s: %s", cfg.data.root, dataset.summary())
    summary = prepare_shards(
        dataset,
        depth=instantiate(cfg.depth),
        masking=instantiate(cfg.masking),
        out_dir=cfg.data.shards_dir,
        seed=cfg.seed,
        device=cfg.device,
        overwrite=cfg.overwrite,
        limit=cfg.limit,
        progress=cfg.progress,
        settings=shard_settings(cfg),
    )
    log.info("shards in %s: %d written, %d already there, %d failed, %d indexed (%s); videos skipped: %s",
             summary["out_dir"], summary["written"], summary["existing"], summary["failed"], summary["indexed"],
             summary["splits"], summary["skipped_videos"])
    return summary
