"""Camera-following: did the generated video's camera turn and move the way the requested path asked?

FID/FVD against the *source* video reward a model that does not move the camera at all; this metric
estimates the camera rotation of the generated video from the video itself and compares it with the
requested path, so such a model cannot win unnoticed.

Estimation (classical two-view geometry, OpenCV): SIFT (or ORB) features, Lowe ratio test, then per
frame pair either

* a homography, when the matches fit one whose ``K^-1 H K`` is (up to scale) a rotation: pure rotation
  or a far scene, where the essential matrix is degenerate; the rotation is the nearest orthonormal
  matrix to ``K^-1 H K``; or
* the essential matrix with the known ``K`` (RANSAC) and ``recoverPose``: the rotation and the
  *direction* of the translation (its length is unknowable from one video: monocular scale ambiguity).

Translation is scored by direction: for each frame pair (a, i) that was estimated with the essential
matrix, the angle between the estimated translation direction and the requested one,
``t_req = (w2c_i w2c_a^-1)[:3, 3]`` (camera-a coordinates to camera-i coordinates, as ``recoverPose``'s
``t``). A pair solved by the homography (a rotation-only fit: translation unobservable) or whose
requested translation is zero has no translation score (NaN); the counts say how many had one.

``mode="chain"`` (default) estimates each frame against the last frame that was estimated and
composes the rotations, because at extreme angles frame 0 and frame i share almost no content;
``mode="first"`` matches every frame against frame 0 directly. A frame whose estimate fails (too few
matches) gets NaN and the chain continues from the last good frame.

Conventions (``ex4d.cameras``): OpenCV axes, ``w2c`` 4x4, world = source camera. The relative rotation
of frame i is ``R_i = w2c_i[:3, :3] @ w2c_0[:3, :3]^T`` (camera-0 coordinates to camera-i coordinates),
which is what ``recoverPose`` returns for matches (frame 0 -> frame i). Yaw is the rotation about the
camera's y axis, ``atan2(R[0, 2], R[2, 2])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from ex4d.metrics.stats import ScoreWithCI, bootstrap_mean
from ex4d.metrics.video import as_video
from ex4d.utils.errors import InputError


def rotation_angle_deg(R: np.ndarray) -> float:
    """Geodesic angle of a rotation matrix, degrees."""
    c = (np.trace(R) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def yaw_deg(R: np.ndarray) -> float:
    """Rotation about the camera y axis (OpenCV axes), degrees."""
    return float(np.degrees(np.arctan2(R[0, 2], R[2, 2])))


def _nearest_rotation(M: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(M)
    R = u @ vt
    if np.linalg.det(R) < 0:
        R = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return R


def _to_gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


class FeatureMatcher:
    """Keypoints + descriptors + ratio-test matching (``detector``: ``"sift"`` or ``"orb"``)."""

    def __init__(self, detector: str = "sift", max_features: int = 4000, ratio: float = 0.75) -> None:
        import cv2

        if detector == "sift":
            self._det = cv2.SIFT_create(nfeatures=max_features)
            norm = cv2.NORM_L2
        elif detector == "orb":
            self._det = cv2.ORB_create(nfeatures=max_features)
            norm = cv2.NORM_HAMMING
        else:
            raise InputError(f"camera_following.detector must be 'sift' or 'orb', got {detector!r}")
        self._matcher = cv2.BFMatcher(norm)
        self.ratio = ratio

    def detect(self, frame: np.ndarray):
        return self._det.detectAndCompute(_to_gray(frame), None)

    def match(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        """Matched pixel coordinates (M, 2) float64 in frames a and b."""
        (kpa, da), (kpb, db) = a, b
        if da is None or db is None or len(kpa) < 2 or len(kpb) < 2:
            return np.zeros((0, 2)), np.zeros((0, 2))
        pairs = self._matcher.knnMatch(da, db, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.ratio * p[1].distance]
        pa = np.array([kpa[m.queryIdx].pt for m in good], dtype=np.float64).reshape(-1, 2)
        pb = np.array([kpb[m.trainIdx].pt for m in good], dtype=np.float64).reshape(-1, 2)
        return pa, pb


@dataclass
class PairPose:
    """Relative pose of frame b w.r.t. frame a (``X_b = R X_a + t``); R None when it failed.

    ``t`` is the unit translation direction (essential-matrix pairs only; None otherwise); ``ref`` is the
    index of frame a (filled by :func:`estimate_rotations`).
    """

    R: np.ndarray | None
    model: str  # "homography", "essential" or "failed"
    n_matches: int
    n_inliers: int
    t: np.ndarray | None = None
    ref: int = 0


def relative_rotation_from_matches(
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    K: np.ndarray,
    min_matches: int = 12,
    ransac_px: float = 1.0,
    rotation_homography_tol: float = 0.05,
) -> PairPose:
    """Rotation between two views from matched pixels (M, 2) and intrinsics K (3, 3).

    Uses the homography when ``K^-1 H K`` has (nearly) equal singular values, i.e. the motion is a
    rotation (relative singular-value spread below ``rotation_homography_tol``) and the homography
    explains at least as many matches as the essential matrix; otherwise the essential matrix.
    """
    import cv2

    m = pts_a.shape[0]
    if m < min_matches:
        return PairPose(None, "failed", m, 0)
    K = np.asarray(K, dtype=np.float64)
    H, h_mask = cv2.findHomography(pts_a, pts_b, cv2.RANSAC, ransac_px * 3)
    E, e_mask = cv2.findEssentialMat(pts_a, pts_b, K, method=cv2.RANSAC, prob=0.999, threshold=ransac_px)
    h_in = int(h_mask.sum()) if h_mask is not None else 0
    e_in = int(e_mask.sum()) if e_mask is not None else 0
    if H is not None and h_in >= min_matches:
        M = np.linalg.inv(K) @ H @ K
        s = np.linalg.svd(M, compute_uv=False)
        if (s[0] - s[2]) / s[1] < rotation_homography_tol and h_in >= 0.9 * e_in:
            return PairPose(_nearest_rotation(M / np.cbrt(np.linalg.det(M))), "homography", m, h_in)
    if E is None or e_in < min_matches:
        return PairPose(None, "failed", m, e_in)
    if E.shape[0] > 3:  # several solutions stacked: take the first
        E = E[:3]
    n_good, R, t, _mask = cv2.recoverPose(E, pts_a, pts_b, K, mask=e_mask.copy())
    if n_good < min_matches:
        return PairPose(None, "failed", m, int(n_good))
    t = np.asarray(t, dtype=np.float64).reshape(3)
    return PairPose(np.asarray(R, dtype=np.float64), "essential", m, int(n_good), t / np.linalg.norm(t))


def _reproject(pts: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Pixels (M, 2) through the 3x3 map ``H`` (homogeneous), as float32 for OpenCV."""
    h = np.concatenate([pts.astype(np.float64), np.ones((len(pts), 1))], axis=1) @ H.T
    return (h[:, :2] / h[:, 2:3]).astype(np.float32)


