"""AdamW settings (config group ``optimizer``) and the learning-rate schedule: linear warm-up, then
constant, cosine or linear decay. Plain PyTorch (DeepSpeed only for its CPU Adam under ZeRO-Offload)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ex4d.utils.checks import check_int, check_number
from ex4d.utils.errors import InputError

SCHEDULES = ("constant", "cosine", "linear")
IMPLS = ("auto", "torch", "deepspeed_cpu_adam")


@dataclass
class OptimizerSettings:
    """Schema of config group ``optimizer`` (checked on construction).

    Attributes:
        lr: peak learning rate.
        betas: AdamW (beta1, beta2).
        weight_decay: decoupled weight decay (AdamW), applied to every trainable tensor.
        eps: AdamW epsilon.
        warmup_steps: linear warm-up from lr / warmup_steps to lr over this many optimizer steps.
        schedule: after warm-up: ``constant``, ``cosine`` or ``linear`` decay to ``min_lr_ratio * lr``.
        total_steps: steps of the decay's end; None = ``trainer.max_steps``.
        min_lr_ratio: floor of the decay, as a fraction of lr.
        impl: ``torch`` (``torch.optim.AdamW``), ``deepspeed_cpu_adam`` (needed by ZeRO-Offload of the optimizer),
            ``auto`` (the DeepSpeed CPU Adam exactly when the strategy offloads the optimizer).
        fused: torch AdamW's fused kernel; None = on CUDA where the trainer allows it (Lightning refuses a
            fused optimizer together with gradient clipping under its mixed-precision plugin, so then the
            multi-tensor ``foreach`` kernel runs instead; for the adapter's ~100M parameters the difference is
            milliseconds per step).
    """

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.01
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: str = "constant"
    total_steps: int | None = None
    min_lr_ratio: float = 0.0
    impl: str = "auto"
    fused: bool | None = None

    def __post_init__(self) -> None:
        # Strings fail as ValueError in float(), NaN passes every comparison: check the numbers first.
        for key in ("lr", "weight_decay", "eps", "min_lr_ratio"):
            check_number(getattr(self, key), f"optimizer.{key}")
        if isinstance(self.betas, str) or not all(isinstance(b, (int, float)) for b in self.betas):
            raise InputError(f"optimizer.betas: expected two numbers in [0, 1), got {self.betas!r}")
        if self.total_steps is not None:
            check_int(self.total_steps, "optimizer.total_steps", minimum=1)
        if not float(self.lr) > 0:
            raise InputError(f"optimizer.lr: expected > 0, got {self.lr!r}")
        betas = [float(b) for b in self.betas]
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise InputError(f"optimizer.betas: expected two numbers in [0, 1), got {list(self.betas)!r}")
        self.betas = betas
        if float(self.weight_decay) < 0:
            raise InputError(f"optimizer.weight_decay: expected >= 0, got {self.weight_decay!r}")
        if not float(self.eps) > 0:
            raise InputError(f"optimizer.eps: expected > 0, got {self.eps!r}")
        if isinstance(self.warmup_steps, bool) or int(self.warmup_steps) != self.warmup_steps or self.warmup_steps < 0:
            raise InputError(f"optimizer.warmup_steps: expected an integer >= 0, got {self.warmup_steps!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"optimizer.schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        if self.total_steps is not None and int(self.total_steps) < 1:
            raise InputError(f"optimizer.total_steps: expected null or >= 1, got {self.total_steps!r}")
        if not 0.0 <= float(self.min_lr_ratio) <= 1.0:
            raise InputError(f"optimizer.min_lr_ratio: expected 0 <= ratio <= 1, got {self.min_lr_ratio!r}")
        if self.impl not in IMPLS:
            raise InputError(f"optimizer.impl: expected one of {IMPLS}, got {self.impl!r}")
        self.lr, self.weight_decay, self.eps = float(self.lr), float(self.weight_decay), float(self.eps)
        self.warmup_steps = int(self.warmup_steps)


def lr_factor(step: int, settings: OptimizerSettings, total_steps: int | None = None) -> float:
    """Multiplier of ``settings.lr`` at optimizer step ``step`` (0-based).

    Warm-up: (step + 1) / warmup_steps for step < warmup_steps (the first step already moves). Then
    ``constant``: 1; ``cosine`` / ``linear``: from 1 at the end of warm-up to ``min_lr_ratio`` at
    ``total_steps`` (``settings.total_steps`` or the argument), flat after.
    """
    w = settings.warmup_steps
    if step < w:
        return (step + 1) / w
    if settings.schedule == "constant":
        return 1.0
    total = settings.total_steps or total_steps
    if not total or total <= w:
        return 1.0
    progress = min(1.0, (step - w) / (total - w))
    lo = settings.min_lr_ratio
    if settings.schedule == "cosine":
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))
    return lo + (1 - lo) * (1 - progress)


def build_optimizer(params: Iterable[nn.Parameter], settings: OptimizerSettings, device_type: str = "cpu",
                    offload: bool = False, fused_allowed: bool = True) -> torch.optim.Optimizer:
    """AdamW over ``params``. ``offload``: the strategy keeps optimizer states on the CPU (ZeRO-Offload), where
    DeepSpeed requires its own CPU Adam (``impl=auto`` picks it then). ``fused_allowed=False``: the trainer
    cannot run a fused optimizer (see :func:`fused_conflict`); ``fused=None`` then picks ``foreach``."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise InputError("optimizer: no trainable parameters (is the adapter attached?)")
    impl = settings.impl
    if impl == "auto":
        impl = "deepspeed_cpu_adam" if offload else "torch"
    kw = dict(lr=settings.lr, betas=tuple(settings.betas), weight_decay=settings.weight_decay, eps=settings.eps)
    if impl == "deepspeed_cpu_adam":
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # JIT-builds its op on first use

        return DeepSpeedCPUAdam(params, adamw_mode=True, **kw)
    if settings.fused and not fused_allowed:
        raise InputError(FUSED_CLIP_MESSAGE)
    fused = settings.fused if settings.fused is not None else (device_type == "cuda" and fused_allowed)
    if fused:
        return torch.optim.AdamW(params, fused=True, **kw)
    return torch.optim.AdamW(params, foreach=device_type == "cuda", **kw)


FUSED_CLIP_MESSAGE = ("optimizer.fused=true cannot be combined with trainer.gradient_clip_val > 0 under a mixed-precision "
                      "trainer.precision (Lightning refuses to clip for an optimizer that unscales gradients itself); set "
                      "optimizer.fused=null (picks the foreach kernel) or trainer.gradient_clip_val=0")


def fused_conflict(precision: str, gradient_clip_val: float | None, deepspeed: bool) -> bool:
    """Whether Lightning would refuse a fused AdamW: gradient clipping under its AMP plugin (``16-mixed`` /
    ``bf16-mixed`` without DeepSpeed, which clips itself). Decided from config values, before anything loads."""
    return (not deepspeed) and str(precision).endswith("-mixed") and float(gradient_clip_val or 0) > 0
