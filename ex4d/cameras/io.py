"""Camera path files: the reference ``camera_<cam>.npz`` and our JSON, both validated on load.

Everything returned here is in the project convention (``ex4d.cameras``): OpenCV axes, float64
world-to-camera ``w2c`` (N, 4, 4), ``K`` (3, 3) or, for a path whose focal length changes, ``K_T33``
(N, 3, 3). The one foreign convention is the reference npz:

* The reference look-at builds ``R_ref = [s; u; f]`` (s = normalize(f x (0, 1, 0)), u = s x f), a
  mirrored frame with det -1. Its renderer negates rows 0..2 of that matrix *in place* before the
  OpenGL projection, and the negated matrix is what lands in the file as ``extrinsics``.
* Our OpenCV ``w2c`` is ``diag(-1, 1, 1, 1) @ look_at_ref``, hence
  ``extrinsics = diag(1, -1, -1, 1) @ w2c`` (x right, y up, z backward: the OpenGL camera frame).
  Negating three rows flips the determinant, so stored rotations are proper (det +1) and the
  conversion below (its own inverse) keeps them proper.

File formats read by :func:`load_w2c` (used by ``FileTrajectory``):

* ``.json``: an object with ``"w2c"`` or ``"c2w"`` (a list of N 4x4 nested lists); extra keys are
  ignored, so a file written by :func:`save_cameras_json` loads as a trajectory too.
* ``.npz``: arrays ``w2c`` or ``c2w`` (N, 4, 4), or the reference's ``extrinsics``.

Intrinsics in a file (``"K"`` in ours, ``intrinsics`` in the reference's; :func:`load_intrinsics`) are one
(3, 3) matrix for the whole path or one per pose, (N, 3, 3). The writers (:func:`save_cameras_json`,
:func:`save_reference_npz`) store one (3, 3) when every frame has the same ``K``, exactly as the reference
format does, and (N, 3, 3) otherwise: a reader that only knows the single-``K`` layout then fails on the
shape instead of silently using frame 0's focal length for every frame.

Every problem with a file raises :class:`ex4d.utils.errors.InputError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ex4d.cameras.core import per_frame_intrinsics, shared_intrinsics, w2c_to_c2w
from ex4d.utils.errors import InputError

# diag(1, -1, -1, 1): OpenCV camera frame <-> the reference's stored (OpenGL) camera frame.
REFERENCE_FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))

# convention name -> the key that holds the poses, in JSON and NPZ alike.
CONVENTION_KEYS = {"w2c": "w2c", "c2w": "c2w", "reference_npz": "extrinsics"}
CONVENTIONS = ("auto", *CONVENTION_KEYS)

ROTATION_ATOL = 1e-4  # float32 files (the reference's) are orthonormal to ~1e-7; 1e-4 catches real errors
LAST_ROW_ATOL = 1e-6


class CameraSet(NamedTuple):
    """What :func:`load_cameras_json` returns."""

    w2c: Tensor  # (N, 4, 4) float64
    K: Tensor  # (3, 3) float64 shared by every frame, or (N, 3, 3) one per frame (as stored)
    height: int
    width: int

    @property
    def K_T33(self) -> Tensor:
        """(N, 3, 3) float64, one ``K`` per frame."""
        return per_frame_intrinsics(self.K, self.w2c.shape[0])


def w2c_to_reference_extrinsics(w2c: Tensor) -> Tensor:
    """OpenCV ``w2c`` (..., 4, 4) -> the reference's stored ``extrinsics`` (rows 0..2 of its look-at negated)."""
    return REFERENCE_FLIP.to(w2c.dtype) @ w2c


# The flip is its own inverse (exact: multiplying by +-1 loses no bits).
reference_extrinsics_to_w2c = w2c_to_reference_extrinsics


