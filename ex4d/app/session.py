"""What the web app does, without Gradio: compose ``infer.py``'s config from the user's choices, preview a few
frames of the DW-Mesh stage, and run ``infer.py``'s runner into a run folder of its own.

The app is a front end to ``python infer.py``: every choice is an ``infer.py`` override (:meth:`AppSession.
overrides`), the config is composed by Hydra's compose API from the same ``conf/``, and a run goes through the
same runner (:func:`ex4d.runners.infer.run_infer` under :func:`ex4d.runners.cli.run_guarded`), so the run folder
holds what ``infer.py`` writes (color.mp4, mask.mp4, cameras.json, summary.json, ...). The folder also gets
``.hydra/overrides.yaml``, as Hydra writes it, and the equivalent command line is shown to the user.

Failures are the run plumbing's one line (``error: ...``, naming the file or key and the fix), never a traceback.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from ex4d.app.controls import CONF_DIR, DEFAULT_PRESET, camera_overrides
from ex4d.utils.errors import InputError, one_line

EXAMPLE_INPUT = "example:motorcycle"
# Depth options offered for a user's video: the model backends (both need downloaded weights) and `auto`
# (ground truth for the built-in example, DepthCrafter otherwise). The test-only planes / constant are left out.
DEPTH_OPTIONS = ("auto", "depthcrafter", "depth_anything")
STAGES = ("recon", "all")
PREVIEW_FRAMES = 4          # on the CPU: the frames rendered for a preview (evenly spaced, frame 0 included)
PREVIEW_MAX_SIDE = 256      # preview size: long side at most this, sides multiples of PREVIEW_MULTIPLE
PREVIEW_MULTIPLE = 16
PREVIEW_COLUMNS = 8         # at most this many frames in the preview strip (a GPU previews the whole clip)

# Keys the page sets (input box, depth menu, camera preset and controls, run buttons): not base overrides.
PAGE_KEYS = {"input": "the input box", "depth": "the depth menu", "camera": "the camera preset and its controls",
             "stage": "the run buttons"}
_SAFE_VALUE = re.compile(r"[\w./:+@~-]+")
_compose_lock = threading.Lock()  # Hydra's compose API uses one global instance


def command_line(overrides: list[str]) -> str:
    """``python infer.py <overrides>`` as a shell line (each override quoted for the shell where needed)."""
    return " ".join(["python infer.py", *map(shlex.quote, overrides)])


def override_value(value: str) -> str:
    """``value`` as a Hydra override value: as it is when plain, else single-quoted (paths with spaces,
    commas, brackets or quotes)."""
    value = str(value)
    if _SAFE_VALUE.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Choices:
    """What the user picked in the app.

    Attributes:
        input: an ``input=`` value (video, image, image folder, ``example:motorcycle``).
        depth: a depth option (:data:`DEPTH_OPTIONS`).
        preset: a camera option (:data:`ex4d.app.controls.PRESETS`).
        controls: control name -> value (None = the preset's), see :mod:`ex4d.app.controls`.
        num_frames: ``data.num_frames`` (None = the config's).
    """

    input: str = ""
    depth: str = "auto"
    preset: str = DEFAULT_PRESET
    controls: dict[str, float | None] = field(default_factory=dict)
    num_frames: int | None = None


@dataclass
class Preview:
    """A preview: the renders, the strip of render and mask rows, the camera path plot, and what it took.

    Attributes:
        color: (K, H, W, 3) uint8 renders of the previewed frames (black in holes).
        mask: (K, H, W) bool, True = trusted pixel.
        strip: (H, W, 3) uint8 image: rows render and mask, one column per previewed frame.
        path_plot: (H, W, 3) uint8 picture of the whole camera path.
        frames: the previewed frame indices of the full clip.
        num_frames: the full clip's frame count.
        size: (height, width) of the preview renders.
        mask_coverage: mean of the previewed masks.
        seconds: wall time.
    """

    color: np.ndarray
    mask: np.ndarray
    strip: np.ndarray
    path_plot: np.ndarray
    frames: list[int]
    num_frames: int
    size: tuple[int, int]
    mask_coverage: float
    seconds: float


@dataclass
class RunReport:
    """How a run from the app ended: its folder (None when it was refused before one was made), the runner's
    summary, the exit status ``infer.py`` would have returned, and the line shown to the user."""

    output_dir: Path | None
    summary: dict | None
    code: int
    message: str
    command: str


class FramesOfPath:
    """The poses at ``frames`` of ``camera``'s path for a clip of ``num_frames``: a preview of a few frames
    renders each one exactly as the full run does (a path depends on its frame count)."""

    def __init__(self, camera, num_frames: int, frames: list[int]):
        assert frames and frames[0] == 0, "frame 0 sets the pivot (its nearest depth): always preview it"
        self.camera = camera
        self.num_frames = num_frames
        self.frames = list(frames)
        from ex4d.cameras.trajectories import DEFAULT_PIVOT_OFFSET

        self.pivot_offset = getattr(camera, "pivot_offset", DEFAULT_PIVOT_OFFSET)

    def validate(self, num_frames: int) -> None:
        if hasattr(self.camera, "validate"):
            self.camera.validate(self.num_frames)

    def __call__(self, num_frames: int, min_depth: float):
        assert num_frames == len(self.frames), (num_frames, self.frames)
        return self.camera(self.num_frames, min_depth)[self.frames]


def preview_frames(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``num_frames`` (first and last included), sorted, unique."""
    count = max(1, min(count, num_frames))
    return sorted({int(i) for i in np.round(np.linspace(0, num_frames - 1, count))})


def preview_clip_options(opts: dict, max_side: int = PREVIEW_MAX_SIDE, multiple: int = PREVIEW_MULTIPLE) -> dict:
    """The clip options of a preview: the run's (checked) options at a long side of at most ``max_side``."""
    out = dict(opts, multiple=min(opts["multiple"], multiple))
    if opts["height"] is not None:  # a fixed size: scale it down, keeping the aspect
        s = min(1.0, max_side / max(opts["height"], opts["width"]))
        out["height"], out["width"] = (max(out["multiple"], round(v * s / out["multiple"]) * out["multiple"])
                                       for v in (opts["height"], opts["width"]))
    else:
        out["resize"] = "keep_aspect" if opts["resize"] == "none" else opts["resize"]
        out["max_side"] = max(out["multiple"], min(opts["max_side"], max_side))
    return out


def input_thumbnail(source: str, max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """Frame 0 of an input at preview size, (H, W, 3) uint8 (InputError for a missing or unreadable input)."""
    from ex4d.data.inputs import load_input_clip

    if not source:
        raise InputError("no input: upload a video or an image, type a path, or load the example")
    return load_input_clip(source, num_frames=1, multiple=PREVIEW_MULTIPLE, max_side=max_side).frames[0]


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


class AppSession:
    """Composes configs and runs previews and runs for the app (one per server; safe to call from threads).

    Args:
        base_overrides: ``infer.py`` overrides given to ``python app.py`` (kept under every choice, e.g.
            ``renderer=cpu data.max_side=512 paths.output_dir=...``).
        conf_dir: the ``conf/`` folder.
        preview_count: frames per preview; None = the whole clip on a GPU, :data:`PREVIEW_FRAMES` on the CPU.
    """

    def __init__(self, base_overrides: list[str] | None = None, conf_dir: str | Path = CONF_DIR,
                 preview_count: int | None = None):
        self.base_overrides = list(base_overrides or [])
        for o in self.base_overrides:
            key = o.split("=", 1)[0].lstrip("+~")
            for k, where in PAGE_KEYS.items():
                if key == k or key.startswith(k + "."):
                    raise InputError(f"{o}: {k} is set on the page ({where}); drop it from the app's command line")
        self.conf_dir = Path(conf_dir).resolve()
        from ex4d.runners.cli import check_moved_options

        check_moved_options(self.base_overrides, self.conf_dir)  # data=video: one line naming clip=video
        self.preview_count = preview_count
        self._run_lock = threading.Lock()
        self._base_num_frames: int | None = None

    @property
    def base_num_frames(self) -> int:
        """``data.num_frames`` of the base config (a choice equal to it adds no override)."""
        if self._base_num_frames is None:
            self._base_num_frames = int(self.compose(self.base_overrides).data.num_frames)
        return self._base_num_frames

    # -- configs ------------------------------------------------------------------------------------------

    def overrides(self, choices: Choices, stage: str | None = None) -> list[str]:
        """The ``infer.py`` overrides of ``choices`` (after the base overrides; later ones win)."""
        if not str(choices.input).strip():
            raise InputError("no input: upload a video or an image, type a path, or load the example")
        out = [*self.base_overrides, f"input={override_value(choices.input)}"]
        if choices.depth != "auto":
            if choices.depth not in DEPTH_OPTIONS:
                raise InputError(f"depth must be one of {list(DEPTH_OPTIONS)}, got {choices.depth!r}")
            out.append(f"depth={choices.depth}")
        out += camera_overrides(choices.preset, choices.controls, self.conf_dir)
        if choices.num_frames is not None and int(choices.num_frames) != self.base_num_frames:
            out.append(f"data.num_frames={int(choices.num_frames)}")
        if stage is not None:
            out.append(f"stage={stage}")
        return out

    def command(self, choices: Choices, stage: str | None = None) -> str:
        """The ``python infer.py ...`` line that makes the same run."""
        return command_line(self.overrides(choices, stage))

    def compose(self, overrides: list[str]) -> DictConfig:
        """``conf/infer.yaml`` composed with ``overrides``, as ``infer.py`` would (a bad key or option is an
        InputError naming it)."""
        from hydra import compose, initialize_config_dir
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        with _compose_lock:
            try:
                with initialize_config_dir(config_dir=str(self.conf_dir), version_base="1.3", job_name="infer"):
                    return compose(config_name="infer", overrides=overrides)
            except (HydraException, OmegaConfBaseException) as e:
                raise InputError(f"config: {one_line(str(e))}") from e

    def choices_config(self, choices: Choices, stage: str | None = None) -> DictConfig:
        return self.compose(self.overrides(choices, stage))

    # -- preview ------------------------------------------------------------------------------------------

    def preview(self, choices: Choices) -> Preview:
        """Render a few frames of the path (all of them on a GPU) at preview size through the DW-Mesh stage.

        The frames are those of the full run (same path, same pivot), at most :data:`PREVIEW_MAX_SIDE` px.
        Raises InputError / MissingWeightsError with the one-line message (e.g. depth weights missing).
        """
        import tempfile

        import torch
        from PIL import Image

        from ex4d.cameras.plot import plot_camera_path
        from ex4d.data.inputs import clip_options, load_input_clip
        from ex4d.io.video import VideoClip
        from ex4d.runners.stages import build_recon
        from ex4d.runners.validate import check_infer_config
        from ex4d.utils.visualize import contact_sheet_image

        t0 = time.perf_counter()
        cfg = self.choices_config(choices, stage="recon")
        check_infer_config(cfg, "recon")
        opts = preview_clip_options(clip_options(cfg.data))
        clip = load_input_clip(str(cfg.input), **opts)
        n = clip.num_frames
        count = self.preview_count or (n if gpu_available() else PREVIEW_FRAMES)
        frames = preview_frames(n, count)
        sub = VideoClip(clip.frames[frames], clip.fps, clip.source, clip.static, dict(clip.info, frames=frames))
        pipe = build_recon(cfg)
        pipe.camera = FramesOfPath(pipe.camera, n, frames)
        pipe.progress = False
        pipe.keep_meshes = "none"
        with torch.inference_mode():
            result = pipe(sub)
        cols = preview_frames(len(frames), PREVIEW_COLUMNS)  # positions within the previewed frames
        strip = contact_sheet_image({"render": result.color[cols], "mask": result.mask[cols]},
                                    num_columns=len(cols), thumb_height=160, label_width=56,
                                    times=[frames[i] for i in cols])
        # The whole path (every frame), about the preview's pivot.
        w2c = pipe.camera.camera(n, float(result.pivot[2]) - pipe.camera.pivot_offset)
        with tempfile.TemporaryDirectory() as tmp:
            png = plot_camera_path(w2c, result.depth.K, sub.height, sub.width, Path(tmp) / "path.png",
                                   pivot=result.pivot, title=f"camera={choices.preset}", dpi=70)
            plot = np.asarray(Image.open(png).convert("RGB"))
        return Preview(result.color, result.mask, np.asarray(strip), plot, frames, n, (sub.height, sub.width),
                       float(result.mask.mean()), time.perf_counter() - t0)

    # -- runs ---------------------------------------------------------------------------------------------

    def new_run_dir(self, cfg: DictConfig) -> Path:
        """A fresh ``<paths.output_dir>/infer/<date_time>`` folder name, as ``infer.py``'s (``EX4D_RUN_ID``
        names it when set); a suffix keeps two runs of the same second apart."""
        root = Path(cfg.paths.output_dir) / "infer"
        name = os.environ.get("EX4D_RUN_ID") or time.strftime("%Y-%m-%d_%H-%M-%S")
        out, k = root / name, 1
        while out.exists():
            k += 1
            out = root / f"{name}_{k}"
        return out

    def run(self, choices: Choices, stage: str = "recon") -> RunReport:
        """Run ``stage`` (``recon``: the DW-Mesh stage; ``all``: + generation) through ``infer.py``'s runner.

        ``stage=all`` with missing generator weights is refused before any folder is made: the report's
        message is the line ``infer.py`` prints (the missing files and the download command), status 3.
        Progress: the stages' tqdm bars (DW-Mesh frames, denoising steps), which the UI tracks.
        """
        from ex4d.runners.cli import EXIT_INPUT, RunOutcome, exit_code, reason_line, run_guarded
        from ex4d.runners.common import item_log
        from ex4d.runners.infer import resolve_stage, run_infer

        if stage not in STAGES:
            raise InputError(f"stage must be one of {list(STAGES)}, got {stage!r}")
        command = ""
        try:
            overrides = self.overrides(choices, stage)
            command = command_line(overrides)
            cfg = self.compose(overrides)
            resolve_stage(cfg)  # missing generator weights: refused here, before a run folder exists
        except Exception as e:  # noqa: BLE001 - shown as infer.py's one line
            outcome = RunOutcome(None, exit_code(e), reason_line(e))
            return RunReport(None, None, outcome.code, outcome.message(), command)
        if not self._run_lock.acquire(blocking=False):
            return RunReport(None, None, EXIT_INPUT, "error: a run is already going on in this app; wait for it to "
                             "finish", command)
        try:
            out = self.new_run_dir(cfg)
            out.mkdir(parents=True)
            self._write_hydra_record(out, cfg, overrides)
            with open_dict(cfg):
                cfg.output_dir = str(out)
                cfg.camera_name = choices.preset  # camera_<name>.npz, as infer.py names it from its choice
            with item_log(out, "infer.log"):
                outcome = run_guarded(run_infer, cfg)
        finally:
            self._run_lock.release()
        if outcome.ok:
            message = f"done: {out}"
        else:
            message = outcome.message()
        return RunReport(out, outcome.result, outcome.code, message, command)

    def _write_hydra_record(self, out: Path, cfg: DictConfig, overrides: list[str]) -> None:
        """``.hydra/config.yaml`` and ``overrides.yaml``, as Hydra writes them for ``infer.py`` (the composed,
        unresolved config and the command-line overrides)."""
        hydra_dir = out / ".hydra"
        hydra_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, hydra_dir / "config.yaml")
        OmegaConf.save(OmegaConf.create(list(overrides)), hydra_dir / "overrides.yaml")
