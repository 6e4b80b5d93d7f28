"""Ground truth: the Middlebury motorcycle example (scikit-image) and GroundTruthDepthBackend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ex4d.cameras import unproject_depth
from ex4d.data.examples import fill_disparity_holes, load_motorcycle
from ex4d.depth import EX4D_NEAR, GroundTruthDepthBackend
from ex4d.utils.errors import InputError


@pytest.fixture(scope="module")
def moto():
    return load_motorcycle()


def test_motorcycle_native_shapes_calibration_and_depth_range(moto):
    assert moto["left"].shape == moto["right"].shape == (500, 741, 3) and moto["left"].dtype == np.uint8
    assert moto["depth_m"].shape == moto["valid_gt"].shape == (500, 741)
    assert moto["depth_m"].dtype == np.float32 and moto["valid_gt"].dtype == bool
    K = moto["K"]
    assert K[0, 0] == K[1, 1] == pytest.approx(994.978)
    assert (K[0, 2], K[1, 2]) == pytest.approx((311.193 + 0.5, 254.877 + 0.5))  # project convention: corner at 0
    assert moto["baseline_m"] == pytest.approx(0.193001)
    d, valid = moto["depth_m"], moto["valid_gt"]
    assert np.isfinite(d).all() and (d > 0).all()
    assert 0.90 < valid.mean() < 0.95  # about 7% of the ground truth is unknown (occlusions, borders)
    # Measured depth: the scene spans about 2.1 m (nearest: the front of the motorcycle) to 5.0 m (the back wall).
    assert 2.05 < d[valid].min() < 2.15 and 4.95 < d[valid].max() < 5.05
    assert 2.2 < np.median(d[150:350, 250:500]) < 2.6  # the motorcycle in the middle of the image
    # Background filling invents no depth outside the measured range.
    assert d.min() >= d[valid].min() - 1e-6 and d.max() <= d[valid].max() + 1e-6
    # Definition: z = f B / (d + doffs) wherever the disparity is measured.
    disp = moto["disparity_px"]
    assert np.allclose(d[valid], 994.978 * 0.193001 / (disp[valid] + 31.086), rtol=1e-5)
    assert np.isnan(disp[~valid]).all()


def test_motorcycle_ground_truth_disparity_matches_the_stereo_pair(moto):
    # The real data agree with the calibration's direction: left(v, u) == right(v, u - d).
    L, R = moto["left"].astype(np.float32), moto["right"].astype(np.float32)
    disp, valid = moto["disparity_px"], moto["valid_gt"]
    v, u = np.nonzero(valid)
    ur = np.round(u - disp[v, u]).astype(int)
    ok = ur >= 0
    warped = np.abs(L[v[ok], u[ok]] - R[v[ok], ur[ok]]).mean()
    unwarped = np.abs(L[v[ok], u[ok]] - R[v[ok], u[ok]]).mean()
    assert warped < 12 and unwarped > 3 * warped


def test_motorcycle_resized_scales_K_and_keeps_depth_samples(moto):
    small = load_motorcycle(height=100, width=160)
    assert small["left"].shape == (100, 160, 3) and small["depth_m"].shape == small["valid_gt"].shape == (100, 160)
    sx, sy = 160 / 741, 100 / 500
    K0, K = moto["K"], small["K"]
    assert np.allclose(K, np.array([[K0[0, 0] * sx, 0, K0[0, 2] * sx], [0, K0[1, 1] * sy, K0[1, 2] * sy], [0, 0, 1]]))
    # nearest-exact: every depth is one of the full-resolution samples, so the range stays inside it
    assert np.isin(small["depth_m"], moto["depth_m"]).all()
    assert 0.88 < small["valid_gt"].mean() < 0.96
    assert np.nanmax(small["disparity_px"]) == pytest.approx(np.nanmax(moto["disparity_px"]) * sx, rel=0.02)
    with pytest.raises(InputError, match="both height and width"):
        load_motorcycle(height=100)


def test_background_fill_uses_the_farther_neighbour():
    disp = np.array([[10.0, 0, 0, 30.0], [5.0, 0, 7.0, 0], [0, 0, 0, 0]], np.float32)
    valid = disp > 0
    filled = fill_disparity_holes(disp, valid)
    assert filled[0].tolist() == [10, 10, 10, 30]  # min(10, 30): the hole belongs to the background
    assert filled[1].tolist() == [5, 5, 7, 7]       # the row end takes its only neighbour
    assert filled[2].tolist() == filled[1].tolist()  # an empty row copies the nearest row
    nearest = fill_disparity_holes(disp, valid, "nearest")
    assert nearest[0, 1] == 10 and nearest[2, 0] == 5 and (nearest[valid] == disp[valid]).all()
    with pytest.raises(InputError, match="fill"):
        fill_disparity_holes(disp, valid, "inpaint")


def _frames(T, H, W):
    return torch.zeros(T, H, W, 3, dtype=torch.uint8)


def test_backend_similarity_rescale_on_the_example():
    H, W = 80, 128
    gt = load_motorcycle(H, W)
    r = GroundTruthDepthBackend()(_frames(2, H, W), source="example:motorcycle")
    assert r.depth.shape == (2, H, W) and r.depth.dtype == torch.float32
    assert float(r.depth.min()) == pytest.approx(10000 / 3900, abs=1e-4)
    assert torch.equal(r.depth[0], r.depth[1])  # a still image: the same depth every frame
    depth_m = torch.from_numpy(gt["depth_m"])
    assert r.metric_scale == pytest.approx(EX4D_NEAR / float(depth_m.min()))
    # A similarity: one factor everywhere, so ratios (and the shape) are exact.
    assert torch.allclose(r.depth[0] / depth_m, torch.full((H, W), r.metric_scale), rtol=1e-5)
    assert torch.allclose(r.K, torch.from_numpy(gt["K"])) and r.K.dtype == torch.float64
    # Unprojected with the true K, the scaled scene is the metric scene times metric_scale.
    pts = unproject_depth(r.depth[0].double(), r.K)
    pts_m = unproject_depth(depth_m.double(), r.K)
    assert torch.allclose(pts, pts_m * r.metric_scale, rtol=1e-5)
    assert r.info["source"] == "example:motorcycle" and 2.0 < r.info["depth_range_m"][0] < 2.2


def test_backend_reference_intrinsics_and_configured_source():
    backend = GroundTruthDepthBackend(source="example:motorcycle", intrinsics="reference")
    r = backend(_frames(1, 64, 96), source="ignored.mp4")
    assert r.K[0, 0] == 500.0 and r.K[0, 2] == 48.0 and r.K[1, 2] == 32.0
    assert float(r.depth.min()) == pytest.approx(EX4D_NEAR, abs=1e-4)


def test_backend_from_file(tmp_path):
    depth_m = np.linspace(1.0, 4.0, 6 * 8, dtype=np.float32).reshape(6, 8)
    K = np.array([[300.0, 0, 4.0], [0, 300.0, 3.0], [0, 0, 1]])
    np.savez(tmp_path / "gt.npz", depth_m=depth_m, K=K)
    r = GroundTruthDepthBackend(path=str(tmp_path / "gt.npz"))(_frames(2, 12, 16))
    assert r.depth.shape == (2, 12, 16) and r.metric_scale == pytest.approx(EX4D_NEAR)
    assert torch.allclose(r.K, torch.tensor([[600.0, 0, 8.0], [0, 600.0, 6.0], [0, 0, 1]], dtype=torch.float64))
    np.savez(tmp_path / "bad.npz", depth_m=np.where(depth_m > 3, np.nan, depth_m), K=K)
    with pytest.raises(InputError, match="bad.npz.*NaN"):
        GroundTruthDepthBackend(path=str(tmp_path / "bad.npz"))(_frames(1, 6, 8))
    np.savez(tmp_path / "nok.npz", depth_m=depth_m)
    with pytest.raises(InputError, match="nok.npz.*'K'"):
        GroundTruthDepthBackend(path=str(tmp_path / "nok.npz"))(_frames(1, 6, 8))


def test_backend_without_ground_truth_says_so():
    with pytest.raises(InputError, match="walk.mp4.*no ground-truth depth"):
        GroundTruthDepthBackend()(_frames(1, 8, 8), source="walk.mp4")
    with pytest.raises(InputError, match="example:teapot.*available.*example:motorcycle"):
        GroundTruthDepthBackend()(_frames(1, 8, 8), source="example:teapot")
    with pytest.raises(InputError, match="depth.intrinsics"):
        GroundTruthDepthBackend(intrinsics="true")
