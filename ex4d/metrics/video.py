"""Video inputs of the metrics: one layout, checked once.

A video is a ``(T, H, W, 3)`` uint8 RGB tensor (the project's frame layout); numpy arrays are accepted
and converted. A video set is a sequence of videos. Generated and source sets are paired: generated
video i was made from source video i, so they must have the same number of videos and, per pair, the
same number of frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ex4d.utils.errors import InputError


def as_video(video: Tensor | np.ndarray, name: str = "video") -> Tensor:
    """Check and return a video as a (T, H, W, 3) uint8 CPU tensor.

    Float input is refused rather than guessed at ([0, 1] or [0, 255]?): convert before calling.
    """
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if not isinstance(video, Tensor):
        raise InputError(f"{name}: expected a (T, H, W, 3) uint8 tensor or array, got {type(video).__name__}")
    if video.ndim != 4 or video.shape[-1] != 3:
        raise InputError(f"{name}: expected shape (T, H, W, 3), got {tuple(video.shape)}")
    if video.dtype != torch.uint8:
        raise InputError(f"{name}: expected dtype uint8 (RGB 0..255), got {video.dtype}")
    if video.shape[0] < 1:
        raise InputError(f"{name}: has no frames")
    return video.cpu()


def check_paired_sets(
    generated: Sequence[Tensor | np.ndarray],
    source: Sequence[Tensor | np.ndarray],
    same_length: bool = True,
    names: Sequence[str] | None = None,
) -> tuple[list[Tensor], list[Tensor]]:
    """Check that the generated and source sets pair up; return both as lists of checked videos.

    Raises:
        InputError: different numbers of videos, or (``same_length``) a pair with different frame
            counts; the message names the video.
    """
    if len(generated) != len(source):
        raise InputError(
            f"generated and source sets differ in size: {len(generated)} generated vs {len(source)} source videos "
            "(each generated video must pair with its source video)"
        )
    if len(generated) == 0:
        raise InputError("generated and source sets are empty")
    names = list(names) if names is not None else [f"video {i}" for i in range(len(generated))]
    gen = [as_video(v, f"generated {n}") for v, n in zip(generated, names)]
    src = [as_video(v, f"source {n}") for v, n in zip(source, names)]
    if same_length:
        for g, s, n in zip(gen, src, names):
            if g.shape[0] != s.shape[0]:
                raise InputError(
                    f"{n}: generated video has {g.shape[0]} frames but its source has {s.shape[0]} "
                    "(trim both to the same length before computing video metrics)"
                )
    return gen, src


def to_nchw_float(video: Tensor) -> Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float32 in [0, 255]."""
    return video.permute(0, 3, 1, 2).float()


def resize_shorter_side(x: Tensor, size: int, mode: str = "bilinear", long_side: str = "floor") -> Tensor:
    """Resize (N, C, H, W) float so the shorter side is ``size`` (no antialias).

    Args:
        long_side: how the longer side is rounded: ``"floor"`` (torchvision ``Resize(int)``, VBench's
            DINO transform) or ``"ceil"`` (the StyleGAN-V-based FVD preprocessing).
    """
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    rnd = np.ceil if long_side == "ceil" else np.floor
    long = int(rnd(max(h, w) * scale - (1e-9 if long_side == "ceil" else -1e-9)))
    out = (size, long) if h <= w else (long, size)
    if (h, w) == out:
        return x
    align = False if mode in ("bilinear", "bicubic") else None
    return F.interpolate(x, size=out, mode=mode, align_corners=align, antialias=False)


def center_crop(x: Tensor, size: int) -> Tensor:
    """Centre crop (..., H, W) to (size, size)."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise InputError(f"center_crop: image {h}x{w} is smaller than the crop {size}")
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]
