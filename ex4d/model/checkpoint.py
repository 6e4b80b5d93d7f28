"""Adapter weights in and out: the released ``ex4d.ckpt``, our own safetensors file, Wan-format LoRA files.

Every loader here is strict: each key of the file lands in exactly one tensor of our modules, each tensor
of the adapter is filled, shapes must agree. A missing, extra or mis-shaped key is an
:class:`~ex4d.utils.errors.InputError` naming the file and the keys. (The reference loads ``ex4d.ckpt``
twice with ``strict=False`` and only prints counts; we never do that.)

``ex4d.ckpt`` (Hugging Face ``yihouxiang/EX-4D``) is a flat ``torch.save`` dict holding

* LoRA, relative to the reference DiT: ``blocks.{i}.{self_attn,cross_attn}.{q,k,v,o}.lora_{A,B}.default.weight``
  and ``blocks.{i}.ffn.{0,2}.lora_{A,B}.default.weight``;
* the geometry encoder: ``latent_encoder.{0,2,4}.{weight,bias}``, ``latent_patch_embedding.{weight,bias}``.

Our adapter file (``*.safetensors``) holds ``lora.<diffusers module>.lora_{A,B}.weight`` and
``encoder.<name>``, plus metadata (rank, alpha, targets, encoder widths, mask encoding) so that it can be
loaded without a config.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ex4d.model.adapter import (
    DEFAULT_ADAPTER,
    DIFFUSERS_TO_REFERENCE,
    EX4DTransformer,
    LoraSettings,
)
from ex4d.utils.errors import InputError, MissingWeightsError, download_command

ADAPTER_FORMAT = "ex4d-adapter"
ADAPTER_FORMAT_VERSION = "1"
_REF_ADAPTER = "default"  # peft adapter name the reference saved its LoRA under

_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _shown(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n} more)" if len(keys) > n else "")


def copy_strict(targets: dict[str, Tensor], state: dict[str, Tensor], source: str, key_map: dict[str, str] | None = None) -> None:
    """Copy ``state`` into ``targets`` with every key consumed and every target filled.

    Args:
        targets: our name -> parameter (filled in place, cast to the parameter's dtype and device).
        state: file key -> tensor.
        source: file name for messages.
        key_map: file key -> our name; None means identical names.
    """
    key_map = key_map if key_map is not None else {k: k for k in targets}
    unknown = sorted(k for k in state if k not in key_map)
    missing = sorted(k for k, ours in key_map.items() if k not in state)
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} unknown key(s) not in the expected layout: {_shown(unknown)}")
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_shown(missing)}")
        raise InputError(f"{source}: " + "; ".join(parts))
    for k, ours in key_map.items():
        if ours not in targets:  # a key map bug, not a user error
            raise AssertionError(f"key map names {ours!r}, which is not a target")
        if tuple(state[k].shape) != tuple(targets[ours].shape):
            raise InputError(
                f"{source}: key {k} has shape {tuple(state[k].shape)}, expected {tuple(targets[ours].shape)} "
                "(a different LoRA rank or encoder width? check the lora / model config)"
            )
    with torch.no_grad():
        for k, ours in key_map.items():
            t = targets[ours]
            t.copy_(state[k].to(device=t.device, dtype=t.dtype))


# --------------------------------------------------------------------------------------------------
# Released reference checkpoint
# --------------------------------------------------------------------------------------------------


def reference_key_map(model: EX4DTransformer) -> dict[str, str]:
    """Reference ``ex4d.ckpt`` key -> our name (``lora.<module>.lora_A.weight`` / ``encoder.<name>``)."""
    out: dict[str, str] = {}
    for ours in model.lora_parameters():
        module, part, pname = ours.rsplit(".", 2)  # blocks.0.attn1.to_out.0 | lora_A | weight
        m = _BLOCK_RE.match(module)
        if m is None or m.group(2) not in DIFFUSERS_TO_REFERENCE:
            raise InputError(f"LoRA on {module} has no counterpart in the reference DiT; cannot map ex4d.ckpt to it")
        ref_module = f"blocks.{m.group(1)}.{DIFFUSERS_TO_REFERENCE[m.group(2)]}"
        out[f"{ref_module}.{part}.{_REF_ADAPTER}.{pname}"] = f"lora.{ours}"
    for name, _ in model.encoder.named_parameters():
        out[name] = f"encoder.{name}"
    return out


def _adapter_targets(model: EX4DTransformer) -> dict[str, Tensor]:
    t = {f"lora.{k}": p for k, p in model.lora_parameters().items()}
    t.update({f"encoder.{k}": p for k, p in model.encoder.named_parameters()})
    return t


def _torch_load_flat(path: Path) -> dict[str, Tensor]:
    if not path.exists():
        raise MissingWeightsError(
            f"EX-4D checkpoint {path} does not exist. Fetch it with: "
            f"{download_command('ex4d', local_dir=path.parent.parent if path.parent.name == 'EX-4D' else path.parent)}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{path}: cannot be read as a torch checkpoint with weights_only=True ({e})") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise InputError(f"{path}: expected a flat dict of name -> tensor (the reference ex4d.ckpt layout)")
    return state


def load_reference_checkpoint(path: str | Path, model: EX4DTransformer) -> dict[str, int]:
    """Load the released ``ex4d.ckpt`` into the LoRA and the geometry encoder of ``model``.

    The file must hold exactly the reference keys that correspond to ``model``'s LoRA modules (rank 16 on
    the reference targets for the release) and encoder: nothing missing, nothing extra.

    Returns:
        counts {"lora": tensors, "encoder": tensors} loaded.
    """
    path = Path(path).expanduser()
    state = _torch_load_flat(path)
    key_map = reference_key_map(model)
    copy_strict(_adapter_targets(model), state, str(path), key_map)
    n_enc = sum(1 for v in key_map.values() if v.startswith("encoder."))
    return {"lora": len(key_map) - n_enc, "encoder": n_enc}


def export_reference_checkpoint(path: str | Path, model: EX4DTransformer) -> None:
    """Write ``model``'s adapter in the reference ``ex4d.ckpt`` layout (usable by the reference infer.py)."""
    targets = _adapter_targets(model)
    state = {ref: targets[ours].detach().cpu().clone() for ref, ours in reference_key_map(model).items()}
    torch.save(state, Path(path))


