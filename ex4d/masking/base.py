"""Simulated masking: turn one monocular clip into a (masked condition, full target) training pair.

Every strategy is a callable object with one signature::

    mask = strategy(frames, depth, K, generator)      # (T, H, W) bool, True = kept / trusted

* ``frames``: (T, H, W, 3) uint8 RGB tensor of the source clip (any device).
* ``depth``: (T, H, W) float planar z-depth on the EX-4D scale (``ex4d.depth.base``), same device.
* ``K``: (3, 3) intrinsics of the source camera.
* ``generator``: a CPU ``torch.Generator``; all randomness comes from it (seeded runs are
  bit-identical).

``strategy.sample(...)`` returns the same mask plus a small ``info`` dict (the sampled pose, which
strategy a mix chose, ...) that ``tools/prepare_data.py`` stores with each shard. The random erosion of
the reference is *not* part of a strategy: it is an augmentation applied when a sample is loaded
(``ex4d.masking.erosion.erode_masks``), as at inference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ex4d.utils.checks import check_bool
from ex4d.utils.errors import InputError


@dataclass
class MaskSample:
    """A simulated mask and how it was made.

    Attributes:
        mask: (T, H, W) bool, True = trusted (kept) pixel, False = hole the model must fill.
        info: JSON-serialisable provenance (strategy name, sampled pose, ...).
    """

    mask: Tensor
    info: dict = field(default_factory=dict)


def check_inputs(frames: Tensor, depth: Tensor | None, K: Tensor) -> tuple[int, int, int]:
    """Validate the common arguments; returns (T, H, W)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise InputError(f"masking expects frames (T, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
    T, H, W = frames.shape[:3]
    if depth is not None and tuple(depth.shape) != (T, H, W):
        raise InputError(f"masking expects depth of shape {(T, H, W)} to match the frames, got {tuple(depth.shape)}")
    if tuple(K.shape) != (3, 3):
        raise InputError(f"masking expects K of shape (3, 3), got {tuple(K.shape)}")
    return T, H, W


class SimulatedMask(ABC):
    """Base class of the ``masking`` config group (see the module docstring).

    Args:
        full_first_frame: force frame 0 to be fully trusted. At inference frame 0 is always the source
            frame with a full mask (and Wan's first-frame conditioning sees it), so training does the same.
    """

    name = "base"

    def __init__(self, full_first_frame: bool = True):
        self.full_first_frame = check_bool(full_first_frame, "masking.full_first_frame")

    @abstractmethod
    def _sample(self, frames: Tensor, depth: Tensor, K: Tensor, generator: torch.Generator | None) -> MaskSample:
        """The strategy itself, without the first-frame rule."""

    def sample(self, frames: Tensor, depth: Tensor, K: Tensor, generator: torch.Generator | None = None) -> MaskSample:
        check_inputs(frames, depth, K)
        out = self._sample(frames, depth, K, generator)
        assert out.mask.shape == frames.shape[:3] and out.mask.dtype == torch.bool, (out.mask.shape, out.mask.dtype)
        if self.full_first_frame:
            out.mask[0] = True
        out.info.setdefault("strategy", self.name)
        out.info["hole_fraction"] = float((~out.mask).float().mean())
        return out

    def __call__(self, frames: Tensor, depth: Tensor, K: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.sample(frames, depth, K, generator).mask
