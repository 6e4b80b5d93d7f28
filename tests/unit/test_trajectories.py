"""Camera trajectories (ex4d.cameras.trajectories) and their configs (conf/camera)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ex4d.cameras import camera_centers, intrinsics
from ex4d.cameras import project
from ex4d.cameras.trajectories import (
    PRESETS,
    Arc,
    Dolly,
    DollyZoom,
    FileTrajectory,
    FocalZoom,
    Orbit,
    ReferenceLoop180,
    ReferenceOrbit,
    frame_scale,
    resample_w2c,
    starts_at_source,
    trajectory_from_preset,
)
from ex4d.utils.errors import InputError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "camera"
MIN_DEPTH = 10000 / 3900  # the nearest point of a clip in EX-4D depth
EYE4 = torch.eye(4, dtype=torch.float64)


# ---- the reference formulas, written from docs/ex4d-method.md section 4 (not from our code) ----

def doc_rho(n):
    return n / 49 if n >= 49 else 49 / n


def doc_eyes(preset, n, min_depth, pivot_offset=0.15, rescale=True):
    r = min_depth + pivot_offset
    rho = doc_rho(n) if rescale else 1.0
    s = np.array([i / (n - 1) for i in range(n)])
    if preset == "180":
        th = 2 * np.pi * rho * s
        eye = np.stack([r * np.sin(th), 0.2 * r * (np.cos(th) - 1), np.zeros(n)], -1)
    else:
        th = (float(preset) * np.pi / 180) * rho * s
        eye = np.stack([r * np.sin(th), 0.2 * r * (np.abs(np.cos(th)) - 1), r * (1 - np.abs(np.cos(th)))], -1)
    return eye, np.array([0.0, 0.0, r])


def doc_look_at(eye, c):
    f = (c - eye) / np.linalg.norm(c - eye)
    s = np.cross(f, [0.0, 1.0, 0.0])
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    R = np.stack([s, u, f])
    return R, -R @ eye


def test_frame_scale_matches_doc():
    assert frame_scale(49) == 1.0
    assert frame_scale(25) == pytest.approx(49 / 25)
    assert frame_scale(81) == pytest.approx(81 / 49)
    assert [frame_scale(n) for n in (10, 48, 49, 50, 97)] == pytest.approx([doc_rho(n) for n in (10, 48, 49, 50, 97)])


@pytest.mark.parametrize("n", [49, 25, 81])
@pytest.mark.parametrize("preset", ["30", "60", "90", "180"])
def test_reference_presets_reproduce_doc(preset, n):
    w2c = trajectory_from_preset(preset)(n, MIN_DEPTH).numpy()
    eyes, c = doc_eyes(preset, n, MIN_DEPTH)
    assert w2c.shape == (n, 4, 4) and w2c.dtype == np.float64
    np.testing.assert_allclose(camera_centers(torch.from_numpy(w2c)).numpy(), eyes, atol=1e-6)
    flip = np.diag([-1.0, 1.0, 1.0])  # our OpenCV w2c = diag(-1, 1, 1) @ the reference's [s; u; f]
    for i in range(n):
        R, t = doc_look_at(eyes[i], c)
        np.testing.assert_allclose(w2c[i, :3, :3], flip @ R, atol=1e-6)
        np.testing.assert_allclose(w2c[i, :3, 3], flip @ t, atol=1e-6)
        # optical axis (row 2 of R) = the reference's forward f
        np.testing.assert_allclose(w2c[i, 2, :3], (c - eyes[i]) / np.linalg.norm(c - eyes[i]), atol=1e-6)


def test_reference_angles_at_the_ends():
    """rho: "90" reaches 90 degrees only at N = 49; at N = 81 it reaches 148.8 (folded back by |cos|)."""
    r = MIN_DEPTH + 0.15
    for n, theta_deg in [(49, 90.0), (81, 90 * 81 / 49), (25, 90 * 49 / 25)]:
        eye = camera_centers(ReferenceOrbit(90)(n, MIN_DEPTH))[-1]
        th = math.radians(theta_deg)
        assert eye[0].item() == pytest.approx(r * math.sin(th), abs=1e-9)
        assert eye[2].item() == pytest.approx(r * (1 - abs(math.cos(th))), abs=1e-9)
    # without the rescale the nominal angle holds at any N
    eye = camera_centers(ReferenceOrbit(90, frame_rescale=False)(81, MIN_DEPTH))[-1]
    assert eye.tolist() == pytest.approx([r, -0.2 * r, r], abs=1e-9)


def test_loop180_stays_in_z0_and_within_45_degrees_yaw():
    w2c = ReferenceLoop180()(49, MIN_DEPTH)
    eyes = camera_centers(w2c)
    assert eyes[:, 2].abs().max() < 1e-12
    fwd = w2c[:, 2, :3]
    yaw = torch.rad2deg(torch.atan2(fwd[:, 0], fwd[:, 2]))
    pitch = torch.rad2deg(torch.asin(-fwd[:, 1]))
    assert yaw.abs().max().item() == pytest.approx(45.0, abs=0.5)
    assert pitch.abs().max().item() == pytest.approx(21.8, abs=0.1)
    assert torch.allclose(w2c[-1], EYE4, atol=1e-12)  # closed loop at N = 49


def _all_trajectories():
    return {
        "ref30": ReferenceOrbit(30),
        "ref90_n": ReferenceOrbit(90, frame_rescale=False),
        "ref180": ReferenceLoop180(),
        "orbit": Orbit(0, 90),
        "orbit_rise_pitch_leadin": Orbit(-30, 60, pitch_deg=15, rise=0.2, lead_in=True),
        "full_leadin": Orbit(-90, 90, lead_in=True),
        "full_no_leadin": Orbit(-90, 90),
        "arc": Arc(0, 60, 0, 20),
        "arc_down": Arc(0, -45, 0, -30),
        "orbit_dolly_in": Orbit(0, 90, dolly=0.5),
        "arc_dolly_out": Arc(0, 60, 0, 20, dolly=-0.5),
        "zoom_in": Dolly("in"),
        "zoom_out": Dolly("out", distance=2.0),
    }


@pytest.mark.parametrize("name", list(_all_trajectories()))
def test_every_pose_looks_at_pivot_and_is_rigid(name):
    traj = _all_trajectories()[name]
    w2c = traj(33, MIN_DEPTH)
    c = traj.pivot(MIN_DEPTH)
    assert c.tolist() == pytest.approx([0.0, 0.0, MIN_DEPTH + 0.15])
    cam = w2c[:, :3, :3] @ c + w2c[:, :3, 3]
    torch.testing.assert_close(cam[:, :2], torch.zeros(33, 2, dtype=torch.float64), atol=1e-9, rtol=0)
    assert (cam[:, 2] > 0).all()
    R = w2c[:, :3, :3]
    eye3 = torch.eye(3, dtype=torch.float64).expand(33, 3, 3)
    torch.testing.assert_close(R @ R.transpose(1, 2), eye3, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(33, dtype=torch.float64), atol=1e-12, rtol=0)
    # no image roll: the camera x axis stays horizontal (up = world -y is preserved)
    assert w2c[:, 0, 1].abs().max() < 1e-12
    if name != "full_no_leadin":
        assert starts_at_source(w2c)
        assert torch.equal(w2c[0], EYE4)


def test_orbit_without_lead_in_starts_at_start_yaw():
    r = MIN_DEPTH + 0.15
    w2c = Orbit(-90, 90)(49, MIN_DEPTH)
    assert not starts_at_source(w2c)
    eyes = camera_centers(w2c)
    assert eyes[0].tolist() == pytest.approx([-r, 0.0, r], abs=1e-9)
    assert eyes[-1].tolist() == pytest.approx([r, 0.0, r], abs=1e-9)
    assert eyes[24].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)  # passes the source at mid-path
    torch.testing.assert_close((eyes - torch.tensor([0, 0, r], dtype=torch.float64)).norm(dim=-1),
                               torch.full((49,), r, dtype=torch.float64), atol=1e-12, rtol=0)  # a true orbit


def test_orbit_lead_in_goes_out_then_sweeps():
    r = MIN_DEPTH + 0.15
    eyes = camera_centers(Orbit(-90, 90, lead_in=True)(28, MIN_DEPTH))  # 270 deg of travel, 10 deg a step
    yaw = torch.rad2deg(torch.atan2(eyes[:, 0], r - eyes[:, 2]))
    expected = [-10.0 * i for i in range(10)] + [-90.0 + 10.0 * (i - 9) for i in range(10, 28)]
    assert yaw.tolist() == pytest.approx(expected, abs=1e-9)


def test_orbit_with_rise_matches_reference_orbit():
    """Orbit(0, A, rise=0.2) is the reference A preset without rho, for A <= 90."""
    a = Orbit(0, 90, rise=0.2)(49, MIN_DEPTH)
    b = ReferenceOrbit(90, frame_rescale=True)(49, MIN_DEPTH)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_arc_pitch_raises_camera():
    w2c = Arc(0, 0, 0, 30)(7, MIN_DEPTH)
    eyes = camera_centers(w2c)
    r = MIN_DEPTH + 0.15
    p = math.radians(30)
    assert eyes[-1].tolist() == pytest.approx([0.0, -r * math.sin(p), r * (1 - math.cos(p))])
    assert (eyes[1:, 1] < 0).all()  # above the source (OpenCV y is down)


def test_dolly_in_and_out():
    r = MIN_DEPTH + 0.15
    w2c_in = Dolly("in", fraction=0.5)(5, MIN_DEPTH)
    assert torch.equal(w2c_in[:, :3, :3], EYE4[:3, :3].expand(5, 3, 3))
    assert camera_centers(w2c_in)[:, 2].tolist() == pytest.approx([0.5 * r * i / 4 for i in range(5)])
    w2c_out = Dolly("out", distance=3.0)(5, MIN_DEPTH)
    assert camera_centers(w2c_out)[:, 2].tolist() == pytest.approx([-0.75 * i for i in range(5)])
    with pytest.raises(InputError, match="distance"):
        Dolly("in", distance=10.0)(5, MIN_DEPTH)


def test_dolly_while_orbiting_closes_in_on_the_pivot_and_keeps_the_view_direction():
    r = MIN_DEPTH + 0.15
    c = torch.tensor([0.0, 0.0, r], dtype=torch.float64)
    plain = Orbit(0, 90)(5, MIN_DEPTH)
    w2c = Orbit(0, 90, dolly=0.5)(5, MIN_DEPTH)
    dist = (camera_centers(w2c) - c).norm(dim=-1)
    assert dist.tolist() == pytest.approx([r * (1 - 0.5 * i / 4) for i in range(5)], abs=1e-12)
    torch.testing.assert_close(w2c[:, :3, :3], plain[:, :3, :3], atol=1e-12, rtol=0)  # same look-at rays
    away = Arc(0, 60, 0, 20, dolly=-1.0)(3, MIN_DEPTH)
    assert (camera_centers(away)[-1] - c).norm().item() == pytest.approx(2 * r)
    torch.testing.assert_close(Orbit(0, 90, dolly=0.0)(5, MIN_DEPTH), plain, atol=0, rtol=0)


@pytest.mark.parametrize("bad", [
    lambda: Orbit(dolly=1.0), lambda: Arc(dolly=float("inf")),
    lambda: Dolly("sideways"), lambda: Dolly("in", fraction=1.0), lambda: Dolly("out", fraction=-1),
    lambda: Arc(pitch_end_deg=90), lambda: Orbit(0, float("nan")), lambda: FileTrajectory("x.json", convention="gl"),
])
def test_bad_arguments_raise_input_error(bad):
    with pytest.raises(InputError, match="camera\\."):
        bad()


def test_bad_call_arguments():
    with pytest.raises(InputError, match="num_frames"):
        ReferenceOrbit()(0, MIN_DEPTH)
    with pytest.raises(InputError, match="min_depth"):
        ReferenceOrbit()(49, float("nan"))
    with pytest.raises(InputError, match="min_depth"):
        ReferenceOrbit()(49, None)


def test_single_frame_is_source():
    for traj in _all_trajectories().values():
        if isinstance(traj, Orbit) and not traj.lead_in and traj.yaw_start_deg != 0:
            continue
        assert torch.equal(traj(1, MIN_DEPTH), EYE4[None])


def test_presets():
    assert set(PRESETS) == {"30", "60", "90", "180", "zoom_in", "zoom_out"}
    assert isinstance(trajectory_from_preset("60"), ReferenceOrbit) and trajectory_from_preset("60").angle_deg == 60
    assert isinstance(trajectory_from_preset(90), ReferenceOrbit)  # Hydra may hand over an int
    assert isinstance(trajectory_from_preset("180"), ReferenceLoop180)
    assert trajectory_from_preset("zoom_out").direction == "out"
    assert trajectory_from_preset("45").angle_deg == 45.0  # the reference accepts any int(cam)
    assert trajectory_from_preset("90", frame_rescale=False).frame_rescale is False
    with pytest.raises(InputError, match="zoom_in") as e:
        trajectory_from_preset("spiral")
    assert "'spiral'" in str(e.value) and "180" in str(e.value)


# ---- per-frame intrinsics ----

K_SRC = intrinsics(384, 512)


@pytest.mark.parametrize("name", list(_all_trajectories()))
def test_paths_without_zoom_give_the_source_K_for_every_frame(name):
    K_T33 = _all_trajectories()[name].intrinsics(33, K_SRC, MIN_DEPTH)
    assert K_T33.shape == (33, 3, 3) and K_T33.dtype == torch.float64
    assert torch.equal(K_T33, K_SRC.expand(33, 3, 3))


@pytest.mark.parametrize("direction", ["in", "out"])
def test_dolly_zoom_keeps_the_pivot_plane_and_moves_the_background(direction):
    n, r = 9, MIN_DEPTH + 0.15
    traj = DollyZoom(direction, fraction=0.5)
    w2c, K_T33 = traj(n, MIN_DEPTH), traj.intrinsics(n, K_SRC, MIN_DEPTH)
    assert torch.equal(w2c, Dolly(direction, fraction=0.5)(n, MIN_DEPTH))  # the same camera path as the dolly
    z = camera_centers(w2c)[:, 2]
    torch.testing.assert_close(K_T33[:, 0, 0], 500.0 * (r - z) / r, atol=1e-9, rtol=0)
    assert torch.equal(K_T33[:, :, 2], K_SRC[:, 2].expand(n, 3))  # principal point fixed
    assert torch.equal(K_T33[0], K_SRC)
    # a point on the pivot plane stays where it is in the image; a point twice as far moves
    pts = torch.tensor([[0.8, -0.5, r], [0.8, -0.5, 2 * r]], dtype=torch.float64).expand(n, 2, 3)
    uv, _ = project(pts, K_T33, w2c)
    torch.testing.assert_close(uv[:, 0], uv[:1, 0].expand(n, 2), atol=1e-9, rtol=0)
    off_centre = (uv[:, 1] - K_SRC[:2, 2]).norm(dim=-1)
    assert (off_centre.diff() < 0).all() if direction == "in" else (off_centre.diff() > 0).all()


def test_focal_zoom_is_a_geometric_focal_ramp_from_the_source():
    n = 5
    traj = FocalZoom(focal_scale_end=0.5)
    assert torch.equal(traj(n, MIN_DEPTH), EYE4.expand(n, 4, 4))
    K_T33 = traj.intrinsics(n, K_SRC, MIN_DEPTH)
    assert torch.equal(K_T33[0], K_SRC)
    assert K_T33[:, 0, 0].tolist() == pytest.approx([500.0 * 0.5 ** (i / 4) for i in range(n)])
    assert torch.equal(K_T33[:, 0, 0], K_T33[:, 1, 1]) and torch.equal(K_T33[:, :, 2], K_SRC[:, 2].expand(n, 3))
    ratios = K_T33[1:, 0, 0] / K_T33[:-1, 0, 0]
    torch.testing.assert_close(ratios, ratios[:1].expand(n - 1), atol=1e-12, rtol=0)  # constant zoom rate
    with pytest.raises(InputError, match="camera.focal_scale_end"):
        FocalZoom(focal_scale_end=0.0)


def test_long_clips_keep_the_reference_frame_rescale():
    """Paths are defined over the whole clip; at N = 97 the reference's rho = 97/49 takes ref_90 to 178 degrees."""
    th = math.radians(90 * 97 / 49)
    r = MIN_DEPTH + 0.15
    eye = camera_centers(ReferenceOrbit(90)(97, MIN_DEPTH))[-1]
    assert eye.tolist() == pytest.approx([r * math.sin(th), 0.2 * r * (abs(math.cos(th)) - 1), r * (1 - abs(math.cos(th)))])
    eye_nominal = camera_centers(ReferenceOrbit(90, frame_rescale=False)(97, MIN_DEPTH))[-1]
    assert eye_nominal.tolist() == pytest.approx([r, -0.2 * r, r])  # 90 degrees exactly
    assert camera_centers(Orbit(0, 90)(97, MIN_DEPTH))[-1].tolist() == pytest.approx([r, 0.0, r])


