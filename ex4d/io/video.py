"""Video I/O through PyAV: read any common video, an image-sequence folder or a single image.

Frames are ``(T, H, W, 3)`` uint8 RGB numpy arrays throughout; row 0 is the image top.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ex4d.utils.checks import check_choice, check_int, check_memory
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
RESIZE_MODES = ("keep_aspect", "squash", "none")
ENCODER_THREADS = 4
FRAME_MODES = ("first", "uniform")
# Smallest input side accepted: below this a DW-Mesh has almost no interior (its one-pixel border ring is
# pushed to the walls) and any output is an upscaled blur, so such an input is almost always a mistake.
MIN_INPUT_SIDE = 32
# Resizes that enlarge a side by more than this factor are logged: the output has no more detail than the input.
UPSCALE_WARN = 1.25
RESIZE_CHUNK = 8  # frames resized at once: the float copies of a whole long clip would dominate memory
# PIL modes with more than 8 bits per channel: convert("RGB") clips them (a 16-bit grey image turns white).
_HIGH_BIT_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")
EXIF_ORIENTATION = 0x0112


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
            if not frames and getattr(frame, "rotation", 0):
                log.warning("input video %s carries a %d degree display rotation that is not applied here: frames are "
                            "read as stored (e.g. sideways for a phone video); rotate it first (re-encoding with ffmpeg "
                            "applies it)", path, frame.rotation)
            frames.append(frame.to_ndarray(format="rgb24"))
            if frames[-1].shape != frames[0].shape:
                raise InputError(f"input video {path} changes frame size at frame {len(frames) - 1} "
                                 f"({frames[0].shape[:2]} -> {frames[-1].shape[:2]}); re-encode it at one size")
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise InputError(f"input video {path} has no decodable frames")
    return np.stack(frames), fps


@dataclass
class SourceInfo:
    """What a source's headers say, read without decoding it (:func:`probe_source`).

    Attributes:
        height, width: frame size in pixels.
        num_frames: frames available; for a video the container's count (None when it does not say).
        static: True for a single image.
    """

    height: int
    width: int
    num_frames: int | None
    static: bool


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise InputError(f"input folder {folder} holds no images ({', '.join(IMAGE_EXTS)}); "
                         "point input= at a video, an image, or a folder of images")
    return files


def _image_header(path: Path) -> tuple[int, int]:
    """(H, W) of an image from its header, checking it can be read as 8-bit colour."""
    if not path.is_file():
        raise InputError(f"input image {path} does not exist")
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
            if im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):  # shown rotated by 90 degrees: see _read_image
                w, h = h, w
    except Exception as e:  # PIL raises several unrelated types for corrupt files
        raise InputError(f"image {path} could not be read ({type(e).__name__}: {e})") from e
    if mode in _HIGH_BIT_MODES:
        raise InputError(f"image {path} is a {mode} (16-bit or float) image; the input must be 8-bit colour or grey "
                         "(convert it, e.g. to an 8-bit PNG or JPEG)")
    return h, w


def probe_source(source: str | Path) -> SourceInfo:
    """Frame size and count of a video file, an image folder or one image, from headers only (cheap).

    Raises InputError naming the file for a missing, empty or unreadable source, a folder without images
    or with images of different sizes.
    """
    path = Path(source)
    if not path.exists():
        raise InputError(f"input {path} does not exist; input= takes a video file, an image, a folder of images or "
                         "example:motorcycle")
    if path.is_dir():
        files = _image_files(path)
        sizes = {f: _image_header(f) for f in files}
        first = sizes[files[0]]
        odd = next((f for f in files if sizes[f] != first), None)
        if odd is not None:
            raise InputError(f"images in {path} differ in size: {files[0].name} is {first[0]}x{first[1]} but {odd.name} "
                             f"is {sizes[odd][0]}x{sizes[odd][1]} (H x W); an image sequence needs one size")
        return SourceInfo(first[0], first[1], len(files), False)
    if path.suffix.lower() in IMAGE_EXTS:
        h, w = _image_header(path)
        return SourceInfo(h, w, 1, True)
    with open_video_stream(path) as (_, stream):
        ctx = stream.codec_context
        h, w = int(ctx.height or 0), int(ctx.width or 0)
        n = int(stream.frames or 0) or None
    if h < 1 or w < 1:
        raise InputError(f"input video {path} does not state its frame size (got {h}x{w}); re-encode it")
    return SourceInfo(h, w, n, False)


@contextmanager
def _strict_pil():
    """Truncated images are errors while we read inputs, whatever another library set process-wide."""
    from PIL import ImageFile

    before, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def _read_image(path: Path) -> np.ndarray:
    try:
        with _strict_pil(), Image.open(path) as im:
            # Cameras store photos unrotated with an EXIF orientation tag; every viewer applies it, so must we.
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception as e:  # PIL raises several unrelated types for corrupt files
        raise InputError(f"image {path} could not be read ({type(e).__name__}: {e})") from e


def read_frames(source: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float, bool]:
    """Read a video file, an image-sequence folder (sorted by name) or a single image.

    Returns:
        frames (T, H, W, 3) uint8, fps, static (True for a single image).
    """
    path = Path(source)
    if path.is_dir():
        files = _image_files(path)
        if max_frames is not None:
            files = files[:max_frames]
        frames = [_read_image(f) for f in files]
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise InputError(f"images in {path} differ in size: {sorted(shapes)}; an image sequence needs one size")
        return np.stack(frames), 30.0, False
    if path.suffix.lower() in IMAGE_EXTS:
        if not path.is_file():
            raise InputError(f"input image {path} does not exist")
        return _read_image(path)[None], 30.0, True
    frames, fps = read_video(path, max_frames=max_frames)
    return frames, fps, False


def check_clip_options(num_frames=49, stride=1, frame_mode="first", resize="keep_aspect", multiple=64,
                       max_side=1024, height=None, width=None) -> dict:
    """Check the clip options (the ``data.*`` keys of ``conf/clip/video.yaml``) before anything is read.

    Returns the options as clean Python values (ints, None); raises InputError naming the ``data.`` key.
    """
    num_frames = check_int(num_frames, "data.num_frames", minimum=1)
    stride = check_int(stride, "data.stride", minimum=1)
    check_choice(frame_mode, "data.frame_mode", FRAME_MODES)
    check_choice(resize, "data.resize", RESIZE_MODES)
    multiple = check_int(multiple, "data.multiple", minimum=1)
    max_side = check_int(max_side, "data.max_side", minimum=1)
    if max_side < max(multiple, MIN_INPUT_SIDE):
        raise InputError(f"data.max_side must be >= data.multiple={multiple} and >= {MIN_INPUT_SIDE} px, got {max_side}")
    if (height is None) != (width is None):
        raise InputError(f"data.height and data.width must be set together (or both null), got {height} and {width}")
    if height is not None:
        for key, v in (("data.height", height), ("data.width", width)):
            v = check_int(v, key, minimum=MIN_INPUT_SIDE)
            if v % multiple:
                lo = max(multiple, v // multiple * multiple)
                raise InputError(f"{key} must be a multiple of data.multiple={multiple}, got {v}; use {lo} or "
                                 f"{lo + multiple} (or change data.multiple)")
        height, width = int(height), int(width)
    elif resize == "squash":
        raise InputError("data.resize=squash needs data.height and data.width (e.g. data.height=512 data.width=512)")
    return {"num_frames": num_frames, "stride": stride, "frame_mode": frame_mode, "resize": resize,
            "multiple": multiple, "max_side": max_side, "height": height, "width": width}


def select_frames(num_available: int, num_frames: int, stride: int = 1, mode: str = "first", source: str = "input") -> np.ndarray:
    """Indices of the frames to use.

    mode ``first``: the first ``num_frames`` at ``stride``; ``uniform``: ``num_frames`` spread evenly over
    the whole clip. Raises InputError when the clip is too short (the message says what to set).
    """
    num_frames = check_int(num_frames, "data.num_frames", minimum=1)
    stride = check_int(stride, "data.stride", minimum=1)
    check_choice(mode, "data.frame_mode", FRAME_MODES)
    if mode == "first":
        needed = (num_frames - 1) * stride + 1
        if num_available < needed:
            fits = (num_available - 1) // stride + 1
            alt = f" or data.stride={(num_available - 1) // (num_frames - 1)}" if num_frames > 1 and num_available >= num_frames else ""
            raise InputError(
                f"{source} has {num_available} frames but data.num_frames={num_frames} at data.stride={stride} needs "
                f"{needed}; set data.num_frames={fits}{alt}, or use a longer video"
            )
        return np.arange(num_frames) * stride
    if num_available < num_frames:
        raise InputError(f"{source} has {num_available} frames, fewer than data.num_frames={num_frames}; "
                         f"set data.num_frames={num_available} or use a longer video")
    return np.round(np.linspace(0, num_available - 1, num_frames)).astype(int)


def target_size(height: int, width: int, mode: str = "keep_aspect", multiple: int = 64, max_side: int = 1024,
                size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Output (H, W) for a resize mode.

    keep_aspect: scale so the long side is at most ``max_side``, then round each side to ``multiple``
    (aspect kept up to the rounding); squash: exactly ``size`` (the reference's 512x512 for generation);
    none: unchanged (must already be a multiple of ``multiple``).
    """
    multiple = check_int(multiple, "data.multiple", minimum=1)
    if mode == "squash":
        if size is None:
            raise InputError("data.resize=squash needs data.height and data.width")
        return int(size[0]), int(size[1])
    if mode == "none":
        if height % multiple or width % multiple:
            raise InputError(f"data.resize=none needs sides that are multiples of data.multiple={multiple}, got "
                             f"{height}x{width}; use data.resize=keep_aspect (or a data.multiple that divides both)")
        return height, width
    check_choice(mode, "data.resize", RESIZE_MODES)
    max_side = check_int(max_side, "data.max_side", minimum=multiple)
    scale = min(1.0, max_side / max(height, width))
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames with antialiased bilinear filtering (torch).

    Works through ``RESIZE_CHUNK`` frames at a time: the float copies stay small whatever the clip length.
    """
    if frames.shape[1:3] == (height, width):
        return frames
    out = np.empty((frames.shape[0], height, width, 3), dtype=np.uint8)
    for start in range(0, frames.shape[0], RESIZE_CHUNK):
        chunk = np.array(frames[start:start + RESIZE_CHUNK])  # a writable contiguous copy for torch
        x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float()
        y = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", antialias=True,
                                            align_corners=False)
        out[start:start + RESIZE_CHUNK] = y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def plan_clip_size(source: str, h0: int, w0: int, opts: dict) -> tuple[int, int]:
    """The reconstruction size of a ``h0`` x ``w0`` source under the checked clip options ``opts``.

    Refuses sources smaller than ``MIN_INPUT_SIDE`` and logs a warning when a side would be enlarged by
    more than ``UPSCALE_WARN``.
    """
    if min(h0, w0) < MIN_INPUT_SIDE:
        raise InputError(f"{source} is {h0}x{w0} px; the DW-Mesh stage needs at least {MIN_INPUT_SIDE} px per side "
                         "(an input this small would only be upscaled); use a larger image or video")
    size = (opts["height"], opts["width"]) if opts["height"] is not None else None
    if size is not None and opts["resize"] == "keep_aspect":
        h, w = size
    else:
        h, w = target_size(h0, w0, opts["resize"], opts["multiple"], opts["max_side"], size)
    if h > UPSCALE_WARN * h0 or w > UPSCALE_WARN * w0:
        why = ("data.height/data.width ask for" if size is not None
               else f"rounding to data.multiple={opts['multiple']} gives")
        log.warning("%s is %dx%d px and %s %dx%d (%.1fx upscale): the result has no more detail than the input; "
                    "use a larger input%s", source, h0, w0, why, h, w, max(h / h0, w / w0),
                    "" if size is not None else " or a smaller data.multiple")
    return h, w


def check_clip_memory(source: str, n_read: int, h0: int, w0: int, num_frames: int, h: int, w: int, opts: dict) -> None:
    """Refuse a clip whose decoded and resized frames cannot fit in this machine's memory."""
    # Decoding keeps a list of frames and their stacked copy; the resized clip is one more uint8 array; the
    # chunked resize adds float copies of RESIZE_CHUNK frames on both sides.
    need = 3 * (2 * n_read * h0 * w0 + num_frames * h * w) + 3 * 4 * 2 * RESIZE_CHUNK * (h0 * w0 + h * w)
    if opts["height"] is not None:
        key = f"data.height={opts['height']} data.width={opts['width']}"
        fix = "use smaller data.height/data.width"
    elif opts["resize"] == "none":
        key = "data.resize=none"
        fix = "use data.resize=keep_aspect with data.max_side, or fewer data.num_frames"
    else:
        key = f"data.max_side={opts['max_side']}"
        fix = "lower data.num_frames (or use a smaller input)"
    frames_read = f"{n_read} frame{'s' if n_read != 1 else ''}"
    check_memory(need, f"{key}: reading {frames_read} of {source} ({h0}x{w0}) into {num_frames} frames of {h}x{w}",
                 fix)


