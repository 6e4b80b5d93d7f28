"""Up-front checks of a composed config: everything that can be checked without reading the input.

A runner calls these first, so a bad value fails in a second with its key named, not after a video was
decoded, depth estimated and meshes built (or as a ZeroDivisionError / TypeError deep inside a stage).
"""

from __future__ import annotations

from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ex4d.data.inputs import GENERATION_MULTIPLE, clip_options
from ex4d.pipelines.conditioning import SIZE_MULTIPLE, VAE_TIME_FACTOR
from ex4d.pipelines.recon import check_recon_options
from ex4d.utils.checks import check_bool, check_int, check_number
from ex4d.utils.device import resolve_device
from ex4d.utils.errors import InputError, MissingWeightsError

# What each key of conf/infer.yaml's recon group is called in check_recon_options.
RECON_KEYS = ("chunk_size", "fps", "save_meshes", "mesh_format", "contact_columns", "replace_first_frame", "export")


def instantiate_checked(node):
    """``hydra.utils.instantiate(node)``, re-raising an InputError from the constructor as itself.

    Hydra wraps constructor errors in InstantiationException, whose message is several lines about the
    target; the InputError inside already names the key.
    """
    try:
        return instantiate(node)
    except InstantiationException as e:
        if isinstance(e.__cause__, InputError):
            raise e.__cause__ from None
        raise


def check_shape(data: DictConfig) -> None:
    """Clip size constraints of the Wan VAE and DiT, checked before anything loads (by train and prepare_data:
    shards of any other shape could never be trained on)."""
    T = check_int(data.num_frames, "data.num_frames", minimum=1)
    H, W = check_int(data.height, "data.height", minimum=1), check_int(data.width, "data.width", minimum=1)
    if T % VAE_TIME_FACTOR != 1:
        lo = (T - 1) // VAE_TIME_FACTOR * VAE_TIME_FACTOR + 1
        raise InputError(f"data.num_frames={T}: the Wan VAE needs 4k + 1 frames; use {lo} or {lo + 4}")
    if H % SIZE_MULTIPLE or W % SIZE_MULTIPLE:
        raise InputError(f"data.height={H}, data.width={W}: both must be multiples of {SIZE_MULTIPLE}")


def check_generation_frames(n: int, key: str = "data.num_frames") -> None:
    """Wan's VAE compresses time 4x after the first frame: a generated clip has 4k + 1 frames."""
    if n % VAE_TIME_FACTOR != 1:
        lo = (n - 1) // VAE_TIME_FACTOR * VAE_TIME_FACTOR + 1
        hint = f"{lo} or {lo + VAE_TIME_FACTOR}" if lo > 1 else f"{lo + VAE_TIME_FACTOR}"
        raise InputError(f"{key}={n}: generation needs 4k + 1 frames (Wan's VAE); use {hint}")


