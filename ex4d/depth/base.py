"""Depth backend interface and the EX-4D depth scale.

Every backend returns depth on the EX-4D pseudo-metric scale, so that the pivot offset (+0.15), the
border walls at z = 100 and the far clip at 1e3 mean the same thing whatever produced the depth:
relative disparity, min-max normalised over the whole clip, d' in [0, 1], then
``D = clip(10000 / max(3900 d', 1e-5), 1e-4, 1e4)``: the nearest point of the clip sits at
10000/3900 = 2.564 and far content saturates at 1e4.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ex4d.utils.errors import InputError

EX4D_NEAR = 10000.0 / 3900.0
EX4D_MIN, EX4D_MAX = 1e-4, 1e4  # the clamp of the EX-4D scale


@dataclass
class DepthResult:
    """Depth of a clip.

    Attributes:
        depth: (T, H, W) float32 planar z-depth on the EX-4D scale, finite and > 0.
        K: (3, 3) float64 intrinsics of the source camera at (H, W).
        metric_scale: EX-4D units per metre when the backend knows metric depth (ground truth), else None.
        info: free-form provenance (backend name, model id, ...), written to the run directory.
    """

    depth: Tensor
    K: Tensor
    metric_scale: float | None = None
    info: dict = field(default_factory=dict)


def disparity_to_ex4d_depth(disparity: Tensor) -> Tensor:
    """Relative disparity (T, H, W) (larger = nearer) -> EX-4D depth, normalised over the whole clip."""
    d = disparity.float()
    lo, hi = d.min(), d.max()
    d = (d - lo) / (hi - lo).clamp_min(1e-12)
    return (10000.0 / (3900.0 * d).clamp_min(1e-5)).clamp(EX4D_MIN, EX4D_MAX)


def validate_depth(depth: Tensor, shape: tuple[int, int, int] | None = None, source: str = "depth") -> Tensor:
    """Check a depth clip: (T, H, W), finite, > 0, and of ``shape`` when given. Raises InputError naming ``source``."""
    if depth.ndim != 3:
        raise InputError(f"{source}: expected depth of shape (T, H, W), got {tuple(depth.shape)}")
    if shape is not None and tuple(depth.shape) != tuple(shape):
        raise InputError(f"{source}: expected depth of shape {tuple(shape)}, got {tuple(depth.shape)}")
    bad = ~torch.isfinite(depth)
    if bad.any():
        raise InputError(f"{source}: {int(bad.sum())} of {depth.numel()} depth values are NaN or inf; depth must be "
                         "finite everywhere (fill the holes before saving, or use a depth model)")
    if (depth <= 0).any():
        raise InputError(f"{source}: {int((depth <= 0).sum())} of {depth.numel()} depth values are <= 0; depth must "
                         "be positive (fill the holes before saving; a disparity file needs depth.kind=disparity)")
    return depth


class DepthBackend(ABC):
    """Estimates (or loads) depth for a clip of frames."""

    name: str = "base"

    @abstractmethod
    def __call__(self, frames: Tensor, source: str | None = None) -> DepthResult:
        """Depth of a clip.

        Args:
            frames: (T, H, W, 3) uint8 RGB at reconstruction resolution.
            source: path or name of the input (file-based backends find their files from it).

        Returns:
            DepthResult with depth (T, H, W) on the EX-4D scale.
        """
