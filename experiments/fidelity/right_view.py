"""How faithful is one DW-Mesh render? The Middlebury motorcycle's left view, meshed with its ground-truth
depth, rendered into the *right* camera and compared with the real right image (docs/fidelity.md).

    python experiments/fidelity/right_view.py                          # all mesh modes x composites, CPU renderer
    python experiments/fidelity/right_view.py --modes fixed --composites mask unpremultiply --json out.json

Protocol (what the numbers mean):

* Scene: ``skimage.data.stereo_motorcycle`` at its native 500 x 741 (``ex4d.data.examples.load_motorcycle``,
  GT holes filled with the background disparity), depth on the EX-4D scale by a similarity
  (``ex4d.depth.ground_truth.metric_to_ex4d``), the true left camera K. The right camera is the left one
  moved by the baseline along +x (in EX-4D units); its principal point sits ``doffs`` px further right.
* What the true right view sees, per pixel, from the left view's ground truth alone: the GT depth mesh of
  the left view (one vertex per pixel, no border ring, no cap) is split into three face sets: *surface*
  (all three disparities known and within ``jump_px`` of each other), *jump* (spanning a larger disparity
  step: the gap between a foreground edge and the background behind it; measured on the disparity with its
  holes filled by the background's, as the depth is) and *unknown* (no step, but a vertex without ground
  truth). Each set is rendered into the right camera with depth; per pixel the nearest hit
  decides: surface -> **co-visible** (seen by both cameras), jump -> **occluded** (the right camera looks
  into a gap the left one could not see), unknown or nothing (outside the left view) -> not scored.
* The render under test: ``DWMeshBuilder(mode)`` on the left image and depth, CPU renderer (Embree, one
  ray per pixel centre), composited by ``finalize_rgba(composite=...)``, colour rounded to uint8 as the
  recon stage writes it.
* Scores: **leak** = occluded pixels marked valid / occluded pixels; **over-mask** = co-visible pixels
  marked hole / co-visible pixels; **PSNR** over the co-visible pixels the mask trusts (what the generator
  is told to keep); **SSIM** (``skimage.metrics.structural_similarity``, 7x7 window, per RGB channel) of
  the render with every other pixel replaced by the true right view (so holes and unscored pixels add no
  error of their own), its map averaged over the same trusted co-visible pixels. To see where the error
  sits, **PSNR interior** is the PSNR of the trusted co-visible pixels at least 2 px from any other pixel
  (5x5 erosion), i.e. away from every depth edge, hole and unscored pixel.

Prints a table and writes JSON (``--json``). The numbers in docs/fidelity.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from ex4d.cameras import unproject_depth  # noqa: E402
from ex4d.mesh.dwmesh import MESH_MODES, DWMesh, DWMeshBuilder, grid_faces  # noqa: E402
from ex4d.render.base import COMPOSITES, finalize_rgba  # noqa: E402

JUMP_PX = 1.0  # disparity step (px) between neighbouring GT pixels that counts as a depth discontinuity


def load_scene(height: int | None = None, width: int | None = None) -> dict:
    """The motorcycle pair on the EX-4D scale with both cameras (see the module docstring).

    Returns dict: left, right (H, W, 3) uint8; depth (H, W) float32 EX-4D units; disparity_px (H, W) float32
    (NaN where unknown); K_left, K_right (3, 3) float64; w2c_right (1, 4, 4) float64.
    """
    from ex4d.data.examples import MOTORCYCLE_DOFFS_PX, MOTORCYCLE_SIZE, load_motorcycle
    from ex4d.depth.ground_truth import metric_to_ex4d

    m = load_motorcycle(height, width)
    H, W = m["left"].shape[:2]
    depth, scale = metric_to_ex4d(torch.from_numpy(m["depth_m"])[None])
    K_left = m["K"]
    K_right = K_left.copy()
    K_right[0, 2] += MOTORCYCLE_DOFFS_PX * W / MOTORCYCLE_SIZE[1]
    w2c = np.eye(4)[None].copy()
    w2c[0, 0, 3] = -m["baseline_m"] * scale  # right camera centre at +baseline on the x axis
    return {"left": m["left"], "right": m["right"], "depth": depth[0].numpy(), "disparity_px": m["disparity_px"],
            "K_left": K_left, "K_right": K_right, "w2c_right": w2c}


def true_visibility(depth: np.ndarray, disparity_px: np.ndarray, K_left: np.ndarray, w2c: np.ndarray,
                    K_right: np.ndarray, renderer, jump_px: float = JUMP_PX) -> tuple[np.ndarray, np.ndarray]:
    """(co-visible, occluded) (H, W) bool masks of the target view, from the left view's ground truth.

    Args:
        depth: (H, W) depth of the left view (EX-4D units). disparity_px: (H, W) GT disparity, NaN = unknown.
        K_left: (3, 3) left intrinsics. w2c: (1, 4, 4) target pose. K_right: (3, 3) target intrinsics.
        renderer: an ``ex4d.render.Renderer`` (point-sampling; the CPU renderer here).
    """
    from ex4d.masking.render_mask import render_mask_and_depth

    H, W = depth.shape
    verts = unproject_depth(torch.from_numpy(depth).float(), torch.from_numpy(K_left)).reshape(1, H * W, 3)
    faces = grid_faces(H, W)
    from ex4d.data.examples import fill_disparity_holes

    valid = np.isfinite(disparity_px)
    filled = torch.from_numpy(fill_disparity_holes(disparity_px, valid)).reshape(-1)[faces.long()]  # (F, 3)
    known = torch.from_numpy(valid).reshape(-1)[faces.long()].all(dim=1)
    # A step is measured on the filled disparity (holes take the background's, as the depth does): a foreground
    # edge next to a ground-truth hole still opens a gap the right camera looks into.
    step = filled.amax(dim=1) - filled.amin(dim=1)
    is_cap = torch.zeros(len(faces), dtype=torch.bool)
    is_cap[-2:] = True  # no cap: rays that leave the left view's frustum see nothing
    sets = {"surface": known & (step <= jump_px) & ~is_cap, "jump": (step > jump_px) & ~is_cap,
            "unknown": ~known & (step <= jump_px) & ~is_cap}
    ones = torch.ones(1, H * W, 4)
    K_t, w2c_t = torch.from_numpy(K_right), torch.from_numpy(w2c)
    z = {}
    for name, keep in sets.items():
        mesh = DWMesh(verts, faces, ones, torch.ones(1, len(faces), dtype=torch.bool), keep[None], H, W)
        _, depth_hit, covered = render_mask_and_depth(renderer, mesh, w2c_t, K_t, H, W)
        z[name] = torch.where(covered, depth_hit, torch.full_like(depth_hit, math.inf))[0].numpy()
    nearest = np.argmin(np.stack([z["surface"], z["jump"], z["unknown"]]), axis=0)
    hit = np.isfinite(np.minimum(np.minimum(z["surface"], z["jump"]), z["unknown"]))
    return hit & (nearest == 0), hit & (nearest == 1)


def score(color_u8: np.ndarray, mask: np.ndarray, target_u8: np.ndarray, covisible: np.ndarray,
          occluded: np.ndarray) -> dict:
    """Leak, over-mask, PSNR and SSIM of one render (see the module docstring)."""
    from scipy.ndimage import binary_erosion
    from skimage.metrics import structural_similarity

    trusted = covisible & mask
    interior = binary_erosion(trusted, np.ones((5, 5), bool))
    diff = color_u8[trusted].astype(np.float64) - target_u8[trusted].astype(np.float64)
    mse = float(np.mean(diff**2))
    filled = np.where(trusted[..., None], color_u8, target_u8)
    _, ssim_map = structural_similarity(filled, target_u8, channel_axis=-1, data_range=255, full=True)
    def psnr(sel: np.ndarray) -> float:
        err = float(np.mean((color_u8[sel].astype(np.float64) - target_u8[sel].astype(np.float64)) ** 2))
        return 10.0 * math.log10(255.0**2 / err) if err > 0 else math.inf

    return {
        "psnr_db": 10.0 * math.log10(255.0**2 / mse) if mse > 0 else math.inf,
        "psnr_interior_db": psnr(interior) if interior.any() else math.nan,
        "interior_fraction": float(interior.sum() / max(1, trusted.sum())),
        "ssim": float(ssim_map.mean(axis=-1)[trusted].mean()),
        "leak": float(mask[occluded].mean()),
        "over_mask": float((~mask[covisible]).mean()),
        "n_covisible": int(covisible.sum()),
        "n_occluded": int(occluded.sum()),
        "n_trusted": int(trusted.sum()),
    }


def run(modes, composites, height=None, width=None, min_angle_deg=2.5, num_threads=None, jump_px=JUMP_PX) -> dict:
    from ex4d.render.cpu_backend import CpuRenderer

    scene = load_scene(height, width)
    renderer = CpuRenderer(num_threads=num_threads)
    t0 = time.perf_counter()
    covisible, occluded = true_visibility(scene["depth"], scene["disparity_px"], scene["K_left"],
                                          scene["w2c_right"], scene["K_right"], renderer, jump_px)
    H, W = scene["depth"].shape
    out = {"size": [H, W], "jump_px": jump_px, "min_angle_deg": min_angle_deg,
           "covisible_fraction": float(covisible.mean()), "occluded_fraction": float(occluded.mean()),
           "visibility_s": round(time.perf_counter() - t0, 2), "results": []}
    rgb = torch.from_numpy(scene["left"])[None]
    depth = torch.from_numpy(scene["depth"])[None]
    K_left = torch.from_numpy(scene["K_left"])
    for mode in modes:
        mesh = DWMeshBuilder(mode=mode, min_angle_deg=min_angle_deg)(rgb, depth, K_left)
        rgba = renderer.rasterize_rgba(mesh, torch.from_numpy(scene["w2c_right"]), torch.from_numpy(scene["K_right"]),
                                       H, W)
        for composite in composites:
            res = finalize_rgba(rgba, composite=composite)
            color = (res.color[0] * 255).round().to(torch.uint8).numpy()
            out["results"].append({"mode": mode, "composite": composite,
                                   **score(color, res.mask[0].numpy(), scene["right"], covisible, occluded)})
    return out


def table(out: dict) -> str:
    lines = ["| mesh | composite | PSNR (dB) | SSIM | leak | over-mask | PSNR interior (dB) |",
             "|---|---|---|---|---|---|---|"]
    for r in out["results"]:
        lines.append(f"| {r['mode']} | {r['composite']} | {r['psnr_db']:.2f} | {r['ssim']:.4f} | "
                     f"{100 * r['leak']:.2f}% | {100 * r['over_mask']:.2f}% | {r['psnr_interior_db']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", nargs="+", default=list(MESH_MODES), choices=MESH_MODES)
    p.add_argument("--composites", nargs="+", default=list(COMPOSITES), choices=COMPOSITES)
    p.add_argument("--size", nargs=2, type=int, default=None, metavar=("H", "W"), help="resize (default native)")
    p.add_argument("--min-angle-deg", type=float, default=2.5)
    p.add_argument("--jump-px", type=float, default=JUMP_PX, help="GT disparity step that is a discontinuity")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    h, w = args.size if args.size else (None, None)
    out = run(args.modes, args.composites, h, w, args.min_angle_deg, args.threads, args.jump_px)
    out["machine"] = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}
    print(f"right view {out['size'][0]}x{out['size'][1]}, jump {out['jump_px']} px, min angle {out['min_angle_deg']} deg: "
          f"co-visible {100 * out['covisible_fraction']:.2f}%, occluded {100 * out['occluded_fraction']:.2f}% of the pixels")
    print(table(out))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
