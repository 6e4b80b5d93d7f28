"""One video across several GPUs: diffusers' context parallelism for the Wan DiT.

Every rank runs the whole generation stage on the same inputs (the VAE, CLIP and the sampler's small
tensor work are repeated; they are a few per cent of the time); inside each DiT forward the token
sequence is split over the ranks by the transformer's own ``_cp_plan`` (diffusers
``WanTransformer3DModel``: split after the patch embedding and the RoPE, gather after ``proj_out``), and
attention runs as

* ``ulysses`` (default): an all-to-all swaps the sequence split for a head split, each rank attends over
  the whole sequence with ``heads / N`` heads, a second all-to-all swaps back. Needs ``heads % N == 0``
  (40 heads at 14B: N in 2, 4, 5, 8). Works with any SDPA kernel (and on CPU with gloo, for tests);
* ``ring``: the key/value chunks travel round the ranks and the partial results are merged by their
  log-sum-exp; needs an attention kernel that returns it (diffusers' ``_native_cudnn`` / ``_native_flash``,
  CUDA only). Less memory for the keys and values, more steps.

The geometry tokens of the EX-4D adapter are added by a hook on the patch embedding, *before* the split,
so the adapter needs nothing here. Every rank draws the same noise (the sampler seeds a CPU generator) and
the same erosion kernels, so the ranks agree without broadcasting. Launch one process per GPU::

    EX4D_RUN_ID=cp2 torchrun --nproc_per_node=2 infer.py input=video.mp4 parallel.context=ulysses

Rank 0 writes the outputs. The sequence (frames' x (H / 16) x (W / 16) tokens) must split evenly:
13,312 tokens at 512x512x49 and 32,760 at 480x832x81 split over 2, 4 or 8 ranks.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

CONTEXT_MODES = ("none", "ulysses", "ring")
# diffusers attention backends that return the log-sum-exp ring attention needs, by device type.
RING_BACKENDS = {"cuda": "_native_cudnn"}


@dataclass
class ParallelSettings:
    """Config group ``parallel`` of ``infer.py``.

    Attributes:
        context: ``none`` (one process per video) | ``ulysses`` | ``ring`` (one video split over the ranks).
        degree: ranks that share one video; None = all ranks of the launch (``WORLD_SIZE``).
        ring_backend: diffusers attention backend for ``ring`` (None: ``_native_cudnn`` on CUDA).
    """

    context: str = "none"
    degree: int | None = None
    ring_backend: str | None = None

    def __post_init__(self) -> None:
        if self.context not in CONTEXT_MODES:
            raise InputError(f"parallel.context: expected one of {CONTEXT_MODES}, got {self.context!r}")
        if self.degree is not None and (isinstance(self.degree, bool) or int(self.degree) < 1):
            raise InputError(f"parallel.degree: expected an integer >= 1 or null, got {self.degree!r}")

    @property
    def enabled(self) -> bool:
        return self.context != "none"


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a torchrun-style launch (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistEnv:
        try:
            return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
        except ValueError as e:
            raise InputError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers: {e}") from e

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str | None = None) -> tuple[DistEnv, torch.device]:
    """Join the process group of a torchrun launch (NCCL on CUDA, gloo on CPU) and pick this rank's device.

    Returns the environment and the device (``cuda:LOCAL_RANK`` or ``cpu``). A process group that already
    exists is reused.
    """
    env = DistEnv.from_env()
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise InputError(
                f"LOCAL_RANK {env.local_rank} but only {torch.cuda.device_count()} CUDA devices: launch at most "
                "one process per GPU (torchrun --nproc_per_node=<GPUs>)"
            )
        torch.cuda.set_device(env.local_rank)
        device = torch.device("cuda", env.local_rank)
    else:
        device = torch.device("cpu")
    if env.world_size > 1 and not torch.distributed.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise InputError("WORLD_SIZE > 1 but MASTER_ADDR is not set: launch with torchrun")
        backend = "nccl" if device_type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device_type == "cuda" else {}
        torch.distributed.init_process_group(backend, rank=env.rank, world_size=env.world_size, **kwargs)
    return env, device


def check_context_parallel(settings: ParallelSettings, world_size: int, num_heads: int) -> int:
    """The number of ranks one video is split over, after checking the launch and the model allow it."""
    if not settings.enabled:
        return 1
    degree = int(settings.degree or world_size)
    if world_size < 2 or degree < 2:
        raise InputError(
            f"parallel.context={settings.context} needs 2+ processes (WORLD_SIZE={world_size}, degree={degree}): "
            "launch with torchrun --nproc_per_node=<GPUs>"
        )
    if degree != world_size:
        raise InputError(
            f"parallel.degree={degree} must equal the number of processes ({world_size}): one video per launch"
        )
    if settings.context == "ulysses" and num_heads % degree:
        raise InputError(
            f"parallel.context=ulysses splits the {num_heads} attention heads over {degree} ranks, which does not "
            f"divide; use a degree that divides {num_heads} or parallel.context=ring"
        )
    return degree


def check_sequence_split(num_tokens: int, degree: int) -> None:
    """The DiT sequence must split evenly over the ranks (diffusers splits it in equal chunks)."""
    if degree > 1 and num_tokens % degree:
        raise InputError(
            f"context parallelism: {num_tokens} DiT tokens (latent frames x H/16 x W/16) do not split over "
            f"{degree} ranks; change the resolution or frame count, or the number of GPUs"
        )


@contextlib.contextmanager
def _cpu_device_count(device: torch.device):
    """diffusers picks each rank's device as ``rank % torch.accelerator.device_count()``, which divides by
    zero on a CPU-only machine; for CPU ranks (gloo: tests, debugging) report one device while it does."""
    if device.type != "cpu" or torch.accelerator.device_count() > 0:
        yield
        return
    original = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = original


def enable_context_parallel(transformer: nn.Module, settings: ParallelSettings, degree: int,
                            device: torch.device) -> None:
    """Apply diffusers' context parallelism to ``transformer`` (a ``WanTransformer3DModel``, adapter attached).

    The process group must exist (:func:`init_distributed`). For ``ring`` the attention backend is switched
    to one that returns the log-sum-exp.
    """
    from diffusers import ContextParallelConfig

    if not torch.distributed.is_initialized():
        raise InputError("context parallelism needs torch.distributed initialised (init_distributed)")
    if settings.context == "ring":
        backend = settings.ring_backend or RING_BACKENDS.get(device.type)
        if backend is None:
            raise InputError(
                f"parallel.context=ring needs an attention kernel that returns the log-sum-exp; none on "
                f"{device.type} (use parallel.context=ulysses)"
            )
        transformer.set_attention_backend(backend)
        config = ContextParallelConfig(ring_degree=degree)
    else:
        config = ContextParallelConfig(ulysses_degree=degree)
    with _cpu_device_count(device):
        transformer.enable_parallelism(config=config)
    log.info("context parallelism: %s over %d ranks", settings.context, degree)


__all__ = [
    "CONTEXT_MODES",
    "DistEnv",
    "ParallelSettings",
    "check_context_parallel",
    "check_sequence_split",
    "enable_context_parallel",
    "init_distributed",
]
