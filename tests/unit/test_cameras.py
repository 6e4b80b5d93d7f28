"""Core camera maths (ex4d.cameras.core) and the path plot (ex4d.cameras.plot)."""

import numpy as np
import pytest
import torch
from PIL import Image

from ex4d.cameras import camera_centers, intrinsics, look_at, project, unproject_depth, w2c_to_c2w
from ex4d.cameras.plot import frustum_corners, plot_camera_path
from ex4d.cameras.trajectories import Orbit, ReferenceOrbit


def _reference_look_at(eye, target):
    """The reference look-at, written from the method doc: R = [s; u; f], t = -R e (det -1)."""
    f = target - eye
    f = f / np.linalg.norm(f)
    s = np.cross(f, [0.0, 1.0, 0.0])
    s = s / np.linalg.norm(s)
    u = np.cross(s, f)
    R = np.stack([s, u, f])
    return R, -R @ eye


def test_intrinsics_reference_values():
    K = intrinsics(480, 640)
    assert K.dtype == torch.float64
    assert K.tolist() == [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]]


def test_look_at_is_reference_with_x_flipped():
    rng = np.random.default_rng(0)
    eye = rng.normal(size=(16, 3))
    target = np.array([0.3, -0.2, 3.0])
    w2c = look_at(torch.from_numpy(eye), torch.from_numpy(target)).numpy()
    for i in range(16):
        R_ref, t_ref = _reference_look_at(eye[i], target)
        flip = np.diag([-1.0, 1.0, 1.0])
        np.testing.assert_allclose(w2c[i, :3, :3], flip @ R_ref, atol=1e-12)
        np.testing.assert_allclose(w2c[i, :3, 3], flip @ t_ref, atol=1e-12)
        assert np.linalg.det(w2c[i, :3, :3]) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(w2c[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (16, 1)))


def test_look_at_target_on_optical_axis_and_source_is_identity():
    eye = torch.tensor([[0.0, 0.0, 0.0], [1.0, -0.5, 0.2], [-2.0, 0.3, 4.0]], dtype=torch.float64)
    target = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    w2c = look_at(eye, target)
    assert torch.equal(w2c[0], torch.eye(4, dtype=torch.float64))
    cam = w2c[:, :3, :3] @ target + w2c[:, :3, 3]
    torch.testing.assert_close(cam[:, :2], torch.zeros(3, 2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(cam[:, 2], (target - eye).norm(dim=-1), atol=1e-12, rtol=0)
    torch.testing.assert_close(camera_centers(w2c), eye, atol=1e-12, rtol=0)


def test_w2c_c2w_inverse():
    w2c = ReferenceOrbit(90)(49, 2.5)
    prod = w2c_to_c2w(w2c) @ w2c
    torch.testing.assert_close(prod, torch.eye(4, dtype=torch.float64).expand(49, 4, 4), atol=1e-12, rtol=0)


@pytest.mark.parametrize("pixel_center", [True, False])
def test_unproject_project_round_trip_middlebury(pixel_center):
    """Real depth: the Middlebury motorcycle disparity shipped with scikit-image, as depth = fB / d."""
    from skimage import data

    _, _, disp = data.stereo_motorcycle()
    disp = torch.from_numpy(np.ascontiguousarray(disp[::8, ::8])).double()
    depth = torch.where(torch.isfinite(disp), 500.0 * 0.2 / disp.clamp_min(1e-3), torch.full_like(disp, 100.0))
    H, W = depth.shape
    K = intrinsics(H, W)
    pts = unproject_depth(depth, K, pixel_center=pixel_center)  # camera = world for the source pose
    uv, z = project(pts.reshape(-1, 3), K)
    off = 0.5 if pixel_center else 0.0
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    torch.testing.assert_close(uv, torch.stack([u, v], -1).reshape(-1, 2) + off, atol=1e-9, rtol=0)
    torch.testing.assert_close(z, depth.reshape(-1), atol=1e-12, rtol=0)


def test_project_through_moved_camera_matches_frame_change():
    """project(points, K, w2c) == project of the points moved into that camera by hand."""
    depth = torch.full((6, 8), 3.0, dtype=torch.float64) + torch.linspace(0, 1, 8, dtype=torch.float64)
    K = intrinsics(6, 8)
    pts = unproject_depth(depth, K).reshape(-1, 3)
    w2c = Orbit(0, 40)(5, 2.0)[-1]
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    uv, z = project(pts, K, w2c)
    uv_ref, z_ref = project(cam, K)
    torch.testing.assert_close(uv, uv_ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(z, z_ref, atol=1e-12, rtol=0)


def test_frustum_corners_project_to_image_corners():
    w2c = Orbit(0, 60, pitch_deg=10)(4, 2.0)
    K = intrinsics(32, 48)
    corners = torch.from_numpy(frustum_corners(w2c, K, 32, 48, depth=0.7))
    expected = torch.tensor([[0.0, 0.0], [48.0, 0.0], [48.0, 32.0], [0.0, 32.0]], dtype=torch.float64)
    for i in range(4):
        uv, z = project(corners[i], K, w2c[i])
        torch.testing.assert_close(uv, expected, atol=1e-9, rtol=0)
        torch.testing.assert_close(z, torch.full((4,), 0.7, dtype=torch.float64), atol=1e-12, rtol=0)


def test_plot_camera_path_writes_png(tmp_path):
    traj = ReferenceOrbit(90)
    w2c = traj(49, 2.564)
    out = plot_camera_path(w2c, intrinsics(320, 512), 320, 512, tmp_path / "sub" / "path.png",
                           pivot=traj.pivot(2.564), title="ref 90", dpi=50)
    assert out == tmp_path / "sub" / "path.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as im:
        assert im.size == (500, 240)  # figsize (10, 4.8) at 50 dpi
        arr = np.asarray(im.convert("RGB"))
    assert (arr != 255).any(axis=-1).mean() > 0.01  # something was drawn
    # the source frustum is drawn in red (tab:red = #d62728)
    red = (np.abs(arr.astype(int) - [214, 39, 40]).sum(-1) < 60).sum()
    assert red > 20
