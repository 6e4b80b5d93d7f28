"""``python tools/cache_latents.py``: VAE latents + CLIP tokens of every prepared shard, computed once."""

from __future__ import annotations

import functools
import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ex4d.data.latents import cache_latents
from ex4d.runners.shards import training_latent_settings

log = logging.getLogger("ex4d.cache_latents")


def run_cache_latents(cfg: DictConfig) -> dict:
    """Build the VAE + CLIP of ``cfg.model`` (the DiT stays on the CPU) and cache every shard's inputs."""
    from ex4d.model.adapter import LoraSettings, build_ex4d_transformer
    from ex4d.pipelines.conditioning import encode_clip
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
    encode = functools.partial(encode_clip, gen, mask_encoding=settings["mask_encoding"],
                               first_frame_rounding=settings["first_frame_rounding"],
                               clip_preprocess=settings["clip_preprocess"])
    summary = cache_latents(cfg.data.shards_dir, encode, settings, overwrite=cfg.overwrite, limit=cfg.limit,
                            progress=cfg.progress)
    summary["settings"] = settings
    return summary
