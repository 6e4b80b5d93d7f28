"""A picture of a camera path: 3-D frustums + a top-down (x-z) view, for reports and sanity checks.

Uses matplotlib's Agg canvas directly (no pyplot), so it never touches a display or the global backend.
Plot axes show the world (= source camera) frame with "up" drawn up: plot (X, Y, Z) = (x, z, -y),
since OpenCV's y points down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ex4d.cameras.core import w2c_to_c2w

SOURCE_COLOR = "tab:red"
PATH_COLOR = "tab:blue"
PIVOT_COLOR = "tab:green"


def frustum_corners(w2c: Tensor, K: Tensor, height: int, width: int, depth: float) -> np.ndarray:
    """World coordinates (N, 4, 3) of the image corners at camera depth ``depth``.

    ``K`` is (3, 3), or (N, 3, 3) one per pose. Corners in order (0, 0), (W, 0), (W, H), (0, H) of the
    continuous pixel grid (top-left first).
    """
    K = torch.as_tensor(K, dtype=torch.float64)
    uv = torch.tensor([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]], dtype=torch.float64)
    fx, cx, fy, cy = (K[..., i, j, None] for i, j in ((0, 0), (0, 2), (1, 1), (1, 2)))  # (..., 1)
    rays = torch.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, torch.ones_like(uv[:, 0] / fx)], -1)
    c2w = w2c_to_c2w(torch.as_tensor(w2c, dtype=torch.float64))
    pts = depth * rays  # (4, 3) camera frame
    world = pts @ c2w[:, :3, :3].transpose(-1, -2) + c2w[:, None, :3, 3]
    return world.numpy()


def _to_plot(p: np.ndarray) -> np.ndarray:
    """World (..., 3) OpenCV -> plot (x, z, -y)."""
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def plot_camera_path(
    w2c: Tensor,
    K: Tensor,
    height: int,
    width: int,
    path_png: str | Path,
    pivot: Tensor | None = None,
    title: str = "camera path",
    every: int | None = None,
    frustum_depth: float | None = None,
    dpi: int = 90,
) -> Path:
    """Save a PNG of a camera path: 3-D view (left) and top-down x-z view (right).

    Args:
        w2c: (N, 4, 4) world-to-camera poses (project convention).
        K: (3, 3) intrinsics, or (N, 3, 3) one per frame; height, width: image size in pixels (frustum shape).
        path_png: output file; parent folders are created.
        pivot: optional (3,) look-at point, drawn as a star.
        title: figure title.
        every: draw every k-th frustum (default about 12 of them); frame 0 (the source camera, red) and
            the last frame are always drawn.
        frustum_depth: frustum length in scene units (default 15% of the scene extent).

    Returns:
        The PNG path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401 - registers the 3-D projection

    w2c = torch.as_tensor(w2c, dtype=torch.float64)
    n = w2c.shape[0]
    centres = w2c_to_c2w(w2c)[:, :3, 3].numpy()
    pts = [centres] + ([np.asarray(pivot, dtype=np.float64)[None]] if pivot is not None else [])
    allpts = np.concatenate(pts)
    extent = float(max(np.ptp(allpts, axis=0).max(), np.linalg.norm(allpts, axis=1).max(), 1e-3))
    depth = frustum_depth if frustum_depth is not None else 0.15 * extent
    k = every if every is not None else max(1, n // 12)
    idx = sorted(set(range(0, n, k)) | {0, n - 1})
    K = torch.as_tensor(K, dtype=torch.float64)
    corners = _to_plot(frustum_corners(w2c[idx], K if K.ndim == 2 else K[idx], height, width, depth))  # (M, 4, 3)
    c_plot = _to_plot(centres)

    fig = Figure(figsize=(10, 4.8), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.suptitle(f"{title} (N={n})")
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    ax2 = fig.add_subplot(1, 2, 2)

    ax.plot(c_plot[:, 0], c_plot[:, 1], c_plot[:, 2], color=PATH_COLOR, lw=1.5, label="path")
    for j, i in enumerate(idx):
        color, lw = (SOURCE_COLOR, 2.0) if i == 0 else (PATH_COLOR, 0.8)
        o, cs = c_plot[i], corners[j]
        ring = np.concatenate([cs, cs[:1]])
        ax.plot(ring[:, 0], ring[:, 1], ring[:, 2], color=color, lw=lw)
        for c in cs:
            ax.plot([o[0], c[0]], [o[1], c[1]], [o[2], c[2]], color=color, lw=lw * 0.7)
        # top-down: the horizontal field of view, centre -> mid-left / mid-right of the image edge
        left, right = 0.5 * (cs[0] + cs[3]), 0.5 * (cs[1] + cs[2])
        ax2.plot([left[0], o[0], right[0]], [left[1], o[1], right[1]], color=color, lw=lw)
    ax.scatter(*c_plot[0], color=SOURCE_COLOR, s=30, label="source (frame 0)")
    ax2.plot(c_plot[:, 0], c_plot[:, 1], color=PATH_COLOR, lw=1.5)
    ax2.scatter(c_plot[0, 0], c_plot[0, 1], color=SOURCE_COLOR, s=30, zorder=3)
    if pivot is not None:
        pv = _to_plot(np.asarray(pivot, dtype=np.float64))
        ax.scatter(*pv, color=PIVOT_COLOR, marker="*", s=120, label="pivot")
        ax2.scatter(pv[0], pv[1], color=PIVOT_COLOR, marker="*", s=120, zorder=3)

    # equal scale on every axis, so orbits look round
    span = np.concatenate([c_plot, corners.reshape(-1, 3)] + ([pv[None]] if pivot is not None else []))
    mid, half = 0.5 * (span.max(0) + span.min(0)), 0.5 * np.ptp(span, axis=0).max() + 1e-6
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_zlim(mid[2] - half, mid[2] + half)
    ax.set_box_aspect((1, 1, 1), zoom=0.85)  # leaves room for the z label
    ax.tick_params(labelsize=7)
    ax.set_xlabel("x (right)", fontsize=8)
    ax.set_ylabel("z (forward)", fontsize=8)
    ax.set_zlabel("-y (up)", fontsize=8)
    ax.view_init(elev=20, azim=-60)
    ax.legend(loc="upper left", fontsize=7)
    ax2.set_aspect("equal", adjustable="datalim")
    ax2.set_xlabel("x (right)")
    ax2.set_ylabel("z (forward)")
    ax2.set_title("top-down (x-z)", fontsize=9)
    ax2.grid(True, lw=0.3)

    path_png = Path(path_png)
    path_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path_png)
    return path_png
