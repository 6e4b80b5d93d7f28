"""COLMAP text model of a camera path (ex4d.cameras.colmap): layout, conventions, round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ex4d.cameras import intrinsics, project
from ex4d.cameras.colmap import read_colmap_text, write_colmap_text
from ex4d.cameras.trajectories import Arc
from ex4d.utils.errors import InputError

MIN_DEPTH = 10000 / 3900
H, W = 384, 512


def _zoom_K(n):
    K = intrinsics(H, W).expand(n, 3, 3).clone()
    K[:, 0, 0] = K[:, 1, 1] = torch.linspace(500.0, 400.0, n, dtype=torch.float64)
    return K


def test_round_trip_poses_intrinsics_and_points(tmp_path):
    n = 7
    w2c = Arc(-20, 70, 0, 15, lead_in=True)(n, MIN_DEPTH)
    K_T33 = _zoom_K(n)
    K_T33[3:] = K_T33[2]  # frames 2..6 share a K: one COLMAP camera for them
    rng = np.random.default_rng(0)
    xyz, rgb = rng.normal(size=(30, 3)), rng.integers(0, 256, (30, 3), dtype=np.uint8)
    files = write_colmap_text(tmp_path / "sparse", w2c, K_T33, H, W, points_xyz=xyz, points_rgb=rgb)
    assert sorted(p.name for p in files.values()) == ["cameras.txt", "images.txt", "points3D.txt"]
    model = read_colmap_text(tmp_path / "sparse")
    torch.testing.assert_close(model.w2c, w2c, atol=1e-12, rtol=0)
    assert torch.equal(model.K_T33, K_T33)
    assert model.camera_ids == [1, 2, 3, 3, 3, 3, 3] and len(model.cameras) == 3
    assert model.cameras[1] == ("PINHOLE", W, H, [500.0, 500.0, 256.0, 192.0])
    assert model.image_ids == list(range(1, n + 1)) and model.names[0] == "frame_00000.png"
    np.testing.assert_array_equal(model.points_xyz, xyz)  # repr: exact float64
    np.testing.assert_array_equal(model.points_rgb, rgb)
    # COLMAP's projection of a point (R from the quaternion, then K) is ours
    pts = torch.from_numpy(xyz[:5] + [0, 0, 6.0])
    ours, _ = project(pts.expand(n, 5, 3), K_T33, w2c)
    theirs, _ = project(pts.expand(n, 5, 3), model.K_T33, model.w2c)
    torch.testing.assert_close(theirs, ours, atol=1e-9, rtol=0)


def test_one_shared_K_is_one_camera_and_no_points_is_an_empty_list(tmp_path):
    w2c = Arc(0, 30, 0, 0)(4, MIN_DEPTH)
    write_colmap_text(tmp_path, w2c, intrinsics(H, W), H, W)
    model = read_colmap_text(tmp_path)
    assert list(model.cameras) == [1] and model.camera_ids == [1] * 4
    assert model.points_xyz.shape == (0, 3)
    lines = [ln for ln in (tmp_path / "points3D.txt").read_text().splitlines() if not ln.startswith("#")]
    assert lines == []


def test_quaternion_is_scalar_first_world_to_camera(tmp_path):
    """A camera rotated +90 degrees about its z axis: COLMAP's QW QX QY QZ = (cos 45, 0, 0, sin 45), and
    T is the world-to-camera translation as stored (not the camera centre)."""
    w2c = torch.eye(4, dtype=torch.float64)[None].clone()
    w2c[0, :3, :3] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    w2c[0, :3, 3] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    write_colmap_text(tmp_path, w2c, intrinsics(H, W), H, W, image_names=["a.png"])
    line = [ln for ln in (tmp_path / "images.txt").read_text().splitlines() if ln and not ln.startswith("#")][0]
    f = line.split()
    assert [float(x) for x in f[1:5]] == pytest.approx([math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)])
    assert [float(x) for x in f[5:8]] == [1.0, 2.0, 3.0] and f[8:] == ["1", "a.png"]


def test_reads_a_colmap_written_model(tmp_path):
    """The example lines of COLMAP's documentation (images.txt with 2-D points, a SIMPLE_RADIAL camera)."""
    (tmp_path / "cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n# Number of cameras: 2\n"
        "1 SIMPLE_PINHOLE 3072 2304 2559.81 1536 1152\n2 PINHOLE 3072 2304 2560.56 2560.56 1536 1152\n")
    (tmp_path / "images.txt").write_text(
        "# Image list with two lines of data per image:\n"
        "1 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 1 P1180141.JPG\n"
        "2362.39 248.498 58396 1784.7 268.254 59027 1784.7 268.254 -1\n"
        "2 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 2 P1180142.JPG\n"
        "\n")
    (tmp_path / "points3D.txt").write_text("63390 1.67241 0.292931 0.609726 115 121 122 1.33927 16 6542 15 7345\n")
    model = read_colmap_text(tmp_path)
    assert model.names == ["P1180141.JPG", "P1180142.JPG"] and model.camera_ids == [1, 2]
    R = model.w2c[0, :3, :3]
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-5, rtol=0)
    assert model.K_T33[0, 0, 0] == model.K_T33[0, 1, 1] == 2559.81
    assert model.points_rgb.tolist() == [[115, 121, 122]]


def test_bad_inputs(tmp_path):
    w2c = Arc(0, 30, 0, 0)(3, MIN_DEPTH)
    K = intrinsics(H, W)
    skewed = K.clone()
    skewed[0, 1] = 0.5
    with pytest.raises(InputError, match="no skew"):
        write_colmap_text(tmp_path, w2c, skewed, H, W)
    with pytest.raises(InputError, match="image names without spaces"):
        write_colmap_text(tmp_path, w2c, K, H, W, image_names=["a b.png", "c.png", "d.png"])
    with pytest.raises(InputError, match="'K' has 2 per-frame"):
        write_colmap_text(tmp_path, w2c, _zoom_K(2), H, W)
    with pytest.raises(InputError, match="not found"):
        read_colmap_text(tmp_path / "nothing")
