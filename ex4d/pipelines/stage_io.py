"""Hand-over between the DW-Mesh stage and generation: find, read and resize colour + mask videos.

A recon directory is either ours (``color.mp4`` + ``mask.mp4``) or the reference's
(``render_<cam>.mp4`` or ``color_<cam>.mp4`` + ``mask_<cam>.mp4``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ex4d.io.video import read_mask_video, read_video, resize_frames
from ex4d.utils.errors import InputError


def find_recon_videos(folder: str | Path) -> tuple[Path, Path]:
    """(colour, mask) video paths in ``folder``; InputError naming the folder when absent or ambiguous."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"recon_dir {folder} is not a directory")
    if (folder / "color.mp4").is_file() and (folder / "mask.mp4").is_file():
        return folder / "color.mp4", folder / "mask.mp4"
    masks = sorted(folder.glob("mask_*.mp4"))
    pairs = []
    for m in masks:
        cam = m.stem[len("mask_"):]
        for prefix in ("color_", "render_"):
            c = folder / f"{prefix}{cam}.mp4"
            if c.is_file():
                pairs.append((c, m))
                break
    if len(pairs) == 1:
        return pairs[0]
    if not pairs:
        raise InputError(f"recon_dir {folder}: no color.mp4 + mask.mp4 (or reference color_<cam>/render_<cam> + mask_<cam>.mp4)")
    raise InputError(f"recon_dir {folder}: several camera paths {[p[1].name for p in pairs]}; keep one pair in the "
                     "folder, or copy the pair to use to color.mp4 + mask.mp4 there (those are taken first)")


def read_recon_videos(colour_path: str | Path, mask_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Colour (T, H, W, 3) uint8 and mask (T, H, W) bool, checked to agree in length and size."""
    colour, _ = read_video(colour_path)
    mask = read_mask_video(mask_path)
    if colour.shape[0] != mask.shape[0]:
        raise InputError(f"{colour_path} has {colour.shape[0]} frames but {mask_path} has {mask.shape[0]}")
    if colour.shape[1:3] != mask.shape[1:3]:
        raise InputError(f"{colour_path} is {colour.shape[1:3]} but {mask_path} is {mask.shape[1:3]} (H, W)")
    return colour, mask


def resize_for_generation(colour: np.ndarray, mask: np.ndarray, height: int | None, width: int | None,
                          first_frame: np.ndarray | None = None):
    """Resize colour (bilinear) and mask (nearest, stays binary) to the generation size.

    ``height``/``width`` None keeps the recon size. The reference squashes everything to 512x512.
    """
    if height is None or width is None:
        return colour, mask, first_frame
    colour = resize_frames(colour, height, width)
    m = torch.from_numpy(np.ascontiguousarray(mask)).float()[:, None]
    mask = torch.nn.functional.interpolate(m, size=(height, width), mode="nearest-exact")[:, 0].bool().numpy()
    if first_frame is not None:
        first_frame = resize_frames(first_frame[None], height, width)[0]
    return colour, mask, first_frame


def read_first_frame(folder: str | Path, colour: np.ndarray) -> np.ndarray:
    """The exact source frame 0 saved by the DW-Mesh stage (``first_frame.png``), else ``colour[0]``."""
    from PIL import Image

    p = Path(folder) / "first_frame.png"
    if not p.is_file():
        return colour[0]
    with Image.open(p) as im:
        frame = np.asarray(im.convert("RGB"))
    if frame.shape != colour.shape[1:]:
        raise InputError(f"{p} is {frame.shape[:2]} but the colour video is {colour.shape[1:3]} (H, W)")
    return frame
