"""The metric classes of :mod:`ex4d.metrics` as :class:`~ex4d.evaluation.metric.Metric` objects.

Each adapter keeps the wrapped object (``.metric``) and only adds the protocol: what it reads of a video
pair, which weight files it loads, its per-video state by video index, and the ``results.json`` entries it
reports. The numbers are the wrapped classes' own (features, per-video scores, bootstrap), fed in video
order.

:func:`as_metrics` picks the adapter for each object (objects that already implement the protocol pass
through) and checks the combination (an aggregate after its inputs).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import torch

from ex4d.evaluation.metric import CAMERAS, GENERATED, SOURCE, TARGET, Metric, MetricBase, VideoPair, entry
from ex4d.metrics import FIDKID, FVD, ImageMetrics, bootstrap_mean, camera_following, summarize_camera_following
from ex4d.metrics.image import psnr_video, ssim_video
from ex4d.metrics.vbench import VBenchDimension, VBenchQuality
from ex4d.metrics.video import as_video
from ex4d.metrics.weights import Skipped, run_or_skip
from ex4d.utils.errors import InputError

log = logging.getLogger("ex4d.evaluation")

# Attributes through which the metric classes load their models lazily (touching one loads or raises).
_LAZY_MODELS = ("extractor", "detector", "embedder", "models", "scorer", "flow", "interp")


def _load_models(metric) -> None:
    """Touch a metric's lazily loaded models so a missing weights file shows up before any video is read."""
    for attr in _LAZY_MODELS:
        if isinstance(getattr(type(metric), attr, None), property):
            getattr(metric, attr)


def _set_device(metric, device) -> None:
    """The metric classes keep ``device`` and build their networks there on first use."""
    if device is not None and hasattr(metric, "device"):
        metric.device = torch.device(device)


def _weight_keys(metric) -> tuple[str, ...]:
    """Keys of METRIC_WEIGHTS that ``metric`` will load (none for an injected network or a stand-in)."""
    if isinstance(metric, FIDKID):
        return ("fid_inception",) if metric._extractor is None else ()
    if isinstance(metric, FVD):
        return ("i3d_styleganv",) if metric._detector is None else ()
    if isinstance(metric, ImageMetrics):
        return ("lpips_alexnet", "lpips_heads") if metric.use_lpips and metric._lpips is None else ()
    name = getattr(metric, "name", None)
    if name == "motion_smoothness":
        return ("amt_s",) if metric.interpolator == "amt" and metric._interp is None else ()
    if name == "dynamic_degree":
        return ("raft_large",) if metric.flow_choice == "raft" and getattr(metric, "_flow", None) is None else ()
    if name == "aesthetic_quality":
        return tuple(k for k, have in (("clip_vitl14", metric._embedder), ("laion_aesthetic", metric._head)) if have is None)
    if name == "imaging_quality":
        return ("musiq_spaq",) if metric._scorer is None else ()
    key = getattr(metric, "weights_key", None)  # subject / background consistency
    return (key,) if key and getattr(metric, "_embedder", None) is None else ()


class _Wrapped(MetricBase):
    """An adapter around one object of :mod:`ex4d.metrics` (``self.metric``)."""

    def __init__(self, name: str, metric) -> None:
        super().__init__(name)
        self.metric = metric

    @property
    def weights(self) -> tuple[str, ...]:
        return _weight_keys(self.metric)

    def check_available(self) -> None:
        check = getattr(self.metric, "check_available", None)
        if check is not None:
            check()

    def to(self, device) -> _Wrapped:
        _set_device(self.metric, device)
        return self

    def load(self, others: dict) -> Any:
        _load_models(self.metric)
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {type(self.metric).__name__})"


class SetMetric(_Wrapped):
    """FID/KID (:class:`~ex4d.metrics.FIDKID`) or FVD (:class:`~ex4d.metrics.FVD`): features of every
    generated and source video, the statistic over the set (bootstrap over videos)."""

    requires = frozenset({GENERATED, SOURCE})

    @property
    def reports(self) -> tuple[str, ...]:
        return ("fid", "kid") if isinstance(self.metric, FIDKID) else (self.name,)

    @property
    def test_only(self) -> bool:
        """FID on the TEST-ONLY random feature extractor (``metrics=tiny``)."""
        return type(getattr(self.metric, "_extractor", None)).__module__ == "ex4d.metrics.tiny"

    def update(self, pair: VideoPair) -> dict:
        self.per_video[pair.index] = (self.metric.features(pair.generated, f"generated {pair.generated_path}"),
                                      self.metric.features(pair.source, f"source {pair.source_path}"))
        return {}

    def compute(self) -> dict:
        self.metric.reset()
        for gen, src in self.ordered():
            self.metric.add_features(gen, real=False)
            self.metric.add_features(src, real=True)
        res = self.metric.compute()
        if isinstance(self.metric, FIDKID):
            note = f"{res.n_frames_generated} generated vs {res.n_frames_source} source frames"
            if self.test_only:
                note += "; TEST ONLY random feature extractor"
            return {"fid": entry(res.fid, note),
                    "kid": {"value": res.kid_mean, "std": res.kid_std, "n": res.n_videos, "note": "mean ± std over subsets"}}
        return {self.name: entry(res.fvd, f"{res.variant}: {res.n_clips} clips per set")}


