"""Camera-following: rotation recovered from the video vs the requested path (ex4d.metrics.camera_following)."""

import cv2
import numpy as np
import pytest
import skimage.data

from ex4d.metrics.camera_following import (
    camera_following,
    estimate_rotations,
    relative_rotation_from_matches,
    rotation_angle_deg,
    summarize_camera_following,
    translation_errors_deg,
    yaw_deg,
)
from ex4d.utils.errors import InputError


def rot_y(deg):
    t = np.radians(deg)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])


def rot_x(deg):
    t = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


def w2c_path(rotations):
    out = np.tile(np.eye(4), (len(rotations), 1, 1))
    out[:, :3, :3] = rotations
    return out


@pytest.fixture(scope="module")
def rotating_video():
    """scikit-image's astronaut seen by a camera yawing 0..24 degrees: frame_i = warp by H = K R_i K^-1."""
    img = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    K = np.array([[250.0, 0, w / 2], [0, 250.0, h / 2], [0, 0, 1]])
    yaws = np.arange(0.0, 25.0, 4.0)
    Rs = [rot_y(y) for y in yaws]
    frames = np.stack([cv2.warpPerspective(img, K @ R @ np.linalg.inv(K), (w, h)) for R in Rs])
    return frames, K, w2c_path(Rs)


def test_recovers_known_rotation(rotating_video):
    frames, K, w2c = rotating_video
    r = camera_following(frames, K, w2c)
    assert r.n_failed == 0
    assert np.nanmax(r.angle_error_deg) < 1.0
    assert r.final_yaw_est_deg == pytest.approx(24.0, abs=1.0) and r.final_yaw_req_deg == pytest.approx(24.0)
    assert r.following_ratio == pytest.approx(1.0, abs=0.05)
    first = camera_following(frames, K, w2c, mode="first")
    assert np.nanmax(first.angle_error_deg) < 1.0


def test_static_video_does_not_follow(rotating_video):
    frames, K, w2c = rotating_video
    r = camera_following(np.repeat(frames[:1], len(frames), axis=0), K, w2c)
    assert r.following_ratio == pytest.approx(0.0, abs=1e-6)
    assert r.final_angle_req_deg == pytest.approx(24.0)
    assert r.angle_error_deg[-1] == pytest.approx(24.0, abs=1e-3)
    summary = summarize_camera_following([r, r], n_boot=20)
    assert summary["following_ratio"].n == 2 and summary["n_failed_videos"] == 0


def test_essential_matrix_path_with_translation():
    # 3D points in front of camera 0; camera 1 rotated 10 deg yaw + 3 deg pitch and translated: parallax, so no homography.
    rng = np.random.default_rng(0)
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    X = np.c_[rng.uniform(-3, 3, 300), rng.uniform(-2, 2, 300), rng.uniform(4, 12, 300)]
    R = rot_y(10) @ rot_x(3)
    t = np.array([-1.0, 0.1, 0.2])

    def proj(P):
        p = (K @ P.T).T
        return p[:, :2] / p[:, 2:]

    pose = relative_rotation_from_matches(proj(X), proj(X @ R.T + t), K)
    assert pose.model == "essential"
    assert rotation_angle_deg(pose.R @ R.T) < 0.5
    assert np.degrees(np.arccos(np.clip(pose.t @ t / np.linalg.norm(t), -1, 1))) < 1.0  # direction, unit length
    assert np.linalg.norm(pose.t) == pytest.approx(1.0)
    assert yaw_deg(pose.R) == pytest.approx(yaw_deg(R), abs=0.5)


def test_failures_and_bad_inputs(rotating_video):
    frames, K, w2c = rotating_video
    blank = np.zeros((3, 64, 64, 3), dtype=np.uint8)
    Rs, pairs = estimate_rotations(blank, K)
    assert np.isnan(Rs[1]).all() and pairs[1].model == "failed"
    with pytest.raises(InputError, match="7 frames but the requested path has 3 poses"):
        camera_following(frames, K, w2c[:3])
    with pytest.raises(InputError, match="mode"):
        estimate_rotations(frames, K, mode="random")


