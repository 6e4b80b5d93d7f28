"""Camera files (ex4d.cameras.io): reference npz and our JSON."""

import json

import numpy as np
import pytest
import torch

from ex4d.cameras import intrinsics, w2c_to_c2w
from ex4d.cameras.io import (
    load_cameras_json,
    load_intrinsics,
    load_reference_npz,
    load_w2c,
    save_cameras_json,
    save_reference_npz,
    validate_intrinsics,
)
from ex4d.cameras.trajectories import Arc, ReferenceLoop180, ReferenceOrbit
from ex4d.utils.errors import InputError

MIN_DEPTH = 10000 / 3900
FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def _path_and_K():
    return Arc(-20, 70, 0, 15, lead_in=True)(49, MIN_DEPTH), intrinsics(384, 512)


def test_reference_npz_round_trip_is_exact(tmp_path):
    w2c, K = _path_and_K()
    path = save_reference_npz(tmp_path / "out" / "camera_90", w2c, K)  # no suffix added behind our back
    assert path == tmp_path / "out" / "camera_90" and path.is_file()
    w2c2, K2 = load_reference_npz(path)
    assert torch.equal(w2c2, w2c) and torch.equal(K2, K)
    assert w2c2.dtype == torch.float64 and K2.dtype == torch.float64


def test_reference_npz_layout(tmp_path):
    w2c, K = _path_and_K()
    path = save_reference_npz(tmp_path / "camera_90.npz", w2c, K)
    with np.load(path) as z:
        assert sorted(z.files) == ["extrinsics", "intrinsics"]
        ext, intr = z["extrinsics"], z["intrinsics"]
    assert ext.shape == (49, 4, 4) and intr.shape == (3, 3)
    np.testing.assert_array_equal(ext, FLIP @ w2c.numpy())
    np.testing.assert_array_equal(intr, K.numpy())
    assert np.allclose(np.linalg.det(ext[:, :3, :3]), 1.0)  # rows 0..2 of a det -1 look-at negated: proper


def _reference_like_npz(path, preset, n, r):
    """A camera npz made the way the reference makes it, written from the method doc: look-at
    R = [s; u; f], t = -R e, float32, rows 0..2 negated, K with f = 500 and centre (W/2, H/2)."""
    s_i = np.arange(n) / (n - 1)
    rho = n / 49 if n >= 49 else 49 / n
    if preset == "180":
        th = 2 * np.pi * rho * s_i
        eyes = np.stack([r * np.sin(th), 0.2 * r * (np.cos(th) - 1), 0 * th], -1)
    else:
        th = np.deg2rad(float(preset)) * rho * s_i
        c = np.abs(np.cos(th))
        eyes = np.stack([r * np.sin(th), 0.2 * r * (c - 1), r * (1 - c)], -1)
    target = np.array([0.0, 0.0, r])
    mats = []
    for e in eyes:
        f = (target - e) / np.linalg.norm(target - e)
        s = np.cross(f, [0, 1, 0])
        s /= np.linalg.norm(s)
        u = np.cross(s, f)
        m = np.eye(4, dtype=np.float32)
        m[:3, :3] = np.stack([s, u, f])
        m[:3, 3] = -m[:3, :3] @ e
        m[:3] *= -1  # the reference renderer negates rows 0..2 in place before saving
        mats.append(m)
    K = np.array([[500, 0, 256], [0, 500, 192], [0, 0, 1]], dtype=np.float32)
    np.savez_compressed(path, extrinsics=np.stack(mats), intrinsics=K)
    return path


@pytest.mark.parametrize("preset,traj", [("90", ReferenceOrbit(90)), ("180", ReferenceLoop180())])
def test_reference_made_npz_loads_as_our_trajectory(tmp_path, preset, traj):
    r = MIN_DEPTH + 0.15
    path = _reference_like_npz(tmp_path / f"camera_{preset}.npz", preset, 49, r)
    w2c, K = load_reference_npz(path)
    torch.testing.assert_close(w2c, traj(49, MIN_DEPTH), atol=1e-5, rtol=0)  # float32 file
    assert torch.equal(K, intrinsics(384, 512))
    torch.testing.assert_close(load_w2c(path), w2c, atol=0, rtol=0)  # auto picks 'extrinsics'


def test_reference_npz_errors(tmp_path):
    w2c, K = _path_and_K()
    path = tmp_path / "no_K.npz"
    np.savez(path, extrinsics=(FLIP @ w2c.numpy()))
    with pytest.raises(InputError, match="missing key 'intrinsics'") as e:
        load_reference_npz(path)
    assert str(path) in str(e.value)
    # the raw look-at before the reference negates its rows: mirrored (det -1), named as such
    raw = tmp_path / "raw.npz"
    look_at_ref = np.diag([-1.0, 1.0, 1.0, 1.0]) @ w2c.numpy()  # [s; u; f], t = -R e
    np.savez(raw, extrinsics=look_at_ref, intrinsics=K.numpy())
    with pytest.raises(InputError, match="det -1") as e:
        load_reference_npz(raw)
    assert str(raw) in str(e.value)
    bad_K = tmp_path / "bad_K.npz"
    np.savez(bad_K, extrinsics=FLIP @ w2c.numpy(), intrinsics=np.eye(4))
    with pytest.raises(InputError, match="intrinsics"):
        load_reference_npz(bad_K)
    scaled = w2c.clone()
    scaled[:, :3, :3] *= 2
    with pytest.raises(InputError, match="rotation"):
        save_reference_npz(tmp_path / "x.npz", scaled, K)
    assert not (tmp_path / "x.npz").exists()  # validated before anything is written


