"""Evaluation metrics: FID/KID, FVD, VBench dimensions, camera-following, PSNR/SSIM/LPIPS, bootstrap CIs.

Protocol: ``shared/docs/ex4d-method.md`` section 7. Videos are ``(T, H, W, 3)`` uint8 RGB; generated and
source sets pair up (same count, same lengths). Every extractor loads lazily from a local file
(:mod:`ex4d.metrics.weights`) into the stack libraries' own networks (torch-fidelity's FID Inception-v3,
the lpips package's LPIPS on torchvision's AlexNet, torchvision's RAFT, vbench's AMT-S, pyiqa's MUSIQ),
imported only when that metric is built, so ``import ex4d.metrics`` needs no torchvision; a missing file raises ``MissingWeightsError``
naming the file and where to get it, and :func:`run_or_skip` reports it as :class:`Skipped` rather than
a number. Every set-level number is a :class:`ScoreWithCI` that prints as
``"55.42 [53.10, 57.90] (N=150)"``.

Example::

    from ex4d.metrics import FIDKID, FVD, run_or_skip
    fid = run_or_skip("fid", FIDKID(device="cuda"), generated, source)
    fvd = run_or_skip("fvd_first16", FVD("first16", device="cuda"), generated, source)
"""

from ex4d.metrics.camera_following import (
    CameraFollowingResult,
    camera_following,
    estimate_rotations,
    relative_rotation_from_matches,
    summarize_camera_following,
)
from ex4d.metrics.fid import FIDKID, FIDResult
from ex4d.metrics.frechet import (
    FeatureStats,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_from_stats,
    kernel_inception_distance,
)
from ex4d.metrics.fvd import FVD, FVDResult
from ex4d.metrics.image import ImageMetrics, ImageMetricsResult
from ex4d.metrics.stats import ScoreWithCI, bootstrap_mean, bootstrap_statistic
from ex4d.metrics.vbench import (
    AestheticQuality,
    AMTInterpolator,
    BackgroundConsistency,
    DimensionResult,
    DynamicDegree,
    ImagingQuality,
    MotionSmoothness,
    SubjectConsistency,
    TemporalFlickering,
    VBenchQuality,
    run_vbench,
    vbench_quality_score,
)
from ex4d.metrics.video import check_paired_sets
from ex4d.metrics.weights import METRIC_WEIGHTS, MetricUnavailable, Skipped, WeightsFile, resolve_weights, run_or_skip

__all__ = [
    "AMTInterpolator",
    "AestheticQuality",
    "BackgroundConsistency",
    "CameraFollowingResult",
    "DimensionResult",
    "DynamicDegree",
    "FIDKID",
    "FIDResult",
    "FVD",
    "FVDResult",
    "FeatureStats",
    "ImageMetrics",
    "ImageMetricsResult",
    "ImagingQuality",
    "METRIC_WEIGHTS",
    "MetricUnavailable",
    "MotionSmoothness",
    "ScoreWithCI",
    "Skipped",
    "SubjectConsistency",
    "TemporalFlickering",
    "VBenchQuality",
    "WeightsFile",
    "bootstrap_mean",
    "bootstrap_statistic",
    "camera_following",
    "check_paired_sets",
    "estimate_rotations",
    "frechet_distance",
    "frechet_distance_from_features",
    "frechet_distance_from_stats",
    "kernel_inception_distance",
    "relative_rotation_from_matches",
    "resolve_weights",
    "run_or_skip",
    "run_vbench",
    "summarize_camera_following",
    "vbench_quality_score",
]
