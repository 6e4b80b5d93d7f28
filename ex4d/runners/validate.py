"""Up-front checks of a composed config: everything that can be checked without reading the input.

A runner calls these first, so a bad value fails in a second with its key named, not after a video was
decoded, depth estimated and meshes built (or as a ZeroDivisionError / TypeError deep inside a stage).
"""

from __future__ import annotations

import logging

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ex4d.data.inputs import GENERATION_MULTIPLE, clip_options
from ex4d.pipelines.conditioning import VAE_TIME_FACTOR
from ex4d.pipelines.recon import check_recon_options
from ex4d.utils.checks import check_number
from ex4d.utils.device import resolve_device
from ex4d.utils.errors import InputError, MissingWeightsError

log = logging.getLogger(__name__)

# What each key of conf/infer.yaml's recon group is called in check_recon_options.
RECON_KEYS = ("chunk_size", "fps", "save_meshes", "mesh_format", "contact_columns", "replace_first_frame")


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
    n = opts["num_frames"]
    if stage == "all" and n % VAE_TIME_FACTOR != 1:
        lo = (n - 1) // VAE_TIME_FACTOR * VAE_TIME_FACTOR + 1
        hint = f"{lo} or {lo + VAE_TIME_FACTOR}" if lo > 1 else f"{lo + VAE_TIME_FACTOR}"
        raise InputError(f"data.num_frames={n}: generation needs 4k + 1 frames (Wan's VAE); use {hint}")
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
    from ex4d.pipelines.generate import DOWNLOAD_HINT, missing_weights

    instantiate_checked(cfg.generate)
    instantiate_checked(cfg.lora)
    missing = missing_weights(instantiate_checked(cfg.model), cfg.checkpoint)
    if missing:
        raise MissingWeightsError(f"stage={stage} needs weights that are missing: {', '.join(missing)}; download with: "
                                  f"{DOWNLOAD_HINT} --local-dir {cfg.paths.weights_dir} (or run stage=recon)")
