"""What the evaluation reads: (generated, source) video pairs, with targets and the requested camera path.

* :class:`EvalItem`: one video to score (its id, generated file, source file, optional target and run folder).
* :class:`SourceFrames`: the source frames the pipeline reads (the clip options of ``data``), so that
  generated frames are compared with what the generator saw.
* :class:`RequestedPath`: the camera path a video was asked to follow (``cameras.json`` of our runs, else
  the benchmark camera).
* :class:`PairReader` turns an item into a :class:`~ex4d.evaluation.metric.VideoPair`; :class:`EvalPairs` is
  the same as a torch ``Dataset`` (one pair per item, for a DataLoader / Lightning loop).
* :func:`match_generated`: another method's videos matched to the sources by id.

Bad inputs (unreadable videos, sets of different sizes or lengths) raise
:class:`~ex4d.utils.errors.InputError` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ex4d.data.datasets import VIDEO_EXTS, probe_video
from ex4d.data.inputs import load_input_clip
from ex4d.evaluation.metric import CAMERAS, VideoPair
from ex4d.io.video import read_video, resize_frames
from ex4d.utils.errors import InputError

RESIZE = ("generated", "none")


@dataclass(frozen=True)
class EvalItem:
    """One video to score.

    Attributes:
        id: the video's id (the source file stem; ``per_video.csv``'s first column).
        generated: the generated video file.
        source: the source video file.
        target: a ground-truth target-view video (PSNR/SSIM/LPIPS), or None.
        run_dir: the folder our pipeline generated it in (its ``cameras.json`` is the exact requested path),
            or None (another method's video: the benchmark camera is evaluated).
    """

    id: str
    generated: Path
    source: Path
    target: Path | None = None
    run_dir: Path | None = None


class SourceFrames:
    """The frames the pipeline reads from a source video: ``load_input_clip(path, **clip_options)``.

    Args:
        clip_options: the keyword arguments of :func:`ex4d.data.inputs.load_input_clip` (``data``'s clip
            keys: ``num_frames``, ``stride``, ``frame_mode``, ``max_side``, ``multiple``, ...).
    """

    def __init__(self, **clip_options) -> None:
        self.options = dict(clip_options)
        self.num_frames = int(self.options.get("num_frames", 49))

    def __call__(self, path: str | Path) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB frames at the reconstruction size."""
        return load_input_clip(str(path), **self.options).frames

    def check(self, paths: Sequence[str | Path]) -> None:
        """Every source opens as a video with enough frames for ``num_frames`` (names the file otherwise)."""
        n, stride = self.num_frames, int(self.options.get("stride", 1))
        needed = (n - 1) * stride + 1 if self.options.get("frame_mode", "first") == "first" else n
        for p in paths:
            frames, _ = probe_video(Path(p))
            if frames < needed:
                raise InputError(f"benchmark source video {p} has {frames} frames; data.num_frames={n} at stride {stride} "
                                 f"needs {needed}")


class RequestedPath:
    """The path a generated video was asked to follow: ``(K (3, 3) at the generated size, w2c (T, 4, 4))``.

    Our outputs carry ``cameras.json`` (the exact path, K at the reconstruction size, scaled here). For
    other methods' videos ``camera`` is evaluated (its rotations do not depend on the scene's depth: every
    preset scales with the pivot distance) with focal length ``focal_px`` (default max(H, W)).

    Args:
        camera: a camera path object, ``camera(T, radius) -> (T, 4, 4) w2c`` (:mod:`ex4d.cameras.trajectories`).
        focal_px: focal length in pixels for videos without ``cameras.json`` (None: max(H, W)).
    """

    def __init__(self, camera: Callable, focal_px: float | None = None) -> None:
        self.camera, self.focal_px = camera, focal_px

    def __call__(self, run_dir: Path | None, T: int, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
        from ex4d.cameras.io import load_cameras_json

        cams = Path(run_dir) / "cameras.json" if run_dir is not None else None
        if cams is not None and cams.is_file():
            cs = load_cameras_json(cams)
            K = cs.K.numpy().copy()  # (3, 3), or (T, 3, 3) for a zoom (camera-following takes either)
            K[..., 0, :] *= W / cs.width
            K[..., 1, :] *= H / cs.height
            return K, cs.w2c.numpy()
        f = float(self.focal_px or max(H, W))
        K = np.array([[f, 0.0, W / 2.0], [0.0, f, H / 2.0], [0.0, 0.0, 1.0]])
        return K, self.camera(T, 1.0).numpy()


def _read_generated(path: Path) -> tuple[np.ndarray, float]:
    try:
        return read_video(path)
    except InputError as e:
        raise InputError(f"generated video {path} could not be read: {e}") from e


class PairReader:
    """Reads an :class:`EvalItem` into a :class:`VideoPair`: the generated video, its source frames (resized to
    the generated size with ``resize="generated"``, as the generator saw them squashed; ``"none"``: the clip's
    own size), its target (first T frames, resized the same way) and, when ``needs`` has CAMERAS, the path.

    Args:
        sources: the source frames provider.
        resize: ``"generated"`` or ``"none"``.
        cameras: the requested-path provider (needed only by metrics that require CAMERAS).
    """

    def __init__(self, sources: Callable[[Path], np.ndarray], resize: str = "generated",
                 cameras: RequestedPath | None = None) -> None:
        if resize not in RESIZE:
            raise InputError(f"source_resize must be 'generated' or 'none', got {resize!r}")
        self.sources, self.resize, self.cameras = sources, resize, cameras

    def __call__(self, index: int, item: EvalItem, needs: frozenset[str] = frozenset()) -> VideoPair:
        gen, fps = _read_generated(item.generated)
        src = self.sources(item.source)
        if gen.shape[0] != src.shape[0]:
            n = getattr(self.sources, "num_frames", src.shape[0])
            raise InputError(
                f"generated video {item.generated} has {gen.shape[0]} frames but its source {item.source} gives "
                f"{src.shape[0]} (data.num_frames={n}); generated and source videos must have the same length"
            )
        T, H, W = gen.shape[:3]
        if self.resize == "generated":
            src = resize_frames(src, H, W)
        pair = VideoPair(index, item.id, gen, src, str(item.generated), str(item.source), fps)
        if CAMERAS in needs:
            if self.cameras is None:
                raise ValueError("PairReader: a metric needs the requested camera path; pass cameras=RequestedPath(...)")
            pair.K, pair.w2c = self.cameras(item.run_dir, T, H, W)
        if item.target is not None:
            tgt, _ = read_video(item.target)
            if tgt.shape[0] < T:
                raise InputError(f"target video {item.target} has {tgt.shape[0]} frames, its generated video "
                                 f"{item.generated} has {T}")
            pair.target = resize_frames(tgt[:T], H, W) if self.resize == "generated" else tgt[:T]
            pair.target_path = str(item.target)
        return pair


class EvalPairs(Dataset):
    """The items as a map-style dataset of :class:`VideoPair` (use ``DataLoader(batch_size=None,
    collate_fn=keep)``: one pair per step, arrays left as they are)."""

    def __init__(self, items: Sequence[EvalItem], reader: PairReader, needs: frozenset[str] = frozenset()) -> None:
        self.items, self.reader, self.needs = list(items), reader, frozenset(needs)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> VideoPair:
        return self.reader(index, self.items[index], self.needs)


def keep(batch):
    """A DataLoader ``collate_fn`` that leaves a pair as it is (numpy frames, no tensor conversion)."""
    return batch


def check_targets(targets: Sequence[Path | None]) -> bool:
    """Whether the set has ground-truth targets: for every video or for none (InputError otherwise)."""
    have = [t is not None for t in targets]
    if any(have) and not all(have):
        raise InputError(f"the benchmark set lists ground-truth targets for {sum(have)} of {len(have)} videos; "
                         "list one for every video or for none")
    return bool(have) and all(have)


def match_generated(generated_dir: str | Path, ids: Sequence[str]) -> dict[str, Path]:
    """Generated video per source id: ``<dir>/<id>.<ext>`` or ``<dir>/<id>/output.mp4``; the sets must match."""
    d = Path(generated_dir).expanduser()
    if not d.is_dir():
        raise InputError(f"generated_dir {d} is not a folder")
    found: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTS:
            key = p.stem
        elif p.is_dir() and (p / "output.mp4").is_file():
            key, p = p.name, p / "output.mp4"
        else:
            continue
        if key in found:
            raise InputError(f"generated_dir {d}: two videos for id {key!r}: {found[key]} and {p}")
        found[key] = p
    ids = list(ids)
    missing = [i for i in ids if i not in found]
    extra = sorted(set(found) - set(ids))
    if missing or extra:
        raise InputError(
            f"generated and source sets differ: {len(found)} generated videos in {d} vs {len(ids)} source videos"
            + (f"; no generated video for {missing[:10]} (expected {d}/<id>.mp4 or {d}/<id>/output.mp4)" if missing else "")
            + (f"; generated videos without a source: {extra[:10]}" if extra else "")
        )
    return {i: found[i] for i in ids}


def eval_items(videos: Sequence, generated: Mapping[str, Path], run_dirs: Mapping[str, Path | None] | None = None
               ) -> list[EvalItem]:
    """Items of benchmark videos (objects with ``id``, ``path``, ``target``) and their generated files.
    ``run_dirs``: our generation folder per id (default: ``<id>/output.mp4``'s folder, else None)."""
    if run_dirs is None:
        run_dirs = {i: (p.parent if p.name == "output.mp4" else None) for i, p in generated.items()}
    return [EvalItem(v.id, Path(generated[v.id]), Path(v.path), v.target, run_dirs.get(v.id)) for v in videos]
