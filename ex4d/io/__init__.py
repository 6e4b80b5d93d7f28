"""Reading and writing videos, image folders and single images."""

from ex4d.io.video import (
    VideoClip,
    load_clip,
    read_frames,
    read_video,
    resize_frames,
    select_frames,
    target_size,
    write_mask_video,
    write_video,
)

__all__ = [
    "VideoClip",
    "load_clip",
    "read_frames",
    "read_video",
    "resize_frames",
    "select_frames",
    "target_size",
    "write_mask_video",
    "write_video",
]