class DimensionMetric(_Wrapped):
    """A VBench dimension (:class:`~ex4d.metrics.vbench.VBenchDimension`): a score per generated video, the
    mean with a bootstrap interval."""

    requires = frozenset({GENERATED})

    def __init__(self, name: str, metric: VBenchDimension) -> None:
        super().__init__(name, metric)
        self._fps_warned = False

    @property
    def reports(self) -> tuple[str, ...]:
        report = self.metric.report_name
        return (report, "vbench_aq") if report == "aesthetic_quality" else (report,)

    def scores(self) -> list[float]:
        """Per-video scores in video order."""
        return self.ordered()

    def update(self, pair: VideoPair) -> dict:
        fps = getattr(self.metric, "fps", None)  # dynamic degree thresholds depend on the frame rate
        if fps is not None and abs(fps - pair.fps) > 0.5 and not self._fps_warned:
            log.warning("metrics.%s.fps=%s but %s plays at %.2f fps", self.name, fps, pair.generated_path, pair.fps)
            self._fps_warned = True
        s = float(self.metric.score_video(as_video(pair.generated, f"generated {pair.generated_path}")))
        self.per_video[pair.index] = s
        return {self.metric.report_name: s}

    def compute(self) -> dict:
        score = bootstrap_mean(self.scores(), self.metric.n_boot, seed=self.metric.seed)
        out = {self.metric.report_name: entry(score)}
        if self.metric.name == "aesthetic_quality":
            out["vbench_aq"] = entry(score, "aesthetic quality: the likely paper-comparable VBench score")
        return out


class VBenchQualityMetric(_Wrapped):
    """VBench's Quality Score (:class:`~ex4d.metrics.vbench.VBenchQuality`) from the per-video scores of the
    dimension metrics it depends on (computed at the end)."""

    requires = frozenset()

    def __init__(self, name: str, metric: VBenchQuality, dimensions: Mapping[str, str]) -> None:
        """``dimensions``: VBench dimension name -> the name of the metric that scores it."""
        super().__init__(name, metric)
        self.dimensions = dict(dimensions)
        self.depends_on = tuple(dict.fromkeys(self.dimensions.values()))
        self._dims: dict[str, DimensionMetric] = {}

    @property
    def reports(self) -> tuple[str, ...]:
        return (self.metric.name,)

    def load(self, others: dict) -> None:
        self._dims = {dim: others[name] for dim, name in self.dimensions.items()}

    def update(self, pair: VideoPair) -> dict:
        return {}

    def compute(self) -> dict:
        stand_ins = [d.metric.report_name for d in self._dims.values() if d.metric.report_name != d.metric.name]
        # Over a stand-in (blend interpolator, DIS flow) it is not VBench's number: a name that says so.
        report = "vbench_quality_nonstandard" if stand_ins else "vbench_quality"
        note = f"with stand-ins {stand_ins}: not VBench's score" if stand_ins else (
            "VBench leaderboard Quality Score over " + ", ".join(VBenchQuality.dimensions))
        res = self.metric({k: d.scores() for k, d in self._dims.items()}, report)
        return {report: {**entry(res.score, note), "per_video": res.per_video}}


class CameraFollowingMetric(MetricBase):
    """Rotation and translation direction of the generated video (estimated) against the requested path,
    per video (:func:`~ex4d.metrics.camera_following`); the set summary with bootstrap intervals.

    Args:
        fn: ``camera_following`` or a partial of it (mode, detector).
        n_boot, seed: bootstrap of the per-video means.
    """

    requires = frozenset({GENERATED, CAMERAS})

    def __init__(self, name: str, fn=camera_following, n_boot: int = 1000, seed: int = 0) -> None:
        super().__init__(name)
        self.fn, self.n_boot, self.seed = fn, n_boot, seed

    @property
    def reports(self) -> tuple[str, ...]:
        return ("camera_rotation_error_deg", "camera_following_ratio", "camera_translation_error_deg")

    def update(self, pair: VideoPair) -> dict:
        r = self.fn(pair.generated, pair.K, pair.w2c)
        self.per_video[pair.index] = r
        return {"camera_rotation_error_deg": r.mean_error_deg, "camera_following_ratio": r.following_ratio,
                "camera_translation_error_deg": r.mean_translation_error_deg,
                "camera_final_yaw_est_deg": r.final_yaw_est_deg, "camera_final_yaw_req_deg": r.final_yaw_req_deg,
                "camera_failed_frames": r.n_failed, "camera_translation_frames": r.n_translation}

    def compute(self) -> dict:
        results = self.ordered()
        s = summarize_camera_following(results, self.n_boot, self.seed)
        n, failed = len(results), s["n_failed_videos"]
        out = {}
        for key, name in (("rotation_error_deg", "camera_rotation_error_deg"), ("following_ratio", "camera_following_ratio")):
            if key in s:
                out[name] = entry(s[key], f"{failed} of {n} videos without an estimate" if failed else None)
            else:
                out[name] = {"failed": True, "reason": f"the camera rotation could not be estimated on any of the {n} "
                                                       "videos (too few feature matches)"}
        no_t = s["n_videos_without_translation"]
        if "translation_error_deg" in s:
            out["camera_translation_error_deg"] = entry(
                s["translation_error_deg"], "translation direction (scale is unobservable)"
                + (f"; {no_t} of {n} videos without a translation estimate" if no_t else ""))
        else:
            out["camera_translation_error_deg"] = {
                "failed": True, "reason": f"no translation direction could be estimated on any of the {n} videos "
                                          "(rotation-only fits, too few matches, or a path without translation)"}
        return out


