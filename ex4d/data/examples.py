"""Built-in examples with ground truth, from data that ships with installed packages.

``motorcycle``: the Middlebury 2014 "Motorcycle" stereo pair bundled with scikit-image
(``skimage.data.stereo_motorcycle``), down-sampled 4x by scikit-image to 741x500, with ground-truth
disparity of the left view. Calibration for those down-sampled images (scikit-image's docstring):
focal 994.978 px, principal point (311.193, 254.877) px, doffs (principal point offset between the two
cameras) 31.086 px, baseline 193.001 mm; metric depth = f * B / (d + doffs).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ex4d.utils.errors import InputError

MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_CX_PX = 311.193
MOTORCYCLE_CY_PX = 254.877
MOTORCYCLE_DOFFS_PX = 31.086
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_SIZE = (500, 741)  # (H, W)

FILL_MODES = ("background", "nearest")


def fill_disparity_holes(disparity: np.ndarray, valid: np.ndarray, mode: str = "background") -> np.ndarray:
    """Fill unknown disparities of a rectified left view.

    Args:
        disparity: (H, W) float disparity in pixels; values where ``valid`` is False are ignored.
        valid: (H, W) bool, True where the ground truth is known.
        mode: "background": along each scanline, a hole takes the smaller (farther) of the disparities
            that bound it left and right. Stereo holes are mostly occlusions: surfaces hidden behind a
            foreground edge, which belong to the background, so this does not smear the foreground
            into them (as inpainting or nearest-valid would). Rows without any valid pixel copy the
            nearest row that has one. "nearest": the nearest valid pixel (Euclidean).

    Returns:
        (H, W) float32 disparity without holes.
    """
    if mode not in FILL_MODES:
        raise InputError(f"fill: expected one of {FILL_MODES}, got {mode!r}")
    if not valid.any():
        raise InputError("ground-truth disparity has no valid pixel")
    out = np.where(valid, disparity, 0).astype(np.float32)
    if valid.all():
        return out
    if mode == "nearest":
        from scipy.ndimage import distance_transform_edt

        _, (iy, ix) = distance_transform_edt(~valid, return_indices=True)
        return out[iy, ix]
    H, W = out.shape
    cols = np.arange(W)
    for v in np.flatnonzero(valid.any(axis=1) & ~valid.all(axis=1)):
        idx = np.flatnonzero(valid[v])
        pos = np.searchsorted(idx, cols)  # first valid column >= c
        # Clipping makes holes at the row ends take their one valid neighbour on both sides.
        left = out[v, idx[np.clip(pos - 1, 0, len(idx) - 1)]]
        right = out[v, idx[np.clip(pos, 0, len(idx) - 1)]]
        hole = ~valid[v]
        out[v, hole] = np.minimum(left, right)[hole]
    rows_ok = np.flatnonzero(valid.any(axis=1))
    if len(rows_ok) < H:
        rows = np.arange(H)
        pos = np.clip(np.searchsorted(rows_ok, rows), 0, len(rows_ok) - 1)
        below, above = rows_ok[pos], rows_ok[np.clip(pos - 1, 0, len(rows_ok) - 1)]
        nearest = np.where(np.abs(above - rows) <= np.abs(below - rows), above, below)
        out = out[nearest]
    return out


@lru_cache(maxsize=2)
def _motorcycle_native(fill: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from skimage.data import stereo_motorcycle

    left, right, disp = stereo_motorcycle()
    valid = np.isfinite(disp)  # scikit-image marks unknown ground truth with inf (docs say NaN: accept both)
    filled = fill_disparity_holes(disp, valid, fill)
    depth_m = (MOTORCYCLE_FOCAL_PX * MOTORCYCLE_BASELINE_M / (filled.astype(np.float64) + MOTORCYCLE_DOFFS_PX))
    disp_px = np.where(valid, disp, np.nan).astype(np.float32)
    for a in (left, right, depth_m, valid, disp_px):
        a.setflags(write=False)  # cached: callers get copies
    return left, right, depth_m.astype(np.float32), valid, disp_px


def motorcycle_K(height: int = MOTORCYCLE_SIZE[0], width: int = MOTORCYCLE_SIZE[1]) -> np.ndarray:
    """(3, 3) float64 intrinsics of the motorcycle left view at (height, width), project pixel convention.

    scikit-image's calibration uses the usual integer-pixel-centre convention; the project puts the
    image corner at (0, 0) (pixel centres at +0.5), so the principal point moves by +0.5 px. With the
    corner at the origin, resizing scales every entry exactly by W'/W (x) and H'/H (y).
    """
    H0, W0 = MOTORCYCLE_SIZE
    sx, sy = width / W0, height / H0
    return np.array([[MOTORCYCLE_FOCAL_PX * sx, 0.0, (MOTORCYCLE_CX_PX + 0.5) * sx],
                     [0.0, MOTORCYCLE_FOCAL_PX * sy, (MOTORCYCLE_CY_PX + 0.5) * sy],
                     [0.0, 0.0, 1.0]], dtype=np.float64)


def load_motorcycle(height: int | None = None, width: int | None = None, fill: str = "background") -> dict:
    """The Middlebury motorcycle pair with metric ground-truth depth, optionally resized.

    Args:
        height, width: output size (both or neither); None keeps 500x741. Images are resized with
            antialiased bilinear filtering (as input videos are); depth and the validity mask with
            nearest-exact sampling, so every depth is a real ground-truth sample (no mixed edges).
        fill: how holes in the ground truth are filled (see ``fill_disparity_holes``).

    Returns:
        dict with
        left, right: (H, W, 3) uint8 RGB, the rectified pair;
        depth_m: (H, W) float32 planar z-depth of the left view in metres, holes filled, > 0;
        valid_gt: (H, W) bool, True where the ground truth is measured (not filled);
        disparity_px: (H, W) float32 disparity in output pixels, NaN where unknown;
        K: (3, 3) float64 left-camera intrinsics at (H, W) (see ``motorcycle_K``);
        baseline_m: float, the stereo baseline in metres.
    """
    if (height is None) != (width is None):
        raise InputError(f"load_motorcycle: give both height and width or neither, got {height}x{width}")
    left, right, depth_m, valid, disp = _motorcycle_native(fill)
    H0, W0 = MOTORCYCLE_SIZE
    H, W = (H0, W0) if height is None else (int(height), int(width))
    if H < 1 or W < 1:
        raise InputError(f"load_motorcycle: size must be positive, got {H}x{W}")
    if (H, W) != (H0, W0):
        from ex4d.io.video import resize_frames

        left, right = resize_frames(np.stack([left, right]), H, W)
        depth_m, valid, disp = _resize_nearest(depth_m, H, W), _resize_nearest(valid, H, W), _resize_nearest(disp, H, W)
        disp = disp * (W / W0)  # disparity is a horizontal distance in pixels
    return {"left": left.copy(), "right": right.copy(), "depth_m": depth_m.copy(), "valid_gt": valid.copy(),
            "disparity_px": disp.copy(), "K": motorcycle_K(H, W), "baseline_m": MOTORCYCLE_BASELINE_M}


def _resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-exact resampling (pixel-centre aligned) of an (H, W) array of any dtype."""
    t = torch.from_numpy(np.array(a, copy=True))
    x = t.float() if t.dtype == torch.bool else t
    y = torch.nn.functional.interpolate(x[None, None], size=(height, width), mode="nearest-exact")[0, 0]
    return (y > 0.5).numpy() if t.dtype == torch.bool else y.numpy()


EXAMPLES = {"motorcycle": load_motorcycle}
