"""``depth=auto``: ground truth for built-in examples that carry it, otherwise the configured model backend."""

from __future__ import annotations

from torch import Tensor

from ex4d.depth.base import DepthBackend, DepthResult


class AutoDepth(DepthBackend):
    """Delegates to ``ground_truth`` for ``example:`` inputs and to ``fallback`` for everything else.

    Args:
        ground_truth: backend used for built-in examples (constructed lazily by the config).
        fallback: backend used for user videos (the reference's DepthCrafter by default).
    """

    name = "auto"

    def __init__(self, ground_truth: DepthBackend, fallback: DepthBackend):
        self.ground_truth = ground_truth
        self.fallback = fallback

    def __call__(self, frames: Tensor, source: str | None = None) -> DepthResult:
        if source is not None and str(source).startswith("example:"):
            return self.ground_truth(frames, source=source)
        return self.fallback(frames, source=source)
