"""``python evaluate.py``: generate a benchmark's videos (or read another method's) and score them.

Steps:

1. The benchmark set (``benchmark.data``): list its source videos, check they exist and match their sha256.
2. Generated videos: either our pipeline (:func:`ex4d.runners.stages.run_many`, Lightning predict) into
   ``<generation_root>/<fingerprint>/<id>/output.mp4``, where the fingerprint hashes every setting that
   changes the pixels, so a rerun skips finished videos and a changed setting starts a fresh folder; or
   ``generated_dir=`` (another method's outputs), matched to sources by file stem.
3. Metrics (the benchmark's list; objects from the ``metrics`` group): before anything is generated, each
   metric's weight files (sha256-checked) and packages are looked up; a requested metric that cannot run
   stops the run with one line naming it and the fix (exit status 3), unless ``allow_skip=true``, which
   reports it as skipped (never a silent zero). After generation the models load, then every (generated,
   source) pair is read once and streamed through all metrics.
4. ``results.json``, ``table.md`` / ``table.tex`` (the paper's Table 1 layout, ours next to the paper's
   rows, every number of ours with N and a bootstrap interval), ``per_video.csv``; the numbers and the
   table are logged to the configured logger (W&B or CSV) when there is one.

Source frames for comparison are the frames the pipeline reads (``data.num_frames`` at ``data.stride``,
reconstruction size), resized to the generated video's size (``source_resize=generated``), as the
generator saw them. Bad inputs (sets of different sizes or lengths, unreadable videos, wrong hashes)
raise :class:`~ex4d.utils.errors.InputError` naming the file.
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from ex4d.data.benchmark import BenchmarkVideo, list_benchmark_videos, verify_benchmark_videos
from ex4d.data.datasets import VIDEO_EXTS, probe_video
from ex4d.data.inputs import load_input_clip
from ex4d.io.video import read_video, resize_frames
from ex4d.metrics import FIDKID, FVD, ImageMetrics, bootstrap_mean, camera_following, summarize_camera_following
from ex4d.metrics.image import psnr_video, ssim_video
from ex4d.metrics.report import metrics_table, table1
from ex4d.metrics.vbench import VBenchDimension, VBenchQuality
from ex4d.metrics.video import as_video
from ex4d.metrics.weights import METRIC_WEIGHTS, Skipped, resolve_counter, resolved_weights, run_or_skip
from ex4d.runners.common import StageClock, run_dir, run_record, save_resolved_config, staged_outputs, write_json
from ex4d.runners.validate import check_evaluate_config
from ex4d.utils.device import resolve_device
from ex4d.utils.errors import InputError, MissingWeightsError

log = logging.getLogger("ex4d.evaluate")

# Attributes through which the metric classes load their models lazily (touching one loads or raises).
_LAZY_MODELS = ("extractor", "detector", "embedder", "models", "scorer", "flow", "interp")


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

def select_dataset(cfg: DictConfig) -> DictConfig:
    """The benchmark set named by ``benchmark.data``."""
    name = str(cfg.benchmark.data)
    names = list(cfg.benchmark.datasets)
    if name not in names:
        raise InputError(
            f"benchmark.data={name!r}: expected one of {names}; for your own videos set "
            "benchmark.datasets.user.source=<folder or manifest>"
        )
    return cfg.benchmark.datasets[name]


def check_metric_names(cfg: DictConfig) -> list[str]:
    names = [str(n) for n in cfg.benchmark.metrics]
    unknown = [n for n in names if n not in cfg.metrics]
    if unknown:
        raise InputError(f"benchmark.metrics: unknown metric(s) {unknown}; the metrics config defines {list(cfg.metrics)}")
    return names


def resolve_checkpoint(cfg: DictConfig, model) -> str | None:
    """``checkpoint=auto``: the released adapter, except for a TEST-ONLY tiny model (no 14B adapter fits it): there a
    seeded random adapter (``checkpoint=random``), so that the rendered colour and mask reach the output and smoke
    tables of different camera paths differ (a zero adapter is an exact no-op: every path would give one table)."""
    ck = cfg.get("checkpoint")
    if ck is None:
        return None
    if str(ck) == "auto":
        if getattr(model, "is_tiny", False):
            from ex4d.model.availability import RANDOM_ADAPTER

            log.warning("checkpoint=auto with a TEST-ONLY tiny model: checkpoint=%s, a seeded random adapter (outputs "
                        "are noise)", RANDOM_ADAPTER)
            return RANDOM_ADAPTER
        return f"{cfg.paths.weights_dir}/EX-4D/ex4d.ckpt"
    return str(ck)


def generation_settings(cfg: DictConfig, dataset: DictConfig, checkpoint: str | None) -> dict:
    """Every setting that changes the generated pixels (hashed into the generation folder's name)."""
    keys = ("data", "camera", "mesh", "renderer", "model", "lora", "generate")
    out = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in keys}
    out["depth"] = OmegaConf.to_container(dataset.depth if dataset.get("depth") else cfg.depth, resolve=True)
    out["checkpoint"] = checkpoint
    if checkpoint and Path(checkpoint).is_file():  # a retrained adapter at the same path is a new setting
        st = Path(checkpoint).stat()
        out["checkpoint_file"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    out["replace_first_frame"] = bool(cfg.recon.replace_first_frame)
    out["output_fps"] = float(cfg.output_fps)
    return out


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# Generated videos
# --------------------------------------------------------------------------------------------------

def generate_videos(cfg: DictConfig, dataset: DictConfig, videos: list[BenchmarkVideo], model) -> tuple[Path, dict]:
    """Run the inference pipeline on every source (skipping finished ones); returns (folder, info)."""
    from ex4d.model.availability import DOWNLOAD_HINT
    from ex4d.runners.stages import missing_generator_files, run_many

    checkpoint = resolve_checkpoint(cfg, model)
    settings = generation_settings(cfg, dataset, checkpoint)
    gen_dir = Path(str(cfg.generation_root)) / f"gen-{fingerprint(settings)}"
    run_cfg = copy.deepcopy(cfg)
    with open_dict(run_cfg):
        run_cfg.checkpoint = checkpoint
        if dataset.get("depth"):
            log.info("depth: the benchmark set's own (%s)", dataset.depth.get("_target_"))
            run_cfg.depth = copy.deepcopy(dataset.depth)
    missing = missing_generator_files(run_cfg, model)
    if missing:
        raise MissingWeightsError(
            f"generating the benchmark videos needs {', '.join(missing)}. Download with: {DOWNLOAD_HINT} --local-dir "
            f"{cfg.paths.weights_dir}; or score existing videos with generated_dir=<folder>"
        )
    gen_dir.mkdir(parents=True, exist_ok=True)
    (gen_dir / "generation.json").write_text(json.dumps(settings, indent=1, sort_keys=True, default=str))
    log.info("generated videos: %s", gen_dir)
    with torch.inference_mode():
        summary = run_many(run_cfg, [v.path for v in videos], gen_dir, "all")
    info = {"dir": str(gen_dir), "fingerprint": gen_dir.name, "checkpoint": checkpoint,
            "processed": summary.get("processed"), "skipped": summary.get("skipped")}
    return gen_dir, info


def ours_files(gen_dir: Path, videos: list[BenchmarkVideo]) -> dict[str, Path]:
    out = {}
    for v in videos:
        p = gen_dir / v.id / "output.mp4"
        if not p.is_file():
            raise InputError(f"generation left no {p} (see {gen_dir / v.id / 'FAILED.txt'} if present)")
        out[v.id] = p
    return out


def match_generated(generated_dir: str | Path, videos: list[BenchmarkVideo]) -> dict[str, Path]:
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
    ids = [v.id for v in videos]
    missing = [i for i in ids if i not in found]
    extra = sorted(set(found) - set(ids))
    if missing or extra:
        raise InputError(
            f"generated and source sets differ: {len(found)} generated videos in {d} vs {len(ids)} source videos"
            + (f"; no generated video for {missing[:10]} (expected {d}/<id>.mp4 or {d}/<id>/output.mp4)" if missing else "")
            + (f"; generated videos without a source: {extra[:10]}" if extra else "")
        )
    return {i: found[i] for i in ids}


def check_sources(cfg: DictConfig, videos: list[BenchmarkVideo]) -> None:
    """Every source opens as a video with enough frames for ``data.num_frames`` (names the file otherwise)."""
    n, stride = int(cfg.data.num_frames), int(cfg.data.stride)
    needed = (n - 1) * stride + 1 if cfg.data.get("frame_mode", "first") == "first" else n
    for v in videos:
        frames, _ = probe_video(Path(v.path))
        if frames < needed:
            raise InputError(f"benchmark source video {v.path} has {frames} frames; data.num_frames={n} at stride {stride} needs {needed}")


# --------------------------------------------------------------------------------------------------
# Metric accumulators: one pass over the video pairs feeds them all
# --------------------------------------------------------------------------------------------------

def _entry(score, note: str | None = None) -> dict:
    d = score.to_dict()
    if note:
        d["note"] = note
    return d


class _SetLevel:
    """FID/KID or FVD: features per video, the statistic over the set (bootstrap over videos)."""

    def __init__(self, name: str, metric):
        self.name, self.metric = name, metric
        metric.reset()

    def update(self, vid: str, gen: np.ndarray, src: np.ndarray, ctx: dict) -> dict:
        self.metric.update(gen, real=False, name=f"generated {ctx['generated']}")
        self.metric.update(src, real=True, name=f"source {ctx['source']}")
        return {}

    def finish(self) -> dict:
        res = self.metric.compute()
        if isinstance(self.metric, FIDKID):
            note = f"{res.n_frames_generated} generated vs {res.n_frames_source} source frames"
            if _uses_test_extractor(self.metric):
                note += "; TEST ONLY random feature extractor"
            return {"fid": _entry(res.fid, note),
                    "kid": {"value": res.kid_mean, "std": res.kid_std, "n": res.n_videos, "note": "mean ± std over subsets"}}
        return {self.name: _entry(res.fvd, f"{res.variant}: {res.n_clips} clips per set")}


class _Dimension:
    """A VBench dimension: a score per generated video, the mean with a bootstrap interval."""

    def __init__(self, name: str, metric: VBenchDimension):
        self.name, self.metric, self.scores = name, metric, []

    def update(self, vid, gen, src, ctx) -> dict:
        s = float(self.metric.score_video(as_video(gen, f"generated {ctx['generated']}")))
        self.scores.append(s)
        return {self.metric.report_name: s}

    def finish(self) -> dict:
        score = bootstrap_mean(self.scores, self.metric.n_boot, seed=self.metric.seed)
        out = {self.metric.report_name: _entry(score)}
        if self.metric.name == "aesthetic_quality":
            out["vbench_aq"] = _entry(score, "aesthetic quality: the likely paper-comparable VBench score")
        return out


class _CameraFollowing:
    """Rotation of the generated video (estimated) against the requested path, per video."""

    def __init__(self, name: str, fn, n_boot: int, seed: int):
        self.name, self.fn, self.n_boot, self.seed, self.results = name, fn, n_boot, seed, []

    def update(self, vid, gen, src, ctx) -> dict:
        r = self.fn(gen, ctx["K"], ctx["w2c"])
        self.results.append(r)
        return {"camera_rotation_error_deg": r.mean_error_deg, "camera_following_ratio": r.following_ratio,
                "camera_translation_error_deg": r.mean_translation_error_deg,
                "camera_final_yaw_est_deg": r.final_yaw_est_deg, "camera_final_yaw_req_deg": r.final_yaw_req_deg,
                "camera_failed_frames": r.n_failed, "camera_translation_frames": r.n_translation}

    def finish(self) -> dict:
        s = summarize_camera_following(self.results, self.n_boot, self.seed)
        n, failed = len(self.results), s["n_failed_videos"]
        out = {}
        for key, name in (("rotation_error_deg", "camera_rotation_error_deg"), ("following_ratio", "camera_following_ratio")):
            if key in s:
                out[name] = _entry(s[key], f"{failed} of {n} videos without an estimate" if failed else None)
            else:
                out[name] = {"failed": True, "reason": f"the camera rotation could not be estimated on any of the {n} "
                                                       "videos (too few feature matches)"}
        no_t = s["n_videos_without_translation"]
        if "translation_error_deg" in s:
            out["camera_translation_error_deg"] = _entry(
                s["translation_error_deg"], "translation direction (scale is unobservable)"
                + (f"; {no_t} of {n} videos without a translation estimate" if no_t else ""))
        else:
            out["camera_translation_error_deg"] = {
                "failed": True, "reason": f"no translation direction could be estimated on any of the {n} videos "
                                          "(rotation-only fits, too few matches, or a path without translation)"}
        return out


class _ImagePairs:
    """PSNR / SSIM (/ LPIPS) against ground-truth target videos."""

    def __init__(self, name: str, metric: ImageMetrics, lpips_skip: Skipped | None):
        self.name, self.metric, self.lpips_skip = name, metric, lpips_skip
        self.per: dict[str, list[float]] = {"psnr": [], "ssim": []}
        if metric.use_lpips and lpips_skip is None:
            self.per["lpips"] = []

    def update(self, vid, gen, src, ctx) -> dict:
        g, t = as_video(gen, ctx["generated"]), as_video(ctx["target"], ctx["target_path"])
        if g.shape != t.shape:
            raise InputError(f"{ctx['generated']} is {tuple(g.shape)} but its target {ctx['target_path']} is {tuple(t.shape)}")
        row = {"psnr": psnr_video(g, t), "ssim": ssim_video(g, t)}
        if "lpips" in self.per:
            row["lpips"] = self.metric.lpips_video(g, t)
        for k, v in row.items():
            self.per[k].append(v)
        return row

    def finish(self) -> dict:
        out = {k: _entry(bootstrap_mean(v, self.metric.n_boot, seed=self.metric.seed)) for k, v in self.per.items()}
        if self.lpips_skip is not None:
            out["lpips"] = self.lpips_skip.to_dict()
        return out


class _VBenchQuality:
    """VBench's Quality Score from the dimension accumulators' per-video scores (computed at the end)."""

    def __init__(self, name: str, metric: VBenchQuality, dims: dict[str, _Dimension]):
        self.name, self.metric, self.dims = name, metric, dims
        stand_ins = [d.metric.report_name for d in dims.values() if d.metric.report_name != d.metric.name]
        # Over a stand-in (blend interpolator, DIS flow) it is not VBench's number: a name that says so.
        self.report_name = "vbench_quality_nonstandard" if stand_ins else "vbench_quality"
        self.note = f"with stand-ins {stand_ins}: not VBench's score" if stand_ins else (
            "VBench leaderboard Quality Score over " + ", ".join(VBenchQuality.dimensions))

    def update(self, vid, gen, src, ctx) -> dict:
        return {}

    def finish(self) -> dict:
        res = self.metric({k: d.scores for k, d in self.dims.items()}, self.report_name)
        return {self.report_name: {**_entry(res.score, self.note), "per_video": res.per_video}}


def _load_models(metric) -> None:
    """Touch a metric's lazily loaded models so a missing weights file shows up before any video is read."""
    for attr in _LAZY_MODELS:
        if isinstance(getattr(type(metric), attr, None), property):
            getattr(metric, attr)


def _is_camera_following(obj) -> bool:
    return isinstance(obj, functools.partial) and obj.func is camera_following


def instantiate_metrics(cfg: DictConfig, names: list[str]) -> dict:
    """The benchmark's metric objects by name (construction loads nothing); checks the combinations."""
    device = resolve_device(cfg.metrics_device, "metrics_device")
    objs = {}
    for name in names:
        node = cfg.metrics[name]
        obj = instantiate(node, **({"device": str(device)} if _accepts_device(node) else {}))
        if not (_is_camera_following(obj) or isinstance(obj, (ImageMetrics, FIDKID, FVD, VBenchDimension, VBenchQuality))):
            raise InputError(f"metrics.{name}: {type(obj).__name__} is not a metric the evaluation knows how to run")
        objs[name] = obj
    for name, obj in objs.items():
        if isinstance(obj, VBenchQuality):
            have = {o.name for n, o in objs.items() if isinstance(o, VBenchDimension) and names.index(n) < names.index(name)}
            missing = [d for d in obj.dimensions if d not in have]
            if missing:
                raise InputError(f"benchmark.metrics: {name} aggregates {list(obj.dimensions)}; list {missing} before it")
    return objs


def _reported_keys(name: str, obj) -> list[str]:
    """The result keys a metric reports (so a skip fills each of them)."""
    if isinstance(obj, FIDKID):
        return ["fid", "kid"]
    if isinstance(obj, ImageMetrics):
        return ["psnr", "ssim", "lpips"]
    if _is_camera_following(obj):
        return ["camera_rotation_error_deg", "camera_following_ratio", "camera_translation_error_deg"]
    report = getattr(obj, "report_name", None) or getattr(obj, "name", name)
    return [report] + (["vbench_aq"] if report == "aesthetic_quality" else [])


def preflight_metrics(objs: dict, have_targets: bool) -> dict[str, Skipped]:
    """Which requested metrics cannot run, before anything is generated: each one's weight files (checked)
    and packages are looked up without building its networks. Returns ``{metric name: Skipped}``; metrics
    that do not apply (image metrics without ground-truth targets) are not in it."""
    skipped: dict[str, Skipped] = {}
    for name, obj in objs.items():
        if isinstance(obj, VBenchQuality):
            continue
        if isinstance(obj, ImageMetrics) and not have_targets:
            continue
        check = getattr(obj, "check_available", None)
        if check is not None:
            try:
                check()
            except MissingWeightsError as e:  # logged by fail_unless_allowed (or in its one-line error)
                skipped[name] = Skipped(name, str(e))
    for name, obj in objs.items():  # an aggregate cannot run without all of its dimensions
        if isinstance(obj, VBenchQuality):
            lost = [n for n, o in objs.items() if n in skipped and getattr(o, "name", None) in obj.dimensions]
            if lost:
                skipped[name] = Skipped(name, f"needs {lost}, which cannot run")
    return skipped


def _short(reason: str) -> str:
    """A skip reason in a few words for the one-line error: the missing / mismatching file's name, else the
    reason's first clause (at most 200 characters)."""
    m = re.match(r"(missing weights file|sha256 mismatch[^:]*): (\S+)", reason)
    if m:
        what = "missing" if m.group(1).startswith("missing") else "sha256 mismatch:"
        return f"{what} {Path(m.group(2)).name}"
    head = reason.split(". ")[0].split(" (pip install")[0].split(": pip install")[0]
    return head if len(head) <= 200 else head[:197] + "..."


def fail_unless_allowed(cfg: DictConfig, skipped: dict[str, Skipped], when: str) -> None:
    """A requested metric that cannot run fails the run (MissingWeightsError: one line, exit status 3) unless
    ``allow_skip=true``, which reports it as skipped."""
    if not skipped:
        return
    if cfg.get("allow_skip", False):
        for s in skipped.values():
            log.warning("%s", s)
        log.warning("allow_skip=true: reporting %d metric(s) as skipped: %s", len(skipped), ", ".join(skipped))
        return
    files = sorted({k for k, w in METRIC_WEIGHTS.items() for s in skipped.values()
                    if not w.package and f"/{w.filename}" in s.reason})
    fix = []
    if files:
        fix.append(f"python tools/download_weights.py --metrics --metric-keys {','.join(files)} "
                   f"--local-dir {cfg.paths.weights_dir}")
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


def build_metrics(cfg: DictConfig, objs: dict, have_targets: bool, preflight: dict[str, Skipped]) -> tuple[dict, dict]:
    """(accumulators by metric name, {metric name: {reported key: skip entry}}): models load here; metrics
    that the preflight found unavailable (``allow_skip=true``) and new failures to load are skipped."""
    accs: dict = {}
    skipped: dict = {}
    failed: dict[str, Skipped] = {}
    for name, obj in objs.items():
        if name in preflight:
            skipped[name] = {k: preflight[name].to_dict() for k in _reported_keys(name, obj)}
            continue
        if _is_camera_following(obj):
            accs[name] = _CameraFollowing(name, obj, int(cfg.n_boot), int(cfg.seed))
            continue
        if isinstance(obj, ImageMetrics):
            if not have_targets:
                reason = "the benchmark set lists no ground-truth `target` videos (not applicable)"
                skipped[name] = {k: {**Skipped(k, reason).to_dict(), "not_applicable": True} for k in ("psnr", "ssim", "lpips")}
                continue
            lp = run_or_skip("lpips", lambda m=obj: m.lpips_model) if obj.use_lpips else None
            if isinstance(lp, Skipped):
                failed[name] = lp
            accs[name] = _ImagePairs(name, obj, lp if isinstance(lp, Skipped) else None)
            continue
        if isinstance(obj, VBenchQuality):
            dims = {o.name: accs.get(n) for n, o in objs.items() if isinstance(o, VBenchDimension) and o.name in obj.dimensions}
            lost = [d for d, acc in dims.items() if acc is None]
            if lost:
                s = Skipped(name, f"needs {lost}, which could not run")
                failed.setdefault(name, s)
                skipped[name] = {"vbench_quality": s.to_dict()}
                continue
            accs[name] = _VBenchQuality(name, obj, dims)
            continue
        report = "fid" if isinstance(obj, FIDKID) else getattr(obj, "report_name", name)
        res = run_or_skip(report, _load_models, obj)
        if isinstance(res, Skipped):
            failed[name] = res
            skipped[name] = {k: res.to_dict() for k in _reported_keys(name, obj)}
            continue
        accs[name] = _SetLevel(name, obj) if isinstance(obj, (FIDKID, FVD)) else _Dimension(name, obj)
    fail_unless_allowed(cfg, failed, "(loading their models)")
    return accs, skipped


def _accepts_device(node: DictConfig) -> bool:
    """Whether a metric node's ``_target_`` takes ``device`` (also through a base class's ``**kw``)."""
    import inspect

    from hydra._internal.utils import _locate

    if node.get("_partial_"):
        return False
    target = _locate(str(node._target_))
    for cls in inspect.getmro(target) if inspect.isclass(target) else ():
        init = cls.__dict__.get("__init__")
        if init is not None and "device" in inspect.signature(init).parameters:
            return True
    return False


def _uses_test_extractor(metric) -> bool:
    """FID on the TEST-ONLY random feature extractor (``metrics=tiny``)."""
    return type(getattr(metric, "_extractor", None)).__module__ == "ex4d.metrics.tiny"


# --------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------

def load_source_frames(cfg: DictConfig, v: BenchmarkVideo) -> np.ndarray:
    """The frames the pipeline reads from a source (``data.*``), (T, H, W, 3) uint8."""
    clip = load_input_clip(str(v.path), **{k: val for k, val in cfg.data.items() if not str(k).startswith("gen_")})
    return clip.frames


def requested_path(cfg: DictConfig, vid_dir: Path | None, T: int, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3) at the generated size, w2c (T, 4, 4)) of the path the video was asked to follow.

    Our outputs carry ``cameras.json`` (exact path, K at the reconstruction size, scaled here). For other
    methods' videos the benchmark camera is evaluated (its rotations do not depend on the scene's depth:
    every preset scales with the pivot distance) with ``camera_following_focal_px`` (default max(H, W)).
    """
    from ex4d.cameras.io import load_cameras_json

    cams = vid_dir / "cameras.json" if vid_dir is not None else None
    if cams is not None and cams.is_file():
        cs = load_cameras_json(cams)
        K = cs.K.numpy().copy()  # (3, 3), or (T, 3, 3) for a zoom (camera-following then says it needs one K)
        K[..., 0, :] *= W / cs.width
        K[..., 1, :] *= H / cs.height
        return K, cs.w2c.numpy()
    f = float(cfg.camera_following_focal_px or max(H, W))
    K = np.array([[f, 0.0, W / 2.0], [0.0, f, H / 2.0], [0.0, 0.0, 1.0]])
    w2c = instantiate(cfg.camera)(T, 1.0)
    return K, w2c.numpy()


def _read_generated(path: Path) -> tuple[np.ndarray, float]:
    try:
        return read_video(path)
    except InputError as e:
        raise InputError(f"generated video {path} could not be read: {e}") from e


# --------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------

def write_per_video_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def log_to_logger(cfg: DictConfig, out: Path, results: dict, table) -> str | None:
    """Numbers and the Table 1 rows to the configured logger (W&B: a table; CSV: metrics.csv). Optional."""
    lcfg = cfg.get("logger")
    if not lcfg or not lcfg.get("_target_"):
        return None
    fill = {"save_dir": str(out)}
    if str(lcfg._target_).endswith("WandbLogger"):
        fill["name"] = f"eval-{results['benchmark']}-{out.name}"
    kwargs = {k: v for k, v in fill.items() if k in lcfg and lcfg.get(k) is None}
    try:
        logger = instantiate(lcfg, **kwargs)
    except (ImportError, ModuleNotFoundError) as e:
        log.warning("logger %s is not available (%s); results are in %s", lcfg._target_, e, out)
        return None
    bench = results["benchmark"]
    flat = {}
    for k, e in results["metrics"].items():
        if isinstance(e, dict) and isinstance(e.get("value"), (int, float)) and math.isfinite(e["value"]):
            flat[f"{bench}/{k}"] = float(e["value"])
            if e.get("ci_low") is not None:
                flat[f"{bench}/{k}_ci_low"], flat[f"{bench}/{k}_ci_high"] = float(e["ci_low"]), float(e["ci_high"])
    if flat:
        logger.log_metrics(flat)
    if hasattr(logger, "log_table"):
        from ex4d.metrics.report import format_entry

        columns = ["method", *[c[0] for c in table.columns]]
        data = [[label, *[format_entry(c, d) for c, (_, _, d) in zip(cells, table.columns)]] for label, cells, _ in table.rows]
        logger.log_table(key=f"{bench}/table1", columns=columns, data=data)
    logger.save()
    logger.finalize("success")
    experiment = getattr(logger, "_experiment", None)
    if experiment is not None and hasattr(experiment, "finish"):
        experiment.finish()
    return type(logger).__name__


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------

def run_evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.benchmark`` (see module docstring); returns the results dict (also ``results.json``)."""
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    clock = StageClock()
    bench = cfg.benchmark
    dataset = select_dataset(cfg)
    check_evaluate_config(cfg)
    names = check_metric_names(cfg)
    if cfg.source_resize not in ("generated", "none"):
        raise InputError(f"source_resize must be 'generated' or 'none', got {cfg.source_resize!r}")

    videos = list_benchmark_videos(str(dataset.source), dataset.get("videos"), dataset.get("max_videos"))
    verify_benchmark_videos(videos, bool(cfg.check_sha256))
    check_sources(cfg, videos)
    log.info("benchmark %s, set %s: %d source videos", bench.name, dataset.name, len(videos))

    have_targets = [v.target is not None for v in videos]
    if any(have_targets) and not all(have_targets):
        raise InputError(f"the benchmark set lists ground-truth targets for {sum(have_targets)} of {len(videos)} videos; "
                         "list one for every video or for none")
    generated = match_generated(cfg.generated_dir, videos) if cfg.generated_dir else None
    # Cheap checks before expensive ones: a requested metric that cannot run fails the run before generation.
    allow_skip = cfg.get("allow_skip", False)
    if not isinstance(allow_skip, bool):
        raise InputError(f"allow_skip must be true or false, got {allow_skip!r}")
    weights_mark = resolve_counter()
    metric_objs = instantiate_metrics(cfg, names)
    unavailable = preflight_metrics(metric_objs, all(have_targets))
    fail_unless_allowed(cfg, unavailable, "(missing weights files or packages)")

    model = instantiate(cfg.model)
    test_only = bool(getattr(model, "is_tiny", False)) and not cfg.generated_dir
    if generated is not None:
        gen_info = {"dir": str(Path(cfg.generated_dir).expanduser()), "external": True}
        # <id>/output.mp4 folders may be ours (with cameras.json: the exact requested path for camera-following)
        gen_dirs = {i: (p.parent if p.name == "output.mp4" else None) for i, p in generated.items()}
        method = cfg.method or Path(str(cfg.generated_dir)).name
    else:
        with clock.stage("generate"):
            gen_dir, gen_info = generate_videos(cfg, dataset, videos, model)
        generated = ours_files(gen_dir, videos)
        gen_dirs = {v.id: gen_dir / v.id for v in videos}
        ck = gen_info["checkpoint"]
        method = cfg.method or ("ours (TEST ONLY: random tiny model)" if test_only
                                else f"ours ({Path(ck).name if ck else 'untrained adapter'})")

    with clock.stage("metrics"):
        accs, skipped = build_metrics(cfg, metric_objs, all(have_targets), unavailable)
        test_only = test_only or any(_uses_test_extractor(getattr(a, "metric", None)) for a in accs.values())

        rows = []
        fps_warned = False
        for v in videos:
            gpath = generated[v.id]
            gen, fps = _read_generated(gpath)
            src = load_source_frames(cfg, v)
            if gen.shape[0] != src.shape[0]:
                raise InputError(
                    f"generated video {gpath} has {gen.shape[0]} frames but its source {v.path} gives {src.shape[0]} "
                    f"(data.num_frames={cfg.data.num_frames}); generated and source videos must have the same length"
                )
            T, H, W = gen.shape[:3]
            if cfg.source_resize == "generated":
                src = resize_frames(src, H, W)
            ctx = {"generated": str(gpath), "source": str(v.path)}
            if "camera_following" in accs:
                ctx["K"], ctx["w2c"] = requested_path(cfg, gen_dirs[v.id], T, H, W)
            if v.target is not None:
                tgt, _ = read_video(v.target)
                if tgt.shape[0] < T:
                    raise InputError(f"target video {v.target} has {tgt.shape[0]} frames, its generated video {gpath} has {T}")
                ctx["target"] = resize_frames(tgt[:T], H, W) if cfg.source_resize == "generated" else tgt[:T]
                ctx["target_path"] = str(v.target)
            dd = accs.get("dynamic_degree")
            if dd is not None and abs(dd.metric.fps - fps) > 0.5 and not fps_warned:
                log.warning("metrics.dynamic_degree.fps=%s but %s plays at %.2f fps", dd.metric.fps, gpath, fps)
                fps_warned = True
            row = {"id": v.id, "source": str(v.path), "generated": str(gpath), "frames": T, "height": H, "width": W}
            for acc in accs.values():
                row.update(acc.update(v.id, gen, src, ctx))
            rows.append(row)

        metrics: dict = {}
        for name in names:  # the benchmark's order; a metric reports one or more numbers (or skips)
            metrics.update(accs[name].finish() if name in accs else skipped[name])
    results = {
        "benchmark": str(bench.name),
        "title": str(bench.get("title", bench.name)),
        "range_deg": list(bench.get("range_deg", [])),
        "dataset": {"name": str(dataset.name), "source": str(dataset.source), "n_videos": len(videos),
                    "ids": [v.id for v in videos]},
        "method": str(method),
        "test_only": test_only,
        "n_videos": len(videos),
        "generation": gen_info,
        "metrics": metrics,
        "allow_skip": allow_skip,
        "skipped": [n for n in names if n in skipped and not all(e.get("not_applicable") for e in skipped[n].values())],
        "weights": resolved_weights(weights_mark),  # every metric file used: its sha256 and what it was checked against
        "table_columns": OmegaConf.to_container(bench.table, resolve=True),
    }
    table = table1([results], str(bench.name), results["table_columns"], title=str(bench.get("title", bench.name)))
    md = table.markdown()
    if test_only:
        md = "> **TEST ONLY**: random-weight model or metric stand-ins; these numbers are not results.\n\n" + md
    md += f"\n#### All metrics: {method}, {bench.name}, set {dataset.name} (N={len(videos)})\n\n" + metrics_table(results)
    with staged_outputs(out) as stage_dir:  # all or nothing; an earlier run's files in this folder are replaced
        (stage_dir / "table.md").write_text(md)
        (stage_dir / "table.tex").write_text(table.latex())
        write_per_video_csv(stage_dir / "per_video.csv", rows)
        results["files"] = {"results": "results.json", "table": "table.md", "latex": "table.tex",
                            "per_video": "per_video.csv", "summary": "summary.json"}
        results["logger"] = log_to_logger(cfg, stage_dir, results, table)
        write_json(stage_dir / "results.json", results)
        save_resolved_config(cfg, stage_dir / "config.yaml")
        write_json(stage_dir / "summary.json", {
            "benchmark": results["benchmark"], "method": results["method"], "n_videos": len(videos),
            "input": {"given": str(dataset.source), "resolved": str(Path(str(dataset.source)).expanduser().resolve())
                      if not str(dataset.source).startswith("builtin:") else str(dataset.source), "kind": "benchmark"},
            "generation": gen_info, **run_record(cfg), **clock.record()})
    results["output_dir"] = str(out)
    log.info("\n%s", md)
    log.info("wrote %s", out)
    return results
