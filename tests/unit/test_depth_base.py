"""The EX-4D depth scale (``disparity_to_ex4d_depth``), ``validate_depth`` and the synthetic backends."""

from __future__ import annotations

import pytest
import torch

from ex4d.depth import EX4D_NEAR, ConstantDepthBackend, PlanesDepthBackend, disparity_to_ex4d_depth, validate_depth
from ex4d.utils.errors import InputError


def test_scale_formula_nearest_is_2564_and_farthest_saturates():
    disp = torch.tensor([[[0.0, 0.25], [0.5, 1.0]]])  # (1, 2, 2)
    depth = disparity_to_ex4d_depth(disp)
    assert EX4D_NEAR == pytest.approx(2.5641025641)
    assert float(depth.min()) == pytest.approx(10000 / 3900, abs=1e-5)
    assert float(depth[0, 1, 1]) == pytest.approx(10000 / 3900, abs=1e-5)  # largest disparity = nearest
    assert float(depth[0, 0, 0]) == 1e4  # smallest disparity: d' = 0 -> 10000/1e-5, clipped to 1e4
    # D = 10000 / (3900 d'): d' = 0.25 and 0.5 are 4x and 2x the nearest depth
    assert float(depth[0, 0, 1]) == pytest.approx(4 * EX4D_NEAR, rel=1e-6)
    assert float(depth[0, 1, 0]) == pytest.approx(2 * EX4D_NEAR, rel=1e-6)


def test_scale_is_invariant_to_affine_disparity():
    disp = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    # float32 rounding of d' near 0 is amplified by 1/d': compare relatively, loosely
    assert torch.allclose(disparity_to_ex4d_depth(disp), disparity_to_ex4d_depth(7.5 * disp - 3.0), rtol=1e-3)


def test_normalisation_is_over_the_clip_not_per_frame():
    # Frame 1 is a far copy of frame 0 (smaller disparities): per-frame normalisation would give both
    # frames a point at 2.564; clip-level keeps frame 1 farther everywhere.
    f0 = torch.linspace(0.2, 1.0, 16).view(4, 4)
    disp = torch.stack([f0, 0.5 * f0])
    depth = disparity_to_ex4d_depth(disp)
    assert float(depth[0].min()) == pytest.approx(EX4D_NEAR, abs=1e-5)
    assert float(depth[1].min()) > 2 * EX4D_NEAR
    assert (depth[1] > depth[0]).all()
    per_frame = torch.stack([disparity_to_ex4d_depth(d[None])[0] for d in disp])
    assert not torch.allclose(per_frame, depth)


@pytest.mark.parametrize("bad,match", [
    (torch.ones(4, 4), "shape"),
    (torch.tensor([[[1.0, float("nan")]]]), "NaN or inf"),
    (torch.tensor([[[1.0, float("inf")]]]), "NaN or inf"),
    (torch.tensor([[[1.0, 0.0]]]), "<= 0"),
    (torch.tensor([[[1.0, -2.0]]]), "<= 0"),
])
def test_validate_depth_names_the_source(bad, match):
    with pytest.raises(InputError, match=match) as e:
        validate_depth(bad, source="clip_depth.npz")
    assert "clip_depth.npz" in str(e.value)


def test_constant_and_planes_backends():
    frames = torch.zeros(2, 8, 12, 3, dtype=torch.uint8)
    r = ConstantDepthBackend(3.0)(frames)
    assert r.depth.shape == (2, 8, 12) and (r.depth == 3.0).all()
    assert r.K[0, 0] == 500.0 and r.K[0, 2] == 6.0 and r.K[1, 2] == 4.0
    p = PlanesDepthBackend(far=10.0)(frames)
    assert float(p.depth.min()) == pytest.approx(EX4D_NEAR) and float(p.depth.max()) == 10.0
    assert (p.depth[:, 2:6, 3:9] == p.depth.min()).all() and p.depth[:, 0, 0].eq(10.0).all()
    with pytest.raises(InputError, match="depth.value"):
        ConstantDepthBackend(0.0)
    with pytest.raises(InputError, match="depth.box"):
        PlanesDepthBackend(box=(0.5, 0.0, 0.2, 1.0))
