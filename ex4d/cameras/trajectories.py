"""Camera trajectories: the reference ``--cam`` presets and our own paths, as world-to-camera poses.

A trajectory is an object called as ``traj(num_frames, min_depth) -> w2c`` (N, 4, 4) float64 in the
project convention (``ex4d.cameras``: world = source camera, OpenCV axes); its
``traj.intrinsics(num_frames, K, min_depth) -> K_T33`` (N, 3, 3) gives each frame's intrinsics from the
source camera's ``K`` (the same ``K`` for every frame unless the path zooms). ``min_depth`` is the smallest
EX-4D depth of frame 0 *after* its one-pixel border ring was set to 100 (``ex4d.mesh.set_border``),
in the scene's depth units. Paths that orbit do so about the pivot ``c = (0, 0, r)`` on the source
optical axis, with r = min_depth + ``pivot_offset`` (:data:`DEFAULT_PIVOT_OFFSET`, the reference's, unless set),
and every pose looks at c.

Every preset that starts at the source returns the identity as frame 0: the renderer replaces frame 0
by the source frame and the generator conditions on it, so a path that starts elsewhere (``Orbit``
with a nonzero start and ``lead_in=False``, most files) breaks that assumption; check with
:func:`starts_at_source`.

Angles: positive yaw moves the camera to +x (to the right of the source camera, which then looks left
at the pivot), as the reference presets do; positive pitch raises the camera (-y, OpenCV y is down)
so it looks down at the pivot.

| class / preset | path |
|---|---|
| ``ReferenceOrbit`` (``30``, ``60``, ``90``) | reference one-sided orbit with a slight rise, angle scaled by rho |
| ``ReferenceLoop180`` (``180``) | reference closed loop in the z = 0 plane (not a -90..90 sweep) |
| ``Orbit`` | yaw from start to end about the pivot at constant pitch (e.g. -90..90 "full") |
| ``Arc`` | yaw and pitch interpolated together (orbit in azimuth and elevation) |
| ``Orbit`` / ``Arc`` with ``dolly`` | the same, closing in on (or backing away from) the pivot along the path |
| ``Dolly`` (``zoom_in``, ``zoom_out``) | our definition: translate along the source optical axis |
| ``DollyZoom`` (``dolly_zoom``) | the dolly, focal length changed per frame so the pivot plane keeps its size |
| ``FocalZoom`` (``focal_zoom``) | camera stays at the source, focal length changes (optical zoom) |
| ``FileTrajectory`` | poses (and optionally per-frame ``K``) from a JSON / NPZ file (``ex4d.cameras.io``), read on call |

Long clips: every path is defined over the whole clip (N frames, however many). The reference presets
keep the reference's frame rescale there too: at N = 97 ``ReferenceOrbit(90)`` ends at 90 * 97/49 = 178
degrees and ``ReferenceLoop180`` runs its loop about twice; ``frame_rescale=false`` (or ``Orbit``, ``Arc``)
keeps the nominal range at any N.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ex4d.cameras.core import look_at, shared_intrinsics, w2c_to_c2w
from ex4d.cameras.io import CONVENTIONS, load_intrinsics, load_w2c, validate_K
from ex4d.utils.checks import check_bool, check_int
from ex4d.utils.errors import InputError

REFERENCE_NUM_FRAMES = 49  # the reference trajectories hit their nominal angle at this frame count
# The reference's pivot offset (scene units): the one home of the value. The camera options and the masking pose
# sampler leave ``pivot_offset: null`` to mean this; recon, the app and the plots read it from here.
DEFAULT_PIVOT_OFFSET = 0.15
MAX_ABS_PITCH_DEG = 89.0  # look_at with up = (0, 1, 0) degenerates at +-90
FILE_INTRINSICS = ("auto", "use", "ignore")  # FileTrajectory(file_intrinsics=...)


def frame_scale(num_frames: int, reference_frames: int = REFERENCE_NUM_FRAMES) -> float:
    """The reference's angle multiplier rho = N/49 if N >= 49 else 49/N (1 only at N = 49).

    A reference quirk: both longer and shorter clips travel *further* than the nominal angle.
    """
    n = int(num_frames)
    return n / reference_frames if n >= reference_frames else reference_frames / n


def starts_at_source(w2c: Tensor, atol: float = 1e-9) -> bool:
    """True when frame 0 of ``w2c`` (N, 4, 4) is the identity, i.e. the path starts at the source camera."""
    return bool(torch.allclose(w2c[0], torch.eye(4, dtype=w2c.dtype), atol=atol, rtol=0.0))


def _progress(num_frames: int) -> Tensor:
    """s_i = i / (N - 1), float64 (N,); [0] for a single frame (as ``np.linspace`` gives)."""
    return torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)


def _pivot(radius: float) -> Tensor:
    return torch.tensor([0.0, 0.0, radius], dtype=torch.float64)


def _finite(value, key: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as e:
        raise InputError(f"camera.{key} must be a number, got {value!r}") from e
    if not math.isfinite(v):
        raise InputError(f"camera.{key} must be finite, got {value!r}")
    return v


class Trajectory:
    """Base class: ``__call__(num_frames, min_depth) -> w2c`` (N, 4, 4) float64.

    Subclasses implement :meth:`poses` given the pivot radius. Constructing one reads no file.
    """

    def __init__(self, pivot_offset: float | None = DEFAULT_PIVOT_OFFSET):
        # None (``pivot_offset: null`` in conf/camera/*.yaml): the reference's offset, DEFAULT_PIVOT_OFFSET.
        self.pivot_offset = DEFAULT_PIVOT_OFFSET if pivot_offset is None else _finite(pivot_offset, "pivot_offset")

    def pivot_radius(self, min_depth: float) -> float:
        """r = min_depth + pivot_offset (> 0)."""
        try:
            d = float(min_depth)
        except (TypeError, ValueError) as e:
            raise InputError(f"min_depth must be a number, got {min_depth!r}") from e
        r = d + self.pivot_offset
        if not math.isfinite(d) or r <= 0.0:
            raise InputError(
                "min_depth must be finite with min_depth + camera.pivot_offset > 0,"
                f" got {min_depth!r} + {self.pivot_offset}"
            )
        return r

    def pivot(self, min_depth: float) -> Tensor:
        """The look-at target c = (0, 0, r), (3,) float64 in world coordinates."""
        return _pivot(self.pivot_radius(min_depth))

    def __call__(self, num_frames: int, min_depth: float) -> Tensor:
        """Poses of the path.

        Args:
            num_frames: N >= 1.
            min_depth: smallest depth of frame 0 after the border ring was set to 100 (scene units).

        Returns:
            w2c: (N, 4, 4) float64, world = source camera, OpenCV axes.
        """
        n = _check_num_frames(num_frames)
        w2c = self.poses(n, self.pivot_radius(min_depth))
        assert w2c.shape == (n, 4, 4) and w2c.dtype == torch.float64, (w2c.shape, w2c.dtype)
        return w2c

    def poses(self, num_frames: int, radius: float) -> Tensor:
        """(N, 4, 4) float64 w2c for a pivot at (0, 0, ``radius``)."""
        raise NotImplementedError

    def focal_scales(self, num_frames: int, radius: float) -> Tensor | None:
        """(N,) float64 focal length of each frame as a multiple of the source camera's, or None (the
        default): every frame keeps the source ``K``."""
        return None

    def intrinsics(self, num_frames: int, K: Tensor, min_depth: float) -> Tensor:
        """Per-frame intrinsics of the path.

        Args:
            num_frames: N.
            K: (3, 3) intrinsics of the source camera (the depth maps' ``K``).
            min_depth: as for ``__call__``.

        Returns:
            K_T33: (N, 3, 3) float64. Row i is ``K`` with fx, fy (and the skew) times ``focal_scales()[i]``;
            the principal point stays, so a zoom is about the image centre. Without focal scales every
            row is ``K`` exactly.
        """
        n = _check_num_frames(num_frames)
        K = validate_K(K, "source camera", "K")
        K_T33 = K.expand(n, 3, 3).clone()
        scales = self.focal_scales(n, self.pivot_radius(min_depth))
        if scales is not None:
            assert scales.shape == (n,), scales.shape
            K_T33[:, :2, :2] *= scales[:, None, None]  # [[fx, skew], [0, fy]]
        return K_T33

    def validate(self, num_frames: int) -> None:
        """Raise InputError now if the path cannot be made for ``num_frames`` frames (cheap; reads any file)."""
        _check_num_frames(num_frames)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _check_num_frames(num_frames) -> int:
    return check_int(num_frames, "num_frames", minimum=1)


class ReferenceOrbit(Trajectory):
    """The reference presets ``30`` / ``60`` / ``90`` (any angle A), reproduced exactly.

    theta_i = (A pi / 180) rho s_i, eye_i = (r sin th, 0.2 r (|cos th| - 1), r (1 - |cos th|)), look-at
    target (0, 0, r). Within |theta| <= 90 degrees this is an orbit about the pivot with a slight rise
    (up to 0.2 r); beyond 90 (e.g. ``90`` at N = 81, theta up to 149 degrees) the |cos| folds the
    path back over itself, as the reference does.

    Args:
        angle_deg: the nominal angle A (reached at N = 49 when ``frame_rescale``).
        frame_rescale: apply the reference's rho (see :func:`frame_scale`); False makes A exact at any N.
        pivot_offset: r = min_depth + pivot_offset (None: :data:`DEFAULT_PIVOT_OFFSET`).
    """

    def __init__(self, angle_deg: float = 90.0, frame_rescale: bool = True,
                 pivot_offset: float | None = DEFAULT_PIVOT_OFFSET):
        super().__init__(pivot_offset)
        self.angle_deg = _finite(angle_deg, "angle_deg")
        self.frame_rescale = check_bool(frame_rescale, "camera.frame_rescale")

    def poses(self, num_frames: int, radius: float) -> Tensor:
        rho = frame_scale(num_frames) if self.frame_rescale else 1.0
        th = math.radians(self.angle_deg) * rho * _progress(num_frames)
        c = th.cos().abs()
        eye = torch.stack([radius * th.sin(), 0.2 * radius * (c - 1.0), radius * (1.0 - c)], dim=-1)
        return look_at(eye, _pivot(radius))


class ReferenceLoop180(Trajectory):
    """The reference preset ``180``, reproduced exactly: a closed loop in the z = 0 plane.

    theta_i = 2 pi rho s_i, eye_i = (r sin th, 0.2 r (cos th - 1), 0), target (0, 0, r). Despite the
    name the camera never goes behind anything: yaw stays within +-45 degrees, pitch up to 21.8.
    """

    def __init__(self, frame_rescale: bool = True, pivot_offset: float | None = DEFAULT_PIVOT_OFFSET):
        super().__init__(pivot_offset)
        self.frame_rescale = check_bool(frame_rescale, "camera.frame_rescale")

    def poses(self, num_frames: int, radius: float) -> Tensor:
        rho = frame_scale(num_frames) if self.frame_rescale else 1.0
        th = 2.0 * math.pi * rho * _progress(num_frames)
        eye = torch.stack([radius * th.sin(), 0.2 * radius * (th.cos() - 1.0), torch.zeros_like(th)], dim=-1)
        return look_at(eye, _pivot(radius))


def orbit_eyes(yaw_deg: Tensor, pitch_deg: Tensor, radius: float, rise: float = 0.0) -> Tensor:
    """Camera centres (N, 3) on the sphere of radius r about the pivot (0, 0, r).

    eye = c + r (cos p sin y, -sin p, -cos p cos y) + (0, -rise r (1 - cos y), 0): (yaw, pitch) = (0, 0)
    is the source camera (the origin). ``rise`` adds the reference's lift; rise = 0.2 at pitch 0 gives
    the ``ReferenceOrbit`` eye for |yaw| <= 90.
    """
    y = torch.deg2rad(yaw_deg.to(torch.float64))
    p = torch.deg2rad(pitch_deg.to(torch.float64))
    eye = torch.stack([p.cos() * y.sin(), -p.sin() - rise * (1.0 - y.cos()), 1.0 - p.cos() * y.cos()], dim=-1)
    return radius * eye


def _polyline(waypoints: list[tuple[float, float]], num_frames: int) -> Tensor:
    """N samples at constant speed (in angle space) along a polyline of (yaw, pitch) waypoints, (N, 2)."""
    pts = np.asarray(waypoints, dtype=np.float64)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 0])
    pts = pts[keep]
    if len(pts) == 1:
        return torch.from_numpy(np.repeat(pts, num_frames, axis=0))
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    s = np.linspace(0.0, cum[-1], num_frames)
    out = np.stack([np.interp(s, cum, pts[:, 0]), np.interp(s, cum, pts[:, 1])], axis=-1)
    return torch.from_numpy(out)


class Arc(Trajectory):
    """Orbit about the pivot with yaw and pitch moving together (linearly, constant angular speed).

    Args:
        yaw_start_deg, yaw_end_deg: signed azimuth range (positive = camera to the right).
        pitch_start_deg, pitch_end_deg: signed elevation range (positive = camera above), |pitch| < 89.
        rise: extra lift -rise r (1 - cos yaw) in y (0 = on the sphere; 0.2 = the reference's).
        lead_in: when the path does not start at (0, 0), first travel from the source pose to the
            start, then on to the end (frames shared in proportion to angular distance), so frame 0 is
            the identity. False starts at the start pose (frame 0 is then *not* the source camera).
        pivot_offset: r = min_depth + pivot_offset (None: :data:`DEFAULT_PIVOT_OFFSET`).
        dolly: dolly while orbiting: the camera's distance to the pivot shrinks linearly over the path
            to (1 - dolly) times its orbit value at the last frame (0 = a plain orbit, 0.5 = halfway in,
            negative = moving away); < 1, since 1 would reach the pivot. Frame 0 is unchanged.
    """

    def __init__(
        self,
        yaw_start_deg: float = 0.0,
        yaw_end_deg: float = 60.0,
        pitch_start_deg: float = 0.0,
        pitch_end_deg: float = 20.0,
        rise: float = 0.0,
        lead_in: bool = False,
        pivot_offset: float | None = DEFAULT_PIVOT_OFFSET,
        dolly: float = 0.0,
    ):
        super().__init__(pivot_offset)
        self.yaw_start_deg = _finite(yaw_start_deg, "yaw_start_deg")
        self.yaw_end_deg = _finite(yaw_end_deg, "yaw_end_deg")
        self.pitch_start_deg = _finite(pitch_start_deg, "pitch_start_deg")
        self.pitch_end_deg = _finite(pitch_end_deg, "pitch_end_deg")
        for key in ("pitch_start_deg", "pitch_end_deg"):
            if abs(getattr(self, key)) >= MAX_ABS_PITCH_DEG:
                raise InputError(f"camera.{key} must be within +-{MAX_ABS_PITCH_DEG} degrees, got {getattr(self, key)}")
        self.rise = _finite(rise, "rise")
        self.lead_in = check_bool(lead_in, "camera.lead_in")
        self.dolly = _finite(dolly, "dolly")
        if self.dolly >= 1.0:
            raise InputError(f"camera.dolly must be < 1 (1 reaches the pivot), got {dolly}")

    def angles(self, num_frames: int) -> Tensor:
        """(N, 2) float64 (yaw_deg, pitch_deg) per frame."""
        start = (self.yaw_start_deg, self.pitch_start_deg)
        end = (self.yaw_end_deg, self.pitch_end_deg)
        waypoints = [(0.0, 0.0), start, end] if self.lead_in else [start, end]
        return _polyline(waypoints, num_frames)

    def poses(self, num_frames: int, radius: float) -> Tensor:
        a = self.angles(num_frames)
        eye = orbit_eyes(a[:, 0], a[:, 1], radius, self.rise)
        c = _pivot(radius)
        if self.dolly:  # scale each eye's offset from the pivot: the view direction is kept, frame 0 too
            eye = c + (eye - c) * (1.0 - self.dolly * _progress(num_frames))[:, None]
        return look_at(eye, c)


class Orbit(Arc):
    """True orbit about the pivot: yaw from ``yaw_start_deg`` to ``yaw_end_deg`` at constant pitch.

    ``Orbit(0, 90)`` is the paper's "extreme" range without the reference's rise and rho quirks;
    ``Orbit(-90, 90, lead_in=True)`` is the "full" range starting at the source (0 -> -90 -> 90, a third
    of the frames on the way out); ``lead_in=False`` starts at -90 (frame 0 not the source camera).
    A nonzero ``pitch_deg`` also needs ``lead_in`` for frame 0 to be the source.
    """

    def __init__(
        self,
        yaw_start_deg: float = 0.0,
        yaw_end_deg: float = 90.0,
        pitch_deg: float = 0.0,
        rise: float = 0.0,
        lead_in: bool = False,
        pivot_offset: float | None = DEFAULT_PIVOT_OFFSET,
        dolly: float = 0.0,
    ):
        if abs(_finite(pitch_deg, "pitch_deg")) >= MAX_ABS_PITCH_DEG:  # named as the orbit's key, not Arc's
            raise InputError(f"camera.pitch_deg must be within +-{MAX_ABS_PITCH_DEG} degrees, got {pitch_deg}")
        super().__init__(yaw_start_deg, yaw_end_deg, pitch_deg, pitch_deg, rise, lead_in, pivot_offset, dolly)
        self.pitch_deg = self.pitch_start_deg

    def __repr__(self) -> str:
        keys = ("yaw_start_deg", "yaw_end_deg", "pitch_deg", "rise", "lead_in", "pivot_offset", "dolly")
        return f"Orbit({', '.join(f'{k}={getattr(self, k)!r}' for k in keys)})"


class Dolly(Trajectory):
    """Zoom by dolly: the camera translates along the source optical axis, still looking at the pivot.

    ``zoom_in`` / ``zoom_out`` exist in the reference but were never published in a readable form; this
    is *our* definition. The camera moves linearly from the source to z = +travel (``in``, toward the
    pivot) or z = -travel (``out``, away from it); the rotation stays the identity.

    Args:
        direction: ``"in"`` or ``"out"``.
        fraction: travel as a fraction of the pivot radius r (``in`` needs < 1: the pivot sits 0.15
            behind the nearest surface, so 1 would put the camera inside the scene).
        distance: travel in scene units; overrides ``fraction`` when given (``in`` needs < r).
        pivot_offset: r = min_depth + pivot_offset (None: :data:`DEFAULT_PIVOT_OFFSET`).
    """

    def __init__(
        self,
        direction: str = "in",
        fraction: float = 0.5,
        distance: float | None = None,
        pivot_offset: float | None = DEFAULT_PIVOT_OFFSET,
    ):
        super().__init__(pivot_offset)
        if direction not in ("in", "out"):
            raise InputError(f"camera.direction must be 'in' or 'out', got {direction!r}")
        self.direction = direction
        self.fraction = _finite(fraction, "fraction")
        if self.fraction <= 0.0 or (direction == "in" and self.fraction >= 1.0):
            raise InputError(f"camera.fraction must be in (0, 1) for 'in' and > 0 for 'out', got {fraction}")
        self.distance = None if distance is None else _finite(distance, "distance")
        if self.distance is not None and self.distance <= 0.0:
            raise InputError(f"camera.distance must be > 0, got {distance}")

    def camera_z(self, num_frames: int, radius: float) -> Tensor:
        """(N,) float64 z of the camera centre (world = source camera: + toward the pivot)."""
        travel = self.fraction * radius if self.distance is None else self.distance
        if self.direction == "in" and travel >= radius:
            raise InputError(f"camera.distance={travel} reaches the pivot at r={radius:.4g}; use a smaller distance")
        sign = 1.0 if self.direction == "in" else -1.0
        return sign * travel * _progress(num_frames)

    def poses(self, num_frames: int, radius: float) -> Tensor:
        eye = torch.zeros(num_frames, 3, dtype=torch.float64)
        eye[:, 2] = self.camera_z(num_frames, radius)
        return look_at(eye, _pivot(radius))


class DollyZoom(Dolly):
    """Dolly zoom (the "vertigo" shot): the :class:`Dolly` path, with the focal length changed every frame
    so that the plane through the pivot (z = r) keeps its size in the image while the perspective around it
    changes: f_i = f_0 (r - z_i) / r for the camera at z_i. Dollying in widens the view (f falls to
    (1 - fraction) f_0) and the background recedes; dollying out narrows it and the background looms.

    Frame 0 is the source camera with the source ``K`` (scale 1 exactly). Arguments as :class:`Dolly`.
    """

    def focal_scales(self, num_frames: int, radius: float) -> Tensor:
        return (radius - self.camera_z(num_frames, radius)) / radius


class FocalZoom(Trajectory):
    """Optical zoom: every pose is the source camera; the focal length goes from f_0 to
    ``focal_scale_end`` * f_0 at a constant rate (geometric: frame i has f_0 * end^(i / (N - 1)), the same
    magnification from one frame to the next). Below 1 the view widens and the generator fills what lies
    beyond the source frame's border (outpainting); above 1 it narrows (a crop, nothing to fill).

    Args:
        focal_scale_end: focal length of the last frame as a multiple of the source's (> 0).
        pivot_offset: r = min_depth + pivot_offset (only drawn in the camera plot).
    """

    def __init__(self, focal_scale_end: float = 0.6, pivot_offset: float | None = DEFAULT_PIVOT_OFFSET):
        super().__init__(pivot_offset)
        self.focal_scale_end = _finite(focal_scale_end, "focal_scale_end")
        if self.focal_scale_end <= 0.0:
            raise InputError(f"camera.focal_scale_end must be > 0, got {focal_scale_end}")

    def poses(self, num_frames: int, radius: float) -> Tensor:
        return torch.eye(4, dtype=torch.float64).repeat(num_frames, 1, 1)

    def focal_scales(self, num_frames: int, radius: float) -> Tensor:
        return self.focal_scale_end ** _progress(num_frames)


def resample_w2c(w2c: Tensor, num_frames: int) -> Tensor:
    """Resample a pose path (M, 4, 4) to N frames uniformly in the original frame index.

    Rotations by spherical linear interpolation, camera centres linearly; N = M returns the input.
    """
    m = w2c.shape[0]
    if num_frames == m:
        return w2c
    if m == 1:
        return w2c.expand(num_frames, 4, 4).clone()
    from scipy.spatial.transform import Rotation, Slerp  # only needed here

    c2w = w2c_to_c2w(w2c).numpy()
    t_src = np.arange(m, dtype=np.float64)
    t_dst = np.linspace(0.0, m - 1.0, num_frames)
    rots = Slerp(t_src, Rotation.from_matrix(c2w[:, :3, :3]))(t_dst).as_matrix()
    centres = np.stack([np.interp(t_dst, t_src, c2w[:, i, 3]) for i in range(3)], axis=-1)
    out = np.tile(np.eye(4), (num_frames, 1, 1))
    out[:, :3, :3] = rots
    out[:, :3, 3] = centres
    return w2c_to_c2w(torch.from_numpy(out))


class FileTrajectory(Trajectory):
    """Poses read from a file when called (``ex4d.cameras.io.load_w2c``: JSON or NPZ, validated).

    The file's poses are used as they are: world = source camera, in the scene's depth units (EX-4D
    pseudo-metric depth, nearest point at 2.564), so ``min_depth`` and the pivot play no role.

    Intrinsics (the file's ``K`` / ``intrinsics``, :func:`~ex4d.cameras.io.load_intrinsics`; in pixels of the
    run's reconstruction size) follow ``file_intrinsics``:

    * ``auto`` (default): used when they change over the path (one ``K`` per pose, not all equal); a single
      ``K`` (or N equal ones) is ignored and every frame gets the source camera's ``K``, because a single
      ``K`` usually records the size the file was written at (our ``cameras.json`` of another run);
    * ``use``: used whatever they are (one ``K`` for all frames or one per frame); a file without them is an
      error;
    * ``ignore``: every frame gets the source camera's ``K``.

    Args:
        path: ``.json`` / ``.npz`` file.
        convention: ``"auto"``, ``"w2c"``, ``"c2w"`` or ``"reference_npz"`` (see ``load_w2c``).
        resample: when the file's frame count differs from ``num_frames``, resample (slerp) instead
            of raising; per-frame intrinsics are resampled linearly.
        file_intrinsics: ``"auto"``, ``"use"`` or ``"ignore"`` (above).
    """

    def __init__(self, path: str | Path, convention: str = "auto", resample: bool = False,
                 file_intrinsics: str = "auto"):
        super().__init__(DEFAULT_PIVOT_OFFSET)
        if convention not in CONVENTIONS:
            raise InputError(f"camera.convention must be one of {list(CONVENTIONS)}, got {convention!r}")
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise InputError(f"camera.path must be a .json or .npz camera file, got {path!r}")
        if file_intrinsics not in FILE_INTRINSICS:
            raise InputError(f"camera.file_intrinsics must be one of {list(FILE_INTRINSICS)}, got {file_intrinsics!r}")
        self.path = str(path)
        self.convention = convention
        self.resample = check_bool(resample, "camera.resample")
        self.file_intrinsics = file_intrinsics

    def __call__(self, num_frames: int, min_depth: float | None = None) -> Tensor:
        n = _check_num_frames(num_frames)
        return self.poses(n, float("nan"))

    def validate(self, num_frames: int) -> None:
        """Read and check the file for a clip of ``num_frames`` now (a pipeline calls this before depth)."""
        n = _check_num_frames(num_frames)
        self.poses(n, float("nan"))
        self._file_K(n)

    def poses(self, num_frames: int, radius: float) -> Tensor:
        w2c = load_w2c(self.path, self.convention)
        if w2c.shape[0] != num_frames:
            if not self.resample:
                raise InputError(
                    f"{self.path}: has {w2c.shape[0]} poses but the clip has {num_frames} frames (data.num_frames); "
                    f"set data.num_frames={w2c.shape[0]}, or camera.resample=true to resample the path"
                )
            w2c = resample_w2c(w2c, num_frames)
        return w2c

    def _file_K(self, num_frames: int) -> Tensor | None:
        """The file's intrinsics as ``file_intrinsics`` keeps them for ``num_frames`` frames: None (use the
        source ``K``) or (N, 3, 3)."""
        if self.file_intrinsics == "ignore":
            return None
        K = load_intrinsics(self.path)
        if K is None:
            if self.file_intrinsics == "use":
                raise InputError(f"{self.path}: camera.file_intrinsics=use but the file has no 'K' or 'intrinsics'")
            return None
        if self.file_intrinsics == "auto" and shared_intrinsics(K).ndim == 2:
            return None
        if K.ndim == 2:
            return K.expand(num_frames, 3, 3).clone()
        if K.shape[0] != num_frames:  # the pose count was checked (or resampled) by poses()
            t_dst = np.linspace(0.0, K.shape[0] - 1.0, num_frames)
            flat = K.reshape(K.shape[0], 9).numpy()
            K = torch.from_numpy(np.stack([np.interp(t_dst, np.arange(K.shape[0]), flat[:, j]) for j in range(9)], -1))
            K = K.reshape(num_frames, 3, 3)
        return K

    def intrinsics(self, num_frames: int, K: Tensor, min_depth: float | None = None) -> Tensor:
        """K_T33 (N, 3, 3): the file's intrinsics or the source camera's ``K`` (see the class docstring)."""
        n = _check_num_frames(num_frames)
        K = validate_K(K, "source camera", "K")
        self.poses(n, float("nan"))  # the file's pose count against the clip's (raises without camera.resample)
        file_K = self._file_K(n)
        return K.expand(n, 3, 3).clone() if file_K is None else file_K


# Reference --cam names. Any other integer string is an orbit angle, as the reference's int(cam).
PRESETS = {
    "30": lambda **kw: ReferenceOrbit(angle_deg=30.0, **kw),
    "60": lambda **kw: ReferenceOrbit(angle_deg=60.0, **kw),
    "90": lambda **kw: ReferenceOrbit(angle_deg=90.0, **kw),
    "180": lambda **kw: ReferenceLoop180(**kw),
    "zoom_in": lambda **kw: Dolly(direction="in", **kw),
    "zoom_out": lambda **kw: Dolly(direction="out", **kw),
}


def trajectory_from_preset(name: str | int, **kw) -> Trajectory:
    """The trajectory of a reference ``--cam`` name; ``kw`` go to the class (e.g. ``frame_rescale``).

    Raises:
        InputError: unknown name (the message lists the valid ones).
    """
    key = str(name).strip()
    if key in PRESETS:
        return PRESETS[key](**kw)
    if re.fullmatch(r"-?\d+", key):
        return ReferenceOrbit(angle_deg=float(key), **kw)
    raise InputError(f"unknown camera preset {name!r}; valid: {', '.join(PRESETS)}, or an integer angle in degrees")


__all__ = [
    "Arc",
    "DEFAULT_PIVOT_OFFSET",
    "Dolly",
    "DollyZoom",
    "FileTrajectory",
    "FocalZoom",
    "Orbit",
    "PRESETS",
    "REFERENCE_NUM_FRAMES",
    "ReferenceLoop180",
    "ReferenceOrbit",
    "Trajectory",
    "frame_scale",
    "orbit_eyes",
    "resample_w2c",
    "starts_at_source",
    "trajectory_from_preset",
]
