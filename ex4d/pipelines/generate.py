"""Generation stage: colour + mask videos of the new camera path -> the finished video.

The sampler is the reference's (ex4d-method.md section 5), built from diffusers pieces:

* flow matching, Euler, ``FlowMatchEulerDiscreteScheduler`` fed the reference's sigmas
  sigma' = linspace(1, 0, S+1)[:-1], sigma = 5 sigma' / (1 + 4 sigma') (shift 5), terminal 0, S = 25;
  noise (1, 16, (T-1)/4 + 1, H/8, W/8) fp32 from ``torch.Generator('cpu').manual_seed(seed)``;
* CFG 5 on the text only: two DiT forwards per step (prompt / negative prompt), the same CLIP tokens,
  first-frame latent and geometry tokens in both; the guidance combination and the latents in fp32;
* first-frame I2V conditioning on the source frame 0: CLIP tokens (hidden states after layer 31) into
  the image cross-attention, and the 4-channel frame mask + first-frame VAE latent concatenated to the
  noise latent (16 + 4 + 16 = 36 channels), via ``WanImageToVideoPipeline.prepare_latents``;
* the prompt (fixed EX-4D prompt) and negative prompt (Wan's default) through
  ``WanImageToVideoPipeline.encode_prompt`` (UMT5, 512 tokens, zero padded);
* geometry: mask eroded per frame (k x k ones, k uniform in 2..8 from a seeded generator), binarised;
  x_c = 2 (C * M) - 1 and the mask video through the VAE (the reference's double mask mapping by default,
  see ``mask_encoding``), the :class:`~ex4d.model.adapter.GeometryEncoder` once, its tokens added after the
  patch embedding in every forward.

Example::

    from ex4d.model.wan import WanLoader
    from ex4d.model.adapter import LoraSettings
    from ex4d.pipelines.generate import GenerateSettings, build_generator

    gen = build_generator(WanLoader("weights/Wan2.1-I2V-14B-480P-Diffusers"), LoraSettings(),
                          checkpoint="weights/EX-4D/ex4d.ckpt")
    frames = gen(colour_THW3_u8, mask_THW_bool, first_frame_HW3_u8)   # (T, H, W, 3) uint8
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import Tensor

from ex4d.masking.erosion import erode_masks
from ex4d.model.adapter import DEFAULT_ADAPTER, EX4DTransformer, LoraSettings, build_ex4d_transformer, lora_modules
from ex4d.model.wan import WanComponents
from ex4d.pipelines.conditioning import (
    clip_pixels,
    first_frame_image,
    frames_from_video,
    geometry_inputs,
    validate_inputs,
)
from ex4d.pipelines.memory import ModelPlacement, efficient_attention, require_efficient_attention
from ex4d.utils.errors import InputError

EX4D_PROMPT = "4K ultra HD, surround motion, realistic tone, panoramic shot, wide-angle view, cinematic quality"
WAN_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
)

_CHOICES = {
    "mask_encoding": ("reference", "fixed"),
    "first_frame_rounding": ("reference", "exact"),
    "clip_preprocess": ("reference", "processor"),
}


@dataclass
class GenerateSettings:
    """Sampler settings (defaults = the reference).

    Attributes:
        num_steps: Euler steps (25).
        guidance_scale: CFG scale on the text (5); 1 runs one forward per step.
        shift: flow-matching sigma shift (5).
        seed: noise seed (0); also the erosion seed unless ``erosion_seed`` is set.
        prompt, negative_prompt: text conditions (the fixed EX-4D prompt, Wan's default negative prompt).
        erosion_min, erosion_max: per-frame erosion kernel size range, inclusive (2, 8).
        erosion_seed: seed of the kernel-size draws (the reference leaves them unseeded); None = ``seed``.
        mask_encoding: ``reference`` (VAE sees the mask as {-3, 1}: the released checkpoint was trained so)
            or ``fixed`` ({-1, 1}; only for adapters trained that way).
        first_frame_rounding: ``reference`` (bf16 + 8-bit truncation round trip, as the reference) or ``exact``.
        clip_preprocess: ``reference`` (bicubic squash to 224, no antialias) or ``processor`` (diffusers'
            CLIPImageProcessor: shortest-edge resize + centre crop).
        fuse_lora: merge the LoRA into the DiT weights before sampling (faster; weights change in place, bf16
            rounding of W + BA).
        compile_blocks: regional ``torch.compile`` of the DiT blocks (CUDA only; first step compiles).
        progress: tqdm bar over the steps.
    """

    num_steps: int = 25
    guidance_scale: float = 5.0
    shift: float = 5.0
    seed: int = 0
    prompt: str = EX4D_PROMPT
    negative_prompt: str = WAN_NEGATIVE_PROMPT
    erosion_min: int = 2
    erosion_max: int = 8
    erosion_seed: int | None = None
    mask_encoding: str = "reference"
    first_frame_rounding: str = "reference"
    clip_preprocess: str = "reference"
    fuse_lora: bool = False
    compile_blocks: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise InputError(f"generate.num_steps: expected an integer >= 1, got {self.num_steps!r}")
        if not self.guidance_scale >= 1.0:
            raise InputError(f"generate.guidance_scale: expected >= 1 (1 disables CFG), got {self.guidance_scale!r}")
        if not self.shift > 0:
            raise InputError(f"generate.shift: expected > 0, got {self.shift!r}")
        if not (1 <= int(self.erosion_min) <= int(self.erosion_max)):
            raise InputError(
                f"generate.erosion_min/erosion_max: expected 1 <= min <= max, got {self.erosion_min}, {self.erosion_max}"
            )
        for key, allowed in _CHOICES.items():
            if getattr(self, key) not in allowed:
                raise InputError(f"generate.{key}: expected one of {allowed}, got {getattr(self, key)!r}")
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise InputError("generate.prompt / negative_prompt: expected strings")


class EX4DGenerator:
    """The EX-4D generation stage as one callable.

    Args:
        components: the Wan backbone (:func:`~ex4d.model.wan.load_wan_components` or the tiny test model).
        model: the DiT with the EX-4D adapter (:func:`~ex4d.model.adapter.build_ex4d_transformer`); its
            ``transformer`` must be ``components.transformer``.
        settings: sampler settings (defaults = the reference).
        device: execution device (default: CUDA when available).
        memory_mode: ``gpu`` | ``offload`` | ``low_vram`` (see :mod:`ex4d.pipelines.memory`).
    """

    def __init__(
        self,
        components: WanComponents,
        model: EX4DTransformer,
        settings: GenerateSettings | None = None,
        *,
        device: str | torch.device | None = None,
        memory_mode: str = "gpu",
    ) -> None:
        from diffusers import WanImageToVideoPipeline

        if model.transformer is not components.transformer:
            raise InputError("EX4DGenerator: model.transformer must be components.transformer")
        self.components = components
        self.model = model.eval()
        self.settings = settings or GenerateSettings()
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu"
        )
        # diffusers' I2V pipeline object, used only for its stage helpers (encode_prompt, prepare_latents,
        # encode_image); we never call it.
        self.helper = WanImageToVideoPipeline(
            tokenizer=components.tokenizer,
            text_encoder=components.text_encoder,
            vae=components.vae,
            scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=self.settings.shift),
            image_processor=components.image_processor,
            image_encoder=components.image_encoder,
            transformer=components.transformer,
        )
        if self.settings.fuse_lora:
            for m in lora_modules(components.transformer, model.adapter_name).values():
                m.merge(adapter_names=[model.adapter_name])
        self.placement = ModelPlacement(memory_mode, self.device, components.modules(), resident=[model.encoder])
        if self.settings.compile_blocks and self.device.type == "cuda":
            components.transformer.compile_repeated_blocks(fullgraph=True)
        self._attention_checked = False
        self.last_timings: dict[str, float] = {}  # seconds per stage of the last call (GPU-synchronised)

    # ---- stages ----------------------------------------------------------------------------------

    @property
    def dit_dtype(self) -> torch.dtype:
        return self.components.transformer.patch_embedding.weight.dtype

    def encode_prompts(self, prompt: str, negative_prompt: str, cfg: bool = True) -> tuple[Tensor, Tensor | None]:
        """(1, 512, text_dim) prompt and negative-prompt embeddings in the DiT dtype (negative None without CFG)."""
        if self.components.text_encoder is None:
            raise InputError("no text encoder loaded: pass prompt_embeds / negative_prompt_embeds, or load UMT5")
        try:  # diffusers' prompt_clean (the same ftfy + whitespace cleaning as the reference) needs ftfy
            import ftfy  # noqa: F401
        except ImportError as e:
            raise ImportError("prompt encoding needs ftfy: pip install ftfy==6.3.1") from e
        with self.placement.stage("text_encoder"):
            pos, neg = self.helper.encode_prompt(
                prompt=prompt,
                negative_prompt=negative_prompt,
                do_classifier_free_guidance=cfg,
                num_videos_per_prompt=1,
                max_sequence_length=512,
                device=self.device,
                dtype=self.dit_dtype,
            )
        return pos, neg

    def encode_image(self, image: Tensor, preprocess: str = "reference") -> Tensor:
        """CLIP tokens (1, 257, 1280) of the conditioning image (1, 3, H, W) in [-1, 1], in the DiT dtype."""
        enc = self.components.image_encoder
        with self.placement.stage("image_encoder"):
            if preprocess == "processor":
                from PIL import Image

                u8 = ((image[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
                tokens = self.helper.encode_image(Image.fromarray(u8), self.device)
            else:
                proc = self.components.image_processor
                crop = proc.crop_size
                size = crop["height"] if isinstance(crop, dict) else crop.height
                pixels = clip_pixels(image.to(self.device), size, proc.image_mean, proc.image_std)
                out = enc(pixel_values=pixels.to(enc.dtype), output_hidden_states=True)
                tokens = out.hidden_states[-2]
        return tokens.to(self.device, self.dit_dtype)

    def _vae_encode(self, video: Tensor) -> Tensor:
        """(1, 3, T, H, W) in [-1, 1] -> normalised latent mode (1, 16, T', h, w) fp32 on the device."""
        from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents

        vae = self.components.vae
        lat = retrieve_latents(vae.encode(video.to(self.device, vae.dtype)), sample_mode="argmax").float()
        mean = torch.tensor(vae.config.latents_mean, device=lat.device).view(1, -1, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(vae.config.latents_std, device=lat.device).view(1, -1, 1, 1, 1)
        return (lat - mean) * inv_std

    def _vae_decode(self, latents: Tensor) -> Tensor:
        vae = self.components.vae
        mean = torch.tensor(vae.config.latents_mean, device=latents.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=latents.device).view(1, -1, 1, 1, 1)
        z = (latents.float() * std + mean).to(vae.dtype)
        return vae.decode(z, return_dict=False)[0]

    def _check_attention(self) -> None:
        if self._attention_checked:
            return
        tr = self.components.transformer
        heads = tr.config.num_attention_heads
        require_efficient_attention(self.device, self.dit_dtype, heads, tr.config.attention_head_dim)
        self._attention_checked = True

    # ---- the call --------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        colour,
        mask,
        first_frame=None,
        *,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        settings: GenerateSettings | None = None,
        return_latents: bool = False,
    ) -> Tensor:
        """Generate the video.

        Args:
            colour: (T, H, W, 3) uint8 render along the new path (holes black; frame 0 = source frame).
            mask: (T, H, W) bool, True = trusted pixel (see :func:`~ex4d.pipelines.conditioning.validate_inputs`).
            first_frame: (H, W, 3) uint8 source frame 0 for the I2V conditioning (None: ``colour[0]``).
            prompt, negative_prompt, seed: override the settings for this call.
            prompt_embeds, negative_prompt_embeds: (1, 512, text_dim) precomputed text embeddings (skip UMT5).
            settings: sampler settings for this call (``fuse_lora`` / ``compile_blocks`` are fixed at build time).
            return_latents: return the final latents (1, 16, T', h, w) fp32 instead of decoding.

        Returns:
            (T, H, W, 3) uint8 frames on the CPU. H, W, T as the input (multiples of 16, 4k + 1).
        """
        s = settings or self.settings
        if (s.fuse_lora, s.compile_blocks) != (self.settings.fuse_lora, self.settings.compile_blocks):
            raise InputError("fuse_lora / compile_blocks are fixed when the generator is built")
        colour_t, mask_t, first = validate_inputs(colour, mask, first_frame)
        T, H, W = mask_t.shape
        seed = s.seed if seed is None else int(seed)
        cfg = s.guidance_scale > 1.0
        self._check_attention()
        clock = _StageClock(self.device)

        # 1. masks: seeded per-frame erosion (the reference draws k unseeded)
        erosion_seed = s.erosion_seed if s.erosion_seed is not None else seed
        eroded = erode_masks(mask_t, torch.Generator("cpu").manual_seed(erosion_seed), s.erosion_min, s.erosion_max)
        clock.lap("mask_erosion")

        # 2. text
        if prompt_embeds is None:
            pos, neg = self.encode_prompts(
                prompt if prompt is not None else s.prompt,
                negative_prompt if negative_prompt is not None else s.negative_prompt,
                cfg,
            )
        else:
            pos, neg = prompt_embeds, negative_prompt_embeds
            if cfg and neg is None:
                raise InputError("negative_prompt_embeds is required with guidance_scale > 1")
        pos = pos.to(self.device, self.dit_dtype)
        neg = neg.to(self.device, self.dit_dtype) if cfg else None
        clock.lap("text_encode")

        # 3. first-frame image: CLIP tokens and (below) the first-frame latent
        image = first_frame_image(first, s.first_frame_rounding)
        clip_tokens = self.encode_image(image, s.clip_preprocess)
        clock.lap("image_encode")

        # 4. noise as the reference draws it: fp32 on the CPU from a seeded generator
        vt = self.helper.vae_scale_factor_temporal
        vs = self.helper.vae_scale_factor_spatial
        shape = (1, self.components.vae.config.z_dim, (T - 1) // vt + 1, H // vs, W // vs)
        noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)

        with self.placement.stage("vae"):
            latents, condition = self.helper.prepare_latents(
                image.to(self.device), 1, shape[1], H, W, T, torch.float32, self.device, None, noise
            )
            x_c, x_m = geometry_inputs(colour_t, eroded, self.components.vae.dtype, s.mask_encoding)
            z_c = self._vae_encode(x_c)
            z_m = self._vae_encode(x_m)
        geometry = self.model.encoder(z_c, z_m)  # once; reused by every forward of both CFG branches
        clock.lap("vae_encode")

        # 5. denoise. The scheduler applies the shift itself, so it gets the unshifted linspace; its sigmas
        # then equal conditioning.reference_sigmas() bit for bit (tests/unit/test_sampler.py).
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=s.shift)
        scheduler.set_timesteps(
            sigmas=torch.linspace(1.0, 0.0, s.num_steps + 1, dtype=torch.float32)[:-1].numpy(), device=self.device
        )
        latents = latents.float()
        condition = condition.to(self.device, self.dit_dtype)
        from tqdm.auto import tqdm

        with self.placement.stage("transformer"), efficient_attention(self.device):
            for t in tqdm(scheduler.timesteps, desc="denoise", disable=not s.progress, leave=False):
                x = torch.cat([latents.to(self.dit_dtype), condition], dim=1)
                ts = t.expand(1).to(self.device)
                pred = self.model(x, ts, pos, clip_tokens, geometry=geometry).float()
                if cfg:
                    pred_neg = self.model(x, ts, neg, clip_tokens, geometry=geometry).float()
                    pred = pred_neg + s.guidance_scale * (pred - pred_neg)
                latents = scheduler.step(pred, t, latents, return_dict=False)[0]
        clock.lap("denoise")
        if return_latents:
            self.last_timings = clock.laps
            return latents.cpu()

        # 6. decode
        with self.placement.stage("vae"):
            video = self._vae_decode(latents)
        frames = frames_from_video(video)
        clock.lap("vae_decode")
        self.last_timings = clock.laps
        return frames


class _StageClock:
    """Wall time per stage; synchronises CUDA at each lap so GPU work is attributed to its stage."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.laps: dict[str, float] = {}
        self._sync()
        self._t = time.perf_counter()

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def lap(self, name: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.laps[name] = now - self._t
        self._t = now


def generate(
    generator: EX4DGenerator,
    colour,
    mask,
    first_frame=None,
    prompt: str | None = None,
    settings: GenerateSettings | None = None,
) -> Tensor:
    """Functional entry point. ``colour`` (T, H, W, 3) uint8, ``mask`` (T, H, W) bool, ``first_frame``
    (H, W, 3) uint8 source frame 0 (None: colour[0]); ``prompt`` None uses ``settings.prompt``; ``settings``
    None keeps the generator's. Returns (T, H, W, 3) uint8 frames on the CPU."""
    return generator(colour, mask, first_frame, prompt=prompt, settings=settings)


def build_generator(
    model,
    lora: LoraSettings | None = None,
    checkpoint: str | Path | None = None,
    settings: GenerateSettings | None = None,
    *,
    device: str | torch.device | None = None,
    memory_mode: str | None = None,
    encoder_hidden_channels: int | None = None,
) -> EX4DGenerator:
    """Load the backbone, attach the adapter, load adapter weights, and place the models.

    Args:
        model: a ``WanLoader`` / ``TinyWanLoader`` (config group ``model``) or loaded :class:`WanComponents`.
        lora: LoRA settings (config group ``lora``); for an ``.safetensors`` adapter file the file's own
            settings are used and this must agree when given.
        checkpoint: ``ex4d.ckpt`` (reference layout) or our ``.safetensors`` adapter; None keeps the fresh
            zero-initialised adapter (the base model's output).
        memory_mode: default ``model.memory_mode`` (or ``gpu`` for components).
        encoder_hidden_channels: geometry encoder width (default 1024; the tiny model uses 16).
    """
    from ex4d.model.checkpoint import (
        load_adapter,
        load_reference_checkpoint,
        lora_settings_from_metadata,
        read_adapter_metadata,
    )

    meta = None
    if checkpoint is not None and Path(checkpoint).suffix == ".safetensors":
        meta = read_adapter_metadata(checkpoint)
        file_lora = lora_settings_from_metadata(meta)
        if lora is not None and (lora.rank, lora.alpha, list(lora.targets)) != (
            file_lora.rank, file_lora.alpha, list(file_lora.targets)
        ):
            raise InputError(
                f"{checkpoint}: adapter was saved with rank {file_lora.rank}, alpha {file_lora.alpha}, "
                f"targets {file_lora.targets}; the lora config asks for rank {lora.rank}, alpha {lora.alpha}"
            )
        lora = file_lora
        encoder_hidden_channels = encoder_hidden_channels or int(meta["encoder_hidden_channels"])
        if settings is not None and "mask_encoding" in meta and meta["mask_encoding"] != settings.mask_encoding:
            raise InputError(
                f"{checkpoint}: adapter trained with mask_encoding={meta['mask_encoding']!r}, settings use "
                f"{settings.mask_encoding!r}"
            )
    components = model if isinstance(model, WanComponents) else model.load()
    if encoder_hidden_channels is None:
        encoder_hidden_channels = 16 if components.is_tiny else 1024
    ex4d = build_ex4d_transformer(
        components.transformer, lora if lora is not None else LoraSettings(), hidden_channels=encoder_hidden_channels
    )
    if checkpoint is not None:
        if meta is not None:
            load_adapter(checkpoint, ex4d)
        else:
            load_reference_checkpoint(checkpoint, ex4d)
    mode = memory_mode or getattr(model, "memory_mode", "gpu")
    return EX4DGenerator(components, ex4d, settings, device=device, memory_mode=mode)


DOWNLOAD_HINT = "python tools/download_weights.py wan_i2v_14b_480p ex4d"


def missing_weights(model, checkpoint: str | Path | None) -> list[str]:
    """Files ``build_generator(model, ..., checkpoint)`` needs that are absent (empty: ready). Never downloads.

    ``model`` is a config-group object (``WanLoader`` / ``TinyWanLoader``). Fetch what is missing with
    ``DOWNLOAD_HINT`` (plus ``--local-dir <paths.weights_dir>``).
    """
    out = list(model.missing_files()) if hasattr(model, "missing_files") else []
    if checkpoint is not None and not Path(checkpoint).expanduser().exists():
        out.append(str(checkpoint))
    return out


__all__ = [
    "DOWNLOAD_HINT",
    "DEFAULT_ADAPTER",
    "EX4D_PROMPT",
    "WAN_NEGATIVE_PROMPT",
    "EX4DGenerator",
    "GenerateSettings",
    "build_generator",
    "generate",
    "missing_weights",
]