def load_clip(source: str | Path, num_frames: int = 49, stride: int = 1, frame_mode: str = "first",
              resize: str = "keep_aspect", multiple: int = 64, max_side: int = 1024,
              height: int | None = None, width: int | None = None) -> VideoClip:
    """Read ``source`` and return the clip to reconstruct: selected frames at the target size.

    A single image becomes a static clip of ``num_frames`` identical frames. Options, size and memory are
    checked from the headers before any frame is decoded; every problem raises InputError naming the file
    or the ``data.`` key.
    """
    opts = check_clip_options(num_frames, stride, frame_mode, resize, multiple, max_side, height, width)
    num_frames, stride, frame_mode = opts["num_frames"], opts["stride"], opts["frame_mode"]
    info0 = probe_source(source)
    h0, w0 = info0.height, info0.width
    h, w = plan_clip_size(str(source), h0, w0, opts)
    needed = (num_frames - 1) * stride + 1 if frame_mode == "first" else None
    if info0.static:
        n_read = 1
    elif needed is not None:
        n_read = min(needed, info0.num_frames or needed)
    else:  # uniform sampling decodes the whole video (as many frames as its header lists, when it does)
        n_read = info0.num_frames or num_frames
    check_clip_memory(str(source), n_read, h0, w0, num_frames, h, w, opts)
    frames, fps, static = read_frames(source, max_frames=needed)
    if frames.shape[1:3] != (h0, w0):  # a header that disagrees with the pixels: trust the pixels
        h0, w0 = frames.shape[1:3]
        h, w = plan_clip_size(str(source), h0, w0, opts)
    if static:
        idx = np.zeros(num_frames, dtype=int)
    else:
        src = str(source)
        if info0.num_frames and info0.num_frames > frames.shape[0] and (needed is None or frames.shape[0] < needed):
            src += f" (decoded {frames.shape[0]} of the {info0.num_frames} frames its header lists: truncated?)"
        idx = select_frames(frames.shape[0], num_frames, stride, frame_mode, source=src)
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
