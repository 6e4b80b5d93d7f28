"""Simulated masking for training on monocular video (method doc, section 6).

Strategies (the ``masking`` config group), each ``strategy(frames, depth, K, generator) -> mask``:
``RenderMask`` (DW-Mesh round trip to a sampled pose), ``TrackMask`` (holes carried by optical flow),
``MixedMask`` (one or the other per clip). ``erode_masks`` is the reference's random erosion, shared by
training and inference.
"""

from ex4d.masking.base import MaskSample, SimulatedMask
from ex4d.masking.erosion import erode, erode_masks, sample_erosion_sizes
from ex4d.masking.mixed import MixedMask
from ex4d.masking.poses import PoseSampler, SampledPose
from ex4d.masking.render_mask import RenderMask, render_mask_and_depth, round_trip_mask
from ex4d.masking.track import TrackMask, random_blobs

__all__ = [
    "MaskSample",
    "MixedMask",
    "PoseSampler",
    "RenderMask",
    "SampledPose",
    "SimulatedMask",
    "TrackMask",
    "erode",
    "erode_masks",
    "random_blobs",
    "render_mask_and_depth",
    "round_trip_mask",
    "sample_erosion_sizes",
]
