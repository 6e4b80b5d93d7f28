"""Resolve an ``input=`` value into a clip: a video file, an image folder, a single image, or a
built-in example (``example:motorcycle``)."""

from __future__ import annotations

import numpy as np

from ex4d.io.video import VideoClip, load_clip, resize_frames, target_size
from ex4d.utils.errors import InputError

EXAMPLE_PREFIX = "example:"


def list_examples() -> list[str]:
    return ["motorcycle"]


def load_input_clip(source: str, num_frames: int = 49, stride: int = 1, frame_mode: str = "first",
                    resize: str = "keep_aspect", multiple: int = 64, max_side: int = 1024,
                    height: int | None = None, width: int | None = None) -> VideoClip:
    """Load ``source`` as a clip at reconstruction resolution (see ``ex4d.io.video.load_clip``)."""
    source = str(source)
    if not source.startswith(EXAMPLE_PREFIX):
        return load_clip(source, num_frames, stride, frame_mode, resize, multiple, max_side, height, width)
    name = source[len(EXAMPLE_PREFIX):]
    if name != "motorcycle":
        raise InputError(f"input={source!r}: unknown example; available: {[EXAMPLE_PREFIX + n for n in list_examples()]}")
    from ex4d.data.examples import load_motorcycle

    left = load_motorcycle()["left"]
    h0, w0 = left.shape[:2]
    size = (height, width) if height and width else None
    h, w = size if (size and resize == "keep_aspect") else target_size(h0, w0, resize, multiple, max_side, size)
    frame = resize_frames(left[None], h, w)
    frames = np.repeat(frame, num_frames, axis=0)
    info = {"original_size": [h0, w0], "size": [h, w], "example": name, "resize": resize}
    return VideoClip(frames=frames, fps=30.0, source=source, static=True, info=info)
