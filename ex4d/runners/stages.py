"""Stage functions from a config, shared by the entry runners (``infer``, ``evaluate``, the app): the DW-Mesh
stage of one input, the generator of a config and the files it writes, and a set of inputs through Lightning's
predict loop (``run_many``: one video per GPU, resumable, failures recorded per item).

The entry runners compose these; they never import each other (tests/unit/test_import_rules.py).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ex4d.data.inputs import load_input_clip
from ex4d.io.video import write_video
from ex4d.pipelines.batch import ReconGenerateSet, unique_ids
from ex4d.pipelines.recon import ReconPipeline, save_recon
from ex4d.runners.common import (
    FAILED,
    SET_MARKER,
    StageClock,
    error_reason,
    item_log,
    mark_failed,
    run_record,
    save_resolved_config,
    settings_hash,
    staged_outputs,
    with_effective_defaults,
    write_json,
)
from ex4d.utils.errors import InputError
from ex4d.utils.visualize import contact_sheet

log = logging.getLogger("ex4d.infer")


def camera_name(cfg: DictConfig) -> str:
    """Short name of the camera option for reference-style file names (``camera_<name>.npz``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().runtime.choices.get("camera", "path")
    except ValueError:  # composed without Hydra's runtime (tests, notebooks)
        return str(cfg.get("camera_name", "path"))


def build_recon(cfg: DictConfig) -> ReconPipeline:
    return ReconPipeline(
        depth=instantiate(cfg.depth),
        camera=instantiate(cfg.camera),
        renderer=instantiate(cfg.renderer),
        mesh=instantiate(cfg.mesh),
        device=cfg.device,
        chunk_size=cfg.recon.chunk_size,
        replace_first_frame=cfg.recon.replace_first_frame,
        keep_meshes=cfg.recon.save_meshes,
    )


def run_recon(cfg: DictConfig, source: str, out_dir: Path, pipe: ReconPipeline | None = None) -> dict:
    clip = load_input_clip(source, **{k: v for k, v in cfg.data.items() if not k.startswith("gen_")})
    log.info("input %s: %d frames at %dx%d%s", clip.source, clip.num_frames, clip.height, clip.width,
             " (static image)" if clip.static else "")
    pipe = pipe or build_recon(cfg)
    t0 = time.perf_counter()
    result = pipe(clip)
    seconds = time.perf_counter() - t0
    files = save_recon(result, out_dir, camera_name=camera_name(cfg), fps=cfg.recon.fps,
                       mesh_format=cfg.recon.mesh_format, contact_columns=cfg.recon.contact_columns)
    if cfg.recon.get("export"):  # COLMAP model / glTF / PLY for other tools (ex4d.pipelines.export)
        from ex4d.pipelines.export import export_run

        files.update(export_run(out_dir, cfg.recon.export, mesh_builder=pipe.mesh))
    return {"seconds": seconds, "frames": clip.num_frames, "size": [clip.height, clip.width],
            "mask_coverage": float(result.mask.mean()), "files": {k: str(Path(v).name) for k, v in files.items()}}


def missing_generator_files(cfg: DictConfig, model=None) -> list[str]:
    from ex4d.model.availability import missing_weights

    return missing_weights(model if model is not None else instantiate(cfg.model), cfg.checkpoint)


def build_generator_from_cfg(cfg: DictConfig, model=None, **kwargs):
    """The generator of ``cfg`` (``kwargs``: ``device``, ``parallel`` for :func:`build_generator`)."""
    from ex4d.pipelines.generate import build_generator

    return build_generator(model if model is not None else instantiate(cfg.model), instantiate(cfg.lora),
                           cfg.checkpoint, instantiate(cfg.generate), **kwargs)


def write_generation(out_dir: Path, frames: np.ndarray, colour: np.ndarray, mask: np.ndarray, fps: float,
                     columns: int = 8) -> dict:
    """output.mp4 + contact sheet rows render / mask / output."""
    write_video(out_dir / "output.mp4", frames, fps=fps)
    contact_sheet({"render": colour, "mask": mask, "output": frames}, out_dir / "contact_sheet_output.png",
                  num_columns=columns)
    return {"output": "output.mp4", "contact_sheet_output": "contact_sheet_output.png"}


def window_settings(cfg: DictConfig):
    """The ``windows`` node (long clips in overlapping windows), or None for configs without one (defaults)."""
    return instantiate(cfg.windows) if cfg.get("windows") is not None else None


def output_writer(fps: float, columns: int):
    """A Lightning prediction writer that writes each predicted video next to its recon outputs (on the rank
    that generated it); a failed item is left holding only FAILED.txt and its log. (Lightning is imported
    here, not at module level: a single video never needs it, and it costs seconds at start-up.)"""
    from lightning.pytorch.callbacks import BasePredictionWriter

    class OutputWriter(BasePredictionWriter):
        def __init__(self):
            super().__init__(write_interval="batch")

        def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                               dataloader_idx=0):
            out_dir = Path(batch["out_dir"])
            if prediction.get("error"):
                log.error("%s failed: %s", prediction["id"], prediction["error"])
                mark_failed(out_dir, prediction["error"])
                if prediction.get("traceback"):  # the item's log keeps the details
                    with (out_dir / "infer.log").open("a") as f:
                        f.write(f"failed: {prediction['error']}\n{prediction['traceback']}")
                return
            with staged_outputs(out_dir, replace=False) as stage_dir:
                # The DataLoader turned the batch's arrays into tensors and Lightning moved them to the GPU.
                colour, mask = (np.asarray(torch.as_tensor(batch[k]).cpu()) for k in ("colour", "mask"))
                write_generation(stage_dir, np.asarray(prediction["frames"].cpu()), colour, mask, fps, columns)
                write_json(stage_dir / "generate.json", {"timings": prediction["timings"],
                                                         "seconds": prediction.get("seconds")})

    return OutputWriter()


