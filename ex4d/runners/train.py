"""``python train.py``: train the EX-4D adapter on prepared shards (Lightning; strategy, logger, callbacks
from the config).

Run directory: Hydra's (``outputs/train/<run name>``, one per multirun job), or ``output_dir`` when set.
Every rank resolves the same one: Lightning's DDP launcher passes rank 0's directory to its children;
with torchrun / SLURM set ``EX4D_RUN_ID`` once for all ranks (it names the directory). The run id (W&B
id, ``run.json``) is derived from that directory, so it agrees across ranks, and ``ckpt_path=...`` of a
checkpoint inside a run continues that run: same directory, run id and W&B run (``resume_in_place``).
Only global rank 0 writes the config dump, ``run.json`` and ``summary.json`` (Hydra's own ``.hydra``
folder is off: ``hydra.output_subdir: null`` in ``conf/train.yaml``).

Layout of a run directory::

    config.yaml  overrides.yaml  run.json  summary.json  train.log
    checkpoints/{step_0001000.ckpt,last.ckpt}     full resumable state (adapter + optimizer + loop)
    adapters/{step_0001000,last}.safetensors      adapter only: what inference loads
    samples/step0001000_<clip>.mp4                validation videos: source | masked input | generated
    csv/metrics.csv (csv/resume<n>/ after resumes)  or  wandb/   logs
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from ex4d.runners.common import StageClock, run_dir, run_record, save_resolved_config, write_json
from ex4d.runners.shards import prepare_if_missing, training_latent_settings
from ex4d.runners.validate import check_shape, check_train_config
from ex4d.training.strategy import strategy_info
from ex4d.utils.errors import InputError

log = logging.getLogger("ex4d.train")

RUN_INFO = "run.json"


def make_run_id(out: Path) -> str:
    """``<dir name>-<8 hex of the absolute path>``: readable, unique per directory, equal on every rank."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", out.name)[:64]
    return f"{slug}-{hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]}"


def find_run_dir(ckpt_path: Path) -> Path | None:
    """The run directory holding a checkpoint (the nearest parent with ``run.json``), or None."""
    for parent in ckpt_path.resolve().parents:
        if (parent / RUN_INFO).is_file():
            return parent
    return None


def check_optimizer(cfg: DictConfig) -> None:
    """A fused AdamW asked for where Lightning would refuse it at the first step, caught before anything loads."""
    from ex4d.training.optim import FUSED_CLIP_MESSAGE, fused_conflict

    deepspeed = strategy_info(cfg.strategy).deepspeed
    if cfg.optimizer.get("fused") and fused_conflict(cfg.trainer.get("precision", "32-true"),
                                                     cfg.trainer.get("gradient_clip_val"), deepspeed):
        raise InputError(FUSED_CLIP_MESSAGE)


# Above this many DiT parameters a CPU run is refused: fp32 weights, gradients of the adapter and activations of a
# 14B model neither fit a workstation's memory nor finish a step in useful time. The test models are far below.
CPU_TRAIN_MAX_DIT_PARAMETERS = 2_000_000_000


def training_on_cpu(trainer: DictConfig) -> bool:
    """Whether Lightning would train on the CPU: ``trainer.accelerator=cpu``, or auto/gpu/cuda without CUDA here."""
    accelerator = str(trainer.get("accelerator", "auto"))
    return accelerator == "cpu" or (accelerator in ("auto", "gpu", "cuda") and not torch.cuda.is_available())


def check_training_device(cfg: DictConfig) -> None:
    """Refuse to train a real-size model (the 14B DiT, real or random weights) on a CPU, before anything loads.

    Constructing the ``model`` loader reads nothing; its ``dit_parameters()`` is known or counted on the meta device.
    The TEST-ONLY tiny model and the random model with small shape overrides stay trainable on a CPU.
    """
    if not training_on_cpu(cfg.trainer):
        return
    model = instantiate(cfg.model)
    count = getattr(model, "dit_parameters", None)
    n = int(count()) if count is not None else None
    if n is None or n <= CPU_TRAIN_MAX_DIT_PARAMETERS:
        return
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    why = ("trainer.accelerator=cpu" if accelerator == "cpu" else
           f"trainer.accelerator={accelerator} but torch {torch.__version__} sees no CUDA device here")
    raise InputError(
        f"model={cfg.model.get('_target_')} has a {n / 1e9:.1f} B-parameter DiT, which does not train on a CPU "
        f"({why}). Train on CUDA GPUs (trainer=gpu, or trainer.accelerator=gpu); for a CPU smoke run use "
        f"model=wan_tiny data=tiny trainer=cpu (TEST ONLY: random tiny model)")