class ImagePairMetric(_Wrapped):
    """PSNR / SSIM (/ LPIPS) of the generated video against its ground-truth target
    (:class:`~ex4d.metrics.ImageMetrics`). LPIPS that cannot load is reported skipped; PSNR/SSIM still run."""

    requires = frozenset({GENERATED, TARGET})

    def __init__(self, name: str, metric: ImageMetrics) -> None:
        super().__init__(name, metric)
        self.lpips_skip: Skipped | None = None

    @property
    def reports(self) -> tuple[str, ...]:
        return ("psnr", "ssim", "lpips")

    def _keys(self) -> list[str]:
        return ["psnr", "ssim"] + (["lpips"] if self.metric.use_lpips and self.lpips_skip is None else [])

    def load(self, others: dict) -> Skipped | None:
        lp = run_or_skip("lpips", lambda: self.metric.lpips_model) if self.metric.use_lpips else None
        self.lpips_skip = lp if isinstance(lp, Skipped) else None
        return self.lpips_skip

    def update(self, pair: VideoPair) -> dict:
        g, t = as_video(pair.generated, pair.generated_path), as_video(pair.target, pair.target_path)
        if g.shape != t.shape:
            raise InputError(f"{pair.generated_path} is {tuple(g.shape)} but its target {pair.target_path} is {tuple(t.shape)}")
        row = {"psnr": psnr_video(g, t), "ssim": ssim_video(g, t)}
        if "lpips" in self._keys():
            row["lpips"] = self.metric.lpips_video(g, t)
        self.per_video[pair.index] = row
        return row

    def compute(self) -> dict:
        rows = self.ordered()
        out = {k: entry(bootstrap_mean([r[k] for r in rows], self.metric.n_boot, seed=self.metric.seed))
               for k in self._keys()}
        if self.lpips_skip is not None:
            out["lpips"] = self.lpips_skip.to_dict()
        return out


def _is_camera_following(obj) -> bool:
    return obj is camera_following or (isinstance(obj, functools.partial) and obj.func is camera_following)


def as_metric(name: str, obj, n_boot: int = 1000, seed: int = 0) -> Metric:
    """The :class:`Metric` for one object: an adapter around a metric class of :mod:`ex4d.metrics`, or the
    object itself when it implements the protocol. ``n_boot``/``seed``: for wrapped functions without their
    own (camera-following). A :class:`VBenchQuality` needs the other metrics: use :func:`as_metrics`."""
    if isinstance(obj, Metric):
        return obj
    if _is_camera_following(obj):
        return CameraFollowingMetric(name, obj, n_boot, seed)
    if isinstance(obj, (FIDKID, FVD)):
        return SetMetric(name, obj)
    if isinstance(obj, VBenchDimension):
        return DimensionMetric(name, obj)
    if isinstance(obj, ImageMetrics):
        return ImagePairMetric(name, obj)
    raise InputError(f"metrics.{name}: {type(obj).__name__} is not a metric the evaluation knows how to run")


def as_metrics(objs: Mapping[str, Any], n_boot: int = 1000, seed: int = 0) -> dict[str, Metric]:
    """:func:`as_metric` for each ``{name: object}`` in order (the benchmark's); a :class:`VBenchQuality`
    aggregates the VBench dimensions listed before it (InputError naming the missing ones)."""
    out: dict[str, Metric] = {}
    for name, obj in objs.items():
        if isinstance(obj, VBenchQuality):
            dims = {m.metric.name: n for n, m in out.items() if isinstance(m, DimensionMetric)
                    and m.metric.name in obj.dimensions}
            missing = [d for d in obj.dimensions if d not in dims]
            if missing:
                raise InputError(f"benchmark.metrics: {name} aggregates {list(obj.dimensions)}; list {missing} before it")
            out[name] = VBenchQualityMetric(name, obj, dims)
        else:
            out[name] = as_metric(name, obj, n_boot, seed)
    return out
