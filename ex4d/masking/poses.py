"""Novel-pose sampling for simulated masks: where the pretend "new camera" of a training clip goes.

The paper leaves pose sampling open; these knobs make it a swept choice. A sampled path orbits the
pivot ``c = (0, 0, r)`` on the source optical axis with ``r = min_depth + pivot_offset``, the same
pivot the inference trajectories use (``ex4d.cameras.trajectories``), so a training hole of "30
degrees" is the hole an inference path of 30 degrees makes. Angle conventions are those of
``ex4d.cameras.trajectories.orbit_eyes``: positive yaw moves the camera to +x, positive pitch raises it
(-y) so it looks down at the pivot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ex4d.cameras.core import look_at
from ex4d.cameras.trajectories import DEFAULT_PIVOT_OFFSET, MAX_ABS_PITCH_DEG, orbit_eyes
from ex4d.utils.errors import InputError

SIGNS = ("random", "positive", "negative")
SCHEDULES = ("linear", "constant")


def _range(value, key: str, lo: float = -math.inf, hi: float = math.inf) -> tuple[float, float]:
    """A knob given as a number or a [min, max] pair -> (min, max), checked against [lo, hi]."""
    try:
        pair = (float(value), float(value)) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    except (TypeError, ValueError) as e:
        raise InputError(f"masking.poses.{key} must be a number or [min, max], got {value!r}") from e
    if len(pair) != 2 or not pair[0] <= pair[1] or pair[0] < lo or pair[1] > hi:
        raise InputError(f"masking.poses.{key} must be a number or [min, max] with {lo} <= min <= max <= {hi}, "
                         f"got {value!r}")
    return pair


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    if lo == hi:
        return lo
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


@dataclass
class SampledPose:
    """One sampled camera path.

    Attributes:
        w2c: (T, 4, 4) float64 world(= source camera)-to-camera poses, OpenCV axes.
        yaw_deg, pitch_deg: the final (largest) angles of the path.
        pivot: (3,) float64 look-at point (0, 0, r).
    """

    w2c: Tensor
    yaw_deg: float
    pitch_deg: float
    pivot: Tensor

    def info(self) -> dict:
        return {"yaw_deg": self.yaw_deg, "pitch_deg": self.pitch_deg, "pivot_z": float(self.pivot[2])}


class PoseSampler:
    """Random orbit about the pivot, one per clip.

    Args:
        angle_deg: |yaw| in degrees, a number or [min, max] sampled uniformly (paper ranges: 0-30 small,
            0-60 large, 0-90 extreme).
        sign: ``random`` (either side, 50/50), ``positive`` (camera to +x) or ``negative``.
        pitch_deg: pitch in degrees, number or [min, max] (positive = camera above the source looking
            down; the reference orbit rises to about 11 degrees at 90 degrees of yaw).
        pivot_offset: r - min_depth, number or [min, max]; None: the inference paths' default
            (``ex4d.cameras.DEFAULT_PIVOT_OFFSET``, the reference's).
        schedule: ``linear``: frame i sits at i/(T-1) of the final angles, so frame 0 is the source pose
            and holes grow over the clip, as in an inference path; ``constant``: every frame at the
            final pose (more hole area per clip).
    """

    def __init__(self, angle_deg=(10.0, 90.0), sign: str = "random", pitch_deg=(0.0, 15.0),
                 pivot_offset=DEFAULT_PIVOT_OFFSET, schedule: str = "linear"):
        self.angle_deg = _range(angle_deg, "angle_deg", 0.0, 180.0)
        self.pitch_deg = _range(pitch_deg, "pitch_deg", -MAX_ABS_PITCH_DEG, MAX_ABS_PITCH_DEG)
        self.pivot_offset = _range(DEFAULT_PIVOT_OFFSET if pivot_offset is None else pivot_offset, "pivot_offset", 0.0)
        if sign not in SIGNS:
            raise InputError(f"masking.poses.sign must be one of {SIGNS}, got {sign!r}")
        if schedule not in SCHEDULES:
            raise InputError(f"masking.poses.schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.sign = sign
        self.schedule = schedule

    def sample(self, num_frames: int, min_depth: float, generator: torch.Generator | None = None,
               schedule: str | None = None) -> SampledPose:
        """Draw one path of ``num_frames`` poses.

        Args:
            min_depth: smallest depth of frame 0 after the border ring is set (``ex4d.mesh.dwmesh.set_border``).
            generator: CPU generator; the draws are always in the same order (angle, sign, pitch,
                pivot), so a seed fixes the path.
            schedule: overrides ``self.schedule`` (TrackMask needs a single full-angle pose).
        """
        schedule = self.schedule if schedule is None else schedule
        yaw = _uniform(*self.angle_deg, generator)
        flip = bool(torch.rand((), generator=generator) < 0.5)
        if self.sign == "negative" or (self.sign == "random" and flip):
            yaw = -yaw
        pitch = _uniform(*self.pitch_deg, generator)
        radius = float(min_depth) + _uniform(*self.pivot_offset, generator)
        ramp = (torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64) if schedule == "linear"
                else torch.ones(num_frames, dtype=torch.float64))
        if num_frames == 1 and schedule == "linear":
            ramp = torch.ones(1, dtype=torch.float64)  # a single frame gets the final pose, not the source
        pivot = torch.tensor([0.0, 0.0, radius], dtype=torch.float64)
        eye = orbit_eyes(yaw * ramp, pitch * ramp, radius)
        return SampledPose(look_at(eye, pivot), yaw, pitch, pivot)

    def __repr__(self) -> str:
        return (f"PoseSampler(angle_deg={self.angle_deg}, sign={self.sign!r}, pitch_deg={self.pitch_deg}, "
                f"pivot_offset={self.pivot_offset}, schedule={self.schedule!r})")