# ---- FileTrajectory ----

def _write(path, **arrays):
    if path.suffix == ".json":
        path.write_text(json.dumps({k: np.asarray(v).tolist() for k, v in arrays.items()}))
    else:
        np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_file_trajectory_conventions(tmp_path, suffix):
    w2c = Orbit(0, 75, pitch_deg=5, lead_in=True)(9, MIN_DEPTH)
    c2w = torch.linalg.inv(w2c)
    f_w2c = _write(tmp_path / f"a{suffix}", w2c=w2c.numpy())
    f_c2w = _write(tmp_path / f"b{suffix}", c2w=c2w.numpy())
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    f_ref = _write(tmp_path / f"c{suffix}", extrinsics=flip @ w2c.numpy())
    assert torch.equal(FileTrajectory(f_w2c)(9), w2c)
    torch.testing.assert_close(FileTrajectory(f_c2w)(9, MIN_DEPTH), w2c, atol=1e-12, rtol=0)
    torch.testing.assert_close(FileTrajectory(f_c2w, convention="c2w")(9), w2c, atol=1e-12, rtol=0)
    assert torch.equal(FileTrajectory(f_ref, convention="reference_npz")(9), w2c)
    assert torch.equal(FileTrajectory(f_ref)(9), w2c)  # auto finds 'extrinsics'


