"""Video I/O through PyAV: read any common video, an image-sequence folder or a single image.

Frames are ``(T, H, W, 3)`` uint8 RGB numpy arrays throughout; row 0 is the image top.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ex4d.utils.errors import InputError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
RESIZE_MODES = ("keep_aspect", "squash", "none")
ENCODER_THREADS = 4


@dataclass
class VideoClip:
    """A clip ready for reconstruction.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB.
        fps: frames per second of the source (30 for images).
        source: the path (or example name) it came from.
        static: True when the clip is one image repeated (a static scene).
        info: provenance (original size, frame indices, resize mode).
    """

    frames: np.ndarray
    fps: float
    source: str
    static: bool = False
    info: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]


@contextmanager
def open_video_stream(path: str | Path, what: str = "input video"):
    """Open a video with PyAV and yield ``(container, stream)`` of its first video stream.

    A missing or empty file, a file with no video stream, and any decoding error raised inside the
    block become InputError naming the file (``what`` says which input it is).
    """
    import av  # imported on use: rendering/meshing code paths (and GPU hosts without PyAV) never need it

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{what} {path} has no video stream")
            yield container, container.streams.video[0]
    except InputError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise InputError(f"{what} {path} could not be read ({type(e).__name__}: {e})") from e


def stream_fps(stream) -> float:
    """Frames per second of a PyAV stream (30 when the container does not say)."""
    return float(stream.average_rate) if stream.average_rate else 30.0


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video file to (T, H, W, 3) uint8 RGB and its frame rate.

    Raises InputError naming the file when it is missing, empty or cannot be decoded.
    """
    frames = []
    with open_video_stream(path) as (container, stream):
        fps = stream_fps(stream)
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise InputError(f"input video {path} has no decodable frames")
    return np.stack(frames), fps


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises several unrelated types for corrupt files
        raise InputError(f"image {path} could not be read ({type(e).__name__}: {e})") from e


def read_frames(source: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float, bool]:
    """Read a video file, an image-sequence folder (sorted by name) or a single image.

    Returns:
        frames (T, H, W, 3) uint8, fps, static (True for a single image).
    """
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise InputError(f"input folder {path} holds no images ({', '.join(IMAGE_EXTS)})")
        if max_frames is not None:
            files = files[:max_frames]
        frames = [_read_image(f) for f in files]
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise InputError(f"images in {path} differ in size: {sorted(shapes)}")
        return np.stack(frames), 30.0, False
    if path.suffix.lower() in IMAGE_EXTS:
        if not path.is_file():
            raise InputError(f"input image {path} does not exist")
        return _read_image(path)[None], 30.0, True
    frames, fps = read_video(path, max_frames=max_frames)
    return frames, fps, False


def select_frames(num_available: int, num_frames: int, stride: int = 1, mode: str = "first", source: str = "input") -> np.ndarray:
    """Indices of the frames to use.

    mode ``first``: the first ``num_frames`` at ``stride``; ``uniform``: ``num_frames`` spread evenly over
    the whole clip. Raises InputError when the clip is too short.
    """
    if num_frames < 1 or stride < 1:
        raise InputError(f"data.num_frames and data.stride must be >= 1, got {num_frames}, {stride}")
    if mode == "first":
        needed = (num_frames - 1) * stride + 1
        if num_available < needed:
            raise InputError(
                f"{source} has {num_available} frames but data.num_frames={num_frames} at stride {stride} needs {needed}"
            )
        return np.arange(num_frames) * stride
    if mode == "uniform":
        if num_available < num_frames:
            raise InputError(f"{source} has {num_available} frames, fewer than data.num_frames={num_frames}")
        return np.round(np.linspace(0, num_available - 1, num_frames)).astype(int)
    raise InputError(f"data.frame_mode must be 'first' or 'uniform', got {mode!r}")


