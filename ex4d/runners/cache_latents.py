"""``python tools/cache_latents.py``: VAE latents + CLIP tokens of every prepared shard, computed once."""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ex4d.data.latents import cache_latents, latent_settings

log = logging.getLogger("ex4d.cache_latents")


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


def run_cache_latents(cfg: DictConfig) -> dict:
    """Build the VAE + CLIP of ``cfg.model`` (the DiT stays on the CPU) and cache every shard's inputs."""
    from ex4d.model.adapter import LoraSettings, build_ex4d_transformer
    from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings

    loader = instantiate(cfg.model)
    if hasattr(loader, "load_text_encoder"):
        loader.load_text_encoder = False  # caching needs the VAE and CLIP only
    settings = training_latent_settings(cfg, loader)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    comps = loader.load()
    model = build_ex4d_transformer(comps.transformer, LoraSettings(), hidden_channels=comps.encoder_hidden_channels)
    # offload: each model visits the device only for its stage, so the 28 GB DiT never leaves the CPU here
    gen = EX4DGenerator(comps, model, GenerateSettings(progress=False, pin_memory=False), device=device,
                        memory_mode="offload", shared_dit=True)
    summary = cache_latents(cfg.data.shards_dir, gen, settings, overwrite=cfg.overwrite, limit=cfg.limit,
                            progress=cfg.progress)
    summary["settings"] = settings
    return summary
