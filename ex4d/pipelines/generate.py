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

Speed levers (``GenerateSettings``; docs/performance.md has the measured table, tools/bench_generate.py
``--levers`` measures it, ``--through-cli`` through ``infer.py``). ``levers=auto`` (the default) switches the
exact ones on where they were measured to help (:mod:`ex4d.pipelines.levers`: CUDA and a full-size model);
a lever set to true / false wins. Exact ones (outputs equal up to float reassociation): LoRA merge (``fuse_lora``
once at build, or ``merge_lora_per_call`` with an exact restore after each call), the SDPA backend
(``attention_backend``), regional ``torch.compile`` of the blocks (``compile_blocks``, ``compile_cache``),
CFG as one batch-2 forward (``cfg_batch``), the three VAE encodes as one batch (``vae_batch``), UMT5 streamed
block by block instead of resident (``stream_text_encoder``), text / CLIP /
first-frame latents computed once per prompt or source frame (``cache_embeddings``), pinned-memory offload
(``pin_memory``). Inexact, off by default: fp8 matmuls (``fp8_linears``), first-block cache
(``first_block_cache``, diffusers' FBCache), CFG truncation in the last steps (``cfg_truncate_after``).

Example::

    from ex4d.model.wan import WanLoader
    from ex4d.model.adapter import LoraSettings
    from ex4d.pipelines.generate import GenerateSettings, build_generator

    gen = build_generator(WanLoader("weights/Wan2.1-I2V-14B-480P-Diffusers"), LoraSettings(),
                          checkpoint="weights/EX-4D/ex4d.ckpt")
    frames = gen(colour_THW3_u8, mask_THW_bool, first_frame_HW3_u8)   # (T, H, W, 3) uint8
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import Tensor

from ex4d.masking.erosion import erode_masks
from ex4d.model.availability import (
    DOWNLOAD_HINT,
    RANDOM_ADAPTER,
    is_random_adapter,
    missing_weights,
    random_adapter_stands_in,
)
from ex4d.model.adapter import DEFAULT_ADAPTER, EX4DTransformer, LoraSettings, build_ex4d_transformer
from ex4d.model.wan import WanComponents
from ex4d.pipelines.conditioning import (
    clip_pixels,
    first_frame_image,
    frames_from_video,
    geometry_inputs,
    validate_inputs,
)
from ex4d.model.fp8 import FP8_MODES, convert_to_fp8, restore_from_fp8
from ex4d.pipelines.levers import (
    COMPILE_CACHE_AUTO,
    EXACT_LEVERS,
    LEVER_MODES,
    LeverPlan,
    compile_cache_file,
    default_cache_dir,
    plan_levers,
    text_cache_file,
    use_persistent_inductor_cache,
    weights_fingerprint,
)
from ex4d.pipelines.memory import (
    ATTENTION_BACKENDS,
    ModelPlacement,
    choose_memory_mode,
    efficient_attention,
    require_efficient_attention,
)
from ex4d.pipelines.parallel import (
    ParallelSettings,
    check_context_parallel,
    check_sequence_split,
    enable_context_parallel,
)
from ex4d.utils.checks import check_bool, check_int, check_number
from ex4d.utils.files import atomic_path
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

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
    "attention_backend": ATTENTION_BACKENDS,
    "fp8_linears": FP8_MODES,
    "levers": LEVER_MODES,
}