def estimate_rotations(
    video: Tensor | np.ndarray,
    K: Tensor | np.ndarray,
    mode: str = "chain",
    detector: str = "sift",
    min_matches: int = 12,
) -> tuple[np.ndarray, list[PairPose]]:
    """Rotation of every frame relative to frame 0, estimated from the video.

    Args:
        video: (T, H, W, 3) uint8 RGB.
        K: (3, 3) intrinsics of the video (pixels), or (T, 3, 3) per frame (a zoom or focal change: each pair's
            first-view points are moved to the second view's intrinsics, ``K_b K_a^-1 p``, the image of the
            same rays through the second camera's lens, so the pair is solved with one K).
        mode: ``"chain"`` or ``"first"`` (see module docstring).

    Returns:
        (T, 3, 3) float64 rotations (frame 0 is identity; failed frames are NaN) and the per-frame pair
        estimates (index 0 is a placeholder).
    """
    if mode not in ("chain", "first"):
        raise InputError(f"camera_following.mode must be 'chain' or 'first', got {mode!r}")
    v = as_video(video, "generated video").numpy()
    K = np.asarray(K.cpu().numpy() if isinstance(K, Tensor) else K, dtype=np.float64)
    T = v.shape[0]
    if K.shape == (3, 3):
        K = np.broadcast_to(K, (T, 3, 3))
    if K.shape != (T, 3, 3):
        raise InputError(f"camera_following: K must be (3, 3) or one per frame ({T}, 3, 3), got {K.shape}")
    if not (np.isfinite(K).all() and (np.abs(np.linalg.det(K)) > 0).all()):
        raise InputError("camera_following: K must be finite and invertible for every frame")
    matcher = FeatureMatcher(detector)
    feats = [matcher.detect(f) for f in v]
    Rs = np.full((T, 3, 3), np.nan)
    Rs[0] = np.eye(3)
    pairs = [PairPose(np.eye(3), "identity", 0, 0)]
    ref = 0
    for i in range(1, T):
        a = ref if mode == "chain" else 0
        pa, pb = matcher.match(feats[a], feats[i])
        if len(pa) and not np.array_equal(K[a], K[i]):
            pa = _reproject(pa, K[i] @ np.linalg.inv(K[a]))
        pose = relative_rotation_from_matches(pa, pb, K[i], min_matches)
        pose.ref = a
        pairs.append(pose)
        if pose.R is not None:
            Rs[i] = pose.R @ Rs[a]
            ref = i
    return Rs, pairs


