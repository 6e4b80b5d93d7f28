"""Ground-truth depth for inputs that carry it (built-in examples, or a file), on the EX-4D scale.

Metric depth is put on the EX-4D scale by a *similarity*: one uniform factor so that the nearest point
of the clip is at 10000/3900 = 2.564 (where DepthCrafter's nearest point lands). A uniform scale keeps
the scene's shape exact (the true K then unprojects it without distortion), whereas the disparity
normalisation of model backends would bend it; ``metric_scale`` reports the factor (EX-4D units per metre).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ex4d.cameras import intrinsics as pinhole_intrinsics
from ex4d.cameras.io import validate_K
from ex4d.depth.base import EX4D_NEAR, DepthBackend, DepthResult, validate_depth
from ex4d.utils.checks import check_number
from ex4d.utils.errors import InputError

EXAMPLE_PREFIX = "example:"

# name -> "module:function(height, width) -> dict(depth_m (H, W) metres, K (3, 3), valid_gt (H, W))".
# Dotted paths keep ex4d.depth from importing ex4d.data (imports go cameras -> depth -> data); the
# loader is imported only when such an example is asked for.
EXAMPLE_LOADERS = {"motorcycle": "ex4d.data.examples:load_motorcycle"}

INTRINSICS = ("gt", "reference")


def metric_to_ex4d(depth_m: Tensor, near: float = EX4D_NEAR) -> tuple[Tensor, float]:
    """Uniformly rescale metric depth (T, H, W) so that its minimum is ``near``; returns (depth, units per metre).

    Depth beyond 1e4 (more than 3900x the nearest point) is clipped, as on the EX-4D scale.
    """
    scale = near / float(depth_m.min())
    return (depth_m.double() * scale).clamp(1e-4, 1e4).float(), scale


class GroundTruthDepthBackend(DepthBackend):
    """Ground-truth depth (metres) of a built-in example or a file -> EX-4D depth by similarity.

    Args:
        source: where the ground truth comes from: ``"example:NAME"``; None uses the ``source`` of each
            call (the input name, e.g. ``input=example:motorcycle``).
        path: an ``.npz`` file with ``depth_m`` ((H, W) or (T, H, W) metres, > 0) and optionally ``K``
            ((3, 3) at the file's resolution); takes precedence over ``source``.
        intrinsics: "gt" returns the ground-truth camera K (exact geometry); "reference" returns the
            reference's pinhole with ``focal_px`` (500 px) and centred principal point.
        near: EX-4D depth of the nearest point (10000/3900).
        focal_px: focal length used with ``intrinsics="reference"``.
    """

    name = "ground_truth"

    def __init__(self, source: str | None = None, path: str | None = None, intrinsics: str = "gt",
                 near: float = EX4D_NEAR, focal_px: float = 500.0):
        if intrinsics not in INTRINSICS:
            raise InputError(f"depth.intrinsics must be one of {INTRINSICS}, got {intrinsics!r}")
        self.source, self.path, self.intrinsics = source, path, intrinsics
        self.near = check_number(near, "depth.near", positive=True)
        self.focal_px = check_number(focal_px, "depth.focal_px", positive=True)

    def __call__(self, frames: Tensor, source: str | None = None) -> DepthResult:
        """frames (T, H, W, 3) at reconstruction resolution -> ground-truth depth (T, H, W) on the EX-4D scale."""
        T, H, W = tuple(frames.shape[:3])
        if self.path is not None:
            depth_m, K, origin = _load_gt_file(Path(self.path), T, H, W)
        else:
            name = self.source or source
            if name is None or not str(name).startswith(EXAMPLE_PREFIX):
                raise InputError(
                    f"input {name!r}: no ground-truth depth; it exists for "
                    f"{[EXAMPLE_PREFIX + n for n in EXAMPLE_LOADERS]} or a file given as depth.path "
                    "(use a depth model, e.g. depth=depthcrafter, for other inputs)")
            depth_m, K, origin = _load_example(str(name)[len(EXAMPLE_PREFIX):], H, W)
            depth_m = depth_m.expand(T, H, W)  # a still image: the same depth in every frame
        validate_depth(depth_m, (T, H, W), source=f"ground truth of {origin}")
        depth, scale = metric_to_ex4d(depth_m, self.near)
        if self.intrinsics == "reference":
            K = pinhole_intrinsics(H, W, self.focal_px)
        info = {"backend": self.name, "source": origin, "intrinsics": self.intrinsics,
                "metric_scale": scale, "depth_range_m": [float(depth_m.min()), float(depth_m.max())]}
        return DepthResult(depth=depth.contiguous(), K=K, metric_scale=scale, info=info)


def _load_example(name: str, H: int, W: int) -> tuple[Tensor, Tensor, str]:
    if name not in EXAMPLE_LOADERS:
        raise InputError(f"example:{name}: no such example with ground truth; available: "
                         f"{[EXAMPLE_PREFIX + n for n in EXAMPLE_LOADERS]}")
    module, func = EXAMPLE_LOADERS[name].split(":")
    gt = getattr(importlib.import_module(module), func)(height=H, width=W)
    depth = torch.as_tensor(np.asarray(gt["depth_m"]), dtype=torch.float32)[None]
    return depth, torch.as_tensor(np.asarray(gt["K"]), dtype=torch.float64), f"{EXAMPLE_PREFIX}{name}"


def _load_gt_file(path: Path, T: int, H: int, W: int) -> tuple[Tensor, Tensor, str]:
    """(T, H, W) metric depth and K from an npz; a single (H, W) map is repeated over T; resized if needed."""
    if not path.is_file():
        raise InputError(f"{path}: ground-truth file not found")
    if path.suffix.lower() != ".npz":
        raise InputError(f"{path}: depth.path of depth=ground_truth must be an .npz with 'depth_m' (metres) and 'K'")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "depth_m" not in z.files:
                raise InputError(f"{path}: expected key 'depth_m' (metres), found {z.files}")
            depth = np.asarray(z["depth_m"], dtype=np.float32)
            K = np.asarray(z["K"], dtype=np.float64) if "K" in z.files else None
    except InputError:
        raise
    except Exception as e:  # truncated zip, bad header, pickled objects ...
        raise InputError(f"{path}: cannot read ground-truth file ({type(e).__name__}: {e})") from e
    d = torch.from_numpy(depth)
    if d.ndim == 2:
        d = d[None]
    if d.ndim != 3:
        raise InputError(f"{path}: depth_m must be (H, W) or (T, H, W), got {tuple(depth.shape)}")
    validate_depth(d, source=str(path))
    if d.shape[0] == 1:
        d = d.expand(T, -1, -1)
    if d.shape[0] != T:
        raise InputError(f"{path}: depth_m has {d.shape[0]} frames, the clip has {T}")
    h, w = d.shape[1:]
    if K is None:
        raise InputError(f"{path}: ground truth needs the camera: add 'K' (3, 3) at {h}x{w}")
    K = validate_K(K, str(path), "K")
    if (h, w) != (H, W):
        d = torch.nn.functional.interpolate(d[None].contiguous(), size=(H, W), mode="nearest-exact")[0]
        K = K.clone()
        K[0] *= W / w  # project convention: image corner at (0, 0), so sizes scale K exactly
        K[1] *= H / h
    return d, K, str(path)
