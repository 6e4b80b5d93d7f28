"""DepthCrafter video depth (the EX-4D reference backend), run from diffusers components.

DepthCrafter (Hu et al. 2024) fine-tunes the Stable Video Diffusion UNet to denoise *depth* latents
conditioned on the VAE latents and per-frame CLIP embeddings of the input video. EX-4D runs it with
5 Euler steps, guidance 1.0, windows of 110 frames overlapping by 25, seed 42, fp16, at reconstruction
resolution; its output (relative disparity) is normalised over the whole clip to the EX-4D depth scale.

Weights: the UNet ``tencent/DepthCrafter`` (repository root = the UNet folder) and, from the SVD base
``stabilityai/stable-video-diffusion-img2vid``, the folders ``vae/``, ``image_encoder/``,
``feature_extractor/`` and ``scheduler/``. Nothing is loaded before the first call.

    backend = DepthCrafterBackend(unet="weights/DepthCrafter", base="weights/stable-video-diffusion-img2vid")
    result = backend(frames_uint8_THW3)   # result.depth (T, H, W) on the EX-4D scale
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ex4d.cameras import intrinsics
from ex4d.depth._loading import download_hint, hf_offline, load_pretrained, resolve_device, resolve_dtype
from ex4d.depth.base import DepthBackend, DepthResult, disparity_to_ex4d_depth
from ex4d.utils.checks import check_int, check_number
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

UNET_REPO = "tencent/DepthCrafter"
BASE_REPO = "stabilityai/stable-video-diffusion-img2vid"
BASE_FOLDERS = ["vae/*", "image_encoder/*", "feature_extractor/*", "scheduler/*", "model_index.json"]

# SVD micro-conditioning as DepthCrafter passes it: fps id 7, motion bucket 127, and the noise
# augmentation strength that is also added to the conditioning frames.
FPS_ID = 7
MOTION_BUCKET_ID = 127


def window_schedule(num_frames: int, window: int, overlap: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Sliding windows over a clip, as DepthCrafter runs them.

    A clip no longer than ``window`` is one window without overlap. Otherwise windows start every
    ``window - overlap`` frames while the start is before ``num_frames - overlap``, so the last window
    (possibly shorter) always has frames beyond the overlap.

    Returns:
        (window, overlap) actually used and the list of (start, end) frame ranges, end exclusive.
    """
    if window < 1 or not 0 <= overlap < window:
        raise InputError(f"depth window/overlap: need window >= 1 and 0 <= overlap < window, got {window}/{overlap}")
    if num_frames <= window:
        return num_frames, 0, [(0, num_frames)]
    stride = window - overlap
    spans = []
    start = 0
    while start < num_frames - overlap:
        spans.append((start, min(start + window, num_frames)))
        start += stride
    return window, overlap, spans


def blend_overlap(latents_all: Tensor, latents: Tensor, overlap: int) -> Tensor:
    """Append a window's latents (B, F, C, h, w) to the stitched ones, blending the ``overlap`` shared frames.

    The weight of the new window rises linearly from 0 to 1 across the overlap (``linspace(0, 1, overlap)``),
    so the seam fades from the previous window into the new one.
    """
    if overlap == 0:
        return torch.cat([latents_all, latents], dim=1)
    w = torch.linspace(0, 1, overlap, device=latents.device).view(1, overlap, 1, 1, 1)
    out = latents_all.clone()
    out[:, -overlap:] = latents[:, :overlap] * w + latents_all[:, -overlap:] * (1 - w)
    return torch.cat([out, latents[:, overlap:]], dim=1)


@dataclass
class _Components:
    unet: Any
    vae: Any
    image_encoder: Any
    scheduler: Any
    image_mean: Tensor  # (1, 3, 1, 1) CLIP normalisation
    image_std: Tensor


