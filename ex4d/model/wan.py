"""The frozen Wan2.1-I2V-14B-480P backbone, loaded through diffusers.

Components (all frozen, bf16 by default):

* ``transformer``: ``diffusers.WanTransformer3DModel`` (dim 5120, 40 layers, 40 heads, FFN 13824, in 36
  channels = 16 noise + 4 frame mask + 16 first-frame latent, patch (1, 2, 2), text length 512);
* ``vae``: ``diffusers.AutoencoderKLWan`` (16 latent channels, 4x time, 8x space);
* ``text_encoder`` + ``tokenizer``: UMT5-XXL encoder (``transformers.UMT5EncoderModel``);
* ``image_encoder`` + ``image_processor``: open-clip XLM-RoBERTa ViT-H/14 visual tower as
  ``transformers.CLIPVisionModel`` (tokens = hidden states after layer 31 of 32).

Sources: the diffusers-format release ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers`` (a local folder, or the
repo id resolved from the local Hugging Face cache), and for the DiT and the VAE optionally the native
Wan release files (``diffusion_pytorch_model-0000{1..7}-of-00007.safetensors``, ``Wan2.1_VAE.pth``)
converted by diffusers' single-file loaders. Nothing is ever downloaded here: missing files raise
:class:`~ex4d.utils.errors.MissingWeightsError` naming the path and the ``tools/download_weights.py``
command.

:func:`build_tiny_wan` makes random-weight components of the same classes (2-layer DiT, tiny VAE, tiny
UMT5, tiny CLIP vision, a byte-level tokenizer) **for tests only**: their output is noise.

Example::

    from ex4d.model.wan import WanLoader
    components = WanLoader(path="weights/Wan2.1-I2V-14B-480P-Diffusers").load()
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ex4d.model.adapter import ENCODER_HIDDEN_CHANNELS
from ex4d.utils.checks import check_int
from ex4d.utils.errors import InputError, MissingWeightsError
from ex4d.utils.errors import download_command as _download_command

log = logging.getLogger(__name__)

WAN_I2V_REPO = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
WAN_I2V_NATIVE_REPO = "Wan-AI/Wan2.1-I2V-14B-480P"

# diffusers config of the Wan2.1-I2V-14B-480P DiT (transformer/config.json of the diffusers release).
WAN_I2V_14B_TRANSFORMER_CONFIG: dict[str, Any] = {
    "patch_size": [1, 2, 2],
    "num_attention_heads": 40,
    "attention_head_dim": 128,
    "in_channels": 36,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 13824,
    "num_layers": 40,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "image_dim": 1280,
    "added_kv_proj_dim": 5120,
    "rope_max_seq_len": 1024,
    "pos_embed_seq_len": None,
}

# Wan2.1 VAE (diffusers defaults of AutoencoderKLWan; latents_mean/std are the class defaults).
WAN_VAE_CONFIG: dict[str, Any] = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
}

# open-clip XLM-RoBERTa ViT-H/14 visual tower as transformers.CLIPVisionConfig.
CLIP_VIT_H14_CONFIG: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}

# UMT5-XXL encoder (text_encoder/config.json of the diffusers release): 5.7 B parameters.
UMT5_XXL_CONFIG: dict[str, Any] = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "layer_norm_epsilon": 1e-6,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}

TEXT_LENGTH = 512  # Wan's text context length (diffusers' Wan attention hard-codes 512 text tokens)

_DIFFUSERS_SUBFOLDERS = ("transformer", "vae", "text_encoder", "tokenizer", "image_encoder", "image_processor")


def download_command(what: str, local_dir: str | Path | None = None) -> str:
    """The command that fetches ``what`` (items and options of tools/download_weights.py, space separated)."""
    return _download_command(*what.split(), local_dir=local_dir)


@dataclass
class WanComponents:
    """The frozen Wan2.1-I2V backbone.

    Attributes:
        transformer: the DiT (``WanTransformer3DModel``).
        vae: ``AutoencoderKLWan``.
        text_encoder: ``UMT5EncoderModel`` (None when prompt embeddings are supplied by the caller).
        tokenizer: tokenizer of the text encoder (None with ``text_encoder``).
        image_encoder: ``CLIPVisionModel``.
        image_processor: ``CLIPImageProcessor`` (its mean/std and crop size are used).
        is_tiny: True for random test models from :func:`build_tiny_wan`: never report their output.
        source: where the weights came from (folder, file list, or "tiny-random").
        encoder_hidden_channels: width of the geometry encoder an adapter on this backbone gets (the released
            one's, :data:`~ex4d.model.adapter.ENCODER_HIDDEN_CHANNELS`, unless the loader says otherwise).
    """

    transformer: nn.Module
    vae: nn.Module
    text_encoder: nn.Module | None
    tokenizer: Any
    image_encoder: nn.Module
    image_processor: Any
    is_tiny: bool = False
    source: str = ""
    encoder_hidden_channels: int = ENCODER_HIDDEN_CHANNELS

    def modules(self) -> dict[str, nn.Module]:
        """The torch modules by name (text_encoder omitted when None)."""
        out = {"transformer": self.transformer, "vae": self.vae, "image_encoder": self.image_encoder}
        if self.text_encoder is not None:
            out["text_encoder"] = self.text_encoder
        return out

    def freeze(self) -> WanComponents:
        """Eval mode and ``requires_grad=False`` on every backbone parameter (LoRA is attached later)."""
        for m in self.modules().values():
            m.eval().requires_grad_(False)
        return self


# --------------------------------------------------------------------------------------------------
# Loading real weights
# --------------------------------------------------------------------------------------------------


def _resolve_diffusers_folder(path: str | Path, local_files_only: bool) -> Path:
    """A local folder as is; a repo id ("org/name") through the Hugging Face cache (no download unless asked)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p
    text = str(path)
    looks_like_repo = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not p.exists()
    if looks_like_repo:
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(text, local_files_only=local_files_only))
        except Exception as e:  # LocalEntryNotFoundError, OfflineModeIsEnabled, network errors
            raise MissingWeightsError(
                f"Wan weights: {text!r} is neither a local folder nor a repo in the local Hugging Face cache "
                f"({e.__class__.__name__}). Fetch it with: {download_command('wan_i2v_14b_480p', p.parent)}"
            ) from e
    raise MissingWeightsError(
        f"Wan weights: folder {p} does not exist. Fetch it with: "
        f"{download_command('wan_i2v_14b_480p', p.parent)}"
    )


