"""The evaluation stage: stream video pairs through metrics, report every number (or why it is missing).

:class:`Evaluator` runs in four steps, each usable on its own:

1. :meth:`~Evaluator.preflight` (cheap, before anything is generated): each metric looks up its weight files
   and packages without building a network. A metric that cannot run stops the run with one
   :class:`~ex4d.utils.errors.MissingWeightsError` line naming it and the fix, unless ``allow_skip=True``,
   which reports it as skipped (never a silent zero). Metrics that need ground-truth targets do not apply
   to a set without them (reported as not applicable, not a failure).
2. :meth:`~Evaluator.load`: the networks are built (on the device of :meth:`~Evaluator.to`); a failure to
   load is handled like a preflight failure.
3. :meth:`~Evaluator.update` per :class:`~ex4d.evaluation.metric.VideoPair` (returns the video's row of
   ``per_video.csv``). :meth:`~Evaluator.state` / :meth:`~Evaluator.merge` move what was kept between
   processes (:mod:`ex4d.evaluation.lightning` runs this loop on N devices).
4. :meth:`~Evaluator.compute`: the ``results.json`` entries in the metrics' order.

Example, without Hydra or Lightning (:meth:`~Evaluator.evaluate` runs the four steps in this process;
``generated_dir`` holds ``<id>.mp4`` for every ``<id>.mp4`` of ``source_dir``; tests/unit/test_evaluation.py
runs these lines)::

    from ex4d.evaluation import EvalItem, Evaluator, PairReader, SourceFrames
    from ex4d.metrics import FIDKID, TemporalFlickering, tiny
    evaluator = Evaluator({"fid": FIDKID(extractor=tiny.TinyFrameFeatures()), "flicker": TemporalFlickering()})
    items = [EvalItem(p.stem, generated_dir / p.name, p) for p in sorted(source_dir.glob("*.mp4"))]
    result = evaluator.evaluate(items, PairReader(SourceFrames(num_frames=5, max_side=128, multiple=16)))

``result.metrics["fid"]`` is ``{"value", "n", "ci_low", "ci_high", "note"}``; ``result.rows`` the per-video rows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ex4d.evaluation.adapters import as_metrics
from ex4d.evaluation.metric import NO_TARGETS, TARGET, Metric, VideoPair
from ex4d.metrics.weights import METRIC_WEIGHTS, Skipped
from ex4d.utils.errors import InputError, MissingWeightsError

log = logging.getLogger("ex4d.evaluation")


@dataclass
class EvaluationResult:
    """What :meth:`Evaluator.compute` returns.

    Attributes:
        metrics: ``{reported key: entry}`` in the metrics' order: a score (``value``, ``n``, ``ci_low``,
            ``ci_high``, ...), a skip (``skipped``, ``reason``, maybe ``not_applicable``) or a failure.
        rows: per-video rows (``id``, files, size, then each metric's per-video numbers), in video order.
        skipped: names of requested metrics that could not run (not counting ones that do not apply).
        test_only: a metric ran on a TEST-ONLY stand-in.
    """

    metrics: dict
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    test_only: bool = False


def _short(reason: str) -> str:
    """A skip reason in a few words for the one-line error: the missing / mismatching file's name, else the
    reason's first clause (at most 200 characters)."""
    m = re.match(r"(missing weights file|sha256 mismatch[^:]*): (\S+)", reason)
    if m:
        what = "missing" if m.group(1).startswith("missing") else "sha256 mismatch:"
        return f"{what} {Path(m.group(2)).name}"
    head = reason.split(". ")[0].split(" (pip install")[0].split(": pip install")[0]
    return head if len(head) <= 200 else head[:197] + "..."


def fail_unless_allowed(skipped: Mapping[str, Skipped], when: str, allow_skip: bool, weights_dir: str | Path) -> None:
    """A requested metric that cannot run fails the run (MissingWeightsError: one line naming the metrics, what
    they lack and the fix) unless ``allow_skip``, which logs it and lets it be reported as skipped."""
    if not skipped:
        return
    if allow_skip:
        for s in skipped.values():
            log.warning("%s", s)
        log.warning("allow_skip=true: reporting %d metric(s) as skipped: %s", len(skipped), ", ".join(skipped))
        return
    files = sorted({k for k, w in METRIC_WEIGHTS.items() for s in skipped.values()
                    if not w.package and f"/{w.filename}" in s.reason})
    fix = []
    if files:
        fix.append(f"python tools/download_weights.py --metrics --metric-keys {','.join(files)} --local-dir {weights_dir}")
    if any("pip install" in s.reason for s in skipped.values()):
        fix.append("pip install -e '.[eval]' && pip install --no-deps -r requirements/eval-nodeps.txt")
    fix += ["or drop them from benchmark.metrics", "or pass allow_skip=true to report them as skipped"]
    grouped: dict[str, list[str]] = {}  # metrics that lack the same thing are named together
    for n, s in skipped.items():
        grouped.setdefault(_short(s.reason), []).append(n)
    raise MissingWeightsError(
        f"{len(skipped)} requested metric(s) cannot run {when}: "
        + "; ".join(f"{', '.join(ns)} ({why})" for why, ns in grouped.items())
        + ". Fix: " + "; ".join(fix)
    )


class Evaluator:
    """Metrics over a set of video pairs (module docstring).

    Args:
        metrics: ``{name: metric}`` in report order: objects of :mod:`ex4d.metrics` (FIDKID, FVD, VBench
            dimensions and VBenchQuality, ``camera_following`` or a partial of it, ImageMetrics) or
            :class:`~ex4d.evaluation.metric.Metric` objects.
        allow_skip: report a metric that cannot run (missing weights or package) as skipped instead of
            raising MissingWeightsError.
        weights_dir: where metric weights live (named in the fix of the error).
        n_boot, seed: bootstrap of metrics that have no setting of their own (camera-following).
    """

    def __init__(self, metrics: Mapping[str, Any], allow_skip: bool = False, weights_dir: str | Path = "weights",
                 n_boot: int = 1000, seed: int = 0) -> None:
        if not isinstance(allow_skip, bool):
            raise InputError(f"allow_skip must be true or false, got {allow_skip!r}")
        self.metrics: dict[str, Metric] = as_metrics(metrics, n_boot, seed)
        self.allow_skip, self.weights_dir = allow_skip, weights_dir
        self.have_targets: bool | None = None
        self.unavailable: dict[str, Skipped] = {}  # found by the preflight
        self.skipped: dict[str, dict] = {}  # name -> {reported key: skip entry}
        self.active: dict[str, Metric] = {}  # loaded, will run
        self.rows: dict[int, dict] = {}
        self._loaded = False

    # ---------------------------------------------------------------------------------------------- setup

    def preflight(self, have_targets: bool) -> dict[str, Skipped]:
        """Which metrics cannot run, before anything is generated (weight files sha256-checked, packages looked
        up, no network built). Raises MissingWeightsError unless ``allow_skip``. Returns ``{name: Skipped}``;
        metrics that do not apply (they need targets the set does not have) are not in it."""
        self.have_targets = bool(have_targets)
        skipped: dict[str, Skipped] = {}
        for name, m in self.metrics.items():
            if m.depends_on or (TARGET in m.requires and not self.have_targets):
                continue
            try:
                m.check_available()
            except MissingWeightsError as e:  # logged by fail_unless_allowed (or in its one-line error)
                skipped[name] = Skipped(name, str(e))
        for name, m in self.metrics.items():  # an aggregate cannot run without all of its inputs
            lost = [n for n in self.metrics if n in skipped and n in m.depends_on]
            if lost:
                skipped[name] = Skipped(name, f"needs {lost}, which cannot run")
        self.unavailable = skipped
        fail_unless_allowed(skipped, "(missing weights files or packages)", self.allow_skip, self.weights_dir)
        return skipped

    @property
    def requires(self) -> frozenset[str]:
        """What the metrics that may run read of a pair (the union of their ``requires``)."""
        ms = self.active.values() if self._loaded else [m for n, m in self.metrics.items() if n not in self.unavailable]
        return frozenset().union(*(m.requires for m in ms))

    @property
    def test_only(self) -> bool:
        return any(m.test_only for m in self.active.values())

    def to(self, device) -> Evaluator:
        """Build the networks on ``device`` (call before :meth:`load`)."""
        for m in self.metrics.values():
            m.to(device)
        return self

    def load(self) -> dict[str, dict]:
        """Build the networks of the metrics that passed the preflight; skip (or, without ``allow_skip``, raise
        for) those that fail to load. Returns ``{name: {reported key: skip entry}}`` of every metric that will
        not run. Idempotent."""
        if self._loaded:
            return self.skipped
        if self.have_targets is None:
            raise ValueError("Evaluator.load: call preflight(have_targets) first")
        failed: dict[str, Skipped] = {}
        for name, m in self.metrics.items():
            if name in self.unavailable:
                self.skipped[name] = {k: self.unavailable[name].to_dict() for k in m.reports}
                continue
            if TARGET in m.requires and not self.have_targets:
                self.skipped[name] = {k: {**Skipped(k, NO_TARGETS).to_dict(), "not_applicable": True} for k in m.reports}
                continue
            lost = [d for d in m.depends_on if d not in self.active]
            if lost:
                s = Skipped(name, f"needs {lost}, which could not run")
                failed.setdefault(name, s)
                self.skipped[name] = {k: s.to_dict() for k in m.reports}
                continue
            try:
                partial = m.load(self.active)
            except MissingWeightsError as e:
                s = Skipped(m.reports[0], str(e))
                log.warning("%s", s)
                failed[name] = s
                self.skipped[name] = {k: s.to_dict() for k in m.reports}
                continue
            if partial is not None:  # part of it cannot run (LPIPS); the rest runs
                failed[name] = partial
            self.active[name] = m
        self._loaded = True
        fail_unless_allowed(failed, "(loading their models)", self.allow_skip, self.weights_dir)
        return self.skipped

    # ----------------------------------------------------------------------------------------------- loop

    def update(self, pair: VideoPair) -> dict:
        """Feed one pair to every metric that runs; returns its per-video row."""
        row = pair.row()
        for m in self.active.values():
            row.update(m.update(pair))
        self.rows[pair.index] = row
        return row

    def state(self) -> dict:
        """Everything :meth:`update` kept (per-video rows and metric states), picklable."""
        return {"rows": dict(self.rows), "metrics": {n: m.state() for n, m in self.active.items()}}

    def merge(self, states: Iterable[dict]) -> None:
        """Add the :meth:`state` of other processes (the same metrics, other videos)."""
        for st in states:
            self.rows.update(st["rows"])
            for n, s in st["metrics"].items():
                self.active[n].merge_state(s)

    def compute(self) -> EvaluationResult:
        """The entries of every metric over the videos seen (in this process and merged)."""
        metrics: dict = {}
        for name in self.metrics:  # the given order; a metric reports one or more numbers (or skips)
            metrics.update(self.active[name].compute() if name in self.active else self.skipped[name])
        skipped = [n for n in self.metrics if n in self.skipped
                   and not all(e.get("not_applicable") for e in self.skipped[n].values())]
        return EvaluationResult(metrics, [self.rows[i] for i in sorted(self.rows)], skipped, self.test_only)

    def evaluate(self, items: Sequence, reader, have_targets: bool | None = None) -> EvaluationResult:
        """All steps in this process: preflight (unless done), load, every item through ``reader``
        (:class:`~ex4d.evaluation.pairs.PairReader`), compute. ``have_targets``: default, whether every item
        has one."""
        if self.have_targets is None:
            self.preflight(all(getattr(i, "target", None) is not None for i in items) if have_targets is None
                           else have_targets)
        self.load()
        needs = self.requires
        for index, item in enumerate(items):
            self.update(reader(index, item, needs))
        return self.compute()