# --------------------------------------------------------------------------------------------------
# Our adapter file (safetensors)
# --------------------------------------------------------------------------------------------------


def save_adapter(
    path: str | Path,
    model: EX4DTransformer,
    lora: LoraSettings,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save LoRA + encoder as one safetensors file (tensors as stored, so the round trip is exact).

    Args:
        lora: the settings the LoRA was built with (stored so the file loads without a config).
        metadata: extra string-able entries (e.g. ``mask_encoding``, training step).
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in _adapter_targets(model).items()}
    enc = model.encoder
    meta = {
        "format": ADAPTER_FORMAT,
        "format_version": ADAPTER_FORMAT_VERSION,
        "lora_rank": str(lora.rank),
        "lora_alpha": repr(float(lora.alpha)),
        "lora_targets": json.dumps(list(lora.targets)),
        "lora_init": lora.init,
        "encoder_latent_channels": str(enc.latent_channels),
        "encoder_hidden_channels": str(enc.hidden_channels),
        "encoder_out_channels": str(enc.out_channels),
        "encoder_patch_size": json.dumps(list(enc.patch_size)),
    }
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def read_adapter_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an adapter file (raises InputError when it is not one)."""
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.exists():
        raise MissingWeightsError(f"adapter file {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != ADAPTER_FORMAT:
        raise InputError(f"{path}: not an EX-4D adapter file (metadata format={meta.get('format')!r})")
    return meta


def lora_settings_from_metadata(meta: dict[str, str]) -> LoraSettings:
    return LoraSettings(
        rank=int(meta["lora_rank"]),
        alpha=float(meta["lora_alpha"]),
        targets=json.loads(meta["lora_targets"]),
        init=meta.get("lora_init", "kaiming"),
    )


def load_adapter(path: str | Path, model: EX4DTransformer) -> dict[str, str]:
    """Load a file written by :func:`save_adapter` into ``model`` (strict). Returns its metadata."""
    from safetensors.torch import load_file

    meta = read_adapter_metadata(path)
    state = load_file(str(Path(path).expanduser()))
    copy_strict(_adapter_targets(model), state, str(path))
    return meta


# --------------------------------------------------------------------------------------------------
# Wan-format LoRA files (community LoRAs for Wan2.1), through diffusers' conversion
# --------------------------------------------------------------------------------------------------


def load_wan_lora(
    path: str | Path | dict[str, Tensor],
    transformer: nn.Module,
    adapter_name: str = "wan_lora",
    weight: float = 1.0,
    keep_active: tuple[str, ...] = (DEFAULT_ADAPTER,),
) -> int:
    """Load a Wan LoRA (native ``diffusion_model.*`` / musubi ``lora_unet_*`` / diffusers keys) as an extra adapter.

    diffusers converts the keys (``WanLoraLoaderMixin.lora_state_dict``) and injects the adapter
    (``load_lora_adapter``); we then check that every converted key landed in a parameter.

    Args:
        keep_active: adapters already in the model that stay active next to this one (weight 1).

    Returns:
        number of LoRA tensors loaded.
    """
    from diffusers.loaders import WanLoraLoaderMixin

    source = path if isinstance(path, dict) else str(Path(path).expanduser())
    if isinstance(source, str) and not Path(source).exists():
        raise MissingWeightsError(f"Wan LoRA file {source} does not exist")
    state = WanLoraLoaderMixin.lora_state_dict(dict(source) if isinstance(source, dict) else source)
    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    if not state:
        raise InputError(f"{'<dict>' if isinstance(path, dict) else path}: no LoRA tensors for the transformer")
    with warnings.catch_warnings():  # peft warns that the model already holds an adapter (the EX-4D one): intended
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        transformer.load_lora_adapter(dict(state), prefix=None, adapter_name=adapter_name)
    params = dict(transformer.named_parameters())
    landed = []
    for k in state:
        # blocks.0.attn1.to_q.lora_A.weight -> blocks.0.attn1.to_q.lora_A.<adapter>.weight
        head, part, pname = k.rsplit(".", 2)
        ours = f"{head}.{part}.{adapter_name}.{pname}" if part.startswith("lora_") else None
        if ours is None or ours not in params:
            landed.append(k)
    if landed:
        raise InputError(f"{'<dict>' if isinstance(path, dict) else path}: keys that match no LoRA layer: {_shown(landed)}")
    names = [a for a in keep_active if a in getattr(transformer, "peft_config", {})] + [adapter_name]
    transformer.set_adapters(names, [1.0] * (len(names) - 1) + [float(weight)])
    return len(state)