def _require(paths: Sequence[Path], what: str, local_dir: Path | None) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        shown = ", ".join(missing[:8]) + (f" (+{len(missing) - 8} more)" if len(missing) > 8 else "")
        raise MissingWeightsError(
            f"Missing weights: {shown}. Fetch them with: {download_command(what, local_dir)}"
        )


def _config_dir(config: dict[str, Any], class_name: str) -> str:
    """A temporary folder holding ``config.json`` (from_single_file needs a diffusers config; we are offline)."""
    d = Path(tempfile.mkdtemp(prefix="ex4d_cfg_"))
    (d / "config.json").write_text(json.dumps({"_class_name": class_name, **config}))
    return str(d)


def _strict_keys(converted: dict[str, torch.Tensor], model: nn.Module, source: str) -> None:
    """Every key of the converted checkpoint is a parameter/buffer of ``model`` and vice versa."""
    expected = set(model.state_dict().keys())
    got = set(converted.keys())
    missing, extra = sorted(expected - got), sorted(got - expected)
    if missing or extra:
        raise InputError(
            f"{source}: checkpoint does not match {type(model).__name__}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})"
        )


def load_transformer_native(
    files: Sequence[str | Path],
    *,
    dtype: torch.dtype = torch.bfloat16,
    config_folder: str | Path | None = None,
) -> nn.Module:
    """The DiT from native Wan release shards, converted by diffusers' single-file loader.

    Shards are read one at a time and cast to ``dtype`` before merging (the release is fp32, 65 GB), so the
    peak host memory is about one shard plus the bf16 model.

    Args:
        files: the safetensors shards (``diffusion_pytorch_model-0000{1..7}-of-00007.safetensors``) or one file.
        config_folder: a diffusers-format release folder whose ``transformer/config.json`` is used; None uses
            the built-in 14B I2V config.
    """
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from safetensors.torch import load_file

    paths = [Path(f).expanduser() for f in files]
    _require(paths, "wan_i2v_14b_480p --native", paths[0].parent.parent if paths else None)
    merged: dict[str, torch.Tensor] = {}
    fp32_keep: dict[str, torch.Tensor] = {}
    for p in paths:
        shard = load_file(str(p)) if p.suffix == ".safetensors" else torch.load(p, map_location="cpu", weights_only=True)
        for k, v in convert_wan_transformer_to_diffusers(shard).items():
            if v.is_floating_point() and _keeps_fp32(WanTransformer3DModel, k):
                fp32_keep[k] = v.float()
            merged[k] = v.to(dtype) if v.is_floating_point() else v
        del shard
    if config_folder is not None and (Path(config_folder) / "transformer" / "config.json").exists():
        cfg_kwargs = {"config": str(config_folder), "subfolder": "transformer"}
        cfg = json.loads((Path(config_folder) / "transformer" / "config.json").read_text())
    else:
        cfg = WAN_I2V_14B_TRANSFORMER_CONFIG
        cfg_kwargs = {"config": _config_dir(cfg, "WanTransformer3DModel")}
    with torch.device("meta"):
        probe = WanTransformer3DModel.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
    _strict_keys(merged, probe, f"native DiT {paths[0]}")
    del probe
    model = WanTransformer3DModel.from_single_file(merged, torch_dtype=dtype, local_files_only=True, **cfg_kwargs)
    # from_single_file casts everything to dtype; from_pretrained keeps norms, modulation tables, the time
    # embedder and the rotary tables in fp32. Match from_pretrained (the fp32 values come from the file).
    apply_keep_in_fp32(model, fp32_keep)
    return model