def target_size(height: int, width: int, mode: str = "keep_aspect", multiple: int = 64, max_side: int = 1024,
                size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Output (H, W) for a resize mode.

    keep_aspect: scale so the long side is at most ``max_side``, then round each side to ``multiple``
    (aspect kept up to the rounding); squash: exactly ``size`` (the reference's 512x512 for generation);
    none: unchanged (must already be a multiple of ``multiple``).
    """
    if mode == "squash":
        if size is None:
            raise InputError("data.resize=squash needs data.height and data.width")
        return int(size[0]), int(size[1])
    if mode == "none":
        if height % multiple or width % multiple:
            raise InputError(f"data.resize=none needs sides that are multiples of {multiple}, got {height}x{width}")
        return height, width
    if mode != "keep_aspect":
        raise InputError(f"data.resize must be one of {RESIZE_MODES}, got {mode!r}")
    scale = min(1.0, max_side / max(height, width))
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames with antialiased bilinear filtering (torch)."""
    if frames.shape[1:3] == (height, width):
        return frames
    x = torch.from_numpy(frames if frames.flags.writeable else frames.copy()).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def load_clip(source: str | Path, num_frames: int = 49, stride: int = 1, frame_mode: str = "first",
              resize: str = "keep_aspect", multiple: int = 64, max_side: int = 1024,
              height: int | None = None, width: int | None = None) -> VideoClip:
    """Read ``source`` and return the clip to reconstruct: selected frames at the target size.

    A single image becomes a static clip of ``num_frames`` identical frames.
    """
    needed = (num_frames - 1) * stride + 1 if frame_mode == "first" else None
    frames, fps, static = read_frames(source, max_frames=needed)
    if static:
        idx = np.zeros(num_frames, dtype=int)
    else:
        idx = select_frames(frames.shape[0], num_frames, stride, frame_mode, source=str(source))
    h0, w0 = frames.shape[1:3]
    size = (height, width) if height and width else None
    if size is not None and resize == "keep_aspect":
        h, w = size
    else:
        h, w = target_size(h0, w0, resize, multiple, max_side, size)
    out = resize_frames(frames[idx] if not static else frames, h, w)
    if static:
        out = np.repeat(out, num_frames, axis=0)
    info = {"original_size": [h0, w0], "size": [h, w], "frame_indices": idx.tolist(), "resize": resize}
    return VideoClip(frames=out, fps=fps, source=str(source), static=static, info=info)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 30.0, crf: int = 18, lossless: bool = False) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264 mp4 (yuv420p, ``crf``), or bit-exact RGB with ``lossless``."""
    import av

    path = Path(path)
    frames = np.ascontiguousarray(frames)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8, frames.shape
    T, H, W, _ = frames.shape
    with av.open(str(path), mode="w") as container:
        # libx264rgb at qp 0 skips the RGB->YUV conversion, so decoding returns the exact input.
        codec = "libx264rgb" if lossless else "libx264"
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = W, H
        # yuv420p (what every player reads) needs even sides.
        stream.pix_fmt = "rgb24" if lossless else ("yuv444p" if H % 2 or W % 2 else "yuv420p")
        stream.options = {"qp": "0"} if lossless else {"crf": str(crf)}
        # x264's output depends on its thread count (auto = cores x 1.5): fixed, so that a file is the same on
        # every machine, not only between runs on one.
        stream.codec_context.thread_count = ENCODER_THREADS
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_mask_video(path: str | Path, mask: np.ndarray, fps: float = 30.0) -> Path:
    """Encode a (T, H, W) bool mask losslessly as white (1 = trusted) on black; decode >= 128 recovers it exactly."""
    m = (np.asarray(mask, dtype=bool).astype(np.uint8) * 255)[..., None].repeat(3, axis=-1)
    return write_video(path, m, fps=fps, lossless=True)


def read_mask_video(path: str | Path) -> np.ndarray:
    """Decode a mask video to (T, H, W) bool (threshold at 128). Raises InputError if it is not binary."""
    frames, _ = read_video(path)
    gray = frames.mean(axis=-1)
    ambiguous = (gray > 32) & (gray < 224)
    if ambiguous.mean() > 0.01:
        raise InputError(f"mask video {path} is not binary: {100 * ambiguous.mean():.1f}% of pixels are mid-grey")
    return gray >= 128