def validate_w2c(poses, source: str, what: str = "w2c") -> Tensor:
    """Check that ``poses`` is a rigid (N, 4, 4) pose array and return it as float64.

    Args:
        poses: array-like (N, 4, 4), N >= 1.
        source: the file (or config key) the poses came from, for error messages.
        what: the name of the array in that file, for error messages.

    Raises:
        InputError: wrong shape, non-finite values, last row not (0, 0, 0, 1), rotation block not
            orthonormal or not det +1 (within 1e-4).
    """
    try:
        arr = torch.as_tensor(np.asarray(poses, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise InputError(f"{source}: '{what}' is not a numeric (N, 4, 4) array ({e})") from e
    if arr.ndim != 3 or arr.shape[1:] != (4, 4) or arr.shape[0] < 1:
        raise InputError(f"{source}: '{what}' must have shape (N, 4, 4) with N >= 1, got {tuple(arr.shape)}")
    bad = ~torch.isfinite(arr).flatten(1).all(dim=1)
    if bad.any():
        raise InputError(f"{source}: '{what}' has NaN or infinite values (frame {int(bad.nonzero()[0])})")
    last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    bad = ((arr[:, 3] - last).abs() > LAST_ROW_ATOL).any(dim=1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise InputError(f"{source}: '{what}' frame {i} last row is {arr[i, 3].tolist()}, expected [0, 0, 0, 1]")
    R = arr[:, :3, :3]
    ortho_err = (R @ R.transpose(-1, -2) - torch.eye(3, dtype=torch.float64)).abs().flatten(1).amax(dim=1)
    det = torch.linalg.det(R)
    bad = (ortho_err > ROTATION_ATOL) | ((det - 1.0).abs() > ROTATION_ATOL)
    if bad.any():
        i = int(bad.nonzero()[0])
        hint = ""
        if ortho_err[i] <= ROTATION_ATOL and abs(det[i] + 1.0) <= ROTATION_ATOL:
            hint = (
                " (a mirrored frame, det -1: e.g. the reference's raw look-at [s; u; f] before its rows 0..2"
                " were negated, or an axis flip applied on one side only)"
            )
        raise InputError(
            f"{source}: '{what}' frame {i} rotation is not a proper rotation: |R R^T - I| = {ortho_err[i]:.3g},"
            f" det = {det[i]:.6f}; expected orthonormal with det +1 within {ROTATION_ATOL}{hint}"
        )
    return arr


def validate_K(K, source: str, what: str = "K") -> Tensor:
    """Check a (3, 3) pinhole matrix (finite, last row (0, 0, 1), positive focal lengths); float64."""
    try:
        arr = torch.as_tensor(np.asarray(K, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise InputError(f"{source}: '{what}' is not a numeric (3, 3) array ({e})") from e
    if arr.shape != (3, 3):
        raise InputError(f"{source}: '{what}' must have shape (3, 3), got {tuple(arr.shape)}")
    if not torch.isfinite(arr).all():
        raise InputError(f"{source}: '{what}' has NaN or infinite values")
    last_row_ok = torch.allclose(arr[2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    if not last_row_ok or arr[0, 0] <= 0 or arr[1, 1] <= 0:
        raise InputError(
            f"{source}: '{what}' must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0, got {arr.tolist()}"
        )
    return arr


def validate_intrinsics(K, source: str, what: str = "K", num_frames: int | None = None) -> Tensor:
    """Check intrinsics that may change per frame: one (3, 3) ``K`` or ``K_T33`` (N, 3, 3), each matrix as
    :func:`validate_K` checks it; N must equal ``num_frames`` when given. Returns float64 in the given shape.

    Raises:
        InputError: naming ``source`` and ``what``: wrong shape, a per-frame count that is not the path's
            frame count, a malformed matrix (with its frame index).
    """
    try:
        arr = torch.as_tensor(np.asarray(K, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise InputError(f"{source}: '{what}' is not a numeric (3, 3) or (N, 3, 3) array ({e})") from e
    if arr.shape == (3, 3):
        return validate_K(arr, source, what)
    if arr.ndim != 3 or arr.shape[1:] != (3, 3) or arr.shape[0] < 1:
        raise InputError(f"{source}: '{what}' must have shape (3, 3) or (N, 3, 3), got {tuple(arr.shape)}")
    if num_frames is not None and arr.shape[0] != num_frames:
        raise InputError(f"{source}: '{what}' has {arr.shape[0]} per-frame matrices but the path has {num_frames} "
                         "frames; give one (3, 3) K for the whole path or exactly one per frame")
    for i in range(arr.shape[0]):
        validate_K(arr[i], source, f"{what}[{i}]")
    return arr


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: camera file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable JSON file ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with a pose key, got {type(data).__name__}")
    return data


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError(f"{path}: camera file not found")
    # A broken archive can fail in many ways (BadZipFile, zlib.error, UnpicklingError, ValueError,
    # EOFError); at this edge every one of them means "corrupt file".
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise InputError(f"{path}: expected an .npz archive of named arrays, got a single .npy array")
            return {k: np.asarray(z[k]) for k in z.files}
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - see above
        raise InputError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e


def _read_any(path: Path) -> dict:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".npz":
        return _read_npz(path)
    raise InputError(f"{path}: unsupported camera file type '{suffix}', expected .json or .npz")


def load_w2c(path: str | Path, convention: str = "auto") -> Tensor:
    """Load and validate a camera path file as OpenCV world-to-camera poses.

    Args:
        path: ``.json`` or ``.npz`` file (formats in the module docstring).
        convention: ``"w2c"``, ``"c2w"`` or ``"reference_npz"`` (key ``extrinsics``, converted with
            ``diag(1, -1, -1, 1)``) requires that key; ``"auto"`` takes the first present of
            ``w2c``, ``c2w``, ``extrinsics``. When both ``w2c`` and ``c2w`` are present they must agree.

    Returns:
        w2c: (N, 4, 4) float64.

    Raises:
        InputError: missing file, corrupt file, missing key, malformed poses; the message names the file.
    """
    path = Path(path)
    if convention not in CONVENTIONS:
        raise InputError(f"{path}: unknown camera convention '{convention}', expected one of {list(CONVENTIONS)}")
    data = _read_any(path)
    if convention == "auto":
        present = [c for c, k in CONVENTION_KEYS.items() if k in data]
        if not present:
            raise InputError(
                f"{path}: no pose key found; expected one of {list(CONVENTION_KEYS.values())}, got keys {sorted(data)}"
            )
        convention = present[0]
    key = CONVENTION_KEYS[convention]
    if key not in data:
        raise InputError(f"{path}: missing key '{key}' (convention '{convention}'); got keys {sorted(data)}")
    poses = validate_w2c(data[key], str(path), key)
    for k_key in ("K", "intrinsics"):  # read by load_intrinsics; a broken K means a broken file either way
        if k_key in data:
            validate_intrinsics(data[k_key], str(path), k_key, poses.shape[0])
    if convention == "w2c":
        w2c = poses
        if "c2w" in data:  # our own JSON carries both: a mismatch means a hand-edited or buggy file
            c2w = validate_w2c(data["c2w"], str(path), "c2w")
            if c2w.shape != w2c.shape or not torch.allclose(w2c_to_c2w(w2c), c2w, atol=1e-6, rtol=0):
                raise InputError(f"{path}: 'w2c' and 'c2w' are both present but are not inverses of each other")
    elif convention == "c2w":
        w2c = w2c_to_c2w(poses)  # rigid inverse
    else:
        w2c = reference_extrinsics_to_w2c(poses)
    return w2c


def load_intrinsics(path: str | Path) -> Tensor | None:
    """The intrinsics a camera file carries, validated against its pose count; None when it has none.

    Reads ``K`` (our JSON / npz) or ``intrinsics`` (the reference npz); when both are present they must be
    equal. Returns (3, 3) or (N, 3, 3) float64, as stored.
    """
    path = Path(path)
    data = _read_any(path)
    key = next((c for c in ("w2c", "c2w", "extrinsics") if c in data), None)
    n = None if key is None else validate_w2c(data[key], str(path), key).shape[0]
    found = {k: validate_intrinsics(data[k], str(path), k, n) for k in ("K", "intrinsics") if k in data}
    if not found:
        return None
    if len(found) == 2 and not (found["K"].shape == found["intrinsics"].shape
                                and torch.equal(found["K"], found["intrinsics"])):
        raise InputError(f"{path}: 'K' and 'intrinsics' are both present but differ")
    return next(iter(found.values()))


def save_reference_npz(path: str | Path, w2c: Tensor, K: Tensor) -> Path:
    """Write a reference-format ``camera_<cam>.npz``.

    Args:
        path: output file (``.npz``); parent folders are created.
        w2c: (N, 4, 4) OpenCV world-to-camera poses.
        K: (3, 3) intrinsics, or ``K_T33`` (N, 3, 3) one per frame.

    Stored: ``extrinsics = diag(1, -1, -1, 1) @ w2c`` and ``intrinsics``: one (3, 3) ``K`` when every frame
    has the same (the reference layout), else (N, 3, 3); compressed, float64 (the reference writes float32;
    float64 makes :func:`load_reference_npz` an exact round trip, and readers of the reference format accept
    either).
    """
    path = Path(path)
    w2c = validate_w2c(w2c, str(path), "w2c")
    K = shared_intrinsics(validate_intrinsics(K, str(path), "K", w2c.shape[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = w2c_to_reference_extrinsics(w2c).numpy()
    # np.savez_compressed appends ".npz" to names without it; open the file ourselves to keep `path`.
    with open(path, "wb") as fh:
        np.savez_compressed(fh, extrinsics=ext, intrinsics=K.numpy())
    return path


def load_reference_npz(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read a reference ``camera_<cam>.npz`` (ours or the reference's own).

    Returns:
        w2c: (N, 4, 4) float64 OpenCV world-to-camera; K: (3, 3) float64, or (N, 3, 3) when the file has
        one per frame.

    Raises:
        InputError: missing/corrupt file, missing ``extrinsics`` or ``intrinsics``, malformed arrays, a
            per-frame ``intrinsics`` count that is not the pose count.
    """
    path = Path(path)
    data = _read_npz(path)
    for key in ("extrinsics", "intrinsics"):
        if key not in data:
            raise InputError(f"{path}: missing key '{key}' of the reference camera format; got keys {sorted(data)}")
    ext = validate_w2c(data["extrinsics"], str(path), "extrinsics")
    K = validate_intrinsics(data["intrinsics"], str(path), "intrinsics", ext.shape[0])
    return reference_extrinsics_to_w2c(ext), K


def save_cameras_json(path: str | Path, w2c: Tensor, K: Tensor, height: int, width: int) -> Path:
    """Write our camera JSON: ``w2c`` and ``c2w`` (N lists of 4x4), ``K``, ``height``, ``width``.

    ``K`` (3, 3) or ``K_T33`` (N, 3, 3) is written as one 3x3 list when every frame has the same ``K``, else
    as N of them (the module docstring says why). Python floats are written with their shortest exact repr, so :func:`load_cameras_json` returns
    the same float64 values bit for bit.
    """
    path = Path(path)
    w2c = validate_w2c(w2c, str(path), "w2c")
    K = shared_intrinsics(validate_intrinsics(K, str(path), "K", w2c.shape[0]))
    if int(height) < 1 or int(width) < 1:
        raise InputError(f"{path}: height and width must be positive, got {height}x{width}")
    data = {
        "convention": "OpenCV axes (x right, y down, z forward); w2c maps world (= source camera) to camera",
        "height": int(height),
        "width": int(width),
        "K": K.tolist(),
        "w2c": w2c.tolist(),
        "c2w": w2c_to_c2w(w2c).tolist(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def load_cameras_json(path: str | Path) -> CameraSet:
    """Read a file written by :func:`save_cameras_json` (validated; ``c2w`` must match ``w2c``)."""
    path = Path(path)
    data = _read_json(path)
    for key in ("w2c", "K", "height", "width"):
        if key not in data:
            raise InputError(f"{path}: missing key '{key}'; got keys {sorted(data)}")
    w2c = load_w2c(path, "w2c")
    K = validate_intrinsics(data["K"], str(path), "K", w2c.shape[0])
    try:
        height, width = int(data["height"]), int(data["width"])
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: 'height'/'width' must be integers ({e})") from e
    return CameraSet(w2c, K, height, width)
