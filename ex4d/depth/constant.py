"""Synthetic depth for tests: a constant plane, or a near box in front of a far wall."""

from __future__ import annotations

import torch
from torch import Tensor

from ex4d.cameras import intrinsics
from ex4d.depth.base import EX4D_NEAR, DepthBackend, DepthResult
from ex4d.utils.checks import check_number
from ex4d.utils.errors import InputError


class ConstantDepthBackend(DepthBackend):
    """Every pixel of every frame at ``value`` (EX-4D units): a fronto-parallel plane. K: f = ``focal_px``, centred."""

    name = "constant"

    def __init__(self, value: float = 5.0, focal_px: float = 500.0):
        if not 0 < check_number(value, "depth.value") <= 1e4:
            raise InputError(f"depth.value must be in (0, 1e4], got {value}")
        self.value, self.focal_px = float(value), check_number(focal_px, "depth.focal_px", positive=True)

    def __call__(self, frames: Tensor, source: str | None = None) -> DepthResult:
        T, H, W = frames.shape[:3]
        depth = torch.full((T, H, W), self.value, dtype=torch.float32)
        return DepthResult(depth, intrinsics(H, W, self.focal_px), info={"backend": self.name, "value": self.value})


class PlanesDepthBackend(DepthBackend):
    """A box at ``near`` in front of a wall at ``far``: one depth edge all round, for occlusion tests.

    Args:
        near: depth of the box (default the EX-4D nearest depth 10000/3900).
        far: depth of the wall.
        box: (top, left, bottom, right) of the box as fractions of the image height/width.
    """

    name = "planes"

    def __init__(self, near: float = EX4D_NEAR, far: float = 10.0,
                 box: tuple[float, float, float, float] = (0.25, 0.25, 0.75, 0.75), focal_px: float = 500.0):
        if not 0 < check_number(near, "depth.near") < check_number(far, "depth.far") <= 1e4:
            raise InputError(f"depth.near/far: need 0 < near < far <= 1e4, got {near}/{far}")
        if len(box) != 4:
            raise InputError(f"depth.box must be [top, left, bottom, right], got {box}")
        top, left, bottom, right = (check_number(b, "depth.box") for b in box)
        if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
            raise InputError(f"depth.box: need 0 <= top < bottom <= 1 and 0 <= left < right <= 1, got {box}")
        self.near, self.far = float(near), float(far)
        self.focal_px = check_number(focal_px, "depth.focal_px", positive=True)
        self.box = (top, left, bottom, right)

    def __call__(self, frames: Tensor, source: str | None = None) -> DepthResult:
        T, H, W = frames.shape[:3]
        top, left, bottom, right = self.box
        depth = torch.full((T, H, W), self.far, dtype=torch.float32)
        depth[:, round(top * H):round(bottom * H), round(left * W):round(right * W)] = self.near
        info = {"backend": self.name, "near": self.near, "far": self.far, "box": list(self.box)}
        return DepthResult(depth, intrinsics(H, W, self.focal_px), info=info)