def test_file_trajectory_reads_only_on_call(tmp_path):
    traj = FileTrajectory(tmp_path / "later.json")  # constructing touches nothing
    w2c = ReferenceOrbit(30)(49, MIN_DEPTH)
    _write(tmp_path / "later.json", w2c=w2c.numpy())
    assert torch.equal(traj(49), w2c)


def _zoom_K(n):
    """(n, 3, 3) intrinsics of a zoom: focal 500 -> 300 px."""
    K = K_SRC.expand(n, 3, 3).clone()
    K[:, 0, 0] = K[:, 1, 1] = torch.linspace(500.0, 300.0, n, dtype=torch.float64)
    return K


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_file_trajectory_per_frame_intrinsics(tmp_path, suffix):
    w2c = Orbit(0, 40)(5, MIN_DEPTH)
    zoom, single = _zoom_K(5), intrinsics(100, 200, 700.0)
    f_zoom = _write(tmp_path / f"zoom{suffix}", w2c=w2c.numpy(), K=zoom.numpy())
    f_ref = _write(tmp_path / f"ref{suffix}", extrinsics=(np.diag([1.0, -1, -1, 1]) @ w2c.numpy()),
                   intrinsics=zoom.numpy())  # the reference npz key, one per frame
    f_single = _write(tmp_path / f"single{suffix}", w2c=w2c.numpy(), K=single.numpy())
    f_none = _write(tmp_path / f"none{suffix}", w2c=w2c.numpy())
    src = K_SRC.expand(5, 3, 3)
    assert torch.equal(FileTrajectory(f_zoom).intrinsics(5, K_SRC), zoom)  # auto: per-frame K is used
    assert torch.equal(FileTrajectory(f_ref).intrinsics(5, K_SRC), zoom)
    assert torch.equal(FileTrajectory(f_single).intrinsics(5, K_SRC), src)  # auto: a single K is ignored
    assert torch.equal(FileTrajectory(f_none).intrinsics(5, K_SRC), src)
    assert torch.equal(FileTrajectory(f_single, file_intrinsics="use").intrinsics(5, K_SRC), single.expand(5, 3, 3))
    assert torch.equal(FileTrajectory(f_zoom, file_intrinsics="ignore").intrinsics(5, K_SRC), src)
    with pytest.raises(InputError, match="camera.file_intrinsics=use but the file has no 'K'"):
        FileTrajectory(f_none, file_intrinsics="use").validate(5)
    with pytest.raises(InputError, match="camera.file_intrinsics must be one of"):
        FileTrajectory(f_zoom, file_intrinsics="maybe")
    with pytest.raises(InputError, match="has 5 poses but the clip has 9 frames"):
        FileTrajectory(f_zoom).intrinsics(9, K_SRC)
    # resampled with the poses: linearly in the frame index
    K9 = FileTrajectory(f_zoom, resample=True).intrinsics(9, K_SRC)
    torch.testing.assert_close(K9, _zoom_K(9), atol=1e-12, rtol=0)


