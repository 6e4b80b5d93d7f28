"""Where the models live while the generator runs, and the attention guard.

Memory modes (model config key ``memory_mode``):

* ``gpu``: every model on the device for the whole run (fastest; about 45 GB for the 14B model in bf16), except
  the models named ``streamed`` (the ``stream_text_encoder`` lever: UMT5, 11 GB, which runs once per prompt):
  those wait in pinned CPU memory and run with diffusers group offloading, one block on the device at a time,
  the next one prefetched on a CUDA stream (about 34 GB resident at 14B).
* ``offload``: models wait on the CPU; each stage moves its model to the device and back (like diffusers'
  ``enable_model_cpu_offload``). Peak is the DiT (33 GB bf16) plus activations.
* ``low_vram``: ``offload`` plus diffusers group offloading of the DiT, one block at a time with a CUDA
  stream prefetching the next block from pinned CPU memory: fits a 24 GB card at 512x512x49.
* ``auto``: the fastest of these that fits the free memory of the device (:func:`choose_memory_mode`).

``offload`` with ``pin_memory`` (the default) keeps each offloaded model's weights in page-locked CPU memory,
pinned once when the placement is built: moving a model to the device is then an asynchronous DMA copy at
full PCIe speed instead of a staged copy from pageable memory, and moving it back costs nothing, because the
frozen weights are not copied back but re-pointed at their pinned CPU copies (the same trick diffusers'
group offloading uses; trainable parameters, which may have changed on the device, are copied back).

Attention: the DiT attends over 13k-33k tokens. PyTorch's math SDPA fallback would materialise the full
attention matrix (tens to hundreds of GB), so on CUDA the DiT runs inside ``sdpa_kernel`` restricted to
cuDNN / flash / memory-efficient kernels (``attention_backend``: ``auto`` tries them in that order, as
priorities, or one of them alone), and :func:`require_efficient_attention` refuses to start when none of
them runs on this GPU, dtype and head size. It returns the backend SDPA actually dispatched to, read from
the aten ops it dispatched (:func:`sdpa_backends_used`), not inferred from the flags.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ex4d.model.wan import ACTIVATION_HEADROOM, MEMORY_MODES
from ex4d.utils.errors import InputError


ATTENTION_BACKENDS = ("auto", "cudnn", "flash", "efficient")



def _tensor_bytes(models: dict[str, nn.Module], device: torch.device | None = None) -> int:
    """Bytes of the parameters and buffers of ``models`` (each tensor once; only those on ``device`` if given)."""
    seen, total = set(), 0
    for m in models.values():
        for t in [*m.parameters(), *m.buffers()]:
            if id(t) in seen or (device is not None and t.device != device):
                continue
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def choose_memory_mode(models: dict[str, nn.Module], device: torch.device | str,
                       free_bytes: int | None = None, streamed: tuple[str, ...] = ()) -> tuple[str, str]:
    """``memory_mode=auto``: ``gpu`` when every model fits the free device memory with room for the
    activations, else ``offload`` when the DiT alone does, else ``low_vram``. Returns (mode, why).

    ``free_bytes`` defaults to the device's free memory plus what ``models`` already hold there; ``streamed``
    models (block by block in ``gpu`` mode) do not count as resident."""
    device = torch.device(device)
    if device.type != "cuda":
        return "gpu", "not on CUDA: the models stay where they run"
    if free_bytes is None:
        free, _ = torch.cuda.mem_get_info(device)
        index = device.index if device.index is not None else torch.cuda.current_device()
        free_bytes = free + _tensor_bytes(models, torch.device("cuda", index))
    resident = {k: m for k, m in models.items() if k not in streamed}
    total = _tensor_bytes(resident)
    dit = _tensor_bytes({"transformer": models["transformer"]}) if "transformer" in models else total
    gib = 2**30
    have = f"{free_bytes / gib:.1f} GiB free"
    what = "all models" + (f" but the streamed {', '.join(n for n in streamed if n in models)}"
                           if any(n in models for n in streamed) else "")
    if free_bytes >= total + ACTIVATION_HEADROOM:
        return "gpu", f"{have} >= {what} {total / gib:.1f} GiB + {ACTIVATION_HEADROOM / gib:.0f} GiB"
    if free_bytes >= dit + ACTIVATION_HEADROOM:
        return "offload", f"{have} >= the DiT {dit / gib:.1f} GiB + {ACTIVATION_HEADROOM / gib:.0f} GiB"
    return "low_vram", f"{have} < the DiT {dit / gib:.1f} GiB + {ACTIVATION_HEADROOM / gib:.0f} GiB"

# The aten op each SDPA backend dispatches to (what a dispatch mode sees), -> our name.
SDPA_OPS = {
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_flash_attention_for_cpu": "cpu_flash",
    "_scaled_dot_product_attention_math": "math",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
}


def _backend_list(backend: str):
    from torch.nn.attention import SDPBackend

    table = {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
    }
    if backend == "auto":
        # cuDNN first: on H100 with torch 2.11 it is about 20% faster than flash at our sizes
        # (../shared/docs/gpu.md: 1.017 s vs 1.210 s per 512x512x49 forward).
        return [table["cudnn"], table["flash"], table["efficient"]]
    if backend not in table:
        raise InputError(f"attention_backend: expected one of {ATTENTION_BACKENDS}, got {backend!r}")
    return [table[backend]]


def efficient_attention(device: torch.device, backend: str = "auto") -> contextlib.AbstractContextManager:
    """Context in which SDPA may only use memory-efficient kernels (a no-op off CUDA).

    ``backend``: ``auto`` enables cuDNN, flash and memory-efficient attention with that priority order
    (``set_priority``, respected by ``torch.compile`` too); ``cudnn`` / ``flash`` / ``efficient`` enable only
    that one (SDPA then raises if it cannot run, instead of silently falling back).
    """
    backends = _backend_list(backend)  # validates off CUDA too
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel

    return sdpa_kernel(backends, set_priority=True)


def sdpa_backends_used(fn) -> dict[str, int]:
    """Run ``fn()`` and count the SDPA kernels it dispatched to, by backend name (``cudnn``, ``flash``,
    ``efficient``, ``math``, ``cpu_flash``), as a ``TorchDispatchMode`` sees the aten ops after SDPA chose its
    kernel. Eager mode only: a compiled graph calls its kernels without passing through the dispatcher mode."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: dict[str, int] = {}

    class _Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = SDPA_OPS.get(func.overloadpacket.__name__)
            if name is not None:
                counts[name] = counts.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with _Spy():
        fn()
    return counts