@dataclass
class CameraFollowingResult:
    """How well one generated video followed its requested camera path.

    Attributes:
        angle_error_deg: (T,) geodesic angle between estimated and requested relative rotation per frame
            (NaN where the estimate failed).
        mean_error_deg: mean over frames with an estimate (frame 0 excluded).
        final_yaw_est_deg, final_yaw_req_deg: yaw of the last frame w.r.t. frame 0, estimated / requested.
        final_angle_est_deg, final_angle_req_deg: total rotation angle of the last frame w.r.t. frame 0.
        following_ratio: final_angle_est / final_angle_req (1 = moved as far as asked; 0 = did not move).
        n_failed: frames whose rotation could not be estimated.
        translation_error_deg: (T,) angle between the estimated and requested translation direction of each
            frame's pair (NaN: no translation estimate, see the module docstring).
        mean_translation_error_deg: mean over frames with one (NaN if none).
        n_translation: frames with a translation score.
    """

    angle_error_deg: np.ndarray
    mean_error_deg: float
    final_yaw_est_deg: float
    final_yaw_req_deg: float
    final_angle_est_deg: float
    final_angle_req_deg: float
    following_ratio: float
    n_failed: int
    translation_error_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mean_translation_error_deg: float = float("nan")
    n_translation: int = 0

    def to_dict(self) -> dict:
        d = {k: float(v) if not isinstance(v, np.ndarray) else [float(x) for x in v] for k, v in self.__dict__.items()}
        d["n_failed"] = int(self.n_failed)
        d["n_translation"] = int(self.n_translation)
        return d


def _as_w2c(w2c: Tensor | np.ndarray) -> np.ndarray:
    w = np.asarray(w2c.cpu().numpy() if isinstance(w2c, Tensor) else w2c, dtype=np.float64)
    if w.ndim != 3 or w.shape[1:] != (4, 4):
        raise InputError(f"camera_following: requested path must be (T, 4, 4) w2c, got {w.shape}")
    return w


def relative_rotations_from_w2c(w2c: Tensor | np.ndarray) -> np.ndarray:
    """(T, 4, 4) w2c -> (T, 3, 3) rotations relative to frame 0 (``R_i R_0^T``)."""
    R = _as_w2c(w2c)[:, :3, :3]
    return R @ R[0].T


