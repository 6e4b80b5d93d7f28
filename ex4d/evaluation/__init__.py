"""The evaluation stage: score generated videos against their sources with a set of metrics.

Plain objects, usable without Hydra (configs pick the metric objects; this package receives objects and
plain values) and, except for :mod:`ex4d.evaluation.lightning`, without Lightning:

* :mod:`~ex4d.evaluation.metric`: the :class:`Metric` protocol (what a metric reports, requires and loads;
  ``update`` per video, ``state``/``merge_state`` across processes, ``compute``) and :class:`VideoPair`.
* :mod:`~ex4d.evaluation.adapters`: the metric classes of :mod:`ex4d.metrics` wrapped in that protocol.
* :mod:`~ex4d.evaluation.evaluator`: :class:`Evaluator` (preflight, load, update, compute; an example in its
  module docstring).
* :mod:`~ex4d.evaluation.pairs`: what is read per video (generated file, source frames, target, the
  requested camera path) and the matching of another method's videos to the sources.
* :mod:`~ex4d.evaluation.generation`: our generated videos' folder (fingerprinted, resumable).
* :mod:`~ex4d.evaluation.report`: ``results.json``'s dict, the tables, ``per_video.csv``, a logger's numbers.
* :mod:`~ex4d.evaluation.lightning`: the loop as a Lightning predict loop over N devices (imports Lightning).

``python evaluate.py`` (:mod:`ex4d.runners.evaluate`) composes these from the config.
"""

from ex4d.evaluation.adapters import (
    CameraFollowingMetric,
    DimensionMetric,
    ImagePairMetric,
    SetMetric,
    VBenchQualityMetric,
    as_metric,
    as_metrics,
)
from ex4d.evaluation.evaluator import EvaluationResult, Evaluator, fail_unless_allowed
from ex4d.evaluation.generation import (
    fingerprint,
    generate_benchmark_videos,
    method_label,
    ours_files,
    with_checkpoint_file,
)
from ex4d.evaluation.metric import CAMERAS, GENERATED, INPUTS, SOURCE, TARGET, Metric, MetricBase, VideoPair
from ex4d.evaluation.pairs import (
    EvalItem,
    EvalPairs,
    PairReader,
    RequestedPath,
    SourceFrames,
    check_targets,
    eval_items,
    match_generated,
)

__all__ = [
    "CAMERAS",
    "CameraFollowingMetric",
    "DimensionMetric",
    "EvalItem",
    "EvalPairs",
    "EvaluationResult",
    "Evaluator",
    "GENERATED",
    "INPUTS",
    "ImagePairMetric",
    "Metric",
    "MetricBase",
    "PairReader",
    "RequestedPath",
    "SOURCE",
    "SetMetric",
    "SourceFrames",
    "TARGET",
    "VBenchQualityMetric",
    "VideoPair",
    "as_metric",
    "as_metrics",
    "check_targets",
    "eval_items",
    "fail_unless_allowed",
    "fingerprint",
    "generate_benchmark_videos",
    "method_label",
    "match_generated",
    "ours_files",
    "with_checkpoint_file",
]