def recon_settings(cfg: DictConfig) -> dict:
    """Every setting that changes the DW-Mesh stage's files."""
    out = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "depth", "camera", "mesh", "renderer")}
    out["camera"] = with_effective_defaults(out["camera"])
    out["recon"] = {k: v for k, v in OmegaConf.to_container(cfg.recon, resolve=True).items() if k != "chunk_size"}
    return out


# generate.* options that change neither the pixels nor the float arithmetic (bit-exact by test): a set resumed
# with other values of these is the same experiment
BIT_EXACT_GENERATE_KEYS = ("compile_cache", "text_cache", "stream_text_encoder", "pin_memory",
                           "cache_embeddings", "progress")


def generation_settings(cfg: DictConfig) -> dict:
    """Every setting that changes the generated video (given the recon outputs)."""
    out = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("model", "lora", "generate")}
    out["gen_size"] = [cfg.data.get("gen_height"), cfg.data.get("gen_width")]
    out["checkpoint"] = None if cfg.checkpoint is None else str(cfg.checkpoint)
    out["output_fps"] = cfg.output_fps
    if cfg.get("windows") is not None:
        out["windows"] = OmegaConf.to_container(cfg.windows, resolve=True)
    for k in ("memory_mode", "device"):  # placement: same pixels
        out["model"].pop(k, None)
    for k in BIT_EXACT_GENERATE_KEYS:  # where caches live, what is streamed or pinned, the bar: same pixels
        out["generate"].pop(k, None)
    return out


def check_set_settings(cfg: DictConfig, out_dir: Path, ids: list[str], stage: str) -> None:
    """A set folder remembers the settings its items were made with (``set.json``); resuming it with other
    settings would mix two experiments in one folder, so it is refused, naming what changed."""
    current = {"recon": settings_hash(recon_settings(cfg)), "generate": settings_hash(generation_settings(cfg))}
    marker = out_dir / SET_MARKER
    if marker.is_file():
        before = json.loads(marker.read_text())
        done_recon = any((out_dir / i / "color.mp4").is_file() for i in ids)
        done_gen = any((out_dir / i / "output.mp4").is_file() for i in ids)
        changed = [k for k, done in (("recon", done_recon), ("generate", done_gen and stage != "recon"))
                   if done and before.get("hashes", {}).get(k) not in (None, current[k])]
        if changed:
            old = before.get("settings", {})
            new = {"recon": recon_settings(cfg), "generate": generation_settings(cfg)}
            keys = sorted({f"{k}.{g}" for k in changed for g in set(old.get(k, {})) | set(new[k])
                           if old.get(k, {}).get(g) != new[k].get(g)})
            raise InputError(f"{out_dir} holds results made with other settings (changed: {', '.join(keys) or changed}); "
                             "resume it with its own settings (see its set.json), or give this run a new folder")
        if stage == "recon":  # generation settings not used yet: keep the recorded ones if any
            current["generate"] = before.get("hashes", {}).get("generate", current["generate"])
    write_json(marker, {"hashes": current, "stage": stage, "inputs": len(ids),
                        "settings": {"recon": recon_settings(cfg), "generate": generation_settings(cfg)}})


