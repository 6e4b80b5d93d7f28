"""Cameras: the one camera convention of the project, stated once.

Convention (everything inside ``ex4d`` uses it; conversions happen only at the edges):

* **World frame** = the source camera (the camera of frame 0 of the input video; the source camera is
  static, so every frame's DW-Mesh lives in this frame too).
* **Axes** are OpenCV's: x right, y down, z forward (into the scene).
* **Poses** are 4x4 world-to-camera matrices ``w2c`` (``X_cam = w2c @ X_world``), float64, shape
  ``(N, 4, 4)`` for a path of N frames. ``c2w`` is its inverse.
* **Intrinsics** ``K`` is a 3x3 pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels.
  Continuous pixel coordinates put the *corner* of the image at (0, 0), so the centre of pixel
  (row v, column u) is at (u + 0.5, v + 0.5). The reference sets fx = fy = 500 px and
  (cx, cy) = (W/2, H/2) at every resolution.
* **Intrinsics per frame**: a path whose focal length changes over time (a zoom) has ``K_T33``, shape
  ``(N, 3, 3)``, row i the ``K`` of frame i. Where every frame shares one ``K`` it is carried (and written
  to files) as one ``(3, 3)`` matrix: the compact form, :func:`shared_intrinsics`. The source camera
  (the depth maps' ``K``) is always one ``(3, 3)``.
* **Images** are ``(H, W, C)``; row 0 is the top of the image.

Edges that speak another convention:

* nvdiffrast clip space (``ex4d.render.nvdiffrast_backend``): built from ``K`` and ``w2c`` there.
* reference ``camera_<cam>.npz`` files: ``extrinsics = diag(1, -1, -1, 1) @ w2c`` (the reference stores
  its look-at matrix with rows 0..2 negated, OpenGL style), see ``ex4d.cameras.io``.

Camera paths: ``ex4d.cameras.trajectories`` (reference presets, orbits, dolly, zooms, files; pivot at
(0, 0, min_depth + pivot_offset), by default ``DEFAULT_PIVOT_OFFSET``, the reference's); pictures of a path:
``ex4d.cameras.plot``.
"""

from ex4d.cameras.core import (
    c2w_to_w2c,
    camera_centers,
    intrinsics,
    look_at,
    per_frame_intrinsics,
    project,
    shared_intrinsics,
    unproject_depth,
    w2c_to_c2w,
)

from ex4d.cameras.io import load_intrinsics, load_reference_npz, load_w2c, save_cameras_json, save_reference_npz
from ex4d.cameras.trajectories import (
    DEFAULT_PIVOT_OFFSET,
    Arc,
    Dolly,
    DollyZoom,
    FileTrajectory,
    FocalZoom,
    Orbit,
    ReferenceLoop180,
    ReferenceOrbit,
    Trajectory,
    trajectory_from_preset,
)

__all__ = [
    "DEFAULT_PIVOT_OFFSET",
    "Arc",
    "Dolly",
    "DollyZoom",
    "FileTrajectory",
    "FocalZoom",
    "Orbit",
    "ReferenceLoop180",
    "ReferenceOrbit",
    "Trajectory",
    "load_intrinsics",
    "load_reference_npz",
    "load_w2c",
    "save_cameras_json",
    "save_reference_npz",
    "trajectory_from_preset",
    "c2w_to_w2c",
    "camera_centers",
    "intrinsics",
    "look_at",
    "per_frame_intrinsics",
    "project",
    "shared_intrinsics",
    "unproject_depth",
    "w2c_to_c2w",
]