def two_plane_video(Rs, ts, size=256, f=250.0):
    """A textured wall at depth 10 behind a textured card at depth 3, seen from cameras ``X_i = R_i X + t_i``
    (camera-0 coordinates): each plane is warped by its exact homography ``K (R + t n^T / d) K^-1``, so the
    video has real parallax and a known pose per frame."""
    wall = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    card = cv2.resize(skimage.data.chelsea(), (size, size), interpolation=cv2.INTER_AREA)
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    n = np.array([0.0, 0.0, 1.0])
    card_mask = np.zeros((size, size), np.uint8)
    card_mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    frames = []
    for R, t in zip(Rs, ts):
        H_wall = K @ (R + np.outer(t, n) / 10.0) @ np.linalg.inv(K)
        H_card = K @ (R + np.outer(t, n) / 3.0) @ np.linalg.inv(K)
        out = cv2.warpPerspective(wall, H_wall, (size, size), borderMode=cv2.BORDER_REFLECT)
        m = cv2.warpPerspective(card_mask, H_card, (size, size)) > 127
        out[m] = cv2.warpPerspective(card, H_card, (size, size))[m]
        frames.append(out)
    w2c = np.tile(np.eye(4), (len(Rs), 1, 1))
    w2c[:, :3, :3], w2c[:, :3, 3] = Rs, ts
    return np.stack(frames), K, w2c


def test_recovers_translation_direction_with_parallax():
    # The camera turns 0..8 degrees while sliding sideways and a little forward: an orbit-like path.
    s = np.linspace(0, 1, 5)
    Rs = [rot_y(8 * x) for x in s]
    ts = [np.array([-0.6 * x, 0.0, 0.1 * x]) for x in s]
    frames, K, w2c = two_plane_video(Rs, ts)
    r = camera_following(frames, K, w2c)
    assert r.n_failed == 0 and r.n_translation == 4
    assert np.nanmax(r.angle_error_deg) < 2.0  # chained over 4 pairs; rotation and sideways translation trade off a little
    assert r.mean_translation_error_deg < 6.0
    # The same frames asked to move the other way: the rotation agrees, the translation is ~180 degrees off.
    flipped = w2c.copy()
    flipped[:, :3, 3] *= -1
    r_flip = camera_following(frames, K, flipped)
    assert r_flip.mean_translation_error_deg > 150.0
    summary = summarize_camera_following([r, r_flip], n_boot=20)
    assert summary["translation_error_deg"].n == 2 and summary["n_videos_without_translation"] == 0


def test_translation_is_not_scored_where_it_is_unobservable(rotating_video):
    # Pure rotation: the homography explains the pairs, no translation direction exists to compare.
    frames, K, w2c = rotating_video
    r = camera_following(frames, K, w2c)
    assert r.n_translation == 0 and np.isnan(r.mean_translation_error_deg)
    assert summarize_camera_following([r], n_boot=10)["n_videos_without_translation"] == 1
    # And a requested path without translation gives no translation score either.
    pair = relative_rotation_from_matches(*_parallax_matches(), K=np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]))
    pair.ref = 0
    assert np.isnan(translation_errors_deg([pair, pair], w2c_path([np.eye(3), rot_y(10)]))[1])


def _parallax_matches():
    rng = np.random.default_rng(0)
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    X = np.c_[rng.uniform(-3, 3, 300), rng.uniform(-2, 2, 300), rng.uniform(4, 12, 300)]
    R, t = rot_y(10) @ rot_x(3), np.array([-1.0, 0.1, 0.2])

    def proj(P):
        p = (K @ P.T).T
        return p[:, :2] / p[:, 2:]

    return proj(X), proj(X @ R.T + t)


def test_per_frame_intrinsics_follow_a_zooming_rotating_camera():
    """A camera that yaws 0..24 degrees while its focal length grows 250 -> 325 px (frame_i = K_i R_i K_0^-1
    applied to frame 0): with the per-frame K the rotation is recovered; the first frame's K alone cannot tell
    the zoom from the motion."""
    img = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    yaws = np.arange(0.0, 25.0, 4.0)
    Ks = np.stack([np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]) for f in 250.0 * (1 + 0.05 * np.arange(7))])
    Rs = [rot_y(y) for y in yaws]
    frames = np.stack([cv2.warpPerspective(img, K @ R @ np.linalg.inv(Ks[0]), (w, h)) for K, R in zip(Ks, Rs)])
    w2c = w2c_path(Rs)
    r = camera_following(frames, Ks, w2c)
    assert r.n_failed == 0 and np.nanmax(r.angle_error_deg) < 1.0
    assert r.final_yaw_est_deg == pytest.approx(24.0, abs=1.0)
    one_k = camera_following(frames, Ks[0], w2c)
    assert one_k.n_failed > 0 or np.nanmax(one_k.angle_error_deg) > 2.0
    with pytest.raises(InputError, match="one per frame"):
        camera_following(frames, Ks[:3], w2c)
