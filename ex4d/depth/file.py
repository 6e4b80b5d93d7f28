"""Precomputed depth or disparity read from files.

Formats: an ``.npz`` (key ``depth`` or ``disparity``, or ``key``), an ``.npy``, each (T, H, W) (or (H, W)
for one frame), or a folder of single-channel 16-bit PNGs, one per frame in name order, with
``value * png_scale`` the depth. With ``path=None`` the file sits beside the input video:
``<folder>/<video stem>_depth.npz``. An ``.npz`` that also holds ``K`` (3, 3) (as this project's
``depth.npz`` does) gives the intrinsics; otherwise K is the reference pinhole (f = 500 px, centred).

Scales:
    kind=depth, scale=ex4d:        already EX-4D depth (e.g. a previous run's depth.npz): used as is.
    kind=depth, scale=normalize:   any positive depth; its inverse is normalised over the clip as
                                   model disparity is (the EX-4D recipe).
    kind=depth, scale=similarity:  any positive depth, uniformly rescaled so the nearest point is at
                                   10000/3900 (keeps the shape; ``metric=True`` reports metres).
    kind=disparity, scale=normalize: relative disparity (larger = nearer), min-max normalised over the clip.
    kind=disparity, scale=ex4d:    disparity already normalised to [0, 1] over its clip (DepthCrafter's
                                   saved ``.npz``, whose key is ``depth``: use key=depth), converted as is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ex4d.cameras import intrinsics
from ex4d.cameras.io import validate_K
from ex4d.depth.base import EX4D_MAX, EX4D_MIN, EX4D_NEAR, DepthBackend, DepthResult, disparity_to_ex4d_depth, validate_depth
from ex4d.utils.checks import check_bool, check_number
from ex4d.utils.errors import InputError

KINDS = ("depth", "disparity")
SCALES = ("ex4d", "normalize", "similarity")


class FileDepthBackend(DepthBackend):
    """Depth of a clip read from a file; errors name the file.

    Args:
        path: ``.npz`` / ``.npy`` file or PNG folder; None: ``<video stem>_depth.npz`` beside the input.
        kind: "depth" (larger = farther) or "disparity" (larger = nearer).
        scale: "ex4d", "normalize" or "similarity" (see the module docstring).
        key: array name inside an ``.npz`` (default: ``kind``).
        png_scale: PNG folders: depth = 16-bit value * png_scale (e.g. 0.001 for millimetres -> metres).
        resize: if the file's size differs from the frames', resample it (nearest-exact for depth, so
            no depth is invented at edges; bilinear for disparity); False raises instead.
        trim: if the file has more frames than the clip, use its first T; False raises instead.
        metric: with scale=similarity, the values are metres: report ``metric_scale``.
        focal_px: focal length of K when the file has none.
    """

    name = "file"

    def __init__(self, path: str | None = None, kind: str = "depth", scale: str = "ex4d", key: str | None = None,
                 png_scale: float = 1.0, resize: bool = False, trim: bool = False, metric: bool = False,
                 focal_px: float = 500.0):
        if kind not in KINDS:
            raise InputError(f"depth.kind must be one of {KINDS}, got {kind!r}")
        if scale not in SCALES:
            raise InputError(f"depth.scale must be one of {SCALES}, got {scale!r}")
        if kind == "disparity" and scale == "similarity":
            raise InputError("depth.scale=similarity needs depth.kind=depth (a disparity has no shape to keep)")
        self.path, self.kind, self.scale, self.key = path, kind, scale, key
        self.png_scale = check_number(png_scale, "depth.png_scale", positive=True)
        self.focal_px = check_number(focal_px, "depth.focal_px", positive=True)
        self.resize, self.trim = check_bool(resize, "depth.resize"), check_bool(trim, "depth.trim")
        self.metric = check_bool(metric, "depth.metric")

    def resolve_path(self, source: str | None) -> Path:
        """The file to read for input ``source``."""
        if self.path is not None:
            return Path(self.path).expanduser()
        if source is None or str(source).startswith("example:"):
            raise InputError(f"depth.path is not set and input {source!r} is not a file to look beside "
                             "(expected <video stem>_depth.npz next to the video)")
        src = Path(source).expanduser()
        return src.with_name(f"{src.stem}_depth.npz")

    def __call__(self, frames: Tensor, source: str | None = None) -> DepthResult:
        """frames (T, H, W, 3) -> DepthResult with depth (T, H, W) on the EX-4D scale."""
        T, H, W = tuple(frames.shape[:3])
        path = self.resolve_path(source)
        values, K = read_depth_file(path, self.kind, self.key, self.png_scale)
        if values.ndim == 2:
            values = values[None]
        if values.ndim != 3:
            raise InputError(f"{path}: expected {self.kind} of shape (T, H, W), got {tuple(values.shape)}")
        _check_values(values, self.kind, path)
        n = values.shape[0]
        if n != T:
            if not (self.trim and n > T):
                hint = " (set depth.trim=true to use its first frames)" if n > T else ""
                raise InputError(f"{path}: has {n} frames of {self.kind}, the clip has {T}{hint}")
            values = values[:T]
        h, w = values.shape[1:]
        if (h, w) != (H, W):
            if not self.resize:
                raise InputError(f"{path}: {self.kind} is {h}x{w}, the frames are {H}x{W} "
                                 "(set depth.resize=true to resample)")
            mode = "nearest-exact" if self.kind == "depth" else "bilinear"
            values = torch.nn.functional.interpolate(values[None], size=(H, W), mode=mode,
                                                     **({} if mode == "nearest-exact" else {"align_corners": False}))[0]
            if K is not None:
                K = K.clone()
                K[0] *= W / w
                K[1] *= H / h
        depth, metric_scale = self._to_ex4d(values, path)
        validate_depth(depth, (T, H, W), source=str(path))
        if K is None:
            K = intrinsics(H, W, self.focal_px)
        info = {"backend": self.name, "path": str(path), "kind": self.kind, "scale": self.scale}
        return DepthResult(depth=depth, K=K, metric_scale=metric_scale, info=info)

    def _to_ex4d(self, values: Tensor, path: Path) -> tuple[Tensor, float | None]:
        v = values.float()
        if self.kind == "depth":
            if self.scale == "ex4d":
                lo, hi = float(v.min()), float(v.max())
                if lo < EX4D_MIN * (1 - 1e-6) or hi > EX4D_MAX * (1 + 1e-6):
                    raise InputError(f"{path}: depth.scale=ex4d expects EX-4D depth in [{EX4D_MIN:g}, {EX4D_MAX:g}], got "
                                     f"[{lo:.4g}, {hi:.4g}]; use depth.scale=similarity (metric or any positive depth) "
                                     "or depth.scale=normalize")
                return v, None
            if self.scale == "similarity":
                s = EX4D_NEAR / float(v.min())
                return (v.double() * s).clamp(1e-4, 1e4).float(), (s if self.metric else None)
            v = 1.0 / v.double()  # normalize: treat inverse depth as the disparity to normalise
        if self.scale == "normalize":
            if float(v.max() - v.min()) <= 0:
                raise InputError(f"{path}: {self.kind} is constant over the clip; it cannot be normalised")
            return disparity_to_ex4d_depth(v), None
        # disparity already normalised over its clip: the EX-4D formula without renormalising
        if float(v.min()) < 0 or float(v.max()) > 1:
            raise InputError(f"{path}: scale=ex4d expects disparity normalised to [0, 1], got [{float(v.min()):.4g}, "
                             f"{float(v.max()):.4g}] (use depth.scale=normalize)")
        return (10000.0 / (3900.0 * v).clamp_min(1e-5)).clamp(1e-4, 1e4), None


def read_depth_file(path: Path, kind: str = "depth", key: str | None = None,
                    png_scale: float = 1.0) -> tuple[Tensor, Tensor | None]:
    """Read an array of depth/disparity and an optional K from ``path``; InputError naming the file otherwise.

    Returns:
        values: (T, H, W) or (H, W) float tensor as stored (times ``png_scale`` for PNGs);
        K: (3, 3) float64 when an ``.npz`` holds one, else None.
    """
    path = Path(path)
    if path.is_dir():
        return _read_png_folder(path, png_scale), None
    if not path.is_file():
        raise InputError(f"{path}: {kind} file not found")
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise InputError(f"{path}: unsupported {kind} file type {suffix!r} "
                         "(expected .npz, .npy or a folder of 16-bit PNGs)")
    try:
        if suffix == ".npy":
            arr, K = np.load(path, allow_pickle=False), None
        else:
            with np.load(path, allow_pickle=False) as z:
                name = key or kind
                if name not in z.files:
                    raise InputError(f"{path}: no array {name!r} (found {z.files}); set depth.key or depth.kind")
                arr = z[name]
                K = z["K"] if "K" in z.files else None
    except InputError:
        raise
    except Exception as e:  # truncated or corrupt archive, bad header, pickled objects, ...
        raise InputError(f"{path}: cannot read {kind} file ({type(e).__name__}: {e})") from e
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{path}: {kind} must be a real numeric array, got dtype {arr.dtype}")
    if K is not None:
        K = validate_K(K, str(path), "K")  # a zero or NaN K would only fail in the renderer's inverse
    return torch.from_numpy(np.asarray(arr, dtype=np.float32).copy()), K


def _read_png_folder(folder: Path, png_scale: float) -> Tensor:
    import cv2

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise InputError(f"{folder}: no .png depth frames in this folder")
    maps = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise InputError(f"{f}: cannot read PNG")
        if img.ndim != 2 or img.dtype != np.uint16:
            raise InputError(f"{f}: expected a single-channel 16-bit PNG, got {img.dtype} of shape {img.shape}")
        if maps and img.shape != maps[0].shape:
            raise InputError(f"{f}: size {img.shape} differs from {files[0].name} {maps[0].shape}")
        if (img == 0).any():
            raise InputError(f"{f}: {int((img == 0).sum())} pixels are 0 (depth must be > 0; fill holes first)")
        maps.append(img)
    return torch.from_numpy(np.stack(maps).astype(np.float32) * png_scale)


def _check_values(values: Tensor, kind: str, path: Path) -> None:
    """Depth: finite and > 0 (validate_depth); disparity: finite; either: not one value everywhere."""
    if values.numel() == 0:
        raise InputError(f"{path}: the {kind} array is empty, shape {tuple(values.shape)}")
    if kind == "depth":
        validate_depth(values, source=str(path))
    else:
        bad = ~torch.isfinite(values)
        if bad.any():
            raise InputError(f"{path}: {int(bad.sum())} disparity values are NaN or inf")
    # Real depth always varies; one value everywhere is a fill value or a failed export, and would give a
    # flat card (or, normalised, a division by zero).
    if float(values.max()) == float(values.min()):
        raise InputError(f"{path}: every {kind} value is {float(values.min()):.6g}, a constant map (a fill value or "
                         f"a failed export?); write the real {kind} (depth=constant exists for a flat plane)")