class DepthCrafterBackend(DepthBackend):
    """DepthCrafter relative disparity -> EX-4D depth (clip-level normalisation), K with f = 500 px.

    Args:
        unet: hub id or local folder of the DepthCrafter UNet (config.json + weights at its root).
        base: hub id or local folder of the SVD img2vid base (vae/, image_encoder/, feature_extractor/, scheduler/).
        steps: denoising steps (reference 5).
        guidance: classifier-free guidance scale; <= 1 runs the conditional branch only (reference 1.0).
        window: frames per sliding window (reference 110); overlap: frames shared by consecutive windows (25).
        seed: seeds the conditioning-noise augmentation and the initial latents (reference 42).
        dtype: "float16" (reference), "bfloat16" or "float32"; half precision falls back to float32 on CPU.
        device: "auto" (CUDA if available), "cuda", "cuda:1", "cpu".
        cache_dir: Hugging Face cache folder for hub ids (None: the default cache).
        variant: weight-file variant of the base components ("fp16": the SVD repo's *.fp16.safetensors;
            None: the full files).
        local_files_only: never touch the network; None follows HF_HUB_OFFLINE.
        decode_chunk_size: frames per VAE encode/decode call (reference 8; the temporal decoder mixes
            frames inside a chunk, so this changes the output slightly).
        noise_aug_strength: noise added to the conditioning frames (reference 0.02).
        focal_px: focal length of the returned K (reference 500 px at every resolution).
    """

    name = "depthcrafter"

    def __init__(self, unet: str = UNET_REPO, base: str = BASE_REPO, steps: int = 5, guidance: float = 1.0,
                 window: int = 110, overlap: int = 25, seed: int = 42, dtype: str = "float16", device: str = "auto",
                 cache_dir: str | None = None, variant: str | None = "fp16", local_files_only: bool | None = None,
                 decode_chunk_size: int = 8, noise_aug_strength: float = 0.02, focal_px: float = 500.0):
        check_int(steps, "depth.steps", minimum=1)
        check_int(decode_chunk_size, "depth.decode_chunk_size", minimum=1)
        check_int(window, "depth.window", minimum=1)
        check_int(overlap, "depth.overlap", minimum=0)
        check_int(seed, "depth.seed")
        check_number(guidance, "depth.guidance")
        check_number(noise_aug_strength, "depth.noise_aug_strength", minimum=0.0)
        window_schedule(window + 1, window, overlap)  # validates window/overlap now, not mid-run
        self.unet_source, self.base_source = str(unet), str(base)
        self.steps, self.guidance, self.seed = int(steps), float(guidance), int(seed)
        self.window, self.overlap = int(window), int(overlap)
        self.dtype_name, self.device_name = dtype, device
        self.cache_dir, self.variant, self.local_files_only = cache_dir, variant, local_files_only
        self.decode_chunk_size = int(decode_chunk_size)
        self.noise_aug_strength, self.focal_px = float(noise_aug_strength), check_number(focal_px, "depth.focal_px", positive=True)
        self._c: _Components | None = None
        self._device: torch.device | None = None
        self._dtype: torch.dtype | None = None

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load every component now (the first call does it otherwise)."""
        if self._c is not None:
            return
        from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
        from transformers import CLIPVisionModelWithProjection

        from ex4d.depth._depthcrafter_unet import DepthCrafterUNet

        device = resolve_device(self.device_name, "depth.device")
        dtype = resolve_dtype(self.dtype_name, device, key="depth.dtype")
        local = hf_offline() if self.local_files_only is None else bool(self.local_files_only)
        common = {"cache_dir": self.cache_dir, "local_files_only": local}
        unet_hint = download_hint(self.unet_source, UNET_REPO, ["depthcrafter"], UNET_REPO.split("/")[1]) + \
            " Or set depth.unet=<folder>."
        base_hint = download_hint(self.base_source, BASE_REPO, ["depthcrafter"], BASE_REPO.split("/")[1], BASE_FOLDERS,
                                  gated=True)
        base_hint += " Or set depth.base=<folder>."

        def _base(load):
            # A local copy may hold only the full-precision files: fall back to them when the variant is absent.
            try:
                return load(self.variant)
            except (OSError, ValueError):
                if self.variant is None:
                    raise
                return load(None)

        unet = load_pretrained(lambda: DepthCrafterUNet.from_pretrained(self.unet_source, torch_dtype=dtype, **common),
                               self.unet_source, "DepthCrafter UNet", unet_hint)
        vae = load_pretrained(lambda: _base(lambda v: AutoencoderKLTemporalDecoder.from_pretrained(
            self.base_source, subfolder="vae", variant=v, torch_dtype=dtype, **common)),
            self.base_source, "SVD VAE (vae/)", base_hint)
        image_encoder = load_pretrained(lambda: _base(lambda v: CLIPVisionModelWithProjection.from_pretrained(
            self.base_source, subfolder="image_encoder", variant=v, dtype=dtype, **common)),
            self.base_source, "SVD image encoder (image_encoder/)", base_hint)
        scheduler = load_pretrained(lambda: EulerDiscreteScheduler.from_pretrained(
            self.base_source, subfolder="scheduler", **common),
            self.base_source, "SVD scheduler (scheduler/)", base_hint)
        fe = load_pretrained(lambda: _load_preprocessor_config(self.base_source, common),
                             self.base_source, "SVD feature extractor (feature_extractor/)", base_hint)
        for m in (unet, vae, image_encoder):
            m.to(device).eval().requires_grad_(False)
        self._c = _Components(
            unet, vae, image_encoder, scheduler,
            torch.tensor(fe["image_mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1),
            torch.tensor(fe["image_std"], dtype=torch.float32, device=device).view(1, 3, 1, 1),
        )
        self._device, self._dtype = device, dtype
        log.info("DepthCrafter loaded (unet %s, base %s) on %s in %s",
                 self.unet_source, self.base_source, device, dtype)

    # ------------------------------------------------------------------ inference
    def __call__(self, frames: Tensor, source: str | None = None) -> DepthResult:
        """Depth of a clip: frames (T, H, W, 3) uint8 RGB, H and W multiples of 8 -> DepthResult on the EX-4D scale."""
        frames = torch.as_tensor(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"{source or 'frames'}: expected (T, H, W, 3) RGB frames, got {tuple(frames.shape)}")
        T, H, W = frames.shape[:3]
        if H % 8 or W % 8:
            raise InputError(f"{source or 'frames'}: DepthCrafter needs height and width divisible by 8, got {H}x{W}")
        disparity = self.predict_disparity(frames)
        depth = disparity_to_ex4d_depth(disparity)
        info = {"backend": self.name, "unet": self.unet_source, "base": self.base_source, "steps": self.steps,
                "guidance": self.guidance, "window": self.window, "overlap": self.overlap, "seed": self.seed,
                "dtype": str(self._dtype).replace("torch.", ""), "normalisation": "clip", "focal_px": self.focal_px}
        return DepthResult(depth=depth, K=intrinsics(H, W, self.focal_px), info=info)

    @torch.no_grad()  # not inference_mode: its outputs (and a VAE re-cast inside) would refuse later in-place use
    def predict_disparity(self, frames: Tensor) -> Tensor:
        """DepthCrafter's raw output: (T, H, W) float32 relative disparity in [0, 1] (channel mean), on CPU.

        Args:
            frames: (T, H, W, 3) uint8 RGB (or float in [0, 1]); H, W multiples of 8.
        """
        self.load()
        c, dev, dtype = self._c, self._device, self._dtype
        frames = torch.as_tensor(frames)
        T, H, W = frames.shape[:3]
        video01 = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        # Reference order: float [0, 1] -> model dtype -> [-1, 1].
        video = video01.permute(0, 3, 1, 2).to(dev, dtype) * 2.0 - 1.0  # (T, 3, H, W)
        # One generator drawn in the reference's order (conditioning noise, then initial latents),
        # so a seed reproduces the reference's global-seed run.
        from diffusers.utils.torch_utils import randn_tensor

        gen = torch.Generator(device=dev).manual_seed(self.seed)
        chunk = self.decode_chunk_size

        embeds = self._clip_embeddings(video).unsqueeze(0)  # (1, T, C_clip)
        noise = randn_tensor(video.shape, generator=gen, device=dev, dtype=video.dtype)
        video = video + self.noise_aug_strength * noise
        cond = self._vae_encode(video, chunk).unsqueeze(0)  # (1, T, 4, h, w)

        added_time_ids = torch.tensor([[FPS_ID, MOTION_BUCKET_ID, self.noise_aug_strength]],
                                      dtype=embeds.dtype, device=dev)
        sched = c.scheduler
        sched.set_timesteps(self.steps, device=dev)
        window, overlap, spans = window_schedule(T, self.window, self.overlap)
        f = _vae_scale_factor(c.vae)
        shape = (1, window, c.unet.config.in_channels // 2, H // f, W // f)
        latents_init = randn_tensor(shape, generator=gen, device=dev, dtype=embeds.dtype) * sched.init_noise_sigma
        stride = window - overlap

        latents_all = None
        for start, end in spans:
            sched.set_timesteps(self.steps, device=dev)  # resets the step index for this window
            latents = latents_init[:, : end - start].clone()
            if overlap:
                # Next window's noise: the last `overlap` draws of this one, then the first `stride` ones.
                latents_init = torch.cat([latents_init[:, -overlap:], latents_init[:, :stride]], dim=1)
            cond_w, embeds_w = cond[:, start:end], embeds[:, start:end]
            for i, t in enumerate(sched.timesteps):
                if latents_all is not None and i == 0:
                    # Restart the shared frames from the previous window's result, re-noised to the
                    # first sigma with this window's own noise, so windows agree on the overlap.
                    latents[:, :overlap] = (latents_all[:, -overlap:]
                                            + latents[:, :overlap] / sched.init_noise_sigma * sched.sigmas[i])
                x = sched.scale_model_input(latents, t)
                pred = c.unet(torch.cat([x, cond_w], dim=2), t, embeds_w, added_time_ids)
                if self.guidance > 1.0:
                    # unconditional branch: zero conditioning latents and zero image embeddings
                    uncond = c.unet(torch.cat([x, torch.zeros_like(x)], dim=2), t, torch.zeros_like(embeds_w),
                                    added_time_ids)
                    pred = uncond + self.guidance * (pred - uncond)
                latents = sched.step(pred, t, latents).prev_sample
            latents_all = latents.clone() if latents_all is None else blend_overlap(latents_all, latents, overlap)
        assert latents_all.shape[1] == T, (latents_all.shape, T)

        rgb = self._vae_decode(latents_all[0], chunk)  # (T, 3, H, W) float32 in ~[-1, 1]
        # As the reference: to [0, 1] image space, clamp, then the mean of the three channels.
        return (rgb * 0.5 + 0.5).clamp(0, 1).mean(dim=1).cpu()

    def _clip_embeddings(self, video: Tensor) -> Tensor:
        """(T, 3, H, W) in [-1, 1] -> (T, C_clip) image embeddings, one per frame."""
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

        c = self._c
        size = int(c.image_encoder.config.image_size)  # 224 for SVD's CLIP ViT-H
        x = (_resize_with_antialiasing(video.float(), (size, size)) + 1.0) / 2.0
        x = (x - c.image_mean) / c.image_std  # CLIP normalisation only: no rescale, crop or second resize
        out = [c.image_encoder(x[i:i + self.decode_chunk_size].to(self._dtype)).image_embeds
               for i in range(0, x.shape[0], self.decode_chunk_size)]
        return torch.cat(out)

    def _vae_encode(self, video: Tensor, chunk: int) -> Tensor:
        """(T, 3, H, W) in [-1, 1] -> (T, 4, h, w) latent modes (unscaled, as SVD conditioning expects)."""
        vae = self._c.vae
        upcast = vae.dtype == torch.float16 and vae.config.force_upcast  # the SVD VAE overflows in fp16 when encoding
        if upcast:
            vae.to(torch.float32)
        try:
            x = video.to(vae.dtype)
            return torch.cat([vae.encode(x[i:i + chunk]).latent_dist.mode() for i in range(0, x.shape[0], chunk)])
        finally:
            if upcast:
                vae.to(torch.float16)

    def _vae_decode(self, latents: Tensor, chunk: int) -> Tensor:
        """(T, 4, h, w) latents -> (T, 3, H, W) float32; the temporal decoder sees `chunk` frames at a time."""
        vae = self._c.vae
        z = (latents / vae.config.scaling_factor).to(vae.dtype)
        out = [vae.decode(z[i:i + chunk], num_frames=z[i:i + chunk].shape[0]).sample
               for i in range(0, z.shape[0], chunk)]
        return torch.cat(out).float()


def _vae_scale_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _load_preprocessor_config(base: str, common: dict) -> dict:
    """CLIP normalisation of the base's feature extractor (only image_mean / image_std are used)."""
    import json
    from pathlib import Path

    local = Path(base).expanduser() / "feature_extractor" / "preprocessor_config.json"
    if local.is_file():
        path = local
    elif Path(base).expanduser().exists():
        raise FileNotFoundError(f"{local} not found")
    else:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(base, "preprocessor_config.json", subfolder="feature_extractor", **common)
    cfg = json.loads(Path(path).read_text())
    return {"image_mean": cfg["image_mean"], "image_std": cfg["image_std"]}