def _malformed_cases(tmp_path):
    good = ReferenceOrbit(60)(5, MIN_DEPTH).numpy()
    scaled = good.copy()
    scaled[2, :3, :3] *= 1.1
    mirrored = good.copy()
    mirrored[3, 0, :3] *= -1
    nan = good.copy()
    nan[1, 0, 3] = np.nan
    last_row = good.copy()
    last_row[0, 3] = [0, 0, 1, 1]
    return {
        "shape": (_write(tmp_path / "shape.npz", w2c=good[:, :3, :]), "shape (N, 4, 4)"),
        "shape_json": (_write(tmp_path / "shape.json", w2c=good[0]), "shape (N, 4, 4)"),
        "ragged_json": (tmp_path / "ragged.json", "not a numeric"),
        "non_rigid": (_write(tmp_path / "scaled.npz", w2c=scaled), "frame 2 rotation"),
        "mirrored": (_write(tmp_path / "mirror.json", w2c=mirrored), "det -1"),
        "nan": (_write(tmp_path / "nan.npz", w2c=nan), "NaN"),
        "last_row": (_write(tmp_path / "lastrow.npz", w2c=last_row), "last row"),
        "frames": (_write(tmp_path / "frames.npz", w2c=good), "has 5 poses but the clip has 7 frames"),
        "missing_key": (_write(tmp_path / "key.npz", poses=good), "no pose key"),
        "missing_key_json": (_write(tmp_path / "key.json", cams=good), "no pose key"),
        "corrupt_npz": (tmp_path / "corrupt.npz", "not a readable .npz"),
        "corrupt_json": (tmp_path / "corrupt.json", "not a readable JSON"),
        "not_object_json": (tmp_path / "list.json", "JSON object"),
        "missing_file": (tmp_path / "nope.npz", "not found"),
        "suffix": (tmp_path / "poses.txt", "unsupported"),
        "inconsistent": (_write(tmp_path / "both.json", w2c=good, c2w=good), "not inverses"),
        "empty": (_write(tmp_path / "empty.json", w2c=np.zeros((0, 4, 4))), "N >= 1"),
        "K_zero": (_write(tmp_path / "kzero.json", w2c=good, K=np.zeros((3, 3))), "'K' must be"),
        "K_nan": (_write(tmp_path / "knan.npz", w2c=good, K=np.full((3, 3), np.nan)), "'K' has NaN"),
        "intrinsics_singular": (_write(tmp_path / "ksing.npz", extrinsics=good,
                                       intrinsics=np.diag([500.0, 500.0, 0.0])), "'intrinsics' must be"),
        "K_count": (_write(tmp_path / "kcount.json", w2c=good, K=np.tile(K_SRC.numpy(), (4, 1, 1))),
                    "'K' has 4 per-frame matrices but the path has 5 frames"),
        "K_frame_bad": (_write(tmp_path / "kframe.npz", w2c=good, K=np.stack([K_SRC.numpy()] * 4 + [np.eye(3) * 0])),
                        "'K[4]' must be"),
    }


