"""Where the models live while the generator runs, and the attention guard.

Memory modes (model config key ``memory_mode``):

* ``gpu``: every model on the device for the whole run (fastest; about 50 GB for the 14B model in bf16).
* ``offload``: models wait on the CPU; each stage moves its model to the device and back (like diffusers'
  ``enable_model_cpu_offload``). Peak is the DiT (33 GB bf16) plus activations.
* ``low_vram``: ``offload`` plus diffusers group offloading of the DiT, one block at a time with a CUDA
  stream prefetching the next block from pinned CPU memory: fits a 24 GB card at 512x512x49.

Attention: the DiT attends over 13k-33k tokens. PyTorch's math SDPA fallback would materialise the full
attention matrix (tens to hundreds of GB), so on CUDA the DiT runs inside ``sdpa_kernel`` restricted to
cuDNN / flash / memory-efficient kernels, and :func:`require_efficient_attention` refuses to start when
none of them runs on this GPU, dtype and head size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ex4d.model.wan import MEMORY_MODES
from ex4d.utils.errors import InputError


def _efficient_backends():
    from torch.nn.attention import SDPBackend

    return [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


def efficient_attention(device: torch.device) -> contextlib.AbstractContextManager:
    """Context in which SDPA may only use memory-efficient kernels (a no-op off CUDA)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel

    return sdpa_kernel(_efficient_backends())


def require_efficient_attention(device: torch.device, dtype: torch.dtype, num_heads: int, head_dim: int) -> None:
    """Raise RuntimeError when no memory-efficient SDPA kernel runs on ``device`` for this dtype and head size."""
    if device.type != "cuda":
        return
    q = torch.zeros(1, num_heads, 128, head_dim, device=device, dtype=dtype)
    try:
        with efficient_attention(device):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
    except RuntimeError as e:
        raise RuntimeError(
            f"No memory-efficient attention kernel (cuDNN / flash / mem-efficient SDPA) runs on "
            f"{torch.cuda.get_device_name(device)} for {dtype} with head dim {head_dim}; refusing to fall back "
            f"to the math kernel, which would allocate the full attention matrix. Use a GPU with sm80+ and "
            f"bf16/fp16 weights. ({e})"
        ) from e


class ModelPlacement:
    """Moves models between the CPU and the device according to the memory mode.

    Args:
        mode: one of ``gpu``, ``offload``, ``low_vram``.
        device: execution device.
        models: name -> module (``transformer``, ``text_encoder``, ``image_encoder``, ``vae``).
        resident: small modules that always stay on the device (the geometry encoder).
    """

    def __init__(self, mode: str, device: torch.device, models: dict[str, nn.Module], resident: list[nn.Module]) -> None:
        if mode not in MEMORY_MODES:
            raise InputError(f"memory_mode: expected one of {MEMORY_MODES}, got {mode!r}")
        self.mode = mode
        self.device = torch.device(device)
        self.models = models
        self.group_offloaded: set[str] = set()
        for m in resident:
            m.to(self.device)
        if mode == "gpu":
            for m in models.values():
                m.to(self.device)
            return
        for m in models.values():
            m.to("cpu")
        if mode == "low_vram" and "transformer" in models:
            use_stream = self.device.type == "cuda"
            models["transformer"].enable_group_offload(
                onload_device=self.device,
                offload_device=torch.device("cpu"),
                offload_type="block_level",
                num_blocks_per_group=1,
                use_stream=use_stream,
                non_blocking=use_stream,
            )
            self.group_offloaded.add("transformer")

    @contextlib.contextmanager
    def stage(self, *names: str) -> Iterator[None]:
        """Models ``names`` are on the device inside the block (and back on the CPU after, when offloading)."""
        moved = []
        if self.mode != "gpu":
            for n in names:
                if n in self.models and n not in self.group_offloaded:
                    self.models[n].to(self.device)
                    moved.append(n)
        try:
            yield
        finally:
            for n in moved:
                self.models[n].to("cpu")
            if moved and self.device.type == "cuda":
                torch.cuda.empty_cache()
