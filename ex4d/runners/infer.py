"""``python infer.py``: DW-Mesh stage + generation on one input, or on a set of inputs.

Stages (``stage=``):
* ``recon``: depth -> DW-Mesh -> colour + mask videos of the new path.
* ``generate``: generation from an existing recon directory (``recon_dir=``; ours or the reference's
  ``color_<cam>.mp4`` / ``render_<cam>.mp4`` + ``mask_<cam>.mp4``).
* ``all``: both.
* ``auto`` (default): ``all`` when the generator weights are present, else ``recon`` plus a message
  naming the missing files and the download command.

A folder of videos or a manifest as ``input=`` runs every input through Lightning's predict loop
(``trainer.devices=N`` spreads them over GPUs); finished inputs (``output.mp4`` present) are skipped.

One video over several GPUs: ``parallel.context=ulysses`` (or ``ring``) under torchrun splits every DiT
forward over the ranks (:mod:`ex4d.pipelines.parallel`); rank 0 writes the outputs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig

from ex4d.data.inputs import load_input_clip
from ex4d.io.video import write_video
from ex4d.pipelines.batch import ReconGenerateSet, list_inputs, unique_ids
from ex4d.pipelines.recon import ReconPipeline, save_recon
from ex4d.pipelines.stage_io import find_recon_videos, read_first_frame, read_recon_videos, resize_for_generation
from ex4d.runners.common import run_dir, save_resolved_config, staged_outputs, write_json
from ex4d.runners.validate import check_infer_config
from ex4d.utils.errors import InputError
from ex4d.utils.visualize import contact_sheet

log = logging.getLogger("ex4d.infer")

STAGES = ("auto", "recon", "generate", "all")


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
    return {"seconds": seconds, "frames": clip.num_frames, "size": [clip.height, clip.width],
            "mask_coverage": float(result.mask.mean()), "files": {k: str(Path(v).name) for k, v in files.items()}}


def missing_generator_files(cfg: DictConfig, model=None) -> list[str]:
    from ex4d.pipelines.generate import missing_weights

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


def run_generate(cfg: DictConfig, recon_dir: Path, out_dir: Path, generator=None, write: bool = True) -> dict:
    """Generation from a recon folder into ``out_dir`` (``write=False``: compute only, e.g. on a helper rank)."""
    colour, mask = read_recon_videos(*find_recon_videos(recon_dir))
    first = read_first_frame(recon_dir, colour)
    colour, mask, first = resize_for_generation(colour, mask, cfg.data.gen_height, cfg.data.gen_width, first)
    generator = generator or build_generator_from_cfg(cfg)
    t0 = time.perf_counter()
    frames = generator(colour, mask, first)
    seconds = time.perf_counter() - t0
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else frames
    files = write_generation(out_dir, frames, colour, mask, cfg.output_fps, cfg.recon.contact_columns) if write else {}
    return {"seconds": seconds, "frames": int(frames.shape[0]), "size": list(frames.shape[1:3]),
            "timings": dict(getattr(generator, "last_timings", {})), "files": files}


def resolve_stage(cfg: DictConfig) -> str:
    if cfg.stage not in STAGES:
        raise InputError(f"stage must be one of {STAGES}, got {cfg.stage!r}")
    if cfg.stage != "auto":
        return cfg.stage
    from ex4d.pipelines.generate import DOWNLOAD_HINT

    missing = missing_generator_files(cfg)
    if not missing:
        return "all"
    log.warning("stage=auto: generator weights missing (%s); running the DW-Mesh stage only. Download with: "
                "%s --local-dir %s", ", ".join(missing), DOWNLOAD_HINT, cfg.paths.weights_dir)
    return "recon"


def run_infer(cfg: DictConfig) -> dict:
    """Run the stages asked for by ``cfg.stage``; returns a summary dict (also written to summary.json)."""
    check_infer_config(cfg)  # bad values fail here, before any input is read
    parallel = instantiate(cfg.parallel) if cfg.get("parallel") else None
    if parallel is not None and parallel.enabled:
        return run_context_parallel(cfg, parallel)
    stage = resolve_stage(cfg)
    check_infer_config(cfg, stage)  # stage=auto resolved: the generation checks too
    out_dir = run_dir(cfg)
    inputs = list_inputs(str(cfg.input)) if stage != "generate" else None
    with torch.inference_mode():
        if inputs is not None:
            return run_many(cfg, inputs, out_dir, stage)
        return run_one(cfg, stage, out_dir)


def run_one(cfg: DictConfig, stage: str, out_dir: Path, generator=None, write: bool = True) -> dict:
    """One input (or one recon folder) through ``stage`` into ``out_dir`` (staged: no partial outputs)."""
    if stage == "generate" and not cfg.get("recon_dir"):
        raise InputError("stage=generate needs recon_dir=<folder with color.mp4 + mask.mp4>")
    summary: dict = {"stage": stage, "input": str(cfg.input)}
    with staged_outputs(out_dir) as stage_dir:
        if stage in ("recon", "all"):
            summary["recon"] = run_recon(cfg, str(cfg.input), stage_dir)
        if stage in ("generate", "all"):
            recon_dir = stage_dir if stage == "all" else Path(cfg.recon_dir)
            summary["generate"] = run_generate(cfg, recon_dir, stage_dir, generator, write=write)
        save_resolved_config(cfg, stage_dir / "config.yaml")
        write_json(stage_dir / "summary.json", summary)
    summary["output_dir"] = str(out_dir)
    log.info("wrote %s", out_dir)
    return summary


def run_context_parallel(cfg: DictConfig, parallel) -> dict:
    """One video, each DiT forward split over the ranks of a torchrun launch (``parallel.context``).

    Every rank runs the same stages on the same input (recon is deterministic and cheap next to the DiT);
    rank 0 writes the run directory, the other ranks work in a temporary folder they delete.
    """
    import shutil
    import tempfile

    from ex4d.pipelines.parallel import init_distributed

    stage = resolve_stage(cfg)
    check_infer_config(cfg, stage)
    if stage == "recon":
        why = ("stage=auto found no generator weights (see the warning above)" if cfg.stage == "auto"
               else "stage=recon has none (use stage=all or stage=generate)")
        raise InputError(f"parallel.context={parallel.context} splits the generation stage; {why}")
    if stage != "generate" and list_inputs(str(cfg.input)) is not None:
        raise InputError(f"parallel.context={parallel.context} generates one video per launch; for a set of inputs "
                         f"({cfg.input}) use parallel.context=none trainer.devices=<GPUs> (one video per GPU)")
    env, device = init_distributed()
    out_dir = run_dir(cfg) if env.is_main else Path(tempfile.mkdtemp(prefix=f"ex4d_rank{env.rank}_"))
    try:
        with torch.inference_mode():
            generator = build_generator_from_cfg(cfg, device=device, parallel=parallel)
            summary = run_one(cfg, stage, out_dir, generator, write=env.is_main)
        summary["parallel"] = {"context": parallel.context, "ranks": generator.cp_degree}
        if env.is_main:
            write_json(out_dir / "summary.json", summary)
        return summary
    finally:
        if not env.is_main:
            shutil.rmtree(out_dir, ignore_errors=True)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class _OutputWriter(BasePredictionWriter):
    """Writes each predicted video next to its recon outputs (on the rank that generated it)."""

    def __init__(self, fps: float, columns: int):
        super().__init__(write_interval="batch")
        self.fps, self.columns, self.written = fps, columns, []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        out_dir = Path(batch["out_dir"])
        write_generation(out_dir, prediction["frames"].numpy(), batch["colour"], batch["mask"], self.fps, self.columns)
        write_json(out_dir / "generate.json", {"timings": prediction["timings"]})
        self.written.append(prediction["id"])


def run_many(cfg: DictConfig, inputs: list[Path], out_dir: Path, stage: str) -> dict:
    """Every input of a set: recon (+ generation through ``trainer.predict``) into ``out_dir/<id>/``."""
    ids = unique_ids(inputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe = build_recon(cfg)

    def recon(source: str, item_dir: Path) -> None:
        with staged_outputs(item_dir) as stage_dir:
            write_json(stage_dir / "recon_summary.json", run_recon(cfg, source, stage_dir, pipe))

    summary: dict = {"stage": stage, "inputs": len(inputs), "output_dir": str(out_dir)}
    if stage == "recon":
        done = 0
        for vid, source in zip(ids, inputs):
            if not (out_dir / vid / "color.mp4").is_file():
                recon(str(source), out_dir / vid)
                done += 1
        summary.update(processed=done, skipped=len(inputs) - done)
    else:
        from ex4d.pipelines.generate_lightning import GeneratePredictModule

        dataset = ReconGenerateSet(inputs, ids, out_dir, recon, cfg.data.gen_height, cfg.data.gen_width)
        log.info("%d inputs: %d to do, %d already finished", len(inputs), len(dataset), dataset.skipped)
        writer = _OutputWriter(cfg.output_fps, cfg.recon.contact_columns)
        if len(dataset):
            module = GeneratePredictModule(instantiate(cfg.model), instantiate(cfg.lora), cfg.checkpoint,
                                           instantiate(cfg.generate))
            trainer = L.Trainer(**cfg.trainer, callbacks=[writer], logger=False, enable_checkpointing=False)
            loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False)
            trainer.predict(module, loader, return_predictions=False)
        summary.update(processed=len(writer.written), skipped=dataset.skipped)
    save_resolved_config(cfg, out_dir / "config.yaml")
    write_json(out_dir / "summary.json", summary)
    return summary