def resolve_compile_blocks(cfg: DictConfig) -> bool:
    """``module.compile_blocks``: ``auto`` = on where it was measured to work and pay, DeepSpeed ZeRO-1/2
    (1.26x faster per step on an H100, docs/performance.md); off elsewhere (``true`` turns it on for
    ``auto`` / ``ddp`` / ``fsdp``, not measured). Under ZeRO-3 regional compile of the checkpointed blocks
    failed on 2x H100, so ``true`` is refused there. The module only compiles on CUDA: on a CPU any value
    trains eagerly. Writes the decision back into ``cfg.module``."""
    value = cfg.module.get("compile_blocks", False)
    strategy = strategy_info(cfg.strategy)
    zero3 = strategy.deepspeed and strategy.zero_stage == 3
    if value == "auto":
        value = strategy.deepspeed and strategy.zero_stage <= 2
    elif not isinstance(value, bool):
        raise InputError(f"module.compile_blocks: expected auto, true or false, got {value!r}")
    elif value and zero3:
        raise InputError("module.compile_blocks=true does not work with DeepSpeed ZeRO-3 (strategy stage 3: the "
                         "recompute of the compiled, checkpointed blocks fails); use compile_blocks=auto/false or "
                         "strategy=deepspeed_zero2")
    cfg.module.compile_blocks = bool(value)
    return bool(value)


def check_shard_inputs(cfg: DictConfig) -> bool:
    """Cached VAE latents / CLIP tokens in the shards (tools/cache_latents.py) must match this run's model
    and conditioning settings; returns whether training uses them."""
    from ex4d.data.latents import check_cached_latents
    from ex4d.data.shards import INDEX_NAME

    shards = cfg.data.get("shards_dir")
    if not shards or not (Path(shards) / INDEX_NAME).is_file():
        return False
    cached = check_cached_latents(shards, training_latent_settings(cfg))
    log.info("shards %s: %s", shards, "cached VAE latents + CLIP tokens (the loader's per-epoch erosion does not "
             "apply to them)" if cached else "no cached latents: 4 VAE encodes + CLIP per clip and step")
    return cached


def check_mask_mesh(cfg: DictConfig) -> None:
    """``data.mask_mesh`` (``experiment=no_dwmesh``: torn): the shards' render masks must come from that mesh mode.

    An ablation trained on shards prepared with another mesh silently trains the full method; the mode each render
    mask was made with is stored per clip (``masking.mesh`` in the shard, ``mesh`` in index.jsonl).
    """
    want = cfg.data.get("mask_mesh")
    shards = cfg.data.get("shards_dir")
    if not want or not shards:
        return
    from ex4d.data.shards import INDEX_NAME, read_index, read_shard_meta

    if not (Path(shards) / INDEX_NAME).is_file():
        return  # the loader names the missing index
    modes: dict[str, int] = {}
    for rec in read_index(shards):
        mode = rec["mesh"] if "mesh" in rec else read_shard_meta(Path(shards) / rec["file"]).get("masking", {}).get("mesh")
        if mode is not None:
            modes[mode] = modes.get(mode, 0) + 1
    if set(modes) != {want}:
        found = ", ".join(f"{n} clips with mesh={m}" for m, n in sorted(modes.items())) or "no render masks with a recorded mesh"
        raise InputError(
            f"data.mask_mesh={want}: the render masks of the shards in {shards} must all come from mesh={want}, found "
            f"{found}. Prepare them with: python tools/prepare_data.py masking=mixed mesh={want} "
            f"data.shards_dir={shards} (data.mask_mesh=null trains on them anyway)")


def build_strategy(cfg: DictConfig):
    """A strategy object from ``_target_``, or the name string (``strategy=auto``)."""
    if cfg.get("_target_"):
        return instantiate(cfg)
    return str(cfg.get("name", "auto"))


def build_logger(cfg: DictConfig | None, out: Path, run_id: str, name: str, resume_index: int = 0):
    """The configured logger with the run's directory, id and name filled in where the config leaves null.

    ``resume_index`` > 0 (the n-th in-place resume): CSV logs go to ``csv/resume<n>/`` (Lightning's CSV logger
    would delete the run's earlier ``metrics.csv``); W&B continues the same run (same id, resume=allow).
    """
    if not cfg or not cfg.get("_target_"):
        return False
    target = str(cfg._target_)
    if target.endswith("WandbLogger") and importlib.util.find_spec("wandb") is None:
        log.warning("logger=wandb but wandb is not installed (pip install wandb==0.31.0): logging to CSV in %s/csv "
                    "instead", out)
        cfg = OmegaConf.create({"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": None, "name": "csv",
                                "version": ""})
        target = str(cfg._target_)
    fill: dict = {"save_dir": str(out)}
    if target.endswith("WandbLogger"):
        fill.update(id=run_id, name=name)
    kwargs = {k: v for k, v in fill.items() if k in cfg and cfg.get(k) is None}
    if target.endswith("CSVLogger") and resume_index and not cfg.get("version"):
        kwargs["version"] = f"resume{resume_index}"
    return instantiate(cfg, **kwargs)