MALFORMED = [
    "shape", "shape_json", "ragged_json", "non_rigid", "mirrored", "nan", "last_row", "frames", "missing_key",
    "missing_key_json", "corrupt_npz", "corrupt_json", "not_object_json", "missing_file", "suffix", "inconsistent",
    "empty", "K_zero", "K_nan", "intrinsics_singular", "K_count", "K_frame_bad",
]


def test_malformed_case_list_is_complete(tmp_path):
    assert list(_malformed_cases(tmp_path)) == MALFORMED


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_trajectory_files_raise_input_error(tmp_path, case):
    (tmp_path / "ragged.json").write_text('{"w2c": [[[1, 0, 0, 0], [0, 1, 0]], [[1]]]}')
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 this is not really a zip archive")
    (tmp_path / "corrupt.json").write_text('{"w2c": [[1, 0, 0')
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "poses.txt").write_text("1 0 0 0")
    path, message = _malformed_cases(tmp_path)[case]
    with pytest.raises(InputError) as e:
        FileTrajectory(path)(7 if case == "frames" else 5)
    assert str(path) in str(e.value)
    assert message in str(e.value)


def test_explicit_convention_requires_its_key(tmp_path):
    path = _write(tmp_path / "a.npz", w2c=np.eye(4)[None])
    with pytest.raises(InputError, match="missing key 'c2w'") as e:
        FileTrajectory(path, convention="c2w")(1)
    assert str(path) in str(e.value)


