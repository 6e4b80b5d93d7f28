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

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ex4d.pipelines.batch import list_inputs
from ex4d.pipelines.stage_io import find_recon_videos, read_first_frame, read_recon_videos, resize_for_generation
from ex4d.runners.common import StageClock, run_dir, run_record, save_resolved_config, staged_outputs, write_json
from ex4d.runners.stages import (
    build_generator_from_cfg,
    missing_generator_files,
    run_many,
    run_recon,
    window_settings,
    write_generation,
)
from ex4d.runners.validate import check_infer_config
from ex4d.utils.errors import InputError, MissingWeightsError

log = logging.getLogger("ex4d.infer")

STAGES = ("auto", "recon", "generate", "all")


def run_generate(cfg: DictConfig, recon_dir: Path, out_dir: Path, generator=None, write: bool = True) -> dict:
    """Generation from a recon folder into ``out_dir`` (``write=False``: compute only, e.g. on a helper rank).
    A clip longer than ``windows.frames`` is generated in overlapping windows (:mod:`ex4d.pipelines.windows`)."""
    from ex4d.pipelines.windows import WindowSettings, generate_windowed, plan_windows

    colour, mask = read_recon_videos(*find_recon_videos(recon_dir))
    first = read_first_frame(recon_dir, colour)
    colour, mask, first = resize_for_generation(colour, mask, cfg.data.gen_height, cfg.data.gen_width, first)
    generator = generator or build_generator_from_cfg(cfg)
    windows = window_settings(cfg) or WindowSettings()
    t0 = time.perf_counter()
    frames = generate_windowed(generator, colour, mask, first, windows)
    seconds = time.perf_counter() - t0
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else frames
    files = write_generation(out_dir, frames, colour, mask, cfg.output_fps, cfg.recon.contact_columns) if write else {}
    return {"seconds": seconds, "frames": int(frames.shape[0]), "size": list(frames.shape[1:3]),
            "windows": plan_windows(int(frames.shape[0]), windows),
            "timings": dict(getattr(generator, "last_timings", {})), "files": files,
            "levers": generator.lever_report() if hasattr(generator, "lever_report") else None}


def resolve_stage(cfg: DictConfig) -> str:
    """The stage to run. Generation weights are checked here, before any reconstruction: ``stage=all`` or
    ``generate`` with a missing file stops at once (MissingWeightsError naming it and the download command)."""
    if cfg.stage not in STAGES:
        raise InputError(f"stage must be one of {STAGES}, got {cfg.stage!r}")
    from ex4d.model.availability import DOWNLOAD_HINT

    missing = missing_generator_files(cfg) if cfg.stage != "recon" else []
    hint = f"{DOWNLOAD_HINT} --local-dir {cfg.paths.weights_dir}"
    if cfg.stage in ("all", "generate"):
        if missing:
            raise MissingWeightsError(f"stage={cfg.stage} needs {', '.join(missing)}; download with: {hint} "
                                      f"(or stage=recon for the DW-Mesh stage alone)")
        return cfg.stage
    if cfg.stage == "recon":
        return "recon"
    if not missing:
        return "all"
    log.warning("stage=auto: generator weights missing (%s); running the DW-Mesh stage only. Download with: %s",
                ", ".join(missing), hint)
    return "recon"


def resolved_input(cfg: DictConfig, stage: str) -> dict:
    """What the run read: the ``input=`` value as given and as resolved (absolute path), or the recon folder."""
    if stage == "generate":
        given = str(cfg.recon_dir)
        return {"given": given, "resolved": str(Path(given).expanduser().resolve()), "kind": "recon_dir"}
    given = str(cfg.input)
    if given.startswith("example:"):
        return {"given": given, "resolved": given, "kind": "example"}
    p = Path(given).expanduser().resolve()
    kind = "folder" if p.is_dir() else "file"
    return {"given": given, "resolved": str(p), "kind": kind}


def run_infer(cfg: DictConfig) -> dict:
    """Run the stages asked for by ``cfg.stage``; returns a summary dict (also written to summary.json)."""
    check_infer_config(cfg)  # bad values fail here, before any input is read
    parallel = instantiate(cfg.parallel) if cfg.get("parallel") else None
    if parallel is not None and parallel.enabled:
        return run_context_parallel(cfg, parallel)
    if cfg.stage == "generate" and not cfg.get("recon_dir"):
        raise InputError("stage=generate needs recon_dir=<folder with color.mp4 + mask.mp4>")
    stage = resolve_stage(cfg)
    check_infer_config(cfg, stage)  # stage=auto resolved: the generation checks too
    out_dir = run_dir(cfg)
    inputs = list_inputs(str(cfg.input)) if stage != "generate" else None
    with torch.inference_mode():
        if inputs is not None:
            return run_many(cfg, inputs, out_dir, stage)
        return run_one(cfg, stage, out_dir)


def run_one(cfg: DictConfig, stage: str, out_dir: Path, generator=None, write: bool = True) -> dict:
    """One input (or one recon folder) through ``stage`` into ``out_dir`` (staged: no partial outputs, earlier
    outputs of the folder replaced as a whole)."""
    if stage == "generate" and not cfg.get("recon_dir"):
        raise InputError("stage=generate needs recon_dir=<folder with color.mp4 + mask.mp4>")
    clock = StageClock()
    summary: dict = {"stage": stage, "input": resolved_input(cfg, stage), **run_record(cfg)}
    with staged_outputs(out_dir) as stage_dir:
        if stage in ("recon", "all"):
            with clock.stage("recon"):
                summary["recon"] = run_recon(cfg, str(cfg.input), stage_dir)
        if stage in ("generate", "all"):
            recon_dir = stage_dir if stage == "all" else Path(cfg.recon_dir)
            if generator is None:
                with clock.stage("load_models"):
                    generator = build_generator_from_cfg(cfg)
            with clock.stage("generate"):
                summary["generate"] = run_generate(cfg, recon_dir, stage_dir, generator, write=write)
        save_resolved_config(cfg, stage_dir / "config.yaml")
        summary.update(clock.record())
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