def require_efficient_attention(
    device: torch.device, dtype: torch.dtype, num_heads: int, head_dim: int, backend: str = "auto"
) -> str:
    """Check that a memory-efficient SDPA kernel runs on ``device`` for this dtype and head size.

    Returns:
        the backend SDPA actually dispatched to inside :func:`efficient_attention` (``cudnn``, ``flash`` or
        ``efficient``; off CUDA whatever the CPU used, e.g. ``cpu_flash``).

    Raises:
        RuntimeError when none of the allowed kernels runs (or only the math fallback would).
    """
    device = torch.device(device)
    q = torch.zeros(1, num_heads, 128, head_dim, device=device, dtype=dtype)

    def probe():
        with efficient_attention(device, backend):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)

    try:
        probe()
    except RuntimeError as e:
        raise RuntimeError(
            f"No memory-efficient attention kernel ({backend}: cuDNN / flash / mem-efficient SDPA) runs on "
            f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else device} for {dtype} with head "
            f"dim {head_dim}; refusing to fall back to the math kernel, which would allocate the full attention "
            f"matrix. Use a GPU with sm80+ and bf16/fp16 weights. ({e})"
        ) from e
    used = sdpa_backends_used(probe)
    name = next(iter(used), "unknown")
    if device.type == "cuda" and name not in ("cudnn", "flash", "efficient", "unknown"):
        raise RuntimeError(
            f"SDPA dispatched to {name!r} inside efficient_attention({backend!r}); expected a fused kernel"
        )
    return name


