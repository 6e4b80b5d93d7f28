"""Random mask erosion: the reference's mask augmentation, shared by training and inference.

The reference erodes every mask frame with a ``k x k`` ones kernel, ``k`` drawn uniformly from 2..8 per
frame (``cv2.erode``, unseeded), then binarises at 0.5. Eroding the *trusted* region widens every hole
by a few pixels, which hides the smeared, antialiased rim that a mesh render leaves around holes and
makes the model robust to mask misalignment. Here the draw is seeded by a ``torch.Generator`` so that a
seeded run is reproducible, and the morphology is plain torch (any device).

``cv2.erode`` semantics are kept exactly: the kernel anchor is at ``k // 2`` (so even kernels reach one
pixel further up/left than down/right), and pixels outside the image count as trusted (OpenCV's
default border value for erosion), so the image border itself never erodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ex4d.utils.errors import InputError


def sample_erosion_sizes(num_frames: int, generator: torch.Generator | None = None, k_min: int = 2,
                         k_max: int = 8) -> Tensor:
    """Kernel sizes (T,) int64, uniform in ``k_min..k_max`` inclusive, one per frame (drawn on the CPU
    so the same seed gives the same sizes on every device)."""
    if not 1 <= k_min <= k_max:
        raise InputError(f"masking erosion needs 1 <= k_min <= k_max, got k_min={k_min}, k_max={k_max}")
    return torch.randint(k_min, k_max + 1, (num_frames,), generator=generator)


def erode(mask: Tensor, k: int) -> Tensor:
    """Erode the trusted region of (..., H, W) bool masks with a ``k x k`` ones kernel (cv2.erode rules)."""
    if k <= 1:
        return mask.clone()
    lead = mask.shape[:-2]
    holes = (~mask).reshape(-1, 1, *mask.shape[-2:]).float()
    a = k // 2  # cv2's default anchor: the kernel covers offsets -a .. k-1-a
    # Erosion of the trusted set = dilation of the holes by the reflected kernel; zero padding = outside
    # pixels are not holes (cv2's border value for erosion).
    holes = F.pad(holes, (a, k - 1 - a, a, k - 1 - a), value=0.0)
    grown = F.max_pool2d(holes, kernel_size=k, stride=1)
    return (grown < 0.5).reshape(*lead, *mask.shape[-2:])


def erode_masks(mask: Tensor, generator: torch.Generator | None = None, k_min: int = 2, k_max: int = 8,
                sizes: Tensor | None = None) -> Tensor:
    """Erode every frame of a mask video with its own random kernel size (the reference's augmentation).

    Args:
        mask: (T, H, W) bool, True = trusted pixel, any device.
        generator: CPU ``torch.Generator`` for the per-frame sizes; None uses torch's global RNG.
        k_min, k_max: inclusive range of the square kernel side (reference 2..8).
        sizes: optional (T,) kernel sizes to use instead of drawing them.

    Returns:
        (T, H, W) bool on ``mask``'s device; a frame with no holes stays all True.
    """
    if mask.ndim != 3 or mask.dtype != torch.bool:
        raise InputError(f"erode_masks expects a (T, H, W) bool mask, got {tuple(mask.shape)} {mask.dtype}")
    if sizes is None:
        sizes = sample_erosion_sizes(mask.shape[0], generator, k_min, k_max)
    out = torch.empty_like(mask)
    for k in torch.unique(sizes).tolist():  # one pooled call per distinct size
        idx = (sizes == k).nonzero().squeeze(1).to(mask.device)
        out[idx] = erode(mask[idx], int(k))
    return out
