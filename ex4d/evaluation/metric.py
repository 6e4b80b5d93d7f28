"""The metric protocol of the evaluation stage: what a metric reports, needs, and how it accumulates.

A :class:`Metric` sees one :class:`VideoPair` at a time (``update``), remembers what it needs of it by video
index (``state``: picklable, so the states of several processes can be gathered and merged), and reports
its numbers over the whole set at the end (``compute``). Keeping per-video contributions keyed by index,
rather than running sums, is what makes a run on N devices give the same numbers as a run on one: the
merged contributions are replayed in video order, so bootstrap resamples and float sums see the same
sequence.

The metric classes of :mod:`ex4d.metrics` (FID/KID, FVD, VBench dimensions, camera-following, PSNR/SSIM/
LPIPS) are wrapped by :mod:`ex4d.evaluation.adapters`; a new metric can implement this protocol directly
(subclass :class:`MetricBase` for the state bookkeeping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ex4d.metrics.stats import ScoreWithCI

# What a metric may need of a video pair (``Metric.requires``).
GENERATED = "generated"  # the generated frames (always present)
SOURCE = "source"  # the source frames the generator saw
TARGET = "target"  # a ground-truth target-view video (only sets that list one)
CAMERAS = "cameras"  # the requested path: K and w2c
INPUTS = (GENERATED, SOURCE, TARGET, CAMERAS)

# Why a metric that requires TARGET does not run on a set without targets (reported, not a failure).
NO_TARGETS = "the benchmark set lists no ground-truth `target` videos (not applicable)"


@dataclass
class VideoPair:
    """One evaluated video and what the metrics compare it with.

    Attributes:
        index: position of the video in the benchmark set (orders the merged per-video results).
        id: the video's id (the source file stem).
        generated: (T, H, W, 3) uint8 RGB, the generated video.
        source: (T, H, W, 3) uint8 RGB, the source frames the pipeline read, at the generated size unless
            the reader was told not to resize.
        generated_path, source_path: the files (for messages and the per-video table).
        fps: frame rate of the generated file.
        target: (T, H, W, 3) uint8 ground-truth target-view video, or None.
        target_path: its file, or None.
        K: (3, 3) (or (T, 3, 3) for a zoom) float64 intrinsics at the generated size, pixels, OpenCV
            convention (see :mod:`ex4d.cameras`); None unless a metric requires CAMERAS.
        w2c: (T, 4, 4) float64 world-to-camera matrices of the requested path; None like ``K``.
    """

    index: int
    id: str
    generated: np.ndarray
    source: np.ndarray
    generated_path: str
    source_path: str
    fps: float
    target: np.ndarray | None = None
    target_path: str | None = None
    K: np.ndarray | None = None
    w2c: np.ndarray | None = None

    def row(self) -> dict:
        """The per-video table's leading columns."""
        T, H, W = self.generated.shape[:3]
        return {"id": self.id, "source": self.source_path, "generated": self.generated_path, "frames": T,
                "height": H, "width": W}


@runtime_checkable
class Metric(Protocol):
    """A metric of the evaluation stage.

    Attributes:
        name: its name in the benchmark's metric list (``fid``, ``camera_following``, ...).
        reports: the result keys it fills (``("fid", "kid")``); a skipped metric fills each with a skip entry.
        requires: which inputs of a :class:`VideoPair` it reads (a subset of :data:`INPUTS`).
        weights: keys of :data:`ex4d.metrics.weights.METRIC_WEIGHTS` it loads (empty: none), for the preflight.
        test_only: it runs on a TEST-ONLY stand-in (the table is labelled so).
        depends_on: names of the metrics it aggregates (they must run for it to run).
    """

    name: str
    requires: frozenset[str]
    depends_on: tuple[str, ...]

    @property
    def reports(self) -> tuple[str, ...]: ...

    @property
    def weights(self) -> tuple[str, ...]: ...

    @property
    def test_only(self) -> bool: ...

    def check_available(self) -> None:
        """Look up weight files and packages without building anything; raise MissingWeightsError if one is missing."""

    def to(self, device) -> Metric:
        """Run on ``device`` (before :meth:`load`)."""

    def load(self, others: dict[str, Metric]) -> Any:
        """Build the networks (raise MissingWeightsError to be skipped). ``others``: the metrics that will run,
        by name (an aggregate finds its inputs there). May return a :class:`~ex4d.metrics.weights.Skipped` for
        a part that cannot run (the rest still runs)."""

    def update(self, pair: VideoPair) -> dict[str, float]:
        """Take one video pair; return its per-video numbers (columns of ``per_video.csv``)."""

    def state(self) -> dict:
        """What :meth:`update` kept, by video index (picklable)."""

    def merge_state(self, state: dict) -> None:
        """Add another process's :meth:`state`."""

    def compute(self) -> dict[str, dict]:
        """``{reported key: entry}`` over every video seen (entries as in ``results.json``)."""


class MetricBase:
    """State bookkeeping for :class:`Metric` implementations: ``self.per_video[index]`` holds what ``update``
    kept of a video; :meth:`ordered` returns it in video order."""

    name: str = "metric"
    requires: frozenset[str] = frozenset({GENERATED})
    depends_on: tuple[str, ...] = ()

    def __init__(self, name: str) -> None:
        self.name = name
        self.per_video: dict[int, Any] = {}

    @property
    def reports(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def weights(self) -> tuple[str, ...]:
        return ()

    @property
    def test_only(self) -> bool:
        return False

    def check_available(self) -> None:
        pass

    def to(self, device) -> MetricBase:
        return self

    def load(self, others: dict) -> Any:
        return None

    def state(self) -> dict:
        return dict(self.per_video)

    def merge_state(self, state: dict) -> None:
        self.per_video.update(state)

    def ordered(self) -> list:
        return [self.per_video[i] for i in sorted(self.per_video)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def entry(score: ScoreWithCI, note: str | None = None) -> dict:
    """A ``results.json`` entry of a score (value, N, interval), with an optional note."""
    d = score.to_dict()
    if note:
        d["note"] = note
    return d
