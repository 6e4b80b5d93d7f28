"""The app's trajectory controls, mapped onto the camera options' own keys (``conf/camera/*.yaml``).

A preset is a ``camera=`` option; each numeric control edits one key of that option's class, so an edited
path is an ordinary ``infer.py`` command line (``camera=orbit camera.yaw_end_deg=45``). A control that the
option's class has no key for is not applicable and is shown disabled.

| control | ReferenceOrbit | ReferenceLoop180 | Orbit | Arc | Dolly | DollyZoom | FocalZoom |
|---|---|---|---|---|---|---|---|
| angle (deg) | ``angle_deg`` | - | ``yaw_end_deg`` | ``yaw_end_deg`` | - | - | - |
| radius (pivot offset) | ``pivot_offset`` | ``pivot_offset`` | ``pivot_offset`` | ``pivot_offset`` | ``pivot_offset`` | ``pivot_offset`` | ``pivot_offset`` |
| height (deg) | - | - | ``pitch_deg`` (+ ``lead_in``) | ``pitch_end_deg`` | - | - | - |
| dolly | - | - | ``dolly`` | ``dolly`` | - | - | - |
| zoom | - | - | - | - | ``fraction`` | ``fraction`` | - |
| focal | - | - | - | - | - | - | ``focal_scale_end`` |

"radius": the orbit radius is the nearest depth of frame 0 plus ``pivot_offset`` (``ex4d.cameras.trajectories``),
so the control sets the offset, in scene units. "zoom" is the reference's zoom by dolly (``zoom_in`` /
``zoom_out``: travel along the view axis as a fraction of that radius; ``dolly_zoom`` also lowers the focal
length so the pivot plane keeps its size); "focal" is the optical zoom of ``focal_zoom`` (per-frame intrinsics,
the camera stays at the source pose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from ex4d.utils.errors import InputError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# Presets offered in the app: every camera option but ``file`` (a path file has no knobs to edit).
PRESETS = ("ref_30", "ref_60", "ref_90", "ref_180", "orbit", "full_180", "arc", "zoom_in", "zoom_out", "dolly_zoom",
           "focal_zoom")
DEFAULT_PRESET = "ref_90"


@dataclass(frozen=True)
class Control:
    """One slider: its label, range and the camera key it sets for each trajectory class."""

    name: str
    label: str
    minimum: float
    maximum: float
    step: float
    keys: dict[str, str]  # trajectory class name -> config key


CONTROLS = (
    Control("angle", "orbit angle (deg): where the path ends", -180.0, 180.0, 1.0,
            {"ReferenceOrbit": "angle_deg", "Orbit": "yaw_end_deg", "Arc": "yaw_end_deg"}),
    Control("radius", "radius: pivot distance behind the nearest surface (scene units)", -1.0, 5.0, 0.05,
            {c: "pivot_offset" for c in ("ReferenceOrbit", "ReferenceLoop180", "Orbit", "Arc", "Dolly", "DollyZoom",
                                         "FocalZoom")}),
    Control("height", "height (deg): camera elevation, + above", -60.0, 60.0, 1.0,
            {"Orbit": "pitch_deg", "Arc": "pitch_end_deg"}),
    Control("dolly", "dolly: fraction of the radius closed by the last frame (< 0 backs away)", -1.0, 0.9, 0.05,
            {"Orbit": "dolly", "Arc": "dolly"}),
    Control("zoom", "zoom (zoom_in / zoom_out / dolly_zoom): travel along the view axis, fraction of the radius",
            0.05, 0.95, 0.05, {"Dolly": "fraction", "DollyZoom": "fraction"}),
    Control("focal", "focal (focal_zoom): focal length at the last frame, times the source's (< 1 widens)",
            0.3, 3.0, 0.05, {"FocalZoom": "focal_scale_end"}),
)
CONTROL_NAMES = tuple(c.name for c in CONTROLS)


def preset_config(preset: str, conf_dir: Path = CONF_DIR):
    """The ``camera=<preset>`` option file as a DictConfig; InputError for an unknown preset."""
    path = Path(conf_dir) / "camera" / f"{preset}.yaml"
    if preset not in PRESETS or not path.is_file():
        raise InputError(f"camera preset {preset!r} is not one of {list(PRESETS)}")
    return OmegaConf.load(path)


def trajectory_class(preset: str, conf_dir: Path = CONF_DIR) -> str:
    """The trajectory class name of a preset (the last part of its ``_target_``)."""
    return str(preset_config(preset, conf_dir)._target_).rsplit(".", 1)[-1]


def _value(cfg, key: str) -> float:
    """The preset's value of ``key``; a key the option leaves null (``pivot_offset``: the class default) reads the
    value the trajectory object takes for it."""
    value = cfg.get(key)
    if value is None:
        from hydra.utils import instantiate

        value = getattr(instantiate(cfg), key)
    return float(value)


def control_defaults(preset: str, conf_dir: Path = CONF_DIR) -> dict[str, float | None]:
    """Control name -> the preset's value (None where the control does not apply to the preset's class)."""
    cfg = preset_config(preset, conf_dir)
    cls = str(cfg._target_).rsplit(".", 1)[-1]
    return {c.name: _value(cfg, c.keys[cls]) if cls in c.keys else None for c in CONTROLS}


def camera_overrides(preset: str, values: dict[str, float | None], conf_dir: Path = CONF_DIR) -> list[str]:
    """``infer.py`` overrides for ``preset`` edited by ``values`` (control name -> value; None or missing =
    the preset's). Only values that differ from the preset are written, so an untouched preset is just
    ``camera=<preset>``. Controls that do not apply to the preset raise InputError."""
    cfg = preset_config(preset, conf_dir)
    cls = str(cfg._target_).rsplit(".", 1)[-1]
    out = [f"camera={preset}"]
    for c in CONTROLS:
        v = values.get(c.name)
        if v is None:
            continue
        if cls not in c.keys:
            raise InputError(f"the {c.name} control does not apply to camera={preset} ({cls})")
        v = float(v)
        if not math.isfinite(v):
            raise InputError(f"the {c.name} control must be a finite number, got {v}")
        key = c.keys[cls]
        if v == _value(cfg, key):
            continue
        out.append(f"camera.{key}={v!r}")
        # Orbit keeps a constant pitch: from a nonzero pitch, frame 0 is the source camera only with lead_in
        # (the path first rises from the source), as Orbit's docstring says.
        if c.name == "height" and cls == "Orbit" and v != 0.0 and not cfg.lead_in:
            out.append("camera.lead_in=true")
    return out