# Settings that shape the built generator (weights, hooks, compiled code, placement); a per-call settings
# object must agree with the generator's on these.
BUILD_TIME_SETTINGS = (
    "fuse_lora", "compile_blocks", "compile_cache", "attention_backend", "pin_memory", "fp8_linears",
    "first_block_cache", "stream_text_encoder",
)


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
        Speed levers (exact up to float reassociation unless marked; see docs/performance.md):
        levers: ``auto`` (each exact lever below that is None where it was measured to help: CUDA, full-size
            model; :mod:`ex4d.pipelines.levers`), ``exact`` (all exact levers that can run) or ``off`` (the
            plain path, as the reference runs). ``fuse_lora``, ``compile_blocks``, ``cfg_batch``, ``vae_batch``
            and ``stream_text_encoder`` set to true / false override it; None follows it.
        fuse_lora: merge the LoRA into the DiT weights once, when the generator is built (in place, no base
            copy: bf16 rounding of W + BA; one matmul per linear instead of three).
        merge_lora_per_call: merge the LoRA before each call's denoising loop and restore the exact base
            weights after it (a CPU copy of the LoRA targets' base weights, 28 GB at 14B, taken once): for a
            generator that shares its DiT with training, whose LoRA changes between calls.
        attention_backend: SDPA kernels allowed: ``auto`` (cuDNN, then flash, then memory-efficient, as
            priorities) or ``cudnn`` / ``flash`` / ``efficient`` alone; the one used is checked at the first call.
        compile_blocks: regional ``torch.compile`` of the DiT blocks (CUDA only; the first call of each batch size
            and resolution compiles; ``fullgraph`` unless hooks (first-block cache, low_vram offloading) need
            graph breaks).
        compile_cache: where ``torch.compiler`` cache artefacts (mega-cache) persist, so a new process skips
            most of the compile: ``auto`` (a folder under the machine's cache, :func:`~ex4d.pipelines.levers.
            default_cache_dir`, also holding inductor's and Triton's caches), a folder (one file per compiled
            variant: GPU, torch, DiT config, shape, batch), a ``.bin`` file, or None (no persistence). A
            variant's file is loaded before its first call and written after it.
        text_cache: where the text embeddings persist across processes, one file per (prompt pair, text encoder
            weights, tokens, dtype): ``auto`` (a folder under the machine's cache on CUDA with a full-size model;
            nothing on the CPU, for the tiny model or with ``levers=off``), a folder, or None. A hit skips UMT5;
            the bytes are the ones UMT5 gave. The in-process cache is ``cache_embeddings``.
        cfg_batch: run both CFG branches as one batch-2 DiT forward (also halves the weight traffic in
            low_vram).
        vae_batch: VAE-encode the masked colour video, the mask video and the first-frame video in one batch.
        stream_text_encoder: ``gpu`` mode: keep UMT5 (11 GB) in pinned CPU memory and run it block by block, the
            next block prefetched on a CUDA stream (:func:`~ex4d.pipelines.memory.stream_blocks`), instead of
            resident: it runs once per prompt (``cache_embeddings``). Bit-exact.
        cache_embeddings: keep text embeddings (per prompt pair), CLIP tokens and the first-frame latent (per
            source frame) across calls: many camera paths of one source video encode them once.
        pin_memory: ``offload`` / ``low_vram``: keep offloaded models in pinned CPU memory (fast DMA moves).
        fp8_linears: INEXACT, opt-in: ``rowwise`` / ``tensorwise`` fp8 e4m3 matmuls for the DiT block linears
            (Hopper; :mod:`ex4d.model.fp8`); ``off``.
        first_block_cache: INEXACT, opt-in: diffusers' first-block cache threshold (skip blocks 1..39 and reuse
            their last residual while block 0's residual changes by less than this relative L1); 0 = off.
        cfg_truncate_after: INEXACT below 1: fraction of the steps that use CFG; later steps run the prompt
            branch only (1 = CFG on every step, the reference).
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
    levers: str = "auto"
    fuse_lora: bool | None = None
    merge_lora_per_call: bool = False
    attention_backend: str = "auto"
    compile_blocks: bool | None = None
    compile_cache: str | None = COMPILE_CACHE_AUTO
    text_cache: str | None = COMPILE_CACHE_AUTO
    cfg_batch: bool | None = None
    vae_batch: bool | None = None
    stream_text_encoder: bool | None = None
    cache_embeddings: bool = True
    pin_memory: bool = True
    fp8_linears: str = "off"
    first_block_cache: float = 0.0
    cfg_truncate_after: float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.fp8_linears is False or self.fp8_linears is None:  # YAML 1.1 reads a bare `off` as false
            self.fp8_linears = "off"
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise InputError(f"generate.num_steps: expected an integer >= 1, got {self.num_steps!r}")
        # Strings, NaN and bools would otherwise pass or fail as TypeErrors in the comparisons below.
        check_number(self.guidance_scale, "generate.guidance_scale")
        check_number(self.shift, "generate.shift")
        check_int(self.seed, "generate.seed")
        if self.erosion_seed is not None:
            check_int(self.erosion_seed, "generate.erosion_seed")
        check_int(self.erosion_min, "generate.erosion_min")
        check_int(self.erosion_max, "generate.erosion_max")
        for key in ("merge_lora_per_call", "cache_embeddings", "pin_memory", "progress"):
            check_bool(getattr(self, key), f"generate.{key}")
        for key in EXACT_LEVERS:  # None: the `levers` policy decides
            if getattr(self, key) is not None:
                check_bool(getattr(self, key), f"generate.{key}")
        if self.compile_cache is not None and not isinstance(self.compile_cache, (str, Path)):
            raise InputError(f"generate.compile_cache: expected auto, a folder or file path, or null; got "
                             f"{self.compile_cache!r}")
        if self.text_cache is not None and not isinstance(self.text_cache, (str, Path)):
            raise InputError(f"generate.text_cache: expected auto, a folder, or null; got {self.text_cache!r}")
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
        if not (isinstance(self.first_block_cache, (int, float)) and not isinstance(self.first_block_cache, bool)
                and 0.0 <= self.first_block_cache < 1.0):
            raise InputError(
                f"generate.first_block_cache: expected a threshold in [0, 1) (0 = off), got {self.first_block_cache!r}"
            )
        if not (isinstance(self.cfg_truncate_after, (int, float)) and 0.0 <= self.cfg_truncate_after <= 1.0):
            raise InputError(
                f"generate.cfg_truncate_after: expected a fraction in [0, 1], got {self.cfg_truncate_after!r}"
            )
        if self.fuse_lora and self.merge_lora_per_call:
            raise InputError(
                "generate.fuse_lora and generate.merge_lora_per_call: choose one (merge once, or per call)"
            )
        if self.merge_lora_per_call and self.fp8_linears != "off":
            raise InputError(
                "generate.merge_lora_per_call cannot merge into fp8 weights: use fuse_lora (the merged weights are "
                "then quantised) or fp8_linears=off"
            )

    def cfg_steps(self) -> int:
        """How many of the first steps use CFG (all when ``cfg_truncate_after`` is 1; 0 without CFG)."""
        if self.guidance_scale <= 1.0:
            return 0
        return min(self.num_steps, math.ceil(self.cfg_truncate_after * self.num_steps - 1e-9))


class EX4DGenerator:
    """The EX-4D generation stage as one callable.

    Args:
        components: the Wan backbone (:func:`~ex4d.model.wan.load_wan_components` or the tiny test model).
        model: the DiT with the EX-4D adapter (:func:`~ex4d.model.adapter.build_ex4d_transformer`); its
            ``transformer`` must be ``components.transformer``.
        settings: sampler settings (defaults = the reference).
        device: execution device (default: CUDA when available).
        memory_mode: ``gpu`` | ``offload`` | ``low_vram`` | ``auto`` (the fastest that fits the free device
            memory; see :mod:`ex4d.pipelines.memory`).
        reversible: keep what :meth:`close` needs to undo the build-time levers exactly (the base weights of
            the LoRA targets when fusing, the bf16 linears when converting to fp8). For benchmarks and tests
            that build several generators on one DiT; costs the memory the levers would have freed.
        parallel: split each DiT forward over the ranks of a torchrun launch (:mod:`ex4d.pipelines.parallel`;
            the process group must exist, ``device`` is this rank's). Cannot be undone on this DiT.
        shared_dit: the DiT is shared with training (validation samples, prompt or latent encoding): the
            ``levers`` policy then leaves its weights unmerged and eager.

    ``self.settings`` holds the resolved levers; ``self.levers`` (:class:`~ex4d.pipelines.levers.LeverPlan`)
    says why each is on or off and what building them cost.
    """

    def __init__(
        self,
        components: WanComponents,
        model: EX4DTransformer,
        settings: GenerateSettings | None = None,
        *,
        device: str | torch.device | None = None,
        memory_mode: str = "gpu",
        reversible: bool = False,
        parallel: ParallelSettings | None = None,
        shared_dit: bool = False,
    ) -> None:
        from diffusers import WanImageToVideoPipeline

        if model.transformer is not components.transformer:
            raise InputError("EX4DGenerator: model.transformer must be components.transformer")
        self.components = components
        self.model = model.eval()
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu"
        )
        given = s = settings or GenerateSettings()
        self.memory_mode_reason = "set"
        plan_here = functools.partial(
            plan_levers, s, device=self.device, tiny=bool(getattr(components, "is_tiny", False)),
            parallel=parallel is not None and parallel.enabled, shared_dit=shared_dit,
            text_encoder=components.text_encoder is not None)
        if memory_mode == "auto":  # a text encoder that would stream in gpu mode does not count as resident
            streams = plan_here(memory_mode="gpu").values["stream_text_encoder"]
            memory_mode, self.memory_mode_reason = choose_memory_mode(
                components.modules(), self.device, streamed=("text_encoder",) if streams else ())
            log.info("memory_mode=auto -> %s (%s)", memory_mode, self.memory_mode_reason)
        self.memory_mode = memory_mode
        plan = plan_here(memory_mode=memory_mode)
        self.levers: LeverPlan = plan
        self.settings = s = dataclasses.replace(s, **plan.values, compile_cache=plan.compile_cache,
                                                text_cache=plan.text_cache)
        # diffusers' I2V pipeline object, used only for its stage helpers (encode_prompt, prepare_latents,
        # encode_image); we never call it.
        self.helper = WanImageToVideoPipeline(
            tokenizer=components.tokenizer,
            text_encoder=components.text_encoder,
            vae=components.vae,
            scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=s.shift),
            image_processor=components.image_processor,
            image_encoder=components.image_encoder,
            transformer=components.transformer,
        )
        tr = components.transformer
        self.reversible = reversible
        # Build-time levers, in this order: merge (so fp8 quantises W + BA), fp8, cache hooks, placement
        # (moves / pins the final weights), compile (traces the final modules on their device).
        self._own_base_copy = model._base_copy is None  # close() keeps a copy that was there before
        self._merged_here = bool(s.fuse_lora) and not model.lora_merged  # another generator may have merged it
        if self._merged_here:
            t0 = time.perf_counter()
            model.merge_lora(keep_base=reversible)  # in place; a base copy only when it must be undone exactly
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            plan.build_seconds["lora_merge"] = time.perf_counter() - t0
        self._fp8_originals = convert_to_fp8(tr, s.fp8_linears) if s.fp8_linears != "off" else {}
        if not reversible:
            self._fp8_originals = {}  # drop the bf16 linears: the fp8 weights alone are half their size
        self._fbc = s.first_block_cache > 0
        if self._fbc:
            from diffusers.hooks import FirstBlockCacheConfig

            tr.enable_cache(FirstBlockCacheConfig(threshold=float(s.first_block_cache)))
        self.placement = ModelPlacement(
            memory_mode, self.device, components.modules(), resident=[model.encoder], pin_memory=s.pin_memory,
            streamed=("text_encoder",) if s.stream_text_encoder else (),
        )
        self.cp_degree = 1  # ranks each DiT forward is split over
        if parallel is not None and parallel.enabled:
            if memory_mode != "gpu":
                raise InputError(f"parallel.context={parallel.context} needs model.memory_mode=gpu, got {memory_mode!r}")
            if self._fbc:
                raise InputError("generate.first_block_cache cannot be combined with parallel.context (not supported)")
            world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
            self.cp_degree = check_context_parallel(parallel, world, tr.config.num_attention_heads)
            enable_context_parallel(tr, parallel, self.cp_degree, self.device)
        self._compiled = False
        self._compile_files: dict[Path, bool] = {}  # compile-artefact file -> it existed when first used
        if s.compile_blocks and self.device.type == "cuda":
            if s.compile_cache and given.compile_cache == COMPILE_CACHE_AUTO:
                use_persistent_inductor_cache(default_cache_dir())
            # fullgraph where possible: a graph break inside a block would leave it half eager. diffusers'
            # cache and group-offloading hooks break graphs by design (.item() decisions, stream syncs).
            fullgraph = not (self._fbc or "transformer" in self.placement.group_offloaded)
            # One code object serves all 40 blocks; each batch size (CFG batch, truncated steps), resolution
            # and cache decision is one more guarded variant. dynamo's default limit (8) would silently fall
            # back to eager after that.
            cfg = torch._dynamo.config
            name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
            setattr(cfg, name, max(getattr(cfg, name), 64))
            # dynamic=False: static shapes per variant (13k-33k tokens), the kernels inductor tunes best.
            tr.compile_repeated_blocks(fullgraph=fullgraph, dynamic=False)
            self._compiled = True
        self._attention_checked = False
        self.attention_backend_used: str | None = None  # SDPA kernel seen at the first call
        self._cache: OrderedDict[tuple, object] = OrderedDict()  # cache_embeddings: key -> tensors
        self._text_fingerprint: str | None = None  # weights_fingerprint of the text encoder (text_cache keys)
        self.text_cache_hits = 0  # prompt pairs read from the text cache instead of running UMT5
        if "text_encoder" in self.placement.streamed and not (
            s.text_cache and self._text_cache_path(s.text_cache, s.prompt, s.negative_prompt,
                                                   s.guidance_scale > 1.0).is_file()
        ):  # the settings' prompt pair will need UMT5: pin it while building, not inside the first video
            self.placement.prepare_streamed("text_encoder")
        self.last_timings: dict[str, float] = {}  # seconds per stage of the last call (GPU-synchronised)
        self.last_stats: dict[str, int] = {}  # DiT calls and batch items of the last call
        self.last_latents: Tensor | None = None  # (1, 16, T', h, w) fp32 final latents of the last call

    def close(self) -> None:
        """Undo the build-time levers on the shared DiT (cache hooks, compiled blocks, fp8 and fused LoRA when
        built ``reversible``), so another generator can be built on the same components."""
        tr = self.components.transformer
        self.placement.unstream("text_encoder")
        if self._fbc:
            tr.disable_cache()
            self._fbc = False
        if self._compiled:
            for m in tr.modules():
                if m.__class__.__name__ in (tr._repeated_blocks or ()):
                    m._compiled_call_impl = None
            self._compiled = False
        if self._fp8_originals:
            restore_from_fp8(tr, self._fp8_originals)
            self._fp8_originals = {}
        if self._merged_here and self.model.lora_merged:
            self.model.unmerge_lora()
            if self._own_base_copy:
                self.model.release_base_copy()
            self._merged_here = False

    def lever_report(self) -> dict:
        """The levers and memory mode this generator runs with, and why (summary.json ``generate.levers``)."""
        return {**self.levers.report(), "memory_mode": {"mode": self.memory_mode, "why": self.memory_mode_reason},
                "attention_backend": self.attention_backend_used, "text_cache_hits": self.text_cache_hits}

    def clear_cache(self) -> None:
        """Forget the cached text embeddings, CLIP tokens and first-frame latents."""
        self._cache.clear()

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

    def text_embeddings(self, prompt: str, negative_prompt: str, cfg: bool = True,
                        cache: str | Path | None = None) -> tuple[Tensor, Tensor | None]:
        """:meth:`encode_prompts`, read from / written to the ``text_cache`` folder ``cache`` when given."""
        if cache is None or self.components.text_encoder is None:
            return self.encode_prompts(prompt, negative_prompt, cfg)
        from safetensors.torch import load_file, save_file

        path = self._text_cache_path(cache, prompt, negative_prompt, cfg)
        if path.is_file():
            try:
                saved = load_file(str(path), device=str(self.device))
                self.text_cache_hits += 1
                return saved["prompt"], saved.get("negative")
            except Exception as e:  # a damaged file costs one UMT5 run, never the video
                log.warning("text cache %s unusable (%s): encoding the prompts", path, e)
        pos, neg = self.encode_prompts(prompt, negative_prompt, cfg)
        tensors = {"prompt": pos.contiguous().cpu()} | ({"negative": neg.contiguous().cpu()} if neg is not None else {})
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))
        return pos, neg

    def _text_cache_path(self, cache: str | Path, prompt: str, negative_prompt: str, cfg: bool) -> Path:
        if self._text_fingerprint is None:
            self._text_fingerprint = weights_fingerprint(self.components.text_encoder)
        tok = self.components.tokenizer
        key = {"prompt": prompt, "negative": negative_prompt if cfg else None, "dtype": str(self.dit_dtype),
               "length": 512, "tokens": [tok(t).input_ids for t in (prompt, negative_prompt if cfg else "")]}
        return text_cache_file(cache, encoder=self._text_fingerprint, key=key)

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

    def _normalise_latents(self, lat: Tensor) -> Tensor:
        vae = self.components.vae
        mean = torch.tensor(vae.config.latents_mean, device=lat.device).view(1, -1, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(vae.config.latents_std, device=lat.device).view(1, -1, 1, 1, 1)
        return (lat.float() - mean) * inv_std

    def _vae_encode(self, video: Tensor) -> Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> normalised latent mode (B, 16, T', h, w) fp32 on the device."""
        from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents

        vae = self.components.vae
        lat = retrieve_latents(vae.encode(video.to(self.device, vae.dtype)), sample_mode="argmax")
        return self._normalise_latents(lat)

    def _vae_decode(self, latents: Tensor) -> Tensor:
        vae = self.components.vae
        mean = torch.tensor(vae.config.latents_mean, device=latents.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=latents.device).view(1, -1, 1, 1, 1)
        z = (latents.float() * std + mean).to(vae.dtype)
        return vae.decode(z, return_dict=False)[0]

    def first_frame_video(self, image: Tensor, num_frames: int) -> Tensor:
        """The I2V conditioning video as diffusers' ``prepare_latents`` builds it: frame 0 = ``image``
        (1, 3, H, W) in [-1, 1], frames 1..T-1 zero; (1, 3, T, H, W) in the VAE dtype."""
        image = image.to(self.device, self.components.vae.dtype).unsqueeze(2)
        zeros = image.new_zeros(image.shape[0], image.shape[1], num_frames - 1, *image.shape[-2:])
        return torch.cat([image, zeros], dim=2)

    def first_frame_condition(self, latent: Tensor, num_frames: int) -> Tensor:
        """Normalised first-frame latent (1, 16, T', h, w) fp32 -> the 20-channel I2V condition (1, 4 + 16, T',
        h, w): diffusers' ``prepare_latents`` frame mask (1 on the first frame, 4 mask channels per latent frame
        for the VAE's 4x time compression) then the latent, as it concatenates them."""
        vt = self.helper.vae_scale_factor_temporal
        _, _, _, h, w = latent.shape
        mask = torch.ones(1, 1, num_frames, h, w)
        mask[:, :, 1:] = 0
        first = torch.repeat_interleave(mask[:, :, 0:1], dim=2, repeats=vt)
        mask = torch.concat([first, mask[:, :, 1:]], dim=2)
        mask = mask.view(1, -1, vt, h, w).transpose(1, 2).to(latent.device)
        return torch.concat([mask, latent], dim=1)

    def encode_conditions(
        self, image: Tensor, x_c: Tensor, x_m: Tensor, *, batch: bool = False, first_latent: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """VAE-encode the geometry videos and the first-frame video.

        Args:
            image: (1, 3, H, W) fp32 in [-1, 1], the I2V conditioning frame.
            x_c, x_m: (1, 3, T, H, W) geometry VAE inputs (:func:`~ex4d.pipelines.conditioning.geometry_inputs`).
            batch: encode them as one VAE batch (the ``vae_batch`` lever) instead of one call each.
            first_latent: a cached normalised first-frame latent; skips that encode.

        Returns:
            first-frame latent (1, 16, T', h, w), z_c, z_m (same shape), all normalised fp32 on the device.
        """
        T = x_c.shape[2]
        videos = [x_c, x_m] + ([self.first_frame_video(image, T)] if first_latent is None else [])
        if batch:
            dtype = self.components.vae.dtype
            z = self._vae_encode(torch.cat([v.to(self.device, dtype) for v in videos]))
            zs = list(z.split(1))
        else:
            zs = [self._vae_encode(v) for v in videos]
        return (zs[2] if first_latent is None else first_latent), zs[0], zs[1]

    def _cached(self, use: bool, key: tuple, compute):
        """``compute()`` once per key while ``use`` (a small LRU of tensors on the device)."""
        if not use:
            return compute()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = compute()
        self._cache[key] = value
        while len(self._cache) > 16:
            self._cache.popitem(last=False)
        return value

    def _check_attention(self) -> None:
        if self._attention_checked:
            return
        tr = self.components.transformer
        heads = tr.config.num_attention_heads
        self.attention_backend_used = require_efficient_attention(
            self.device, self.dit_dtype, heads, tr.config.attention_head_dim, self.settings.attention_backend
        )
        log.info("SDPA backend in use (%s): %s", self.settings.attention_backend, self.attention_backend_used)
        self._attention_checked = True

    def _cache_context(self, name: str):
        """diffusers' cache context for the first-block cache (one state per CFG branch); a no-op without it."""
        return self.components.transformer.cache_context(name) if self._fbc else contextlib.nullcontext()

    def _fbc_reused(self) -> int:
        """Inside a cache context, after a DiT call: 1 when the first-block cache skipped blocks 1.. (it reused
        their cached residual), else 0."""
        if not self._fbc:
            return 0
        hook = self.components.transformer.blocks[0]._diffusers_hook.get_hook("fbc_leader_block_hook")
        return int(hook is not None and not hook.state_manager.get_state().should_compute)

    def _compile_file(self, latent_shape: tuple, s: GenerateSettings) -> Path | None:
        """The compile-artefact file of this call's compiled variant (None without a compile cache)."""
        if not (self._compiled and self.settings.compile_cache):
            return None
        key = {"latents": list(latent_shape), "cfg_batch": bool(s.cfg_batch), "cfg": s.cfg_steps() > 0,
               "cfg_truncated": s.cfg_steps() < s.num_steps, "fbc": self._fbc,
               "group_offloaded": "transformer" in self.placement.group_offloaded, "dtype": str(self.dit_dtype),
               "fp8": self.settings.fp8_linears}  # fp8 blocks are other graphs: their own file
        return compile_cache_file(self.settings.compile_cache, model_config=dict(self.components.transformer.config),
                                  key=key)

    def _load_compile_cache(self, path: Path | None) -> None:
        """Before a variant's first call: load its artefacts when a file exists (once per process)."""
        if path is None or path in self._compile_files:
            return
        self._compile_files[path] = path.is_file()
        if self._compile_files[path]:
            t0 = time.perf_counter()
            try:
                torch.compiler.load_cache_artifacts(path.read_bytes())
            except Exception as e:  # a stale or foreign file costs a compile, never the run
                log.warning("compile cache %s unusable (%s): compiling afresh", path, e)
                self._compile_files[path] = False
                return
            self.levers.build_seconds["compile_cache_load"] = time.perf_counter() - t0
            log.info("torch.compile cache artefacts loaded from %s", path)

    def _save_compile_cache(self, path: Path | None) -> None:
        """After a variant's first call: write what this process compiled (atomically), unless it was loaded."""
        if path is None or self._compile_files.get(path, True):
            return
        self._compile_files[path] = True
        try:
            artifacts = torch.compiler.save_cache_artifacts()
        except Exception as e:  # a cache that cannot be written costs the next process a compile, never this run
            log.warning("compile cache %s not written (%s)", path, e)
            return
        if artifacts is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(artifacts[0])
            log.info("torch.compile cache artefacts written to %s", path)

    def _resolve(self, settings: GenerateSettings | None) -> GenerateSettings:
        """A per-call settings object with the generator's resolved levers where it leaves them to the policy."""
        if settings is None:
            return self.settings
        fill = {k: getattr(self.settings, k) for k in EXACT_LEVERS if getattr(settings, k) is None}
        for key in ("compile_cache", "text_cache"):
            if getattr(settings, key) == COMPILE_CACHE_AUTO:
                fill[key] = getattr(self.settings, key)
        return dataclasses.replace(settings, **fill) if fill else settings

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
            settings: sampler settings for this call (those in ``BUILD_TIME_SETTINGS`` are fixed at build time).
            return_latents: return the final latents (1, 16, T', h, w) fp32 instead of decoding.

        Returns:
            (T, H, W, 3) uint8 frames on the CPU. H, W, T as the input (multiples of 16, 4k + 1).
        """
        s = self._resolve(settings)
        changed = [k for k in BUILD_TIME_SETTINGS if getattr(s, k) != getattr(self.settings, k)]
        if changed:
            raise InputError(f"{', '.join(changed)}: fixed when the generator is built (build another generator)")
        if s.merge_lora_per_call and self.settings.fuse_lora:
            raise InputError("merge_lora_per_call: this generator fused the LoRA at build time already")
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
            p_text = prompt if prompt is not None else s.prompt
            n_text = negative_prompt if negative_prompt is not None else s.negative_prompt
            pos, neg = self._cached(
                s.cache_embeddings, ("text", p_text, n_text, cfg),
                lambda: self.text_embeddings(p_text, n_text, cfg, s.text_cache),
            )
        else:
            pos, neg = prompt_embeds, negative_prompt_embeds
            if cfg and neg is None:
                raise InputError("negative_prompt_embeds is required with guidance_scale > 1")
        pos = pos.to(self.device, self.dit_dtype)
        neg = neg.to(self.device, self.dit_dtype) if cfg else None
        clock.lap("text_encode")

        # 3. first-frame image: CLIP tokens and (below) the first-frame latent, cached per source frame
        frame_id = (tuple(first.shape), hashlib.blake2b(first.numpy().tobytes(), digest_size=16).hexdigest())
        image = first_frame_image(first, s.first_frame_rounding)
        clip_tokens = self._cached(
            s.cache_embeddings, ("clip", frame_id, s.first_frame_rounding, s.clip_preprocess),
            lambda: self.encode_image(image, s.clip_preprocess),
        )
        clock.lap("image_encode")

        # 4. noise as the reference draws it: fp32 on the CPU from a seeded generator
        vt = self.helper.vae_scale_factor_temporal
        vs = self.helper.vae_scale_factor_spatial
        shape = (1, self.components.vae.config.z_dim, (T - 1) // vt + 1, H // vs, W // vs)
        _, ph, pw = self.components.transformer.config.patch_size
        check_sequence_split(shape[2] * (shape[3] // ph) * (shape[4] // pw), self.cp_degree)
        noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)
        latents = noise.to(self.device)

        first_key = ("first_latent", frame_id, s.first_frame_rounding, T, s.vae_batch)  # batching reassociates
        cached_first = self._cache.get(first_key) if s.cache_embeddings else None
        with self.placement.stage("vae"):
            x_c, x_m = geometry_inputs(colour_t, eroded, self.components.vae.dtype, s.mask_encoding)
            first_latent, z_c, z_m = self.encode_conditions(
                image, x_c, x_m, batch=s.vae_batch, first_latent=cached_first
            )
        if s.cache_embeddings:
            self._cached(True, first_key, lambda: first_latent)
        condition = self.first_frame_condition(first_latent, T).to(self.device, self.dit_dtype)
        geometry = self.model.encoder(z_c, z_m)  # once; reused by every forward of both CFG branches
        clock.lap("vae_encode")

        # 5. denoise. The scheduler applies the shift itself, so it gets the unshifted linspace; its sigmas
        # then equal conditioning.reference_sigmas() bit for bit (tests/unit/test_sampler.py).
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=s.shift)
        scheduler.set_timesteps(
            sigmas=torch.linspace(1.0, 0.0, s.num_steps + 1, dtype=torch.float32)[:-1].numpy(), device=self.device
        )
        cfg_steps = s.cfg_steps()
        if cfg and s.cfg_batch:  # branch order in the batch: [prompt, negative prompt]
            text_2 = torch.cat([pos, neg])
            clip_2 = torch.cat([clip_tokens, clip_tokens])
        if self._fbc:
            self.components.transformer._reset_stateful_cache()  # no residuals carried over from another video
        calls = items = reused = 0
        from tqdm.auto import tqdm

        merge = self.model.merged_lora(keep_base=True) if s.merge_lora_per_call else contextlib.nullcontext()
        # merge inside the stage: in offload modes the weights are merged where they run and restored before
        # the stage moves them back
        compile_file = self._compile_file(shape, s)
        self._load_compile_cache(compile_file)
        with self.placement.stage("transformer"), efficient_attention(self.device, s.attention_backend), merge:
            for i, t in enumerate(tqdm(scheduler.timesteps, desc="denoise", disable=not s.progress, leave=False)):
                x = torch.cat([latents.to(self.dit_dtype), condition], dim=1)
                use_cfg = i < cfg_steps
                if use_cfg and s.cfg_batch:
                    with self._cache_context("cfg"):
                        out = self.model(torch.cat([x, x]), t.expand(2).to(self.device), text_2, clip_2,
                                         geometry=geometry).float()
                        reused += self._fbc_reused()
                    pred, pred_neg = out.chunk(2)
                    calls, items = calls + 1, items + 2
                else:
                    ts = t.expand(1).to(self.device)
                    with self._cache_context("cond"):
                        pred = self.model(x, ts, pos, clip_tokens, geometry=geometry).float()
                        reused += self._fbc_reused()
                    calls, items = calls + 1, items + 1
                    if use_cfg:
                        with self._cache_context("uncond"):
                            pred_neg = self.model(x, ts, neg, clip_tokens, geometry=geometry).float()
                            reused += self._fbc_reused()
                        calls, items = calls + 1, items + 1
                if use_cfg:
                    pred = pred_neg + s.guidance_scale * (pred - pred_neg)
                latents = scheduler.step(pred, t, latents, return_dict=False)[0]
                if i == 0:  # the first step carries any per-process warm-up (compile guards, kernel loads)
                    clock.split("denoise_first_step")
        clock.lap("denoise")
        self.last_stats = {"dit_calls": calls, "dit_batch_items": items, "cfg_steps": cfg_steps}
        if self._fbc:
            self.last_stats["fbc_reused"] = reused  # calls that ran block 0 only
        self.last_latents = latents
        self._save_compile_cache(compile_file)
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

    def split(self, name: str) -> None:
        """Seconds since the last lap, recorded under ``name`` without starting a new lap (a part of the next
        lap: ``denoise_first_step`` is included in ``denoise``)."""
        self._sync()
        self.laps[name] = time.perf_counter() - self._t

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
    parallel: ParallelSettings | None = None,
) -> EX4DGenerator:
    """Load the backbone, attach the adapter, load adapter weights, and place the models.

    Args:
        model: a ``WanLoader`` / ``TinyWanLoader`` (config group ``model``) or loaded :class:`WanComponents`.
        lora: LoRA settings (config group ``lora``); for an ``.safetensors`` adapter file the file's own
            settings are used and this must agree when given.
        checkpoint: ``ex4d.ckpt`` (reference layout) or our ``.safetensors`` adapter; None keeps the fresh
            zero-initialised adapter (an exact no-op: the base model's output); ``"random"`` (TEST / BENCHMARK
            ONLY) fills the adapter with seeded random values (:func:`~ex4d.model.adapter.randomize_adapter_`, seed
            = the model loader's), so that the geometry inputs change the output: smoke runs that can show
            wiring errors. Never a result.
        memory_mode: default ``model.memory_mode`` (or ``gpu`` for components).
        encoder_hidden_channels: geometry encoder width (default: an adapter file's, else the model's,
            ``WanComponents.encoder_hidden_channels``).
        parallel: context parallelism over the ranks of a torchrun launch (:mod:`ex4d.pipelines.parallel`).
    """
    from ex4d.model.checkpoint import (
        load_adapter,
        load_reference_checkpoint,
        lora_settings_from_metadata,
        read_adapter_metadata,
    )

    meta = None
    random_adapter = is_random_adapter(checkpoint)
    if random_adapter:
        checkpoint = None
    if checkpoint is not None and Path(checkpoint).suffix == ".safetensors" and not random_adapter_stands_in(model, checkpoint):
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
        encoder_hidden_channels = components.encoder_hidden_channels
    ex4d = build_ex4d_transformer(
        components.transformer, lora if lora is not None else LoraSettings(), hidden_channels=encoder_hidden_channels
    )
    if random_adapter or (checkpoint is not None and random_adapter_stands_in(model, checkpoint)):
        from ex4d.model.adapter import randomize_adapter_

        if random_adapter:
            log.warning("checkpoint=%s: a seeded RANDOM adapter (TEST / BENCHMARK ONLY: its outputs are never results)",
                        RANDOM_ADAPTER)
        else:
            log.warning("%r: adapter checkpoint %s is absent; a seeded RANDOM adapter stands in (BENCHMARK ONLY)",
                        model, checkpoint)
        randomize_adapter_(ex4d, seed=getattr(model, "seed", 0))
    elif checkpoint is not None:
        if meta is not None:
            load_adapter(checkpoint, ex4d)
        else:
            load_reference_checkpoint(checkpoint, ex4d)
    mode = memory_mode or getattr(model, "memory_mode", "gpu")
    return EX4DGenerator(components, ex4d, settings, device=device, memory_mode=mode, parallel=parallel)


__all__ = [
    "BUILD_TIME_SETTINGS",
    "DOWNLOAD_HINT",
    "DEFAULT_ADAPTER",
    "RANDOM_ADAPTER",
    "EX4D_PROMPT",
    "WAN_NEGATIVE_PROMPT",
    "EX4DGenerator",
    "GenerateSettings",
    "build_generator",
    "generate",
    "is_random_adapter",
    "missing_weights",
]