def build_callbacks(cfg: DictConfig | None) -> list:
    return [instantiate(c) for c in (cfg or {}).values() if c is not None and c.get("_target_")]


def _write_rank0_files(cfg: DictConfig, out: Path, info: dict, resumed: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = f"config.resume{len(info['resumes'])}.yaml" if resumed else "config.yaml"
    save_resolved_config(cfg, out / name)
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
        (out / name.replace("config", "overrides")).write_text(OmegaConf.to_yaml(overrides))
    except ValueError:  # composed without Hydra's runtime (tests)
        pass
    write_json(out / RUN_INFO, info)


def training_input(cfg: DictConfig) -> dict:
    """What the run trains on: the shard folder (as given and resolved), or the synthetic clips."""
    given = cfg.data.get("shards_dir") or cfg.data.get("root")
    if not given:
        return {"given": None, "resolved": None, "kind": "synthetic"}
    return {"given": str(given), "resolved": str(Path(str(given)).expanduser().resolve()), "kind": "shards"}


def run_train(cfg: DictConfig) -> dict:
    """Build data, module, strategy, logger and callbacks from ``cfg`` and fit. Returns the summary dict
    (also in ``summary.json``): run directory and id, steps, final metrics, adapter and checkpoint paths."""
    t0 = time.perf_counter()
    check_train_config(cfg)
    clock = StageClock()
    check_shape(cfg.data)
    check_optimizer(cfg)
    resolve_compile_blocks(cfg)
    check_training_device(cfg)
    prepare_if_missing(cfg)  # data=tiny: writes its own shards on a fresh clone (conf/data/tiny.yaml)
    check_mask_mesh(cfg)
    check_shard_inputs(cfg)
    if cfg.trainer.get("use_distributed_sampler", False):
        raise InputError("trainer.use_distributed_sampler must be false: the shard loader splits clips across ranks "
                         "itself and replays them exactly on resume (ex4d/training/data.py)")
    out = run_dir(cfg)
    ckpt_path = Path(cfg.ckpt_path).expanduser() if cfg.get("ckpt_path") else None
    if ckpt_path is not None and not ckpt_path.exists():
        raise InputError(f"ckpt_path {ckpt_path} does not exist")
    resumed = False
    if ckpt_path is not None and cfg.get("resume_in_place", True):
        original = find_run_dir(ckpt_path)
        if original is not None and original != out.resolve():
            log.info("resuming run %s in place (this invocation's directory %s holds only its log)", original, out)
            out = original
            cfg.output_dir = str(out)  # callbacks' ${output_dir}/... now point into the original run
        resumed = original is not None
    info_path = out / RUN_INFO
    info = json.loads(info_path.read_text()) if resumed and info_path.is_file() else {
        "run_id": make_run_id(out), "run_dir": str(out.resolve()), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "resumes": []}
    if resumed:
        info["resumes"].append({"ckpt_path": str(ckpt_path), "at": time.strftime("%Y-%m-%d %H:%M:%S")})
    run_id = info["run_id"]
    if rank_zero_only.rank == 0:
        _write_rank0_files(cfg, out, info, resumed)

    # The frozen VAE and image encoder stay in eval mode on purpose.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = instantiate(cfg.datamodule)
    module = instantiate(cfg.module)
    logger = build_logger(cfg.get("logger"), out, run_id, name=out.name, resume_index=len(info["resumes"]))
    callbacks = build_callbacks(cfg.get("callbacks"))
    trainer: L.Trainer = instantiate(cfg.trainer, strategy=build_strategy(cfg.strategy), logger=logger,
                                     callbacks=callbacks, default_root_dir=str(out))
    log.info("training run %s in %s (strategy %s, precision %s, %d device(s) x %d node(s))", run_id, out,
             type(trainer.strategy).__name__, trainer.precision, trainer.num_devices, trainer.num_nodes)
    with clock.stage("fit"):  # model loading (LightningModule.setup) included
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)

    from lightning.pytorch.callbacks import ModelCheckpoint

    from ex4d.training.callbacks import AdapterCheckpoint

    adapter = next((c.last_path for c in callbacks if isinstance(c, AdapterCheckpoint)), None)
    ckpt = next((c.last_model_path or c.best_model_path for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    summary = {
        "run_dir": str(out), "run_id": run_id, "global_step": int(trainer.global_step),
        "epoch": int(trainer.current_epoch), "resumed_from": str(ckpt_path) if ckpt_path else None,
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()
                    if isinstance(v, torch.Tensor) and v.numel() == 1},
        "adapter": str(adapter) if adapter else None, "checkpoint": ckpt or None,
        "trainable_parameters": module.model.parameter_counts() if module.model is not None else None,
        "input": training_input(cfg),
        **run_record(cfg), **clock.record(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if trainer.is_global_zero:
        write_json(out / "summary.json", summary)
    return summary
