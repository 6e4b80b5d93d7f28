"""Mixed masking: per clip, a render mask with probability ``ratio``, else a track mask."""

from __future__ import annotations

import torch

from ex4d.masking.base import MaskSample, SimulatedMask
from ex4d.masking.render_mask import RenderMask
from ex4d.masking.track import TrackMask
from ex4d.utils.checks import check_number
from ex4d.utils.errors import InputError


class MixedMask(SimulatedMask):
    """Choose a strategy per clip: ``render`` with probability ``ratio``, otherwise ``track``.

    The mixing ratio is one of the recipe's open questions (method doc, section 6): sweep it.
    The first-frame rule of the chosen strategy applies (``full_first_frame`` here is not used).
    """

    name = "mixed"

    def __init__(self, render: RenderMask, track: TrackMask, ratio: float = 0.5):
        super().__init__(full_first_frame=False)
        if not 0.0 <= check_number(ratio, "masking.ratio") <= 1.0:
            raise InputError(f"masking.ratio must be in [0, 1], got {ratio!r}")
        self.render = render
        self.track = track
        self.ratio = float(ratio)

    def _sample(self, frames, depth, K, generator) -> MaskSample:
        use_render = bool(torch.rand((), generator=generator, dtype=torch.float64) < self.ratio)
        out = (self.render if use_render else self.track).sample(frames, depth, K, generator)
        out.info["chosen"] = out.info.get("strategy")
        out.info["strategy"] = self.name
        return out
