"""``python evaluate.py``: generate a benchmark's videos (or read another method's) and score them.

Composition only (the work is :mod:`ex4d.evaluation`'s): the benchmark set (listed, sha256-checked, long enough)
-> the metrics' preflight (a requested metric that cannot run stops the run before generation, exit status 3,
unless ``allow_skip=true``) -> our videos through the inference pipeline into ``<generation_root>/gen-<fingerprint>/
<id>/`` (resumable) or ``generated_dir=`` (another method's) -> the metric loop as a Lightning predict loop
(``trainer.devices=N``: the videos spread over N devices, set-level numbers on rank 0) -> ``results.json``,
``table.md`` / ``table.tex``, ``per_video.csv``, ``summary.json`` (staged: all or nothing), the configured logger.
"""

from __future__ import annotations

import copy
import functools
import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from ex4d.data.benchmark import list_benchmark_videos, verify_benchmark_videos
from ex4d.evaluation import (CAMERAS, Evaluator, PairReader, RequestedPath, SourceFrames, check_targets, eval_items,
                             generate_benchmark_videos, match_generated, method_label, with_checkpoint_file)
from ex4d.evaluation.report import results_dict, write_outputs
from ex4d.metrics.weights import resolve_counter, resolved_weights
from ex4d.model.availability import DOWNLOAD_HINT, resolve_checkpoint
from ex4d.runners.common import StageClock, optional_logger, run_dir, run_record, save_resolved_config, staged_outputs
from ex4d.runners.validate import check_evaluate_config, check_metric_names, select_dataset
from ex4d.utils.device import resolve_device

log = logging.getLogger("ex4d.evaluate")
PIXEL_GROUPS = ("data", "camera", "mesh", "renderer", "model", "lora", "generate", "depth")  # hashed into gen-<fp>


def generate_videos(cfg: DictConfig, dataset: DictConfig, videos: list, model) -> tuple[dict, dict]:
    """Every source through the inference pipeline (a set with its own ``depth`` uses it); ({id: mp4}, info)."""
    from ex4d.runners.stages import missing_generator_files, run_many

    run_cfg = copy.deepcopy(cfg)
    with open_dict(run_cfg):
        run_cfg.checkpoint = resolve_checkpoint(cfg.get("checkpoint"), model, cfg.paths.weights_dir)
        run_cfg.depth = copy.deepcopy(dataset.depth) if dataset.get("depth") else run_cfg.depth
    settings = {k: OmegaConf.to_container(run_cfg[k], resolve=True) for k in PIXEL_GROUPS}
    settings.update(replace_first_frame=bool(cfg.recon.replace_first_frame), output_fps=float(cfg.output_fps))
    return generate_benchmark_videos(
        [v.path for v in videos], [v.id for v in videos], cfg.generation_root,
        with_checkpoint_file(settings, run_cfg.checkpoint), functools.partial(run_many, run_cfg, stage="all"),
        missing_generator_files(run_cfg, model), f"{DOWNLOAD_HINT} --local-dir {cfg.paths.weights_dir}")


def run_evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.benchmark`` (see module docstring); returns the results dict (also ``results.json``)."""
    out, clock = run_dir(cfg), StageClock()
    out.mkdir(parents=True, exist_ok=True)
    check_evaluate_config(cfg)  # every value, before anything is read
    dataset, names, bench = select_dataset(cfg), check_metric_names(cfg), cfg.benchmark
    videos = list_benchmark_videos(str(dataset.source), dataset.get("videos"), dataset.get("max_videos"))
    verify_benchmark_videos(videos, bool(cfg.check_sha256))
    clip = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if not k.startswith("gen_")}
    (sources := SourceFrames(**clip)).check([v.path for v in videos])
    log.info("benchmark %s, set %s: %d source videos", bench.name, dataset.name, len(videos))
    have_targets = check_targets([v.target for v in videos])
    generated = match_generated(cfg.generated_dir, [v.id for v in videos]) if cfg.generated_dir else None
    weights_mark = resolve_counter()
    evaluator = Evaluator({n: instantiate(cfg.metrics[n]) for n in names}, cfg.get("allow_skip", False),
                          cfg.paths.weights_dir, int(cfg.n_boot), int(cfg.seed))
    evaluator.preflight(have_targets)  # cheap checks before expensive ones: nothing is generated yet
    model = instantiate(cfg.model)
    if generated is None:
        with clock.stage("generate"):
            generated, gen_info = generate_videos(cfg, dataset, videos, model)
    else:
        gen_info = {"dir": str(Path(cfg.generated_dir).expanduser()), "external": True}
    tiny_model = bool(getattr(model, "is_tiny", False)) and not cfg.generated_dir
    method = method_label(cfg.method, cfg.generated_dir, gen_info.get("checkpoint"), tiny_model)
    with clock.stage("metrics"):
        import lightning as L

        from ex4d.evaluation.lightning import run_evaluation

        camera = instantiate(cfg.camera) if CAMERAS in evaluator.requires else None
        reader = PairReader(sources, str(cfg.source_resize), RequestedPath(camera, cfg.camera_following_focal_px))
        trainer = L.Trainer(**cfg.trainer, logger=False, enable_checkpointing=False, enable_model_summary=False)
        evaluation = run_evaluation(evaluator, eval_items(videos, generated), reader, trainer,
                                    resolve_device(cfg.metrics_device, "metrics_device"))
    results = results_dict(
        {"name": bench.name, "title": bench.get("title", bench.name), "range_deg": list(bench.get("range_deg", [])),
         "table": OmegaConf.to_container(bench.table, resolve=True)}, {"name": dataset.name, "source": dataset.source},
        [v.id for v in videos], method, gen_info, evaluation, tiny_model, evaluator.allow_skip,
        resolved_weights(weights_mark))
    if not trainer.is_global_zero:
        return results  # rank 0 writes the outputs
    with staged_outputs(out) as stage_dir:  # all or nothing; an earlier run's files in this folder are replaced
        logger = optional_logger(cfg.get("logger"), stage_dir, f"eval-{bench.name}-{out.name}")
        md = write_outputs(stage_dir, results, evaluation.rows, logger, run_record(cfg) | clock.record())
        save_resolved_config(cfg, stage_dir / "config.yaml")
    results["output_dir"] = str(out)
    log.info("\n%s\nwrote %s", md, out)
    return results
