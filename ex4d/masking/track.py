"""Tracking mask: holes that stick to content, carried along the clip by optical flow.

A render mask of a static novel pose puts holes at image positions; in a dynamic scene the content
moves through them. Here the holes of frame 0 (random blobs, or the holes of a render round trip) are
attached to the *content*: for every frame we know, per pixel, where that pixel was in frame 0, and a
pixel is a hole when its frame-0 position was. The position map is composed frame by frame from
backward DIS optical flow (OpenCV) as continuous coordinates, so sub-pixel motion accumulates
instead of being rounded away at each step. Content that enters the frame later (its frame-0 position
is outside the image) is trusted.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ex4d.masking.base import MaskSample, SimulatedMask
from ex4d.masking.render_mask import RenderMask
from ex4d.utils.checks import check_int, check_number
from ex4d.utils.errors import InputError

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
INITS = ("blobs", "render")


def _gray(frames: Tensor) -> np.ndarray:
    """(T, H, W, 3) uint8 tensor -> (T, H, W) uint8 luma numpy (DIS runs on the CPU)."""
    f = frames.detach().cpu().numpy()
    return np.stack([cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in f])


def backward_flows(frames: Tensor, preset: str = "medium") -> Tensor:
    """DIS flow from every frame t >= 1 back to frame t - 1.

    Returns:
        (T-1, H, W, 2) float32 (dx, dy) in pixels: frame t at pixel x looks like frame t-1 at x + flow.
    """
    gray = _gray(frames)
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    return torch.from_numpy(np.stack([dis.calc(gray[t], gray[t - 1], None) for t in range(1, len(gray))]))


def _sample(field: Tensor, coords: Tensor, mode: str = "bilinear") -> Tensor:
    """Sample ``field`` (C, H, W) at pixel-index coordinates ``coords`` (H, W, 2) (x, y) -> (C, H, W); zero outside."""
    C, H, W = field.shape
    # Pixel centre (u, v) of the project convention is at continuous (u + 0.5, v + 0.5); with
    # align_corners=False, normalised -1/+1 are the outer image edges, so index u maps to (2u + 1)/W - 1.
    gx = (2.0 * coords[..., 0] + 1.0) / W - 1.0
    gy = (2.0 * coords[..., 1] + 1.0) / H - 1.0
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0).to(field.dtype)
    return F.grid_sample(field.unsqueeze(0), grid, mode=mode, padding_mode="zeros", align_corners=False).squeeze(0)


def frame0_coordinates(flows: Tensor) -> Tensor:
    """Compose backward flows into, for each frame, the frame-0 position of each pixel.

    Args:
        flows: (T-1, H, W, 2) backward flows (``backward_flows``).

    Returns:
        (T, H, W, 2) float32 (x, y) pixel-index coordinates in frame 0; NaN where the track left the image.
    """
    Tm1, H, W, _ = flows.shape
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    ident = torch.stack([u, v], dim=-1)
    coords = [ident]
    for t in range(Tm1):
        prev_pos = ident + flows[t]  # where pixel x of frame t+1 was in frame t
        # Sample the previous coordinate map there; NaN marks tracks that left the image. grid_sample
        # cannot carry NaN, so carry an "inside" channel alongside.
        prev = coords[-1]
        inside = torch.isfinite(prev[..., 0]).float()
        fieldmap = torch.cat([torch.nan_to_num(prev).permute(2, 0, 1), inside[None]], dim=0)
        s = _sample(fieldmap, prev_pos)
        valid = s[2] > 0.999  # every bilinear neighbour inside the image and tracked
        xy = s[:2].permute(1, 2, 0)
        coords.append(torch.where(valid[..., None], xy, torch.full_like(xy, math.nan)))
    return torch.stack(coords)


def carry_holes(holes0: Tensor, coords: Tensor) -> Tensor:
    """Holes (T, H, W) bool of every frame: a pixel is a hole when its frame-0 position was.

    Args:
        holes0: (H, W) bool holes of frame 0. coords: (T, H, W, 2) from ``frame0_coordinates``.
    """
    T = coords.shape[0]
    tracked = torch.isfinite(coords[..., 0])
    field = holes0.float()[None]
    out = torch.stack([_sample(field, torch.nan_to_num(coords[t]))[0] for t in range(T)]) > 0.5
    return out & tracked


def random_blobs(height: int, width: int, generator: torch.Generator | None = None, num_blobs=(1, 4),
                 radius=(0.05, 0.25), aspect=(0.5, 2.0)) -> Tensor:
    """(H, W) bool union of random rotated ellipses; radii are fractions of min(H, W)."""
    n = int(torch.randint(int(num_blobs[0]), int(num_blobs[1]) + 1, (), generator=generator))
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32) + 0.5,
                          torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij")
    holes = torch.zeros(height, width, dtype=torch.bool)
    side = min(height, width)
    for _ in range(n):
        r = torch.rand(6, generator=generator, dtype=torch.float32)
        cx, cy = r[0] * width, r[1] * height
        a = (radius[0] + (radius[1] - radius[0]) * r[2]) * side
        b = a * (aspect[0] + (aspect[1] - aspect[0]) * r[3])
        th = r[4] * math.pi
        x, y = u - cx, v - cy
        xr, yr = x * th.cos() + y * th.sin(), -x * th.sin() + y * th.cos()
        holes |= (xr / a) ** 2 + (yr / b) ** 2 <= 1.0
    return holes


class TrackMask(SimulatedMask):
    """Holes of frame 0 carried along the clip by optical flow (module docstring).

    Args:
        init: ``blobs`` (random ellipses) or ``render`` (the holes of a RenderMask round trip of frame 0
            to a full-angle sampled pose; needs ``render``).
        render: the RenderMask used by ``init=render``.
        num_blobs, blob_radius, blob_aspect: [min, max] ranges for ``init=blobs`` (radius as a fraction
            of the short image side).
        flow_preset: DIS preset (``ultrafast``, ``fast``, ``medium``).
        full_first_frame: see ``SimulatedMask``; the holes are still *placed* on frame 0 and then carried.
    """

    name = "track"

    def __init__(self, init: str = "blobs", render: RenderMask | None = None, num_blobs=(1, 4),
                 blob_radius=(0.05, 0.25), blob_aspect=(0.5, 2.0), flow_preset: str = "medium",
                 full_first_frame: bool = True):
        super().__init__(full_first_frame)
        if init not in INITS:
            raise InputError(f"masking.init must be one of {INITS}, got {init!r}")
        if init == "render" and render is None:
            raise InputError("masking.init=render needs masking.render (a RenderMask)")
        if flow_preset not in DIS_PRESETS:
            raise InputError(f"masking.flow_preset must be one of {sorted(DIS_PRESETS)}, got {flow_preset!r}")
        for key, pair in {"num_blobs": num_blobs, "blob_radius": blob_radius, "blob_aspect": blob_aspect}.items():
            if len(pair) != 2:
                raise InputError(f"masking.{key} must be [min, max], got {list(pair)}")
            check = check_int if key == "num_blobs" else check_number  # a blob count is whole
            lo, hi = check(pair[0], f"masking.{key}"), check(pair[1], f"masking.{key}")
            if not 0 < lo <= hi:
                raise InputError(f"masking.{key} must be [min, max] with 0 < min <= max, got {[lo, hi]}")
        self.init = init
        self.render = render
        self.num_blobs = tuple(num_blobs)
        self.blob_radius = tuple(blob_radius)
        self.blob_aspect = tuple(blob_aspect)
        self.flow_preset = flow_preset

    def initial_holes(self, frames: Tensor, depth: Tensor, K: Tensor, generator) -> tuple[Tensor, dict]:
        """(H, W) bool holes of frame 0 on the CPU, and provenance."""
        T, H, W = frames.shape[:3]
        if self.init == "blobs":
            return random_blobs(H, W, generator, self.num_blobs, self.blob_radius, self.blob_aspect), {"init": "blobs"}
        pose = self.render.poses.sample(1, self.render.min_depth(depth), generator, schedule="constant")
        kept = self.render.mask_for_path(frames[:1], depth[:1], K, pose.w2c)[0]
        return (~kept).cpu(), {"init": "render", "mesh": self.render.mesh.mode, **pose.info()}

    def _sample(self, frames, depth, K, generator) -> MaskSample:
        holes0, info = self.initial_holes(frames, depth, K, generator)
        if frames.shape[0] == 1:
            return MaskSample((~holes0)[None].to(frames.device), {"strategy": self.name, **info})
        coords = frame0_coordinates(backward_flows(frames, self.flow_preset))
        holes = carry_holes(holes0, coords)
        return MaskSample((~holes).to(frames.device), {"strategy": self.name, **info})
