"""Training shards from a config, shared by the entry runners: ``write_shards`` (what ``python
tools/prepare_data.py`` runs, and ``train.py`` when ``data.prepare_if_missing`` finds none), the settings the shards
depend on, and the cached-latent record a training config expects (``tools/cache_latents.py`` writes it,
``train.py`` checks it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ex4d.data.latents import latent_settings
from ex4d.data.prepare import prepare_shards
from ex4d.data.shards import INDEX_NAME
from ex4d.runners.common import with_effective_defaults
from ex4d.runners.validate import check_shape
from ex4d.utils.errors import InputError

log = logging.getLogger("ex4d.prepare_data")


def shard_settings(cfg: DictConfig) -> dict:
    """What the shards' content depends on (its hash guards resumed runs against changed settings)."""
    keep = ("num_frames", "stride", "height", "width", "resize", "frame_mode", "clips_per_video")
    return {
        "data": {k: cfg.data[k] for k in keep},
        "depth": OmegaConf.to_container(cfg.depth, resolve=True),
        "masking": with_effective_defaults(_without_composite(OmegaConf.to_container(cfg.masking, resolve=True))),
        "seed": cfg.seed,
    }


def _without_composite(node):
    """``node`` without the renderers' ``composite`` keys: masks use the rendered alpha only, never the colour, so
    the colour compositing (renderer.composite) must not change the shards' fingerprint."""
    if isinstance(node, dict):
        is_renderer = "composite" in node and ("backend" in node or "Renderer" in str(node.get("_target_", "")))
        return {k: _without_composite(v) for k, v in node.items() if not (is_renderer and k == "composite")}
    if isinstance(node, list):
        return [_without_composite(v) for v in node]
    return node


@torch.no_grad()  # scoped: a process-wide switch would leak into callers (tests, notebooks)
def write_shards(cfg: DictConfig) -> dict:
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


def prepare_if_missing(cfg: DictConfig) -> dict | None:
    """``data.prepare_if_missing``: when ``data.shards_dir`` has no index yet, write the shards first, as
    ``python tools/prepare_data.py data=<same data> depth=.. masking=..`` would with the depth, masking, renderer,
    mesh and seed of ``data.prepare`` (data=tiny: planes depth, render masks), so the shards' settings fingerprint
    is that command's. Returns its summary, or None when nothing was to do (shards there, or the option off).

    Global rank 0 only: Lightning's own DDP launcher starts the other ranks later, inside ``fit``; under
    torchrun the other ranks do not wait and fail with the usual "run prepare_data" message, so prepare first.
    """
    data = cfg.data
    if not data.get("prepare_if_missing", False) or not data.get("shards_dir"):
        return None
    if (Path(data.shards_dir) / INDEX_NAME).is_file():
        return None
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:
        return None
    if not data.get("prepare"):
        raise InputError("data.prepare_if_missing=true needs data.prepare (depth, masking, renderer, mesh, seed), "
                         "as in conf/data/tiny.yaml; or write the shards with tools/prepare_data.py")
    # data.* resolved against the caller's config (paths, ...); prepare.* unresolved, so that the masking's
    # ${oc.select:renderer,...} / ${oc.select:mesh,...} pick prepare's renderer and mesh, as in prepare_data.yaml.
    data_values = OmegaConf.to_container(data, resolve=True)
    data_values.pop("prepare")
    prepare = OmegaConf.to_container(data.prepare, resolve=False)
    prep_cfg = OmegaConf.create({**prepare, "data": data_values, "split": "all", "device": "auto",
                                 "overwrite": False, "limit": None, "progress": False})
    log.info("data.shards_dir %s has no %s and data.prepare_if_missing is set: preparing the shards first (depth %s, "
             "masking %s)", data.shards_dir, INDEX_NAME, prep_cfg.depth.get("_target_"), prep_cfg.masking.get("_target_"))
    return write_shards(prep_cfg)
def backbone_id(loader) -> str:
    """Identity of the backbone the inputs are encoded with (its weights folder, else its description)."""
    return str(getattr(loader, "path", None) or repr(loader))


def training_latent_settings(cfg: DictConfig, loader=None) -> dict:
    """The cache record a training config expects (``cfg`` composed from train.yaml)."""
    erosion = cfg.data.get("erosion") or {}
    return latent_settings(
        backbone_id(loader if loader is not None else instantiate(cfg.model)),
        cfg.module.mask_encoding, cfg.module.first_frame_rounding, cfg.module.clip_preprocess,
        erode=erosion.get("enabled", True), k_min=erosion.get("k_min", 2), k_max=erosion.get("k_max", 8),
        seed=erosion.get("seed", 0),
    )
