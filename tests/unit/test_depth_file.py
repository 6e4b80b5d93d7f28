"""FileDepthBackend: formats, scales, and errors that name the file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ex4d.depth import EX4D_NEAR, FileDepthBackend, disparity_to_ex4d_depth
from ex4d.utils.errors import InputError

T, H, W = 3, 6, 8


@pytest.fixture
def frames():
    return torch.zeros(T, H, W, 3, dtype=torch.uint8)


def _depth(rng, shape=(T, H, W)):
    return rng.uniform(2.0, 50.0, size=shape).astype(np.float32)


def test_npz_ex4d_depth_is_used_as_is_with_its_K(tmp_path, frames, rng):
    d = _depth(rng)
    K = np.array([[400.0, 0, 4.0], [0, 410.0, 3.0], [0, 0, 1]])
    np.savez(tmp_path / "clip_depth.npz", depth=d, K=K)
    r = FileDepthBackend(tmp_path / "clip_depth.npz")(frames)
    assert torch.equal(r.depth, torch.from_numpy(d))
    assert torch.equal(r.K, torch.from_numpy(K)) and r.K.dtype == torch.float64
    assert r.info["path"].endswith("clip_depth.npz")


def test_default_path_is_beside_the_video(tmp_path, frames, rng):
    d = _depth(rng)
    np.savez(tmp_path / "walk_depth.npz", depth=d)
    r = FileDepthBackend()(frames, source=str(tmp_path / "walk.mp4"))
    assert torch.equal(r.depth, torch.from_numpy(d))
    assert r.K[0, 0] == 500.0 and r.K[0, 2] == W / 2  # no K in the file: the reference pinhole
    with pytest.raises(InputError, match="depth.path is not set"):
        FileDepthBackend()(frames, source="example:motorcycle")


def test_npy_disparity_is_normalised_over_the_clip(tmp_path, frames, rng):
    disp = rng.uniform(0.0, 3.0, size=(T, H, W)).astype(np.float32)
    np.save(tmp_path / "d.npy", disp)
    r = FileDepthBackend(tmp_path / "d.npy", kind="disparity", scale="normalize")(frames)
    assert torch.allclose(r.depth, disparity_to_ex4d_depth(torch.from_numpy(disp)))
    assert float(r.depth.min()) == pytest.approx(EX4D_NEAR, abs=1e-4)
    assert float(r.depth.max()) == 1e4


def test_depth_normalize_equals_normalising_inverse_depth(tmp_path, frames, rng):
    d = _depth(rng)
    np.save(tmp_path / "d.npy", d)
    r = FileDepthBackend(tmp_path / "d.npy", scale="normalize")(frames)
    assert torch.allclose(r.depth, disparity_to_ex4d_depth(1.0 / torch.from_numpy(d).double()), rtol=1e-5)


def test_depthcrafter_saved_npz_reads_as_normalised_disparity(tmp_path, frames, rng):
    # DepthCrafter's run.py saves the clip-normalised disparity under the key "depth".
    disp = rng.uniform(0.0, 1.0, size=(T, H, W)).astype(np.float32)
    disp.flat[0], disp.flat[1] = 0.0, 1.0
    np.savez(tmp_path / "dc.npz", depth=disp)
    r = FileDepthBackend(tmp_path / "dc.npz", kind="disparity", scale="ex4d", key="depth")(frames)
    assert torch.allclose(r.depth, disparity_to_ex4d_depth(torch.from_numpy(disp)))
    np.savez(tmp_path / "raw.npz", disparity=disp * 5)
    with pytest.raises(InputError, match="raw.npz.*normalised to"):
        FileDepthBackend(tmp_path / "raw.npz", kind="disparity", scale="ex4d")(frames)


def test_similarity_keeps_ratios_and_reports_metric_scale(tmp_path, frames, rng):
    d = _depth(rng)
    np.save(tmp_path / "m.npy", d)
    r = FileDepthBackend(tmp_path / "m.npy", scale="similarity", metric=True)(frames)
    assert float(r.depth.min()) == pytest.approx(EX4D_NEAR, abs=1e-4)
    assert r.metric_scale == pytest.approx(EX4D_NEAR / d.min())
    assert torch.allclose(r.depth / torch.from_numpy(d), torch.full((T, H, W), r.metric_scale), rtol=1e-5)


def test_png_folder_with_scale(tmp_path, frames, rng):
    mm = rng.integers(1000, 60000, size=(T, H, W)).astype(np.uint16)
    for i, m in enumerate(mm):
        cv2.imwrite(str(tmp_path / f"{i:05d}.png"), m)
    r = FileDepthBackend(tmp_path, png_scale=0.001, scale="similarity", metric=True)(frames)
    assert r.metric_scale == pytest.approx(EX4D_NEAR / (mm.min() * 0.001), rel=1e-5)
    assert torch.allclose(r.depth, torch.from_numpy(mm.astype(np.float32) * 0.001) * r.metric_scale, rtol=1e-5)


def test_png_folder_errors_name_the_png(tmp_path, frames):
    cv2.imwrite(str(tmp_path / "00000.png"), np.full((H, W), 1000, np.uint16))
    holes = np.full((H, W), 1000, np.uint16)
    holes[0, 0] = 0
    cv2.imwrite(str(tmp_path / "00001.png"), holes)
    with pytest.raises(InputError, match="00001.png.*0"):
        FileDepthBackend(tmp_path)(frames[:2])
    cv2.imwrite(str(tmp_path / "00001.png"), np.full((H, W), 7, np.uint8))
    with pytest.raises(InputError, match="00001.png.*16-bit"):
        FileDepthBackend(tmp_path)(frames[:2])


def test_resize_to_frames_size_and_scales_K(tmp_path, frames, rng):
    d = _depth(rng, (T, H * 2, W * 2))
    K = np.array([[800.0, 0, 8.0], [0, 800.0, 6.0], [0, 0, 1]])
    np.savez(tmp_path / "big.npz", depth=d, K=K)
    with pytest.raises(InputError, match=r"big.npz.*12x16.*6x8"):
        FileDepthBackend(tmp_path / "big.npz")(frames)
    r = FileDepthBackend(tmp_path / "big.npz", resize=True)(frames)
    assert r.depth.shape == (T, H, W)
    assert set(r.depth.unique().tolist()) <= set(np.unique(d).tolist())  # nearest: only real samples
    assert torch.allclose(r.K, torch.tensor([[400.0, 0, 4.0], [0, 400.0, 3.0], [0, 0, 1]], dtype=torch.float64))


def test_trim_longer_file(tmp_path, frames, rng):
    d = _depth(rng, (T + 2, H, W))
    np.save(tmp_path / "long.npy", d)
    with pytest.raises(InputError, match=r"long.npy.*5 frames.*3.*depth.trim"):
        FileDepthBackend(tmp_path / "long.npy")(frames)
    r = FileDepthBackend(tmp_path / "long.npy", trim=True)(frames)
    assert torch.equal(r.depth, torch.from_numpy(d[:T]))


def _nan(d):
    d[0, 1, 1] = np.nan
    return d


def _inf(d):
    d[1, 0, 0] = np.inf
    return d


def _zero(d):
    d[2, 3, 3] = 0.0
    return d


def _negative(d):
    d[0, 0, 0] = -1.0
    return d


@pytest.mark.parametrize("corrupt,match", [
    (_nan, "NaN or inf"), (_inf, "NaN or inf"), (_zero, "<= 0"), (_negative, "<= 0"),
    (lambda d: d[0], "shape|frames"),          # (H, W): one frame for a 3-frame clip
    (lambda d: d[:, None], r"shape \(T, H, W\)"),  # 4-D
    (lambda d: d[:2], "2 frames.*3"),          # frame count mismatch
    (lambda d: d[:, :, :5], "6x5.*6x8"),       # wrong size
    (lambda d: np.full_like(d, 7.0), "every depth value is 7, a constant map"),
    (lambda d: d[:0], "empty"),
    (lambda d: d * 1e5, r"scale=ex4d expects EX-4D depth in \[0.0001, 10000\]"),  # metres in mm, say
])
def test_bad_depth_values_raise_naming_the_file(tmp_path, frames, rng, corrupt, match):
    path = tmp_path / "bad_depth.npz"
    np.savez(path, depth=corrupt(_depth(rng)))
    with pytest.raises(InputError, match=match) as e:
        FileDepthBackend(path)(frames)
    assert "bad_depth.npz" in str(e.value)


def test_disparity_nan_raises(tmp_path, frames, rng):
    disp = rng.uniform(size=(T, H, W)).astype(np.float32)
    disp[1, 2, 2] = np.nan
    np.save(tmp_path / "disp.npy", disp)
    with pytest.raises(InputError, match="disp.npy.*NaN"):
        FileDepthBackend(tmp_path / "disp.npy", kind="disparity", scale="normalize")(frames)
    np.save(tmp_path / "flat.npy", np.ones((T, H, W), np.float32))
    with pytest.raises(InputError, match="flat.npy.*constant"):
        FileDepthBackend(tmp_path / "flat.npy", kind="disparity", scale="normalize")(frames)


def test_missing_corrupt_and_wrong_key(tmp_path, frames, rng):
    with pytest.raises(InputError, match="nowhere.npz.*not found"):
        FileDepthBackend(tmp_path / "nowhere.npz")(frames)
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(InputError, match="broken.npz.*cannot read"):
        FileDepthBackend(tmp_path / "broken.npz")(frames)
    np.save(tmp_path / "trunc.npy", _depth(rng))
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "trunc.npy").read_bytes()[:100])
    with pytest.raises(InputError, match="trunc.npy.*cannot read"):
        FileDepthBackend(tmp_path / "trunc.npy")(frames)
    np.savez(tmp_path / "other.npz", foo=_depth(rng))
    with pytest.raises(InputError, match=r"other.npz.*'depth'.*\['foo'\]"):
        FileDepthBackend(tmp_path / "other.npz")(frames)
    (tmp_path / "d.txt").write_text("1 2 3")
    with pytest.raises(InputError, match="d.txt.*unsupported"):
        FileDepthBackend(tmp_path / "d.txt")(frames)
    with pytest.raises(InputError, match="empty.*no .png"):
        (tmp_path / "empty").mkdir()
        FileDepthBackend(tmp_path / "empty")(frames)


def test_bad_options_are_named():
    with pytest.raises(InputError, match="depth.kind"):
        FileDepthBackend(kind="normals")
    with pytest.raises(InputError, match="depth.scale"):
        FileDepthBackend(scale="metric")
    with pytest.raises(InputError, match="similarity needs depth.kind=depth"):
        FileDepthBackend(kind="disparity", scale="similarity")


@pytest.mark.parametrize("K,match", [
    (np.zeros((3, 3)), "fx, fy > 0"),
    (np.full((3, 3), np.nan), "NaN"),
    (np.array([[-500.0, 0, 4], [0, 500, 3], [0, 0, 1]]), "fx, fy > 0"),
    (np.array([[500.0, 0, 4], [0, 500, 3], [0, 0, 0]]), r"\[0, 0, 1\]"),  # singular: last row zero
    (np.eye(4), r"shape \(3, 3\)"),
])
def test_bad_intrinsics_in_a_depth_file_name_the_file(tmp_path, frames, rng, K, match):
    np.savez(tmp_path / "with_K.npz", depth=_depth(rng), K=K)
    with pytest.raises(InputError, match=match) as e:
        FileDepthBackend(tmp_path / "with_K.npz")(frames)
    assert "with_K.npz" in str(e.value) and "'K'" in str(e.value)


@pytest.mark.parametrize("kw,key", [({"focal_px": 0}, "depth.focal_px"), ({"focal_px": float("nan")}, "depth.focal_px"),
                                    ({"png_scale": -1}, "depth.png_scale"), ({"resize": "yes"}, "depth.resize"),
                                    ({"trim": 1}, "depth.trim")])
def test_bad_numeric_and_boolean_options_are_named(kw, key):
    with pytest.raises(InputError, match=key):
        FileDepthBackend(**kw)
