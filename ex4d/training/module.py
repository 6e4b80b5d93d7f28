"""``EX4DTrainingModule``: the frozen Wan2.1-I2V backbone + the trainable EX-4D adapter, trained with Wan's
flow-matching objective on (masked video, full video) pairs from simulated masking (method doc, section 6).

Per training clip (``encode_clip``), exactly the conditioning the generator builds at inference, through
the generator's own stage functions (:mod:`ex4d.pipelines.generate` / :mod:`ex4d.pipelines.conditioning`):

* target: the clip's VAE latent z_0 (16 ch, normalised, posterior mode);
* I2V route: CLIP tokens of frame 0 and the 4-channel frame mask + first-frame latent (20 ch);
* geometry route: VAE latents of x_c = 2 (C * M) - 1 and of the mask video (``mask_encoding``), which the
  geometry encoder turns into tokens added after the patch embedding (gradients reach the encoder);
* text: the empty prompt (computed once when the model is built, then UMT5 is dropped).

Then (``flow_loss``, see :mod:`ex4d.training.flow`): draw t, x_t = (1 - sigma) z_0 + sigma eps, predict
v_hat = DiT([x_t, I2V condition], t, text, CLIP, geometry), loss = w(t) mean((v_hat - (eps - z_0))^2).
Noise and timesteps come from a generator seeded by (seed, epoch, batch index, rank), so a resumed run
draws what the uninterrupted one would have drawn.

Trainable: LoRA + geometry encoder only (``mark_trainable``); full checkpoints hold only those tensors plus
optimizer state (the frozen 14B weights are reloaded from ``model``), adapter files are written by
:class:`~ex4d.training.callbacks.AdapterCheckpoint`. Nothing is loaded at construction: the backbone is
loaded in ``setup`` on every rank (outside DeepSpeed's ZeRO-3 init context, which diffusers' loaders do
not support; ZeRO-3 partitions the loaded model when its engine starts).

Validation logs a deterministic loss and renders ``num_val_samples`` short videos through
:class:`~ex4d.pipelines.generate.EX4DGenerator` (source | masked input | generated), written to
``<run dir>/samples/`` and sent to loggers that take videos (W&B).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from ex4d.data.shards import sample_seed
from ex4d.model.adapter import EX4DTransformer, LoraSettings, build_ex4d_transformer
from ex4d.model.wan import WanComponents, to_dtype
from ex4d.pipelines.conditioning import LATENT_KEYS, SIZE_MULTIPLE, VAE_TIME_FACTOR, encode_clip  # noqa: F401 (re-exported)
from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings
from ex4d.training.checkpointing import enable_block_checkpointing, resolve_checkpoint_policy
from ex4d.training.flow import FlowMatchingSchedule
from ex4d.training.optim import OptimizerSettings, build_optimizer, lr_factor
from ex4d.training.strategy import strategy_info
from ex4d.utils.checks import check_bool, check_int, check_number
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

_CHOICES = {
    "mask_encoding": ("reference", "fixed"),
    "first_frame_rounding": ("reference", "exact"),
    "clip_preprocess": ("reference", "processor"),
}


@torch.no_grad()
def dit_tokens(num_frames: int, height: int, width: int) -> int:
    """DiT tokens of one clip: ((T - 1)/4 + 1) x (H/16) x (W/16) (VAE 4x/8x, patch 1x2x2)."""
    return ((num_frames - 1) // VAE_TIME_FACTOR + 1) * (height // SIZE_MULTIPLE) * (width // SIZE_MULTIPLE)


class EX4DTrainingModule(L.LightningModule):
    """Frozen Wan + EX-4D adapter, flow-matching training (module docstring).

    Args:
        model: a ``WanLoader`` / ``TinyWanLoader`` (config group ``model``; loaded in ``setup``) or loaded
            :class:`WanComponents` (benchmarks, tests).
        lora: LoRA settings (config group ``lora``).
        optimizer: AdamW settings (config group ``optimizer``).
        flow: the timestep schedule and weighting (default: 1000 steps, shift 5, Gaussian weights).
        gradient_checkpointing: recompute each DiT block in the backward pass (needed at 512x512x49 on 80 GB).
        checkpoint_policy: what the recompute skips (:mod:`ex4d.training.checkpointing`): ``full`` (nothing),
            ``save_self_attention`` (keeps the self-attention outputs: 1.13x faster, +5.2 GiB at 512x512x49) or
            ``auto`` (``save_self_attention``; ``full`` under DeepSpeed ZeRO-3 and FSDP), decided in ``build``.
        compile_blocks: regional ``torch.compile`` of the DiT blocks (CUDA only).
        adapter_dtype: dtype of the trainable tensors under plain / DDP strategies (fp32 master weights;
            DeepSpeed keeps its own fp32 master copy and casts the module to bf16).
        init_adapter: start from an adapter file (ours ``.safetensors`` or the released ``ex4d.ckpt``).
        mask_encoding, first_frame_rounding, clip_preprocess: conditioning variants, as in
            :class:`GenerateSettings`; stored in the adapter files so inference uses the same.
        sample: sampler settings of the validation videos (None: no videos).
        num_val_samples: validation batches that also render a video (first ones, batch item 0).
        sample_fps: frame rate of the written sample videos.
        prompt_cache: safetensors file of the prompt embeddings (empty prompt, sample prompts); written when
            missing, read (and UMT5 not loaded) when present with the same texts.
        text_embeddings: precomputed embeddings {"empty": (1, 512, text_dim), "sample_prompt", "sample_negative"}
            (benchmarks without a text encoder).
        seed: base seed of the per-step noise and timestep draws.
    """

    def __init__(
        self,
        model,
        lora: LoraSettings,
        optimizer: OptimizerSettings,
        flow: FlowMatchingSchedule | None = None,
        *,
        gradient_checkpointing: bool = True,
        checkpoint_policy: str = "full",
        compile_blocks: bool = False,
        adapter_dtype: str = "float32",
        init_adapter: str | None = None,
        mask_encoding: str = "reference",
        first_frame_rounding: str = "reference",
        clip_preprocess: str = "reference",
        sample: GenerateSettings | None = None,
        num_val_samples: int = 1,
        sample_fps: float = 15.0,
        prompt_cache: str | None = None,
        text_embeddings: dict[str, Tensor] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(lora, LoraSettings):
            raise InputError(f"module.lora: expected LoraSettings (config group lora), got {type(lora).__name__}")
        if not isinstance(optimizer, OptimizerSettings):
            raise InputError(f"module.optimizer: expected OptimizerSettings, got {type(optimizer).__name__}")
        given = {"mask_encoding": mask_encoding, "first_frame_rounding": first_frame_rounding,
                 "clip_preprocess": clip_preprocess}
        for key, allowed in _CHOICES.items():
            if given[key] not in allowed:
                raise InputError(f"module.{key}: expected one of {allowed}, got {given[key]!r}")
        resolve_checkpoint_policy(checkpoint_policy)  # validates the value
        check_int(num_val_samples, "module.num_val_samples", minimum=0)
        check_number(sample_fps, "module.sample_fps", positive=True)
        check_bool(gradient_checkpointing, "module.gradient_checkpointing")
        check_int(seed, "module.seed")
        if sample is not None and sample.mask_encoding != mask_encoding:
            raise InputError(f"module.sample.mask_encoding={sample.mask_encoding!r} differs from "
                             f"module.mask_encoding={mask_encoding!r}")
        if sample is not None:
            # The sampler shares the DiT with training: no lever that rewrites or hooks its weights for good.
            shared = {"fuse_lora": sample.fuse_lora, "fp8_linears": sample.fp8_linears != "off",
                      "first_block_cache": sample.first_block_cache > 0, "compile_blocks": sample.compile_blocks}
            bad = [k for k, on in shared.items() if on]
            if bad:
                raise InputError(f"module.sample.{bad[0]}: not while training (it changes the DiT that trains); "
                                 "use module.sample.merge_lora_per_call for faster validation videos")
        self.loader = model
        self.lora = lora
        self.optim = optimizer
        self.flow = flow or FlowMatchingSchedule()
        self.gradient_checkpointing = bool(gradient_checkpointing)
        self.checkpoint_policy = checkpoint_policy
        self.compile_blocks = bool(compile_blocks)
        self.adapter_dtype = to_dtype(adapter_dtype)
        self.init_adapter = init_adapter
        self.mask_encoding, self.first_frame_rounding, self.clip_preprocess = (
            mask_encoding, first_frame_rounding, clip_preprocess)
        self.sample = sample
        self.num_val_samples = int(num_val_samples) if sample is not None else 0
        self.sample_fps = float(sample_fps)
        self.prompt_cache = prompt_cache
        self.given_text_embeddings = text_embeddings
        self.seed = int(seed)
        # Full checkpoints hold only the adapter; the frozen weights come from `model` again on resume.
        self.strict_loading = False
        self.model: EX4DTransformer | None = None
        self.components: WanComponents | None = None
        self._generator: EX4DGenerator | None = None

    # ---- building ---------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        self.build(self.trainer.strategy.root_device)

    def build(self, device: torch.device | str | None = None) -> None:
        """Load the backbone, attach the adapter, encode the prompts once. Idempotent.

        ``device``: where UMT5 runs for the prompt embeddings (then it is dropped); the models themselves stay
        where the loader put them (Lightning moves the module afterwards).
        """
        if self.model is not None:
            return
        device = torch.device(device) if device is not None else torch.device("cpu")
        texts = self._texts()
        cached = self._read_prompt_cache(texts)
        stand_in = self.given_text_embeddings is None and cached is None and hasattr(self.loader, "text_embeddings")
        if (cached is not None or stand_in) and getattr(self.loader, "load_text_encoder", False):
            self.loader.load_text_encoder = False  # 11 GB of UMT5 not needed (random loaders: embeddings stand in)
        comps = self.loader if isinstance(self.loader, WanComponents) else self.loader.load()
        comps.freeze()
        # The geometry encoder's width is the model option's (model.encoder_hidden_channels).
        model = build_ex4d_transformer(comps.transformer, self.lora, hidden_channels=comps.encoder_hidden_channels,
                                       dtype=self.adapter_dtype)
        if self.init_adapter:
            self._load_init_adapter(model)
        model.mark_trainable()
        embeds = self.given_text_embeddings or cached
        if embeds is None and hasattr(self.loader, "text_embeddings"):  # loaders without UMT5 (random weights)
            embeds = self.loader.text_embeddings(list(texts))
        if embeds is None:
            embeds = self._encode_prompts(comps, model, texts, device)
        missing = [k for k in texts if k not in embeds]
        if missing:
            raise InputError(f"text embeddings lack {missing} (needed: {sorted(texts)})")
        comps.text_encoder = None  # the empty prompt is all training needs
        comps.tokenizer = None
        if self.gradient_checkpointing:
            strategy = self._trainer.strategy if self._trainer is not None else None
            self.checkpoint_policy = resolve_checkpoint_policy(self.checkpoint_policy, strategy)
            enable_block_checkpointing(comps.transformer, self.checkpoint_policy)
            log.info("gradient checkpointing of the DiT blocks: policy %s", self.checkpoint_policy)
        if self.compile_blocks and device.type == "cuda":
            comps.transformer.compile_repeated_blocks(fullgraph=False)
        self.model = model  # registers the DiT (frozen) + LoRA + geometry encoder
        self.vae = comps.vae
        self.image_encoder = comps.image_encoder
        self.components = comps
        dit_dtype = comps.transformer.patch_embedding.weight.dtype
        for k, v in embeds.items():
            if k in texts:
                self.register_buffer(f"text_{k}", v.detach().to("cpu", dit_dtype), persistent=False)
        model.train()
        counts = model.parameter_counts()
        log.info("EX-4D adapter: %s trainable parameters (LoRA %s, encoder %s); backbone %s",
                 f"{counts['total']:,}", f"{counts['lora']:,}", f"{counts['encoder']:,}", comps.source)

    def _texts(self) -> dict[str, str]:
        texts = {"empty": ""}
        if self.sample is not None and self.num_val_samples > 0:
            texts["sample_prompt"] = self.sample.prompt
            if self.sample.guidance_scale > 1.0:
                texts["sample_negative"] = self.sample.negative_prompt
        return texts

    def _read_prompt_cache(self, texts: dict[str, str]) -> dict[str, Tensor] | None:
        if not self.prompt_cache or not Path(self.prompt_cache).is_file():
            return None
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(self.prompt_cache), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("_text_encoder") != self._text_encoder_id() or any(meta.get(k) != t for k, t in texts.items()):
            log.warning("module.prompt_cache %s was written for another text encoder or other prompts: re-encoding",
                        self.prompt_cache)
            return None
        return load_file(str(self.prompt_cache))

    def _encode_prompts(self, comps: WanComponents, model: EX4DTransformer, texts: dict[str, str],
                        device: torch.device) -> dict[str, Tensor]:
        if comps.text_encoder is None:
            raise InputError("no text encoder loaded and no usable module.prompt_cache: load UMT5 "
                             "(model.load_text_encoder=true) once to write the cache")
        # "offload": UMT5 visits `device` for the encode only (unpinned: a one-off move).
        gen = EX4DGenerator(comps, model, GenerateSettings(pin_memory=False, progress=False), device=device,
                            memory_mode="offload", shared_dit=True)
        out = {k: gen.encode_prompts(t, "", cfg=False)[0].detach().cpu() for k, t in texts.items()}
        if self.prompt_cache and self.global_rank == 0:  # one writer; atomic, as other ranks may read it later
            from safetensors.torch import save_file

            from ex4d.utils.files import atomic_path

            path = Path(self.prompt_cache)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                save_file({k: v.contiguous() for k, v in out.items()}, str(tmp),
                          metadata={**texts, "_text_encoder": self._text_encoder_id()})
        return out

    def _text_encoder_id(self) -> str:
        """Identity of the text encoder the cache was made with (the loader's weights folder, or its repr)."""
        loader = self.loader
        return str(getattr(loader, "path", None) or getattr(loader, "source", None) or repr(loader))

    def _load_init_adapter(self, model: EX4DTransformer) -> None:
        from ex4d.model.checkpoint import load_adapter, load_reference_checkpoint

        path = Path(self.init_adapter).expanduser()
        if path.suffix == ".safetensors":
            load_adapter(path, model)
        else:
            load_reference_checkpoint(path, model)
        log.info("adapter initialised from %s", path)

    @property
    def conditioner(self) -> EX4DGenerator:
        """The generator over the training components on this module's device (its stage functions encode the
        training clips; its ``__call__`` renders validation videos)."""
        if self.model is None or self.components is None:
            raise RuntimeError("EX4DTrainingModule: call build() (Lightning: setup) first")
        if self._generator is None or self._generator.device != self.device:
            was_training = self.model.training
            settings = self.sample or GenerateSettings(progress=False)
            self._generator = EX4DGenerator(self.components, self.model, settings, device=self.device, memory_mode="gpu",
                                           shared_dit=True)
            self.model.train(was_training)  # the generator puts its model in eval mode
        return self._generator

    @property
    def dit_dtype(self) -> torch.dtype:
        return self.components.transformer.patch_embedding.weight.dtype

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.adapter_parameters())

    # ---- the objective ----------------------------------------------------------------------------

    def _step_generator(self, stage: str, epoch: int, batch_idx: int) -> torch.Generator:
        return torch.Generator().manual_seed(sample_seed(self.seed, stage, epoch, batch_idx, self.global_rank))

    @staticmethod
    def check_batch(batch: dict) -> None:
        frames, mask = batch["frames"], batch["mask"]
        ok = frames.ndim == 5 and frames.dtype == torch.uint8 and mask.shape == frames.shape[:4]
        if not ok or mask.dtype != torch.bool:
            raise InputError(f"training batch: expected frames (B, T, H, W, 3) uint8 and mask (B, T, H, W) bool, got "
                             f"{tuple(frames.shape)} {frames.dtype} and {tuple(mask.shape)} {mask.dtype}")
        _, T, H, W, _ = frames.shape
        if T % VAE_TIME_FACTOR != 1:
            raise InputError(f"data.num_frames={T}: the Wan VAE needs 4k + 1 frames (e.g. 49, 81)")
        if H % SIZE_MULTIPLE or W % SIZE_MULTIPLE:
            raise InputError(f"data.height x data.width = {H}x{W}: both must be multiples of {SIZE_MULTIPLE}")

    @torch.no_grad()
    def encode_batch(self, batch: dict) -> dict[str, Tensor]:
        """Model inputs of a batch (keys ``LATENT_KEYS``, batch dimension first). Cached latents pass through."""
        if all(k in batch for k in LATENT_KEYS):
            return {k: batch[k] for k in LATENT_KEYS}
        self.check_batch(batch)
        gen = self.conditioner
        per_clip = [encode_clip(gen, f, m, self.mask_encoding, self.first_frame_rounding, self.clip_preprocess)
                    for f, m in zip(batch["frames"], batch["mask"])]
        return {k: torch.cat([c[k] for c in per_clip]) for k in LATENT_KEYS}

    def flow_loss(self, latents: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        """Weighted flow-matching loss of a batch of model inputs (module docstring).

        Returns: ``loss`` (scalar, with grad), ``mse`` (B,) unweighted, ``timestep`` (B,), ``weight`` (B,).
        """
        z0 = latents["latent_video"].float()
        B = z0.shape[0]
        draw = self.flow.sample(B, generator)
        noise = torch.randn(z0.shape, generator=generator, dtype=torch.float32).to(z0.device)
        x_t = self.flow.add_noise(z0, noise, draw.sigma)
        target = self.flow.target(z0, noise)
        dt = self.dit_dtype
        x = torch.cat([x_t.to(dt), latents["i2v_condition"].to(dt)], dim=1)  # 16 + 4 + 16 = 36 channels
        text = self.text_empty.to(z0.device, dt).expand(B, -1, -1)
        pred = self.model(x, draw.timestep.to(z0.device), text, latents["clip_tokens"].to(dt),
                          z_colour=latents["latent_cond"], z_mask=latents["latent_mask"])
        mse = (pred.float() - target).pow(2).flatten(1).mean(dim=1)
        loss = (mse * draw.weight.to(mse.device)).mean()
        return {"loss": loss, "mse": mse.detach(), "timestep": draw.timestep, "weight": draw.weight}

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        out = self.flow_loss(self.encode_batch(batch), self._step_generator("train", self.current_epoch, batch_idx))
        B = out["mse"].shape[0]
        self.log("train/loss", out["loss"], on_step=True, prog_bar=True, batch_size=B)
        self.log("train/loss_unweighted", out["mse"].mean(), on_step=True, batch_size=B)
        self.log("train/timestep", out["timestep"].float().mean(), on_step=True, batch_size=B)
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # Fixed draws per validation clip: the loss is comparable from one validation to the next.
        out = self.flow_loss(self.encode_batch(batch), self._step_generator("val", 0, batch_idx))
        self.log("val/loss", out["loss"], on_epoch=True, sync_dist=True, batch_size=out["mse"].shape[0])
        if batch_idx < self.num_val_samples and "frames" in batch:
            frames, mask = batch["frames"][0].cpu(), batch["mask"][0].cpu()
            generated = self.render_sample(frames, mask)
            self.log_sample(frames, frames * mask[..., None], generated, batch["clip_id"][0])

    # ---- samples ----------------------------------------------------------------------------------

    @torch.no_grad()
    def render_sample(self, frames: Tensor, mask: Tensor) -> Tensor:
        """Generate a video from one clip's masked source, as inference would from a render.

        Args: frames (T, H, W, 3) uint8; mask (T, H, W) bool (already eroded: ``sample`` should not erode again).
        Returns: (T, H, W, 3) uint8 on the CPU.
        """
        s = self.sample or GenerateSettings(progress=False)
        colour = frames * mask[..., None]  # holes black, like a mesh render
        neg = getattr(self, "text_sample_negative", None) if s.guidance_scale > 1.0 else None
        return self.conditioner(colour, mask, frames[0], prompt_embeds=self.text_sample_prompt,
                                negative_prompt_embeds=neg, settings=s)

    def log_sample(self, source: Tensor, masked: Tensor, generated: Tensor, clip_id: str) -> Path | None:
        """Write source | masked input | generated side by side to ``<run dir>/samples/`` (rank 0) and pass it
        to loggers that take videos."""
        if not self.trainer.is_global_zero:
            return None
        from ex4d.io.video import write_video

        panel = torch.cat([source, masked, generated], dim=2).numpy()  # (T, H, 3W, 3)
        path = Path(self.trainer.default_root_dir) / "samples" / f"step{self.global_step:07d}_{clip_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, panel, fps=self.sample_fps)
        for lg in self.loggers:
            if hasattr(lg, "log_video"):
                lg.log_video("val/sample", [str(path)], step=self.global_step, caption=[clip_id])
        return path

    # ---- optimisation and checkpoints ---------------------------------------------------------------

    def configure_optimizers(self):
        from torch.optim.lr_scheduler import LambdaLR

        from lightning.pytorch.plugins.precision import MixedPrecision

        # Lightning's AMP plugin refuses to clip gradients for a fused optimizer (it unscales inside step()).
        clip = float(self.trainer.gradient_clip_val or 0)
        fused_allowed = not (isinstance(self.trainer.precision_plugin, MixedPrecision) and clip > 0)
        opt = build_optimizer(self.trainable_parameters(), self.optim, self.device.type,
                              offload=strategy_info(self.trainer.strategy).offloads_optimizer, fused_allowed=fused_allowed)
        max_steps = self.trainer.max_steps if self.trainer.max_steps and self.trainer.max_steps > 0 else None
        sched = LambdaLR(opt, lambda step: lr_factor(step, self.optim, max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def trainable_state_names(self) -> set[str]:
        return {n for n, p in self.named_parameters() if p.requires_grad}

    def adapter_metadata(self) -> dict:
        return {"mask_encoding": self.mask_encoding, "first_frame_rounding": self.first_frame_rounding,
                "clip_preprocess": self.clip_preprocess, "global_step": int(self.global_step),
                "trainer": "ex4d.training"}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        sd = checkpoint.get("state_dict")
        if sd is not None:  # (DeepSpeed saves the module itself, with exclude_frozen_parameters)
            keep = self.trainable_state_names()
            checkpoint["state_dict"] = {k: v for k, v in sd.items() if k in keep}
        checkpoint["ex4d"] = {"lora": asdict(self.lora), **self.adapter_metadata()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        sd = checkpoint.get("state_dict")
        if sd is None:
            return
        expected = self.trainable_state_names()
        missing, unknown = sorted(expected - set(sd)), sorted(set(sd) - set(self.state_dict()))
        if missing or unknown:
            raise InputError(f"checkpoint does not match this adapter (lora / model config differ?): "
                             f"{len(missing)} adapter tensors missing (e.g. {missing[:3]}), {len(unknown)} unknown "
                             f"(e.g. {unknown[:3]})")

    def save_adapter_file(self, path: str | Path, metadata: dict | None = None) -> Path | None:
        """Write the adapter (LoRA + encoder) with :func:`ex4d.model.checkpoint.save_adapter`, with the full fp32
        values when a sharded strategy holds them. Call on every rank (collective under ZeRO / FSDP); rank 0
        writes and returns the path."""
        from ex4d.model.checkpoint import save_adapter

        with full_adapter_values(self):
            if self._trainer is not None and not self.trainer.is_global_zero:
                return None
            return save_adapter(path, self.model, self.lora, {**self.adapter_metadata(), **(metadata or {})})


@contextlib.contextmanager
def full_adapter_values(module: EX4DTrainingModule):
    """Inside: every adapter parameter's ``.data`` is its full value, in fp32 where a DeepSpeed ZeRO optimizer keeps
    fp32 master weights (DeepSpeed casts the module itself to bf16). Collective under DeepSpeed / FSDP: call on
    every rank."""
    params = module.trainable_parameters()
    if any(hasattr(p, "_hp_mapping") or hasattr(p, "ds_id") for p in params):  # managed by a DeepSpeed engine
        from deepspeed.utils import safe_get_full_fp32_param

        full = [safe_get_full_fp32_param(p) for p in params]
        if all(f is not None for f in full):
            old = [p.data for p in params]
            try:
                for p, f in zip(params, full):
                    p.data = f.detach()
                yield
            finally:
                for p, o in zip(params, old):
                    p.data = o
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(params):
            yield
        return
    strategy = module.trainer.strategy if module._trainer is not None else None
    if strategy_info(strategy).fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(strategy.model, writeback=False):
            yield
        return
    yield