def item_status(item_dir: Path, done_file: str) -> str:
    if (item_dir / done_file).is_file():
        return "done"
    if (item_dir / FAILED).is_file():
        return "failed"
    return "not run"


def status_table(rows: list[dict]) -> str:
    width = max([len(r["id"]) for r in rows] + [4])
    lines = [f"{'item':<{width}}  status   reason", f"{'-' * width}  -------  ------"]
    for r in rows:
        lines.append(f"{r['id']:<{width}}  {r['status']:<7}  {r.get('reason', '')}")
    return "\n".join(lines)


def run_many(cfg: DictConfig, inputs: list[Path], out_dir: Path, stage: str) -> dict:
    """Every input of a set: recon (+ generation through ``trainer.predict``) into ``out_dir/<id>/``.

    Finished items are skipped (resume); a failing item is recorded (its folder holds FAILED.txt and its log)
    and the set goes on; the summary lists done / failed / skipped items, and a table is logged.
    """
    ids = unique_ids(inputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_set_settings(cfg, out_dir, ids, stage)
    clock = StageClock()
    done_file = "color.mp4" if stage == "recon" else "output.mp4"
    finished_before = {i for i in ids if (out_dir / i / done_file).is_file()}
    pipe = build_recon(cfg)

    def recon(source: str, item_dir: Path) -> None:
        with item_log(item_dir), staged_outputs(item_dir) as stage_dir:
            write_json(stage_dir / "recon_summary.json", run_recon(cfg, source, stage_dir, pipe))

    summary: dict = {"stage": stage, "inputs": len(inputs), "output_dir": str(out_dir),
                     "input": {"given": str(cfg.get("input")), "kind": "set",
                               "resolved": [str(Path(p).expanduser().resolve()) for p in inputs]},
                     **run_record(cfg)}
    if stage == "recon":
        with clock.stage("recon"):
            for vid, source in zip(ids, inputs):
                if vid in finished_before:
                    continue
                try:
                    recon(str(source), out_dir / vid)
                except Exception as e:  # noqa: BLE001 - one bad input must not stop the set
                    log.error("%s failed: %s", vid, error_reason(e))
    else:
        from ex4d.lightning.predict import GeneratePredictModule

        dataset = ReconGenerateSet(inputs, ids, out_dir, recon, cfg.data.gen_height, cfg.data.gen_width,
                                   continue_on_error=True)
        log.info("%d inputs: %d to do, %d already finished", len(inputs), len(dataset), dataset.skipped)
        writer = output_writer(cfg.output_fps, cfg.recon.contact_columns)
        if len(dataset):
            import lightning as L

            with clock.stage("recon_and_generate"):
                module = GeneratePredictModule(instantiate(cfg.model), instantiate(cfg.lora), cfg.checkpoint,
                                               instantiate(cfg.generate), continue_on_error=True,
                                               windows=window_settings(cfg))
                trainer = L.Trainer(**cfg.trainer, callbacks=[writer], logger=False, enable_checkpointing=False)
                loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False)
                trainer.predict(module, loader, return_predictions=False)
                trainer.strategy.barrier()
                if module._generator is not None:
                    summary["levers"] = module.generator.lever_report()
    rows = []
    for vid in ids:
        status = "skipped" if vid in finished_before else item_status(out_dir / vid, done_file)
        row = {"id": vid, "status": status}
        if status == "failed":
            row["reason"] = (out_dir / vid / FAILED).read_text().strip()
        rows.append(row)
    failed = [r["id"] for r in rows if r["status"] in ("failed", "not run")]
    summary.update(processed=sum(r["status"] == "done" for r in rows), skipped=len(finished_before), failed=failed,
                   items=rows, **clock.record())
    log.info("set of %d inputs in %s:\n%s", len(ids), out_dir, status_table(rows))
    save_resolved_config(cfg, out_dir / "config.yaml")
    write_json(out_dir / "summary.json", summary)
    return summary
