"""Pictures people look at: contact sheets of input / render / mask / output rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def contact_sheet(rows: dict[str, np.ndarray], path: str | Path, num_columns: int = 8, thumb_height: int = 128,
                  label_width: int = 80) -> Path:
    """Save a grid: one labelled row per video, ``num_columns`` frames sampled evenly over time.

    Args:
        rows: name -> (T, H, W, 3) uint8 RGB or (T, H, W) bool/uint8 mask video. Rows may differ in T
            and size; each row samples its own frames at the same relative times.
        path: PNG to write.
    """
    path = Path(path)
    contact_sheet_image(rows, num_columns, thumb_height, label_width).save(path)
    return path


def contact_sheet_image(rows: dict[str, np.ndarray], num_columns: int = 8, thumb_height: int = 128,
                        label_width: int = 80, times: list[int] | None = None) -> Image.Image:
    """The grid of :func:`contact_sheet` as an RGB image. ``times``: the frame index printed under each
    column (default: the sampled index), for rows that are themselves a subset of a longer clip."""
    thumbs_by_row = []
    width = None
    for name, video in rows.items():
        v = np.asarray(video)
        if v.dtype == bool:
            v = v.astype(np.uint8) * 255
        if v.ndim == 3:
            v = np.repeat(v[..., None], 3, axis=-1)
        T, H, W = v.shape[:3]
        tw = max(1, round(W * thumb_height / H))
        idx = np.round(np.linspace(0, T - 1, min(num_columns, T))).astype(int)
        thumbs = [Image.fromarray(v[i]).resize((tw, thumb_height), Image.BILINEAR) for i in idx]
        thumbs_by_row.append((name, thumbs, idx))
        row_w = label_width + sum(t.width for t in thumbs) + 2 * len(thumbs)
        width = row_w if width is None else max(width, row_w)
    row_h = thumb_height + 16
    sheet = Image.new("RGB", (width, row_h * len(thumbs_by_row)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (name, thumbs, idx) in enumerate(thumbs_by_row):
        y = r * row_h
        draw.text((4, y + thumb_height // 2), name, fill=(0, 0, 0))
        x = label_width
        for t, i in zip(thumbs, idx):
            sheet.paste(t, (x, y))
            draw.text((x + 2, y + thumb_height + 2), f"t={i if times is None else times[i]}", fill=(80, 80, 80))
            x += t.width + 2
    return sheet
