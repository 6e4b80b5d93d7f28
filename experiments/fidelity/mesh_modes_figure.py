"""docs/fidelity/mesh_modes.png: what each mesh mode marks at a depth edge, on real data.

The Middlebury motorcycle's left view with its ground-truth depth, rendered into the real right camera
(experiments/fidelity/right_view.py has the protocol), cropped where the right camera looks behind the
motorcycle. Top row: the true right view, then the render of each mesh mode (``renderer.composite=auto``,
holes black). Bottom row: the ground truth of the right view (co-visible / occluded), then what each mode's
mask gets right or wrong: trusted co-visible (light), hole where occluded (dark), **leak** = occluded but
trusted (red), **over-mask** = co-visible but a hole (blue); white = not scored.

    python experiments/fidelity/mesh_modes_figure.py                    # -> docs/fidelity/mesh_modes.png
    python experiments/fidelity/mesh_modes_figure.py --out /tmp/m.png --crop 152 443 128 128
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from right_view import load_scene, score, true_visibility  # noqa: E402

from ex4d.mesh import MESH_MODES, DWMeshBuilder  # noqa: E402
from ex4d.render.base import finalize_rgba, resolve_composite  # noqa: E402

CLASS_COLOURS = {  # RGB in [0, 1]
    "unscored": (1.0, 1.0, 1.0),
    "trusted": (0.82, 0.82, 0.82),
    "hole": (0.25, 0.25, 0.25),
    "leak": (0.90, 0.10, 0.10),
    "over_mask": (0.15, 0.35, 0.95),
}


def class_image(mask: np.ndarray, covisible: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """(H, W, 3) float image of the mask's classes against the ground truth (see the module docstring)."""
    out = np.empty(mask.shape + (3,))
    out[:] = CLASS_COLOURS["unscored"]
    for name, sel in (("trusted", covisible & mask), ("hole", occluded & ~mask), ("leak", occluded & mask),
                      ("over_mask", covisible & ~mask)):
        out[sel] = CLASS_COLOURS[name]
    return out


def make_figure(out: Path, crop=(152, 443, 128, 128), modes=MESH_MODES) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ex4d.render.cpu_backend import CpuRenderer

    scene = load_scene()
    renderer = CpuRenderer()
    covisible, occluded = true_visibility(scene["depth"], scene["disparity_px"], scene["K_left"], scene["w2c_right"],
                                          scene["K_right"], renderer)
    H, W = scene["depth"].shape
    y, x, h, w = crop
    win = (slice(y, y + h), slice(x, x + w))
    gt = np.empty((H, W, 3))
    gt[:] = CLASS_COLOURS["unscored"]
    gt[covisible] = CLASS_COLOURS["trusted"]
    gt[occluded] = CLASS_COLOURS["hole"]
    cols = [("true right view", scene["right"][win], gt[win], "ground truth: co-visible / occluded")]
    for mode in modes:
        mesh = DWMeshBuilder(mode)(torch.from_numpy(scene["left"])[None], torch.from_numpy(scene["depth"])[None],
                                   torch.from_numpy(scene["K_left"]))
        rgba = renderer.rasterize_rgba(mesh, torch.from_numpy(scene["w2c_right"]), torch.from_numpy(scene["K_right"]),
                                       H, W)
        composite = resolve_composite("auto", mode)
        res = finalize_rgba(rgba, composite=composite)
        colour = (res.color[0] * 255).round().to(torch.uint8).numpy()
        mask = res.mask[0].numpy()
        s = score(colour, mask, scene["right"], covisible, occluded)
        cols.append((f"mesh={mode} ({composite})", colour[win], class_image(mask, covisible, occluded)[win],
                     f"leak {100 * s['leak']:.1f}%, over-mask {100 * s['over_mask']:.1f}%\n"
                     f"PSNR {s['psnr_db']:.2f} dB (whole view)"))
    fig, axes = plt.subplots(2, len(cols), figsize=(3.1 * len(cols), 7.2))
    for j, (top_title, top, bottom, bottom_label) in enumerate(cols):
        axes[0, j].imshow(top, interpolation="nearest")
        axes[0, j].set_title(top_title, fontsize=10)
        axes[1, j].imshow(bottom, interpolation="nearest")
        axes[1, j].set_xlabel(bottom_label, fontsize=9)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    legend = [Patch(facecolor=CLASS_COLOURS[k], edgecolor="k", label=label) for k, label in (
        ("trusted", "co-visible, trusted"), ("hole", "occluded, hole"), ("leak", "leak: occluded, trusted"),
        ("over_mask", "over-mask: co-visible, hole"), ("unscored", "not scored"))]
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=9, frameon=False)
    fig.suptitle(f"Middlebury motorcycle, left view + GT depth rendered at the real right camera "
                 f"(crop rows {y}-{y + h}, cols {x}-{x + w} of {H}x{W}; CPU renderer)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "fidelity" / "mesh_modes.png")
    p.add_argument("--crop", nargs=4, type=int, default=(152, 443, 128, 128), metavar=("Y", "X", "H", "W"))
    args = p.parse_args(argv)
    print(make_figure(args.out, tuple(args.crop)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
