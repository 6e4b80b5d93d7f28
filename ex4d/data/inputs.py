"""Resolve an ``input=`` value into a clip: a video file, an image folder, a single image, or a
built-in example (``example:motorcycle``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ex4d.io.video import VideoClip, check_clip_memory, check_clip_options, load_clip, plan_clip_size, resize_frames
from ex4d.utils.checks import check_int
from ex4d.utils.errors import InputError

EXAMPLE_PREFIX = "example:"
# The keys of conf/clip/*.yaml (at `data`): clip options (load_input_clip's arguments) and the generation size.
CLIP_KEYS = ("num_frames", "stride", "frame_mode", "resize", "multiple", "max_side", "height", "width")
GENERATION_KEYS = ("gen_height", "gen_width")
GENERATION_MULTIPLE = 16  # Wan: VAE x8 in space, then 2x2 patches


def list_examples() -> list[str]:
    return ["motorcycle"]


def clip_options(data: Mapping) -> dict:
    """The checked clip options (keyword arguments of :func:`load_input_clip`) of a ``data`` config group.

    Raises InputError when ``data`` does not hold the inference schema (the ``clip`` group, ``conf/clip``): e.g.
    ``data=monocular``, a training set, or a key that does not exist, or when a value is out of range.
    """
    keys = set(data)
    unknown = sorted(keys - set(CLIP_KEYS) - set(GENERATION_KEYS))
    if unknown:
        if keys & {"shards", "videos", "root", "num_clips"}:
            raise InputError("data: this is a training data option (data=monocular, data=tiny or data=synthetic: "
                             "train.py, tools/prepare_data.py); inference inputs are the clip group (clip=video, the "
                             "default, or clip=tiny; values data.num_frames=..., data.max_side=...): drop the data= "
                             "override")
        raise InputError(f"data: unknown keys {unknown}; the inference data options are {list(CLIP_KEYS + GENERATION_KEYS)}")
    opts = check_clip_options(**{k: data[k] for k in CLIP_KEYS if k in keys})
    check_generation_size(data.get("gen_height"), data.get("gen_width"))
    return opts


def check_generation_size(gen_height, gen_width) -> tuple[int, int] | None:
    """``data.gen_height`` / ``data.gen_width``: both null (keep the recon size) or positive multiples of 16."""
    if gen_height is None and gen_width is None:
        return None
    if gen_height is None or gen_width is None:
        raise InputError(f"data.gen_height and data.gen_width must be set together (or both null), got {gen_height} "
                         f"and {gen_width}")
    out = []
    for key, v in (("data.gen_height", gen_height), ("data.gen_width", gen_width)):
        v = check_int(v, key, minimum=GENERATION_MULTIPLE)
        if v % GENERATION_MULTIPLE:
            lo = v // GENERATION_MULTIPLE * GENERATION_MULTIPLE
            raise InputError(f"{key} must be a multiple of {GENERATION_MULTIPLE} (Wan's VAE and patch size), got {v}; "
                             f"use {lo} or {lo + GENERATION_MULTIPLE}")
        out.append(v)
    return out[0], out[1]


def load_input_clip(source: str, num_frames: int = 49, stride: int = 1, frame_mode: str = "first",
                    resize: str = "keep_aspect", multiple: int = 64, max_side: int = 1024,
                    height: int | None = None, width: int | None = None) -> VideoClip:
    """Load ``source`` as a clip at reconstruction resolution (see ``ex4d.io.video.load_clip``)."""
    source = str(source)
    if not source.startswith(EXAMPLE_PREFIX):
        return load_clip(source, num_frames, stride, frame_mode, resize, multiple, max_side, height, width)
    opts = check_clip_options(num_frames, stride, frame_mode, resize, multiple, max_side, height, width)
    name = source[len(EXAMPLE_PREFIX):]
    if name != "motorcycle":
        raise InputError(f"input={source!r}: unknown example; available: {[EXAMPLE_PREFIX + n for n in list_examples()]}")
    from ex4d.data.examples import load_motorcycle

    left = load_motorcycle()["left"]
    h0, w0 = left.shape[:2]
    h, w = plan_clip_size(source, h0, w0, opts)
    check_clip_memory(source, 1, h0, w0, opts["num_frames"], h, w, opts)
    frame = resize_frames(left[None], h, w)
    frames = np.repeat(frame, opts["num_frames"], axis=0)
    info = {"original_size": [h0, w0], "size": [h, w], "example": name, "resize": resize}
    return VideoClip(frames=frames, fps=30.0, source=source, static=True, info=info)