def test_file_trajectory_resample(tmp_path):
    w2c = Orbit(0, 90)(5, MIN_DEPTH)
    path = _write(tmp_path / "five.npz", w2c=w2c.numpy())
    out = FileTrajectory(path, resample=True)(17)
    assert out.shape == (17, 4, 4)
    # every 4th frame is an original pose; between them slerp spreads the yaw evenly (the centres are
    # interpolated on the chord, so only the rotations are checked against the finer orbit)
    torch.testing.assert_close(out[::4], w2c, atol=1e-12, rtol=0)
    yaw = torch.rad2deg(torch.atan2(out[:, 2, 0], out[:, 2, 2]))
    assert (-yaw).tolist() == pytest.approx([90.0 * i / 16 for i in range(17)], abs=1e-9)
    R = out[:, :3, :3]
    eye3 = torch.eye(3, dtype=torch.float64).expand(17, 3, 3)
    torch.testing.assert_close(R @ R.transpose(1, 2), eye3, atol=1e-12, rtol=0)
    assert torch.equal(resample_w2c(w2c, 5), w2c)


# ---- configs ----

def _conf_files():
    return sorted(p.name for p in CONF_DIR.glob("*.yaml"))


def test_every_required_camera_option_exists():
    assert set(_conf_files()) >= {
        "ref_30.yaml", "ref_60.yaml", "ref_90.yaml", "ref_180.yaml", "orbit.yaml", "full_180.yaml",
        "arc.yaml", "zoom_in.yaml", "zoom_out.yaml", "file.yaml",
    }


