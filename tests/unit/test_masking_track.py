"""Tracking masks: holes carried by optical flow stay on the content of a translating texture."""

import pytest
import torch
import torch.nn.functional as F

from ex4d.cameras import intrinsics
from ex4d.masking import TrackMask, random_blobs
from ex4d.masking.track import carry_holes, frame0_coordinates
from ex4d.utils.errors import InputError

H = W = 64


def _translating(T: int, dx: float, dy: float) -> torch.Tensor:
    """(T, H, W, 3) uint8: a smooth random texture whose content moves by (dx, dy) px per frame (sub-pixel
    shifts by bilinear resampling of a larger canvas)."""
    g = torch.Generator().manual_seed(0)
    tex = F.interpolate(torch.rand(1, 3, 24, 24, generator=g), size=(128, 128), mode="bicubic", align_corners=False)
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    frames = []
    for t in range(T):
        # Pixel (u, v) of frame t shows canvas point (u + 32 - dx t, v + 32 - dy t).
        x, y = u + 32 - dx * t, v + 32 - dy * t
        grid = torch.stack([(2 * x + 1) / 128 - 1, (2 * y + 1) / 128 - 1], -1)[None]
        f = F.grid_sample(tex, grid, mode="bilinear", align_corners=False)[0]
        frames.append((f.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0))
    return torch.stack(frames)


class DiskTrack(TrackMask):
    """A TrackMask whose frame-0 hole is a known disk (the propagation is the real one)."""

    def initial_holes(self, frames, depth, K, generator):
        v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
        return (u - 24) ** 2 + (v - 28) ** 2 <= 8**2, {"init": "disk"}


def _centroid(holes: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.nonzero(holes, as_tuple=True)
    return torch.stack([xs.float().mean(), ys.float().mean()])


@pytest.mark.parametrize("dx,dy", [(2.0, 1.0), (0.5, -0.25)])
def test_holes_move_with_the_content(dx, dy):
    T = 8
    frames = _translating(T, dx, dy)
    mask = DiskTrack(full_first_frame=False)(frames, torch.ones(T, H, W), intrinsics(H, W), None)
    holes = ~mask
    c0, area0 = _centroid(holes[0]), holes[0].sum()
    for t in range(1, T):
        moved = _centroid(holes[t]) - c0
        # Sub-pixel motion accumulates (0.25 px/frame would vanish if holes were re-rounded every frame).
        assert torch.allclose(moved, torch.tensor([dx * t, dy * t]), atol=0.75), (t, moved)
        assert abs(int(holes[t].sum()) - int(area0)) <= 0.1 * area0


def test_full_first_frame_keeps_frame0_but_still_carries_the_holes():
    frames = _translating(4, 2.0, 0.0)
    mask = DiskTrack()(frames, torch.ones(4, H, W), intrinsics(H, W), None)
    assert mask[0].all() and (~mask[1:]).sum((1, 2)).min() > 150


def test_content_entering_the_frame_is_trusted():
    flows = torch.zeros(3, H, W, 2)
    flows[..., 0] = -4.0  # content moves 4 px right per frame: the left columns are new content
    coords = frame0_coordinates(flows)
    holes0 = torch.zeros(H, W, dtype=torch.bool)
    holes0[:, :10] = True
    holes = carry_holes(holes0, coords)
    assert not holes[3, :, :12].any() and holes[3, :, 12:22].all() and not holes[3, :, 23:].any()


def test_blobs_are_seeded_and_init_is_checked():
    a = random_blobs(H, W, torch.Generator().manual_seed(1))
    assert torch.equal(a, random_blobs(H, W, torch.Generator().manual_seed(1)))
    assert 0 < a.float().mean() < 1
    frames = _translating(3, 1.0, 0.0)
    m = TrackMask(full_first_frame=False)
    s1 = m.sample(frames, torch.ones(3, H, W), intrinsics(H, W), torch.Generator().manual_seed(2))
    s2 = m.sample(frames, torch.ones(3, H, W), intrinsics(H, W), torch.Generator().manual_seed(2))
    assert torch.equal(s1.mask, s2.mask) and s1.info["strategy"] == "track"
    with pytest.raises(InputError, match="masking.init=render needs masking.render"):
        TrackMask(init="render")
    with pytest.raises(InputError, match="masking.flow_preset"):
        TrackMask(flow_preset="slow")