def _keeps_fp32(cls, name: str) -> bool:
    keep = getattr(cls, "_keep_in_fp32_modules", None) or []
    parts = name.split(".")
    return any(k in parts for k in keep)


@torch.no_grad()
def apply_keep_in_fp32(model: nn.Module, fp32_state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Put the parameters named in ``_keep_in_fp32_modules`` back in fp32 (values from ``fp32_state`` when given)
    and rebuild the rotary tables in fp32, as diffusers' ``from_pretrained(torch_dtype=bf16)`` leaves them."""
    for name, p in model.named_parameters():
        if _keeps_fp32(type(model), name):
            src = fp32_state.get(name) if fp32_state else None
            p.data = (src if src is not None else p.data).to(device=p.device, dtype=torch.float32)
    rope = getattr(model, "rope", None)
    if rope is not None and hasattr(rope, "freqs_cos"):
        with torch.device(rope.freqs_cos.device):
            fresh = type(rope)(rope.attention_head_dim, rope.patch_size, rope.max_seq_len)
        rope.freqs_cos, rope.freqs_sin = fresh.freqs_cos, fresh.freqs_sin
    return model


def load_vae_native(file: str | Path, *, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """The VAE from the native ``Wan2.1_VAE.pth`` (torch pickle, read with weights_only=True) or a safetensors file."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    p = Path(file).expanduser()
    _require([p], "wan_i2v_14b_480p --native", p.parent.parent)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(p))
    else:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    converted = convert_wan_vae_to_diffusers(sd)
    with torch.device("meta"):
        probe = AutoencoderKLWan(**WAN_VAE_CONFIG)
    _strict_keys(converted, probe, f"native VAE {p}")
    del probe
    return AutoencoderKLWan.from_single_file(
        converted, config=_config_dir(WAN_VAE_CONFIG, "AutoencoderKLWan"), torch_dtype=dtype, local_files_only=True
    )


def load_wan_components(
    path: str | Path = WAN_I2V_REPO,
    *,
    dtype: torch.dtype | str = torch.bfloat16,
    vae_dtype: torch.dtype | str | None = None,
    image_encoder_dtype: torch.dtype | str | None = None,
    transformer_files: Sequence[str | Path] | None = None,
    vae_file: str | Path | None = None,
    load_text_encoder: bool = True,
    local_files_only: bool = True,
) -> WanComponents:
    """Load the backbone on the CPU (placement is the generator's job: see its memory modes).

    Args:
        path: diffusers-format folder or repo id (resolved in the local HF cache). The tokenizer, text
            encoder, image encoder and image processor always come from here; the DiT and VAE too unless
            ``transformer_files`` / ``vae_file`` are given.
        dtype: DiT and text-encoder dtype (reference: bf16 everywhere).
        vae_dtype, image_encoder_dtype: default ``dtype`` (the reference runs all in bf16).
        transformer_files: native Wan DiT shards (see :func:`load_transformer_native`).
        vae_file: native ``Wan2.1_VAE.pth``.
        load_text_encoder: False skips UMT5 (11 GB) when the caller provides prompt embeddings.

    Raises:
        MissingWeightsError: a folder or file is missing (message names it and the download command).
    """
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import AutoTokenizer, CLIPVisionModel, UMT5EncoderModel

    dtype = to_dtype(dtype)
    vae_dtype = to_dtype(vae_dtype) if vae_dtype is not None else dtype
    image_encoder_dtype = to_dtype(image_encoder_dtype) if image_encoder_dtype is not None else dtype
    root = _resolve_diffusers_folder(path, local_files_only)

    needed = ["image_encoder", "image_processor"]
    if load_text_encoder:
        needed += ["text_encoder", "tokenizer"]
    if transformer_files is None:
        needed.append("transformer")
    if vae_file is None:
        needed.append("vae")
    _require([root / s for s in needed], "wan_i2v_14b_480p", root.parent)

    if transformer_files is None:
        transformer = WanTransformer3DModel.from_pretrained(root, subfolder="transformer", torch_dtype=dtype)
    else:
        transformer = load_transformer_native(transformer_files, dtype=dtype, config_folder=root)
    if vae_file is None:
        vae = AutoencoderKLWan.from_pretrained(root, subfolder="vae", torch_dtype=vae_dtype)
    else:
        vae = load_vae_native(vae_file, dtype=vae_dtype)
    text_encoder = tokenizer = None
    if load_text_encoder:
        text_encoder = UMT5EncoderModel.from_pretrained(root, subfolder="text_encoder", dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(root, subfolder="tokenizer")
    image_encoder = CLIPVisionModel.from_pretrained(root, subfolder="image_encoder", dtype=image_encoder_dtype)
    image_processor = _clip_image_processor_cls().from_pretrained(root, subfolder="image_processor")
    comps = WanComponents(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        image_encoder=image_encoder,
        image_processor=image_processor,
        source=str(root) if transformer_files is None else f"{root} + native DiT {Path(transformer_files[0]).parent}",
    )
    return comps.freeze()


def _clip_image_processor_cls():
    """CLIP's image processor class; the PIL backend when torchvision is absent (transformers 5 warns otherwise)."""
    from transformers import CLIPImageProcessor

    try:
        import torchvision  # noqa: F401

        return CLIPImageProcessor
    except ImportError:
        try:
            from transformers import CLIPImageProcessorPil

            return CLIPImageProcessorPil
        except ImportError:  # older transformers 5.x: one class for both backends
            return CLIPImageProcessor


def to_dtype(d: torch.dtype | str) -> torch.dtype:
    """'bfloat16' / 'bf16' / 'float32' / torch.dtype -> torch.dtype (InputError otherwise)."""
    if isinstance(d, torch.dtype):
        return d
    table = {
        "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
        "float32": torch.float32, "fp32": torch.float32,
    }
    if str(d) not in table:
        raise InputError(f"dtype: expected one of {sorted(table)}, got {d!r}")
    return table[str(d)]


# --------------------------------------------------------------------------------------------------
# Config-group objects (construction never loads weights)
# --------------------------------------------------------------------------------------------------

MEMORY_MODES = ("gpu", "offload", "low_vram")
MEMORY_MODE_CHOICES = (*MEMORY_MODES, "auto")  # auto: picked from free GPU memory (ex4d.pipelines.memory)
# Working memory beyond the weights (memory_mode=auto): DiT activations at 480x832x81 (about 4 GiB over the
# weights), the VAE decode (4.7 GiB there), the allocator's slack. docs/performance.md has the measured peaks.
ACTIVATION_HEADROOM = 10 * 2**30


def _encoder_width(value: int | None, default: int) -> int:
    """``model.encoder_hidden_channels``: None = the model's own width."""
    return default if value is None else check_int(value, "model.encoder_hidden_channels", minimum=1)


def _check_memory_mode(memory_mode: str | None) -> None:
    """``model.memory_mode``: one of MEMORY_MODE_CHOICES (inference placement), or None where the caller places the
    model itself (training: conf/train.yaml sets it null and train.py refuses a value)."""
    if memory_mode is not None and memory_mode not in MEMORY_MODE_CHOICES:
        raise InputError(f"model.memory_mode: expected one of {MEMORY_MODE_CHOICES}, got {memory_mode!r}")


class WanLoader:
    """``model=wan_i2v_14b_480p``: where the Wan weights live and how to run them. Loads on :meth:`load`.

    Args:
        path: diffusers-format folder or repo id.
        dtype, vae_dtype, image_encoder_dtype: see :func:`load_wan_components`.
        transformer_files, vae_file: native Wan release files instead of the diffusers DiT / VAE.
        encoder_hidden_channels: geometry-encoder width of adapters on this model; None = the released adapter's
            (:data:`~ex4d.model.adapter.ENCODER_HIDDEN_CHANNELS`). An adapter file's own width wins at inference.
        memory_mode: ``gpu`` (all on the GPU, about 50 GB), ``offload`` (each model on the GPU only for its
            stage, about 35 GB), ``low_vram`` (also streams DiT blocks from pinned CPU memory: fits 24 GB); None
            for training, which places the model itself (conf/train.yaml).
    """

    is_tiny = False

    def __init__(
        self,
        path: str = WAN_I2V_REPO,
        dtype: str = "bfloat16",
        vae_dtype: str | None = None,
        image_encoder_dtype: str | None = None,
        transformer_files: Sequence[str] | None = None,
        vae_file: str | None = None,
        memory_mode: str | None = "offload",
        load_text_encoder: bool = True,
        encoder_hidden_channels: int | None = None,
    ) -> None:
        _check_memory_mode(memory_mode)
        self.path = str(path)
        self.dtype = to_dtype(dtype)
        self.vae_dtype = to_dtype(vae_dtype) if vae_dtype else None
        self.image_encoder_dtype = to_dtype(image_encoder_dtype) if image_encoder_dtype else None
        self.transformer_files = list(transformer_files) if transformer_files else None
        self.vae_file = vae_file
        self.memory_mode = memory_mode
        self.load_text_encoder = load_text_encoder
        self.encoder_hidden_channels = _encoder_width(encoder_hidden_channels, ENCODER_HIDDEN_CHANNELS)

    def missing_files(self) -> list[str]:
        """Paths that :meth:`load` would need and that do not exist (empty when ready); never downloads."""
        p = Path(self.path).expanduser()
        if not p.is_dir():
            try:
                p = _resolve_diffusers_folder(self.path, local_files_only=True)
            except MissingWeightsError:
                return [self.path]
        needed = ["image_encoder", "image_processor"]
        if self.load_text_encoder:
            needed += ["text_encoder", "tokenizer"]
        if not self.transformer_files:
            needed.append("transformer")
        if not self.vae_file:
            needed.append("vae")
        out = [str(p / s) for s in needed if not (p / s).exists()]
        out += [f for f in (self.transformer_files or []) + ([self.vae_file] if self.vae_file else []) if not Path(f).exists()]
        return out

    def load(self) -> WanComponents:
        comps = load_wan_components(
            self.path,
            dtype=self.dtype,
            vae_dtype=self.vae_dtype,
            image_encoder_dtype=self.image_encoder_dtype,
            transformer_files=self.transformer_files,
            vae_file=self.vae_file,
            load_text_encoder=self.load_text_encoder,
        )
        comps.encoder_hidden_channels = self.encoder_hidden_channels
        return comps

    def dit_parameters(self) -> int:
        """Parameters of the DiT this loads (the 14B I2V model), known without loading it."""
        return WAN_I2V_14B_DIT_PARAMETERS

    def __repr__(self) -> str:
        return f"WanLoader(path={self.path!r}, dtype={self.dtype}, memory_mode={self.memory_mode!r})"


class TinyWanLoader:
    """``model=wan_tiny``: TEST ONLY. Random-weight components of the real classes (see :func:`build_tiny_wan`)."""

    is_tiny = True

    def __init__(self, seed: int = 0, num_layers: int = 2, dtype: str = "float32", memory_mode: str | None = "gpu",
                 encoder_hidden_channels: int | None = None) -> None:
        _check_memory_mode(memory_mode)
        self.seed = seed
        self.num_layers = num_layers
        self.dtype = to_dtype(dtype)
        self.memory_mode = memory_mode
        self.encoder_hidden_channels = _encoder_width(encoder_hidden_channels, TINY_ENCODER_HIDDEN_CHANNELS)

    def missing_files(self) -> list[str]:
        return []

    def load(self) -> WanComponents:
        comps = build_tiny_wan(seed=self.seed, num_layers=self.num_layers, dtype=self.dtype)
        comps.encoder_hidden_channels = self.encoder_hidden_channels
        return comps

    def dit_parameters(self) -> int:
        """Parameters of the tiny DiT, counted on the meta device."""
        return transformer_num_parameters({**TINY_TRANSFORMER_CONFIG, "num_layers": self.num_layers})

    def __repr__(self) -> str:
        return f"TinyWanLoader(seed={self.seed}, num_layers={self.num_layers}) [TEST ONLY: random weights]"


class RandomWanLoader:
    """``model=wan_i2v_14b_random``: BENCHMARK ONLY. Random weights of the real Wan2.1-I2V-14B shapes.

    Speed and memory do not depend on weight values, so benchmarks and scaling runs of ``train.py`` /
    ``infer.py`` / ``evaluate.py`` need no download. The DiT (and UMT5) are built on the meta device,
    materialised on the run device in ``dtype`` and filled by a cheap seeded init (:func:`random_init_`), in
    seconds; the VAE and the CLIP vision tower are real-shape random models. With ``load_text_encoder`` the
    text path is a random UMT5-XXL of the real shape (11 GB in bf16) behind a byte-level stand-in tokenizer
    (the real sentencepiece model is a download too); prompts are padded to the real 512 tokens, so UMT5
    costs what it costs with real weights. Without it, :meth:`text_embeddings` gives random prompt
    embeddings of the real shape (training uses these: it needs the empty prompt only). A missing adapter
    checkpoint is replaced by a seeded random adapter (``random_adapter_if_missing``), so the default
    ``checkpoint=`` runs. Its outputs are noise: never report them as results.

    Args:
        device: where the weights are made; ``auto`` = ``cuda:LOCAL_RANK`` when CUDA is present, else CPU.
        load_text_encoder: build the random UMT5-XXL (inference); false: random embeddings only.
        transformer, vae, image_encoder, text_encoder: config overrides of the models (tests use small ones).
        encoder_hidden_channels: geometry-encoder width; None = the released adapter's (small test shapes set less).
    """

    is_tiny = False
    random_adapter_if_missing = True
    source = "random real-shape weights (BENCHMARK ONLY)"

    def __init__(self, seed: int = 0, dtype: str = "bfloat16", device: str = "auto", memory_mode: str | None = "gpu",
                 load_text_encoder: bool = True, transformer: dict | None = None, vae: dict | None = None,
                 image_encoder: dict | None = None, text_encoder: dict | None = None,
                 encoder_hidden_channels: int | None = None) -> None:
        _check_memory_mode(memory_mode)
        self.seed, self.dtype, self.device, self.memory_mode = int(seed), to_dtype(dtype), str(device), memory_mode
        self.load_text_encoder = bool(load_text_encoder)
        self.encoder_hidden_channels = _encoder_width(encoder_hidden_channels, ENCODER_HIDDEN_CHANNELS)
        self.transformer_config = {**WAN_I2V_14B_TRANSFORMER_CONFIG, **dict(transformer or {})}
        self.vae_config = {**WAN_VAE_CONFIG, **dict(vae or {})}
        self.image_encoder_config = {**CLIP_VIT_H14_CONFIG, **dict(image_encoder or {})}
        self.text_encoder_config = {**UMT5_XXL_CONFIG, **dict(text_encoder or {})}
        if self.text_encoder_config["d_model"] != self.transformer_config["text_dim"]:
            raise InputError(f"model.text_encoder.d_model={self.text_encoder_config['d_model']} must equal "
                             f"model.transformer.text_dim={self.transformer_config['text_dim']}")

    def missing_files(self) -> list[str]:
        return []

    def dit_parameters(self) -> int:
        """Parameters of the DiT of this shape (the 14B one unless ``transformer`` overrides it), allocating nothing."""
        return transformer_num_parameters(self.transformer_config)

    def run_device(self) -> torch.device:
        if self.device != "auto":
            return torch.device(self.device)
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")

    def _dit_home(self, device: torch.device) -> str | None:
        """Where the DiT is handed over: on the run device (None) unless the memory mode keeps it in CPU memory
        (``offload`` / ``low_vram``, or ``auto`` when the device could not hold it with room to run), so that
        making it never needs the device memory that the mode exists to save."""
        if device.type != "cuda" or self.memory_mode in (None, "gpu"):
            return None
        if self.memory_mode in ("offload", "low_vram"):
            return "cpu"
        need = self.dit_parameters() * self.dtype.itemsize + ACTIVATION_HEADROOM
        return None if torch.cuda.mem_get_info(device)[0] >= need else "cpu"

    def load(self) -> WanComponents:
        from diffusers import AutoencoderKLWan
        from transformers import CLIPVisionConfig, CLIPVisionModel

        device = self.run_device()
        text_encoder = tokenizer = None
        if self.load_text_encoder:
            # made on the run device (a fast init), then handed over in CPU memory as the real loader's are
            # (placement is the generator's job: resident, streamed or moved per stage), so the whole UMT5 and
            # the DiT are never on the device together unless the memory mode puts them there
            text_encoder = random_umt5_encoder(device, self.dtype, self.seed + 1, self.text_encoder_config).to("cpu")
            tokenizer = build_tiny_tokenizer()
        transformer = random_wan_transformer(device, self.dtype, self.seed, self.transformer_config,
                                             home=self._dit_home(device))
        with torch.random.fork_rng(devices=[]), torch.device(device):
            torch.manual_seed(self.seed)
            vae = AutoencoderKLWan(**self.vae_config).to(self.dtype)
            image_encoder = CLIPVisionModel(CLIPVisionConfig(**self.image_encoder_config)).to(self.dtype)
        size = self.image_encoder_config["image_size"]
        proc = _clip_image_processor_cls()(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        return WanComponents(transformer, vae, text_encoder, tokenizer, image_encoder, proc, is_tiny=False,
                             source=self.source, encoder_hidden_channels=self.encoder_hidden_channels).freeze()

    def text_embeddings(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Random (1, 512, text_dim) embeddings per prompt key (a stand-in for UMT5, seeded by the key)."""
        dim = self.transformer_config["text_dim"]
        out = {}
        for key in texts:
            g = torch.Generator().manual_seed(self.seed * 1000 + sum(map(ord, key)))
            out[key] = torch.randn(1, 512, dim, generator=g).to(self.dtype)
        return out

    def __repr__(self) -> str:
        return f"RandomWanLoader(seed={self.seed}, dtype={self.dtype}) [BENCHMARK ONLY: random weights]"


def random_umt5_encoder(device: torch.device | str, dtype: torch.dtype, seed: int = 0,
                        config: dict[str, Any] | None = None) -> nn.Module:
    """A ``UMT5EncoderModel`` (default the UMT5-XXL shape of Wan2.1) with random weights, made on ``device`` in
    ``dtype`` without an fp32 copy (meta, ``to_empty``, :func:`random_init_`). BENCHMARK ONLY."""
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        model = UMT5EncoderModel(UMT5Config(**(config or UMT5_XXL_CONFIG)))
    model.to(dtype)
    model.to_empty(device=device)
    random_init_(model, seed)
    return model


def random_wan_transformer(device: torch.device | str, dtype: torch.dtype, seed: int = 0,
                           config: dict[str, Any] | None = None, home: torch.device | str | None = None) -> nn.Module:
    """A ``WanTransformer3DModel`` (default the 14B I2V shape) with random weights, made directly on ``device``
    in ``dtype``: built on the meta device, materialised with ``to_empty`` (never holding fp32 weights) and
    filled by :func:`random_init_`. BENCHMARK ONLY.

    ``home``: where the weights are handed over, when not ``device`` (``cpu`` for the offload memory modes):
    each parameter is made and filled on ``device`` and moved at once, so the device never holds more than one
    (the values are the same as when made on ``device``)."""
    transformer = build_wan_transformer_meta(config)
    transformer.to(dtype)  # on meta: free
    if home is not None and torch.device(home) != torch.device(device):
        return _random_init_piecewise_(transformer, torch.device(device), torch.device(home), seed)
    transformer.to_empty(device=device)
    # fp32 norms / modulation / time embedder as from_pretrained(torch_dtype=bf16) leaves them; the rotary
    # tables (non-persistent buffers, garbage after to_empty) rebuilt
    apply_keep_in_fp32(transformer)
    random_init_(transformer, seed)
    return transformer


@torch.no_grad()
def _random_init_piecewise_(model: nn.Module, device: torch.device, home: torch.device, seed: int) -> nn.Module:
    """:func:`random_init_` of a meta-device model, one parameter at a time on ``device``, each moved to ``home``
    once filled (same draws, same order, same values)."""
    g = torch.Generator(device=device).manual_seed(seed)
    owners = dict(model.named_modules())
    for name, p in list(model.named_parameters()):
        dtype = torch.float32 if _keeps_fp32(type(model), name) else p.dtype
        t = torch.empty(p.shape, dtype=dtype, device=device)
        _fill_random_(name, t, g)
        owner, _, leaf = name.rpartition(".")
        owners[owner]._parameters[leaf] = nn.Parameter(t.to(home), requires_grad=p.requires_grad)
    for name, b in list(model.named_buffers()):
        owner, _, leaf = name.rpartition(".")
        owners[owner]._buffers[leaf] = torch.empty(b.shape, dtype=b.dtype, device=home)
    apply_keep_in_fp32(model)  # rebuilds the rotary tables on home (the parameters are already in their dtypes)
    return model


@torch.no_grad()
def random_init_(module: nn.Module, seed: int = 0) -> None:
    """Cheap in-place init of materialised (``to_empty``) parameters: normal(0, 1/sqrt(fan_in)) matrices,
    modulation tables at the same scale, unit norms, zero biases; values only need to be finite and sane."""
    device = next(module.parameters()).device
    if device.type == "meta":  # shapes only (tests, parameter counts): no values to fill
        return
    g = torch.Generator(device=device).manual_seed(seed)
    for name, p in module.named_parameters():
        _fill_random_(name, p, g)


def _fill_random_(name: str, p: torch.Tensor, g: torch.Generator) -> None:
    if p.ndim >= 2 and "scale_shift_table" not in name:
        p.normal_(0.0, p[0].numel() ** -0.5, generator=g)
    elif "scale_shift_table" in name:
        p.normal_(0.0, p.shape[-1] ** -0.5, generator=g)
    elif name.endswith("weight"):  # norms
        p.fill_(1.0)
    else:
        p.zero_()


# --------------------------------------------------------------------------------------------------
# Tiny random model (tests only)
# --------------------------------------------------------------------------------------------------

TINY_ENCODER_HIDDEN_CHANNELS = 16  # the tiny DiT's adapter: a geometry encoder as narrow as the model
TINY_TRANSFORMER_CONFIG: dict[str, Any] = {
    "patch_size": [1, 2, 2],
    "num_attention_heads": 2,
    "attention_head_dim": 12,  # rope splits 12 into t/h/w = 4/4/4
    "in_channels": 36,
    "out_channels": 16,
    "text_dim": 16,
    "freq_dim": 32,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "image_dim": 16,
    "added_kv_proj_dim": 24,
    "rope_max_seq_len": 64,
}
TINY_VAE_CONFIG: dict[str, Any] = {
    "base_dim": 8,
    "z_dim": 16,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}
TINY_CLIP_CONFIG: dict[str, Any] = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 28,
    "patch_size": 14,
    "projection_dim": 16,
}


def build_tiny_tokenizer():
    """A byte-level BPE tokenizer without merges (one token per UTF-8 byte), pad 0, eos 1, unk 2.

    TEST ONLY: stands in for the UMT5 sentencepiece tokenizer, which cannot be downloaded here. It behaves
    like it where the pipeline cares: appends ``</s>``, pads to 512 with id 0, returns attention masks.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(specials + alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=TEXT_LENGTH
    )


def build_tiny_wan(*, seed: int = 0, num_layers: int = 2, dtype: torch.dtype = torch.float32) -> WanComponents:
    """Random-weight Wan components of the real classes, small enough for CPU unit tests. TEST ONLY.

    Shapes: DiT dim 24 (2 heads x 12), ``num_layers`` blocks, in 36 / out 16 channels, text dim 16, image dim
    16; VAE base_dim 8 with the real 4x/8x compression and 16 latent channels; UMT5 d_model 16; CLIP vision
    28x28 input, patch 14 (5 image tokens). Deterministic for a given ``seed``.
    """
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = WanTransformer3DModel(**{**TINY_TRANSFORMER_CONFIG, "num_layers": num_layers})
        # diffusers' init leaves proj_out random but some norms at identity; nothing else to fix.
        vae = AutoencoderKLWan(**TINY_VAE_CONFIG)
        text_encoder = UMT5EncoderModel(
            UMT5Config(
                vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                relative_attention_num_buckets=8, relative_attention_max_distance=32,
                feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
            )
        )
        image_encoder = CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP_CONFIG))
    image_processor = _clip_image_processor_cls()(
        size={"shortest_edge": TINY_CLIP_CONFIG["image_size"]},
        crop_size={"height": TINY_CLIP_CONFIG["image_size"], "width": TINY_CLIP_CONFIG["image_size"]},
    )
    if dtype != torch.float32:
        for m in (transformer, vae, text_encoder, image_encoder):
            m.to(dtype)
        apply_keep_in_fp32(transformer)
    comps = WanComponents(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        image_encoder=image_encoder,
        image_processor=image_processor,
        is_tiny=True,
        source="tiny-random (TEST ONLY)",
        encoder_hidden_channels=TINY_ENCODER_HIDDEN_CHANNELS,
    )
    return comps.freeze()


# Parameters of the Wan2.1-I2V-14B DiT (WanTransformer3DModel at WAN_I2V_14B_TRANSFORMER_CONFIG; the method doc's
# 16.39 B). Building that shape on the meta device takes seconds, so the count is kept here and checked against
# the meta build by tests/unit/test_model_wan.py.
WAN_I2V_14B_DIT_PARAMETERS = 16_394_878_784


def transformer_num_parameters(config: dict[str, Any] | None = None) -> int:
    """Parameters of a ``WanTransformer3DModel`` of ``config`` (default the 14B I2V shape), allocating nothing."""
    config = dict(config or WAN_I2V_14B_TRANSFORMER_CONFIG)
    if config == WAN_I2V_14B_TRANSFORMER_CONFIG:
        return WAN_I2V_14B_DIT_PARAMETERS
    return sum(p.numel() for p in build_wan_transformer_meta(config).parameters())


def build_wan_transformer_meta(config: dict[str, Any] | None = None) -> nn.Module:
    """A ``WanTransformer3DModel`` on the meta device (no memory), default the 14B I2V shape."""
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        return WanTransformer3DModel(**(config or WAN_I2V_14B_TRANSFORMER_CONFIG))