def check_missing(cfg: DictConfig, groups: tuple[str, ...]) -> None:
    """Mandatory values (``???``) left unset in ``groups``, e.g. ``camera.path`` of ``camera=file``."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if k.split(".")[0] in groups)
    if missing:
        raise InputError(f"{', '.join(missing)} must be set (it has no default), e.g. "
                         f"{missing[0]}=<value> on the command line")


def check_infer_config(cfg: DictConfig, stage: str | None = None) -> None:
    """Check the values of an ``infer.py`` config for ``stage`` (default ``cfg.stage``; ``auto`` checks the
    recon stage only, call again with the resolved stage).

    Raises InputError naming the key: data options (and ``data=monocular``, the training schema), recon
    options, ``output_fps``, ``device``, the camera path file against ``data.num_frames``, and for the
    generation stage the Wan frame count (4k + 1) and sizes (multiples of 16).
    """
    stage = stage or cfg.stage
    check_missing(cfg, ("input", "data", "camera", "recon"))
    opts = clip_options(cfg.data)
    check_recon_options(**{k: cfg.recon[k] for k in RECON_KEYS if k in cfg.recon})
    check_number(cfg.output_fps, "output_fps", positive=True)
    if stage in ("auto", "recon", "all"):
        resolve_device(cfg.device, "device")
        if not str(cfg.input).strip():
            raise InputError("input is empty; set input=<video, image, image folder or example:motorcycle>")
        camera = instantiate_checked(cfg.camera)
        if hasattr(camera, "validate"):  # reads a camera file now: wrong frame count before any decoding
            camera.validate(opts["num_frames"])
    if stage in ("all", "generate"):
        windows = instantiate_checked(cfg.windows) if cfg.get("windows") is not None else None
    if stage == "all" and (windows is None or opts["num_frames"] <= windows.frames):
        check_generation_frames(opts["num_frames"])  # longer clips go in windows of 4k + 1 frames
    if stage in ("all", "generate") and cfg.data.get("gen_height") is None:
        # Generation at the recon size: the recon sides must suit Wan too.
        if opts["height"] is not None:
            bad = [f"data.{k}={opts[k]}" for k in ("height", "width") if opts[k] % GENERATION_MULTIPLE]
        else:
            bad = [] if opts["multiple"] % GENERATION_MULTIPLE == 0 else [f"data.multiple={opts['multiple']}"]
        if bad:
            raise InputError(f"{', '.join(bad)}: with data.gen_height/gen_width null, generation runs at the recon "
                             f"size, which must be a multiple of {GENERATION_MULTIPLE}; set data.multiple=16 (or 64) "
                             "or data.gen_height/data.gen_width")
    if stage == "generate" and cfg.get("recon_dir"):
        from ex4d.pipelines.stage_io import find_recon_videos

        find_recon_videos(cfg.recon_dir)
    if stage in ("all", "generate"):
        check_generation_config(cfg, stage)


def check_generation_config(cfg: DictConfig, stage: str) -> None:
    """Sampler settings, LoRA settings, the model option and the presence of its weights (constructing these
    loads nothing), so a bad ``generate.*`` value or a missing file fails before the DW-Mesh stage runs."""
    from ex4d.model.availability import DOWNLOAD_HINT, missing_weights

    instantiate_checked(cfg.generate)
    instantiate_checked(cfg.lora)
    missing = missing_weights(instantiate_checked(cfg.model), cfg.checkpoint)
    if missing:
        raise MissingWeightsError(f"stage={stage} needs weights that are missing: {', '.join(missing)}; download with: "
                                  f"{DOWNLOAD_HINT} --local-dir {cfg.paths.weights_dir} (or run stage=recon)")


# Integer Trainer knobs of conf/trainer/*.yaml and their smallest value (-1: Lightning's "no limit").
TRAINER_INTS = {"max_steps": -1, "max_epochs": -1, "accumulate_grad_batches": 1, "num_nodes": 1,
                "log_every_n_steps": 1, "num_sanity_val_steps": -1}


def check_train_config(cfg: DictConfig) -> None:
    """The ``train.py`` values that are used only after the model is built (the seed, the loader's erosion,
    Trainer counters, the checkpoint to resume), checked first; InputError names the key."""
    check_int(cfg.seed, "seed")
    check_bool(cfg.get("resume_in_place", True), "resume_in_place")
    if cfg.model.get("memory_mode") is not None:  # conf/train.yaml sets it null: the training module ignores it
        raise InputError(f"model.memory_mode={cfg.model.memory_mode}: an inference setting (infer.py, evaluate.py); "
                         "training places the model by its strategy (offload: strategy=deepspeed_zero3_offload): "
                         "drop it")
    erosion = cfg.data.get("erosion")
    if erosion is not None:
        check_bool(erosion.enabled, "data.erosion.enabled")
        k_min = check_int(erosion.k_min, "data.erosion.k_min", minimum=1)
        check_int(erosion.k_max, "data.erosion.k_max", minimum=k_min)
    for key, minimum in TRAINER_INTS.items():
        if cfg.trainer.get(key) is not None:
            check_int(cfg.trainer[key], f"trainer.{key}", minimum=minimum)
    clip = cfg.trainer.get("gradient_clip_val")
    if clip is not None:
        check_number(clip, "trainer.gradient_clip_val", minimum=0.0)
    ckpt = cfg.get("ckpt_path")
    if ckpt:
        p = Path(str(ckpt)).expanduser()
        if p.is_file() and p.suffix != ".ckpt":
            raise InputError(f"ckpt_path {p}: expected a Lightning .ckpt file or a DeepSpeed checkpoint folder "
                             "(<run>/checkpoints/last.ckpt); an adapter .safetensors goes to module.init_adapter")


def select_dataset(cfg: DictConfig) -> DictConfig:
    """The benchmark set named by ``benchmark.data`` (checked first: ``data.*`` interpolate it)."""
    name = str(cfg.benchmark.data)
    names = list(cfg.benchmark.datasets)
    if name not in names:
        raise InputError(
            f"benchmark.data={name!r}: expected one of {names}; for your own videos set "
            "benchmark.datasets.user.source=<folder or manifest>"
        )
    return cfg.benchmark.datasets[name]


def check_metric_names(cfg: DictConfig) -> list[str]:
    """``benchmark.metrics``: names of the ``metrics`` group's entries."""
    names = [str(n) for n in cfg.benchmark.metrics]
    unknown = [n for n in names if n not in cfg.metrics]
    if unknown:
        raise InputError(f"benchmark.metrics: unknown metric(s) {unknown}; the metrics config defines {list(cfg.metrics)}")
    return names


def check_evaluate_config(cfg: DictConfig) -> None:
    """The ``evaluate.py`` values: the benchmark set, the pipeline's data/recon/output options as for infer.py
    (sizes and the 4k + 1 frame count included when it generates), devices, bootstrap counts, seed, switches
    and the metric names, before the benchmark's videos are generated (hours on the real model)."""
    select_dataset(cfg)
    opts = clip_options(cfg.data)
    check_recon_options(**{k: cfg.recon[k] for k in RECON_KEYS if k in cfg.recon})
    check_number(cfg.output_fps, "output_fps", positive=True)
    resolve_device(cfg.device, "device")
    resolve_device(cfg.metrics_device, "metrics_device")
    check_int(cfg.n_boot, "n_boot", minimum=1)
    check_int(cfg.n_boot_set, "n_boot_set", minimum=1)
    check_int(cfg.seed, "seed")
    check_bool(cfg.check_sha256, "check_sha256")
    if cfg.get("camera_following_focal_px") is not None:
        check_number(cfg.camera_following_focal_px, "camera_following_focal_px", positive=True)
    if not cfg.get("generated_dir"):
        check_generation_frames(opts["num_frames"], "data.num_frames (benchmark.datasets.<set>.num_frames)")
        instantiate_checked(cfg.generate)
    check_metric_names(cfg)
    if cfg.source_resize not in ("generated", "none"):
        raise InputError(f"source_resize must be 'generated' or 'none', got {cfg.source_resize!r}")
    check_bool(cfg.get("allow_skip", False), "allow_skip")