def test_cameras_json_round_trip(tmp_path):
    w2c, K = _path_and_K()
    path = save_cameras_json(tmp_path / "cams.json", w2c, K, 384, 512)
    data = json.loads(path.read_text())
    assert {"w2c", "c2w", "K", "height", "width"} <= set(data)
    prod = np.asarray(data["c2w"]) @ np.asarray(data["w2c"])
    np.testing.assert_allclose(prod, np.tile(np.eye(4), (49, 1, 1)), atol=1e-12)
    cams = load_cameras_json(path)
    assert torch.equal(cams.w2c, w2c) and torch.equal(cams.K, K)
    assert (cams.height, cams.width) == (384, 512)
    assert torch.equal(torch.tensor(data["c2w"], dtype=torch.float64), w2c_to_c2w(w2c))
    assert torch.equal(load_w2c(path), w2c)  # our JSON is also a trajectory file


def test_cameras_json_errors(tmp_path):
    w2c, K = _path_and_K()
    path = save_cameras_json(tmp_path / "cams.json", w2c, K, 384, 512)
    data = json.loads(path.read_text())
    del data["K"]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="missing key 'K'") as e:
        load_cameras_json(path)
    assert str(path) in str(e.value)
    with pytest.raises(InputError, match="not found"):
        load_cameras_json(tmp_path / "absent.json")
    with pytest.raises(InputError, match="height and width"):
        save_cameras_json(tmp_path / "c.json", w2c, K, 0, 512)


# ---- per-frame intrinsics ----

def _zoom_K(n):
    """(n, 3, 3): focal 500 -> 250 px about the centre of a 384x512 image."""
    K = intrinsics(384, 512).expand(n, 3, 3).clone()
    K[:, 0, 0] = K[:, 1, 1] = torch.linspace(500.0, 250.0, n, dtype=torch.float64)
    return K


def test_per_frame_K_round_trips_through_both_formats(tmp_path):
    w2c, _ = _path_and_K()
    K_T33 = _zoom_K(49)
    cams = load_cameras_json(save_cameras_json(tmp_path / "cams.json", w2c, K_T33, 384, 512))
    assert torch.equal(cams.K, K_T33) and torch.equal(cams.K_T33, K_T33)
    assert np.asarray(json.loads((tmp_path / "cams.json").read_text())["K"]).shape == (49, 3, 3)
    w2c2, K2 = load_reference_npz(save_reference_npz(tmp_path / "camera_zoom.npz", w2c, K_T33))
    assert torch.equal(w2c2, w2c) and torch.equal(K2, K_T33)
    with np.load(tmp_path / "camera_zoom.npz") as z:
        assert z["intrinsics"].shape == (49, 3, 3)
    for path in (tmp_path / "cams.json", tmp_path / "camera_zoom.npz"):
        assert torch.equal(load_intrinsics(path), K_T33)


def test_equal_per_frame_K_is_written_as_one_matrix(tmp_path):
    """The reference layout (one (3, 3) intrinsics) whenever every frame shares it."""
    w2c, K = _path_and_K()
    save_reference_npz(tmp_path / "a.npz", w2c, K.expand(49, 3, 3))
    save_reference_npz(tmp_path / "b.npz", w2c, K)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    save_cameras_json(tmp_path / "a.json", w2c, K.expand(49, 3, 3), 384, 512)
    save_cameras_json(tmp_path / "b.json", w2c, K, 384, 512)
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    cams = load_cameras_json(tmp_path / "a.json")
    assert cams.K.shape == (3, 3) and torch.equal(cams.K_T33, K.expand(49, 3, 3))


def test_per_frame_K_count_and_values_are_checked(tmp_path):
    w2c, _ = _path_and_K()
    with pytest.raises(InputError, match="'K' has 48 per-frame matrices but the path has 49 frames") as e:
        save_cameras_json(tmp_path / "c.json", w2c, _zoom_K(48), 384, 512)
    assert str(tmp_path / "c.json") in str(e.value)
    with pytest.raises(InputError, match="'K' has 50 per-frame"):
        save_reference_npz(tmp_path / "c.npz", w2c, _zoom_K(50))
    bad = _zoom_K(49)
    bad[7, 0, 0] = -1.0
    with pytest.raises(InputError, match=r"'K\[7\]' must be"):
        save_cameras_json(tmp_path / "c.json", w2c, bad, 384, 512)
    with pytest.raises(InputError, match=r"shape \(3, 3\) or \(N, 3, 3\)"):
        validate_intrinsics(np.eye(4), "x", "K")
    np.savez(tmp_path / "short.npz", extrinsics=FLIP @ w2c.numpy(), intrinsics=_zoom_K(3).numpy())
    with pytest.raises(InputError, match="'intrinsics' has 3 per-frame matrices but the path has 49"):
        load_reference_npz(tmp_path / "short.npz")
    np.savez(tmp_path / "both.npz", w2c=w2c.numpy(), K=_zoom_K(49).numpy(), intrinsics=intrinsics(384, 512).numpy())
    with pytest.raises(InputError, match="'K' and 'intrinsics' are both present but differ"):
        load_intrinsics(tmp_path / "both.npz")