def direction_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two 3-vectors, degrees."""
    c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def translation_errors_deg(pairs: list[PairPose], w2c_requested: Tensor | np.ndarray, rel_tol: float = 1e-6) -> np.ndarray:
    """(T,) angle between each estimated pair's translation direction and the requested one (NaN where the
    pair has no translation estimate or the requested relative translation is zero: below ``rel_tol`` times
    the path's largest camera displacement)."""
    w = _as_w2c(w2c_requested)
    centres = -np.einsum("tji,tj->ti", w[:, :3, :3], w[:, :3, 3])  # camera centres, world frame
    scale = max(float(np.linalg.norm(centres - centres[0], axis=1).max()), 1e-12)
    err = np.full(len(pairs), np.nan)
    for i, pose in enumerate(pairs):
        if i == 0 or pose.t is None:
            continue
        rel = w[i] @ np.linalg.inv(w[pose.ref])  # camera-ref coordinates -> camera-i coordinates
        t_req = rel[:3, 3]
        if np.linalg.norm(t_req) > rel_tol * scale:
            err[i] = direction_angle_deg(pose.t, t_req)
    return err


def camera_following(
    video: Tensor | np.ndarray,
    K: Tensor | np.ndarray,
    w2c_requested: Tensor | np.ndarray,
    mode: str = "chain",
    detector: str = "sift",
) -> CameraFollowingResult:
    """Compare the camera rotation and translation direction estimated from ``video`` with the requested path.

    Args:
        video: (T, H, W, 3) uint8 generated video.
        K: (3, 3) intrinsics at the video's resolution, or (T, 3, 3) per frame (zoom / focal paths).
        w2c_requested: (T, 4, 4) requested world-to-camera path (one pose per frame).
    """
    R_req = relative_rotations_from_w2c(w2c_requested)
    T = as_video(video, "generated video").shape[0]
    if R_req.shape[0] != T:
        raise InputError(f"camera_following: the video has {T} frames but the requested path has {R_req.shape[0]} poses")
    R_est, pairs = estimate_rotations(video, K, mode, detector)
    t_err = translation_errors_deg(pairs, w2c_requested)
    t_ok = np.isfinite(t_err)
    err = np.full(T, np.nan)
    for i in range(T):
        if np.all(np.isfinite(R_est[i])):
            err[i] = rotation_angle_deg(R_est[i] @ R_req[i].T)
    ok = np.isfinite(err[1:])
    last = np.flatnonzero(np.isfinite(err))[-1]  # frame 0 always counts
    final_req = rotation_angle_deg(R_req[-1])
    final_est = rotation_angle_deg(R_est[last]) if last == T - 1 else float("nan")
    return CameraFollowingResult(
        angle_error_deg=err,
        mean_error_deg=float(err[1:][ok].mean()) if ok.any() else float("nan"),
        final_yaw_est_deg=yaw_deg(R_est[-1]) if last == T - 1 else float("nan"),
        final_yaw_req_deg=yaw_deg(R_req[-1]),
        final_angle_est_deg=final_est,
        final_angle_req_deg=final_req,
        following_ratio=final_est / final_req if final_req > 1e-6 else float("nan"),
        n_failed=int((~ok).sum()),
        translation_error_deg=t_err,
        mean_translation_error_deg=float(t_err[t_ok].mean()) if t_ok.any() else float("nan"),
        n_translation=int(t_ok.sum()),
    )


def summarize_camera_following(results: list[CameraFollowingResult], n_boot: int = 1000, seed: int = 0) -> dict[str, ScoreWithCI]:
    """Set-level summary: mean rotation error, following ratio and translation-direction error with N and
    bootstrap intervals.

    Videos without an estimate (NaN) are excluded from each number; ``n_failed_videos`` counts those without
    any rotation estimate, ``n_videos_without_translation`` those without any translation score.
    """
    err = np.array([r.mean_error_deg for r in results])
    ratio = np.array([r.following_ratio for r in results])
    t_err = np.array([r.mean_translation_error_deg for r in results])
    out: dict = {"n_failed_videos": int((~np.isfinite(err)).sum()),
                 "n_videos_without_translation": int((~np.isfinite(t_err)).sum())}
    if np.isfinite(err).any():
        out["rotation_error_deg"] = bootstrap_mean(err[np.isfinite(err)], n_boot, seed=seed)
    if np.isfinite(ratio).any():
        out["following_ratio"] = bootstrap_mean(ratio[np.isfinite(ratio)], n_boot, seed=seed)
    if np.isfinite(t_err).any():
        out["translation_error_deg"] = bootstrap_mean(t_err[np.isfinite(t_err)], n_boot, seed=seed)
    return out