@pytest.mark.parametrize("name", _conf_files())
def test_camera_config_instantiates_and_runs(tmp_path, name):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF_DIR / name)
    if name == "file.yaml":
        assert OmegaConf.is_missing(cfg, "path")  # mandatory
        cfg.path = str(tmp_path / "poses.json")  # not there yet: constructing must not read it
        traj = instantiate(cfg)
        _write(tmp_path / "poses.json", w2c=ReferenceOrbit(30)(49, MIN_DEPTH).numpy())
    else:
        traj = instantiate(cfg)
    w2c = traj(49, MIN_DEPTH)
    assert w2c.shape == (49, 4, 4) and w2c.dtype == torch.float64
    assert starts_at_source(w2c)
    K = intrinsics(48, 64)
    K_T33 = traj.intrinsics(49, K, MIN_DEPTH)
    assert K_T33.shape == (49, 3, 3) and torch.equal(K_T33[0], K)  # frame 0 is the source camera, K included
    moved, zoomed = not torch.allclose(w2c[-1], EYE4), not torch.equal(K_T33[-1], K)
    assert moved or zoomed or name == "ref_180.yaml"


def test_reference_configs_equal_presets():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    for name in ("30", "60", "90", "180", "zoom_in", "zoom_out"):
        fname = f"ref_{name}.yaml" if name[0].isdigit() else f"{name}.yaml"
        a = instantiate(OmegaConf.load(CONF_DIR / fname))(49, MIN_DEPTH)
        b = trajectory_from_preset(name)(49, MIN_DEPTH)
        assert torch.equal(a, b), name


@pytest.mark.parametrize("make,key", [
    (lambda: Orbit(lead_in="maybe"), "camera.lead_in"),
    (lambda: ReferenceOrbit(60, frame_rescale="abc"), "camera.frame_rescale"),
    (lambda: FileTrajectory("x.json", resample="no"), "camera.resample"),
    (lambda: FileTrajectory(None), "camera.path"),
    (lambda: Orbit(yaw_end_deg="ninety"), "camera.yaw_end_deg"),
])
def test_bad_camera_option_values_name_the_key(make, key):
    with pytest.raises(InputError, match=key):
        make()


def test_a_camera_file_is_validated_against_the_frame_count_without_depth(tmp_path):
    path = _write(tmp_path / "five.json", w2c=ReferenceOrbit(60)(5, MIN_DEPTH).numpy())
    FileTrajectory(path).validate(5)
    with pytest.raises(InputError, match=r"five.json: has 5 poses but the clip has 9 frames.*data.num_frames=5"):
        FileTrajectory(path).validate(9)
    FileTrajectory(path, resample=True).validate(9)
