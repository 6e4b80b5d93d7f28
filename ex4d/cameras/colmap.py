"""A camera path as a COLMAP text model (``cameras.txt``, ``images.txt``, ``points3D.txt``), and a reader.

COLMAP's documented text format ("Output format" in its manual) and how the project's convention maps to it:

* **Poses**: COLMAP stores world-to-camera ``R, t`` (``X_cam = R X_world + t``) with camera axes x right,
  y down, z forward: exactly our OpenCV ``w2c``, so no axis change. ``R`` is written as the unit quaternion
  ``QW QX QY QZ`` (scalar first; we write it with QW >= 0), ``t`` as ``TX TY TZ``. The world is ours too
  (the source camera of frame 0), in the scene's depth units.
* **Intrinsics**: model ``PINHOLE`` with params ``fx fy cx cy``. COLMAP puts the centre of the top-left
  pixel at (0.5, 0.5), as we do, so ``K`` maps over unchanged. One camera per distinct ``K`` (numbered
  from 1 in order of first use): a path with one ``K`` has one camera, a zoom one per frame. PINHOLE has no
  skew: a ``K`` with ``K[0, 1] != 0`` is refused.
* **Images**: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then a line of 2-D points, left empty (no
  feature matches exist); ids from 1 in frame order.
* **Points**: ``POINT3D_ID X Y Z R G B ERROR TRACK[]``, with ``ERROR`` 0 and an empty track (no image
  observes them through matches); empty when no points are given.

Quaternions go through ``scipy.spatial.transform.Rotation`` (scalar-last there, reordered here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ex4d.cameras.core import per_frame_intrinsics
from ex4d.cameras.io import validate_intrinsics, validate_w2c
from ex4d.utils.errors import InputError

COLMAP_FILES = ("cameras.txt", "images.txt", "points3D.txt")
COLMAP_MODEL = "PINHOLE"


def _quat_wxyz(R: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions (w, x, y, z), w >= 0, of rotations (N, 3, 3)."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(R).as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    return np.where(q[:, :1] < 0, -q, q)


def _rotation_from_wxyz(q: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(np.asarray(q, np.float64)[:, [1, 2, 3, 0]]).as_matrix()


def write_colmap_text(out_dir: str | Path, w2c: Tensor, K: Tensor, height: int, width: int,
                      image_names: list[str] | None = None, points_xyz: np.ndarray | None = None,
                      points_rgb: np.ndarray | None = None) -> dict[str, Path]:
    """Write a COLMAP text model of a camera path (format in the module docstring).

    Args:
        out_dir: folder for ``cameras.txt``, ``images.txt``, ``points3D.txt`` (created).
        w2c: (N, 4, 4) world-to-camera poses (project convention).
        K: (3, 3) shared intrinsics or ``K_T33`` (N, 3, 3), pixels of an image of ``height`` x ``width``.
        image_names: N file names (default ``frame_00000.png`` ...; no spaces: COLMAP splits on them).
        points_xyz: optional (P, 3) world points for ``points3D.txt``; points_rgb: (P, 3) uint8 colours.

    Returns:
        name -> path of the three files.

    Raises:
        InputError: malformed poses or intrinsics, a skewed ``K``, names of the wrong count or with spaces.
    """
    out = Path(out_dir)
    w2c = validate_w2c(w2c, str(out), "w2c")
    n = w2c.shape[0]
    K_T33 = per_frame_intrinsics(validate_intrinsics(K, str(out), "K", n), n).numpy()
    if np.any(K_T33[:, 0, 1] != 0):
        raise InputError(f"{out}: COLMAP's PINHOLE model has no skew; K[0, 1] must be 0")
    names = image_names if image_names is not None else [f"frame_{i:05d}.png" for i in range(n)]
    if len(names) != n or any(not str(s) or any(c.isspace() for c in str(s)) for s in names):
        raise InputError(f"{out}: need {n} image names without spaces, got {len(names)}")
    out.mkdir(parents=True, exist_ok=True)

    camera_ids, cam_lines = [], []
    distinct: dict[tuple, int] = {}
    for Ki in K_T33:
        params = (Ki[0, 0], Ki[1, 1], Ki[0, 2], Ki[1, 2])
        if params not in distinct:
            distinct[params] = len(distinct) + 1
            cam_lines.append(f"{distinct[params]} {COLMAP_MODEL} {int(width)} {int(height)} "
                             + " ".join(repr(float(p)) for p in params))
        camera_ids.append(distinct[params])
    files = {"cameras": out / "cameras.txt", "images": out / "images.txt", "points3D": out / "points3D.txt"}
    files["cameras"].write_text(
        "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        f"# Number of cameras: {len(cam_lines)}\n" + "".join(line + "\n" for line in cam_lines))

    w2c64 = w2c.numpy()
    q = _quat_wxyz(w2c64[:, :3, :3])
    t = w2c64[:, :3, 3]
    img_lines = []
    for i in range(n):
        vals = " ".join(repr(float(v)) for v in (*q[i], *t[i]))
        img_lines.append(f"{i + 1} {vals} {camera_ids[i]} {names[i]}\n\n")  # empty POINTS2D line
    files["images"].write_text(
        "# Image list with two lines of data per image:\n"
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
        f"# Number of images: {n}, mean observations per image: 0\n" + "".join(img_lines))

    xyz = np.zeros((0, 3)) if points_xyz is None else np.asarray(points_xyz, np.float64).reshape(-1, 3)
    rgb = np.zeros((len(xyz), 3), np.uint8) if points_rgb is None else np.asarray(points_rgb, np.uint8).reshape(-1, 3)
    if len(rgb) != len(xyz):
        raise InputError(f"{out}: {len(xyz)} points but {len(rgb)} colours")
    pt_lines = [f"{j + 1} {p[0]!r} {p[1]!r} {p[2]!r} {c[0]} {c[1]} {c[2]} 0\n"
                for j, (p, c) in enumerate(zip(xyz.tolist(), rgb.tolist()))]
    files["points3D"].write_text(
        "# 3D point list with one line of data per point:\n"
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
        f"# Number of points: {len(pt_lines)}, mean track length: 0\n" + "".join(pt_lines))
    return files


@dataclass
class ColmapModel:
    """A COLMAP text model read back (images in file order).

    Attributes:
        cameras: camera id -> (model, width, height, params list).
        image_ids, camera_ids: (N,) ints; names: N image names.
        w2c: (N, 4, 4) float64 world-to-camera from the quaternions and translations.
        points_xyz: (P, 3) float64; points_rgb: (P, 3) uint8.
    """

    cameras: dict
    image_ids: list
    camera_ids: list
    names: list
    w2c: Tensor
    points_xyz: np.ndarray
    points_rgb: np.ndarray

    @property
    def K_T33(self) -> Tensor:
        """(N, 3, 3) float64 intrinsics of each image from its PINHOLE / SIMPLE_PINHOLE camera."""
        out = []
        for cid in self.camera_ids:
            model, _, _, p = self.cameras[cid]
            fx, fy, cx, cy = (p[0], p[0], p[1], p[2]) if model == "SIMPLE_PINHOLE" else p[:4]
            out.append([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return torch.tensor(out, dtype=torch.float64)


def _data_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: COLMAP model file not found")
    return [ln.strip() for ln in path.read_text().splitlines() if not ln.startswith("#")]


def read_colmap_text(model_dir: str | Path) -> ColmapModel:
    """Read ``cameras.txt``, ``images.txt`` and ``points3D.txt`` of a COLMAP text model (any writer's).

    Raises:
        InputError: a missing file or a malformed line (naming the file and line).
    """
    d = Path(model_dir)
    cameras = {}
    for ln in _data_lines(d / "cameras.txt"):
        if not ln:
            continue
        f = ln.split()
        try:
            cameras[int(f[0])] = (f[1], int(f[2]), int(f[3]), [float(x) for x in f[4:]])
        except (IndexError, ValueError) as e:
            raise InputError(f"{d / 'cameras.txt'}: malformed line {ln!r} ({e})") from e
    # images.txt: two lines per image; the second (2-D points) may be empty.
    lines = _data_lines(d / "images.txt")
    image_ids, camera_ids, names, q, t = [], [], [], [], []
    for ln in lines[0::2]:
        f = ln.split()
        try:
            image_ids.append(int(f[0]))
            q.append([float(x) for x in f[1:5]])
            t.append([float(x) for x in f[5:8]])
            camera_ids.append(int(f[8]))
            names.append(f[9])
        except (IndexError, ValueError) as e:
            raise InputError(f"{d / 'images.txt'}: malformed image line {ln!r} ({e})") from e
    unknown = sorted(set(camera_ids) - set(cameras))
    if unknown:
        raise InputError(f"{d / 'images.txt'}: images use camera ids {unknown} that cameras.txt does not define")
    n = len(image_ids)
    w2c = np.tile(np.eye(4), (n, 1, 1))
    if n:
        w2c[:, :3, :3] = _rotation_from_wxyz(np.asarray(q))
        w2c[:, :3, 3] = np.asarray(t)
    xyz, rgb = [], []
    for ln in _data_lines(d / "points3D.txt"):
        if not ln:
            continue
        f = ln.split()
        try:
            xyz.append([float(x) for x in f[1:4]])
            rgb.append([int(x) for x in f[4:7]])
        except (IndexError, ValueError) as e:
            raise InputError(f"{d / 'points3D.txt'}: malformed line {ln!r} ({e})") from e
    return ColmapModel(cameras, image_ids, camera_ids, names, torch.from_numpy(w2c),
                       np.asarray(xyz, np.float64).reshape(-1, 3), np.asarray(rgb, np.uint8).reshape(-1, 3))