class ModelPlacement:
    """Moves models between the CPU and the device according to the memory mode.

    Args:
        mode: one of ``gpu``, ``offload``, ``low_vram``.
        device: execution device.
        models: name -> module (``transformer``, ``text_encoder``, ``image_encoder``, ``vae``).
        resident: small modules that always stay on the device (the geometry encoder).
        pin_memory: ``offload`` / ``low_vram`` on CUDA: keep the offloaded models in pinned CPU memory (pinned
            once here) and move them by re-pointing (see the module docstring). The frozen weights must not
            be changed in place while a stage holds them on the device (the generator restores a per-call LoRA
            merge before the stage ends); trainable parameters are copied back.
        streamed: ``gpu`` mode: models run block by block (:func:`stream_blocks`) instead of resident; frozen
            models only (the text encoder). They stay in CPU memory and are pinned and hooked at their first
            stage: a run whose prompts all come from the text cache never pays the pinning.
    """

    def __init__(
        self,
        mode: str,
        device: torch.device,
        models: dict[str, nn.Module],
        resident: list[nn.Module],
        pin_memory: bool = True,
        streamed: tuple[str, ...] = (),
    ) -> None:
        if mode not in MEMORY_MODES:
            raise InputError(f"memory_mode: expected one of {MEMORY_MODES}, got {mode!r}")
        self.mode = mode
        self.device = torch.device(device)
        self.models = models
        self.group_offloaded: set[str] = set()
        self.streamed: set[str] = {n for n in streamed if n in models} if mode == "gpu" else set()
        self._stream_pending = set(self.streamed)  # streamed, not yet pinned and hooked
        # name -> [(param or buffer, its pinned CPU tensor)], for pinned offloading
        self._host: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.pinned = bool(pin_memory) and self.device.type == "cuda" and mode != "gpu"
        for m in resident:
            m.to(self.device)
        if mode == "gpu":
            for name, m in models.items():
                if name in self.streamed:
                    m.to("cpu")
                else:
                    m.to(self.device)
            return
        for name, m in models.items():
            if self.pinned:
                pairs = _pin_module(m)  # straight into page-locked memory: no pageable copy in between
                if not (mode == "low_vram" and name == "transformer"):
                    self._host[name] = pairs
            else:
                m.to("cpu")
        if mode == "low_vram" and "transformer" in models:
            use_stream = self.device.type == "cuda"
            # diffusers keeps pinned CPU copies of the DiT (use_stream); pin_memory() returns an already
            # pinned tensor as is, so with pin_memory nothing is copied twice.
            models["transformer"].enable_group_offload(
                onload_device=self.device,
                offload_device=torch.device("cpu"),
                offload_type="block_level",
                num_blocks_per_group=1,
                use_stream=use_stream,
                non_blocking=use_stream,
            )
            self.group_offloaded.add("transformer")

    def prepare_streamed(self, name: str) -> None:
        """Pin and hook a streamed model now (else at its first stage); a no-op for other models or when done."""
        if name not in self._stream_pending:
            return
        self._stream_pending.discard(name)
        if self.device.type == "cuda":
            _pin_module(self.models[name])  # the blocks stream by DMA from page-locked memory
        stream_blocks(self.models[name], self.device)
        self.group_offloaded.add(name)

    def unstream(self, name: str) -> None:
        """Stop streaming ``name`` (its hooks removed, its weights left in CPU memory): undoes ``streamed``."""
        if name in self.group_offloaded and name in self.streamed:
            unstream_blocks(self.models[name])
            self.group_offloaded.discard(name)
        self.streamed.discard(name)
        self._stream_pending.discard(name)

    @contextlib.contextmanager
    def stage(self, *names: str) -> Iterator[None]:
        """Models ``names`` are on the device inside the block (and back on the CPU after, when offloading)."""
        moved = []
        for n in names:
            self.prepare_streamed(n)
        if self.mode != "gpu":
            for n in names:
                if n in self.models and n not in self.group_offloaded:
                    if n in self._host:
                        for t, host in self._host[n]:
                            t.data = host.to(self.device, non_blocking=True)  # DMA from pinned memory
                    else:
                        self.models[n].to(self.device)
                    moved.append(n)
        try:
            yield
        finally:
            for n in moved:
                if n in self._host:
                    for t, host in self._host[n]:
                        if t.requires_grad:  # trainable: may have been updated on the device
                            host.copy_(t.data)
                        t.data = host  # frozen: the pinned copy is still exact, nothing to copy back
                else:
                    self.models[n].to("cpu")
            if moved and self.device.type == "cuda":
                torch.cuda.empty_cache()


def stream_blocks(model: nn.Module, device: torch.device, *, use_stream: bool | None = None,
                  record_stream: bool = False) -> None:
    """Run ``model`` block by block on ``device`` from CPU memory: diffusers group offloading of its (nested)
    block list, one block per group, the next one prefetched on a CUDA stream while the current one runs.

    Used for UMT5 (``transformers.UMT5EncoderModel``: the blocks are ``encoder.block``; the embedding and the
    final norm come in as one group for the stack's forward). The outputs are the resident model's, bit for
    bit: the same weights and kernels, only their home moves. ``use_stream`` (default: on CUDA) and
    ``record_stream`` are diffusers' options (tools/bench_text_encoder.py measures them)."""
    from diffusers.hooks import apply_group_offloading

    target = getattr(model, "encoder", model)  # the stack that owns the ModuleList of blocks
    if not any(isinstance(c, (nn.ModuleList, nn.Sequential)) for c in target.children()):
        raise ValueError(f"stream_blocks: {type(model).__name__} has no block list to stream")
    model.to("cpu")  # a no-op for weights already in (pinned) CPU memory
    use_stream = device.type == "cuda" if use_stream is None else use_stream
    apply_group_offloading(target, onload_device=device, offload_device=torch.device("cpu"),
                           offload_type="block_level", num_blocks_per_group=1, use_stream=use_stream,
                           non_blocking=use_stream, record_stream=record_stream and use_stream)


def unstream_blocks(model: nn.Module) -> None:
    """Undo :func:`stream_blocks`: remove the group-offloading hooks; the weights stay in CPU memory."""
    from diffusers.hooks.group_offloading import (
        _GROUP_OFFLOADING,
        _LAYER_EXECUTION_TRACKER,
        _LAZY_PREFETCH_GROUP_OFFLOADING,
    )

    for m in model.modules():
        registry = getattr(m, "_diffusers_hook", None)
        if registry is not None:
            for name in (_GROUP_OFFLOADING, _LAYER_EXECUTION_TRACKER, _LAZY_PREFETCH_GROUP_OFFLOADING):
                registry.remove_hook(name, recurse=False)
    model.to("cpu")


def _pin_module(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Move every parameter and buffer of ``module`` into page-locked CPU memory, in place (from the GPU by
    one DMA copy into a pinned buffer; CPU tensors are pinned, already pinned ones kept)."""
    out = []
    for t in [*module.parameters(), *module.buffers()]:
        if t.device.type == "cpu":
            t.data = t.data.pin_memory()
        else:
            host = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
            host.copy_(t.data)
            t.data = host
        out.append((t, t.data))
    return out
