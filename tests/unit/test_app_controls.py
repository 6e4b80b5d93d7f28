"""The app's trajectory controls map onto the camera options' own keys (ex4d.app.controls)."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ex4d.app.controls import CONF_DIR, CONTROLS, PRESETS, camera_overrides, control_defaults, trajectory_class
from ex4d.cameras import camera_centers
from ex4d.cameras.trajectories import Arc, Dolly, Orbit, ReferenceOrbit, starts_at_source
from ex4d.utils.errors import InputError

MIN_DEPTH = 2.564


def _camera(overrides: list[str]):
    """The camera option of ``overrides`` (``camera=<preset>`` then ``camera.<key>=<value>`` lines), built."""
    preset = overrides[0].split("=", 1)[1]
    cfg = OmegaConf.load(CONF_DIR / "camera" / f"{preset}.yaml")
    cfg.merge_with_dotlist([o.removeprefix("camera.") for o in overrides[1:]])
    return instantiate(cfg)


def test_every_camera_option_but_file_is_a_preset():
    options = {p.stem for p in (CONF_DIR / "camera").glob("*.yaml")}
    assert set(PRESETS) == options - {"file"}


@pytest.mark.parametrize("preset", PRESETS)
def test_defaults_are_the_preset_values_and_an_untouched_preset_is_one_override(preset):
    d = control_defaults(preset)
    assert d["radius"] == 0.15  # every preset's pivot_offset
    assert camera_overrides(preset, d) == [f"camera={preset}"]
    assert camera_overrides(preset, {}) == [f"camera={preset}"]
    cls = trajectory_class(preset)
    for c in CONTROLS:
        assert (d[c.name] is not None) == (cls in c.keys), (preset, c.name)


def test_the_table_in_the_module_docstring():
    assert control_defaults("ref_90")["angle"] == 90.0
    assert control_defaults("orbit")["angle"] == 90.0 and control_defaults("orbit")["height"] == 0.0
    assert control_defaults("arc")["height"] == 20.0 and control_defaults("arc")["dolly"] == 0.0
    assert control_defaults("zoom_in")["zoom"] == 0.5 and control_defaults("zoom_in")["angle"] is None
    assert control_defaults("ref_180")["angle"] is None


def test_edited_presets_build_the_classes_with_those_values():
    w2c = _camera(camera_overrides("orbit", {"angle": 45, "dolly": 0.3, "radius": 0.5}))(9, MIN_DEPTH)
    torch.testing.assert_close(w2c, Orbit(0, 45, dolly=0.3, pivot_offset=0.5)(9, MIN_DEPTH), atol=0, rtol=0)
    w2c = _camera(camera_overrides("ref_60", {"angle": 30}))(49, MIN_DEPTH)
    torch.testing.assert_close(w2c, ReferenceOrbit(30)(49, MIN_DEPTH), atol=0, rtol=0)
    w2c = _camera(camera_overrides("arc", {"height": -10, "angle": -40}))(9, MIN_DEPTH)
    torch.testing.assert_close(w2c, Arc(0, -40, 0, -10)(9, MIN_DEPTH), atol=0, rtol=0)
    w2c = _camera(camera_overrides("zoom_out", {"zoom": 0.25}))(5, MIN_DEPTH)
    torch.testing.assert_close(w2c, Dolly("out", fraction=0.25)(5, MIN_DEPTH), atol=0, rtol=0)


def test_orbit_height_starts_at_the_source_through_lead_in():
    overrides = camera_overrides("orbit", {"height": 20})
    assert overrides == ["camera=orbit", "camera.pitch_deg=20.0", "camera.lead_in=true"]
    w2c = _camera(overrides)(13, MIN_DEPTH)
    assert starts_at_source(w2c)
    assert camera_centers(w2c)[-1, 1] < 0  # above the source (OpenCV y is down)
    assert camera_overrides("full_180", {"height": 20}) == ["camera=full_180", "camera.pitch_deg=20.0"]  # has lead_in


@pytest.mark.parametrize("preset", PRESETS)
def test_every_slider_end_is_a_valid_path_that_starts_at_the_source(preset):
    d = control_defaults(preset)
    for c in CONTROLS:
        if d[c.name] is None:
            continue
        for v in (c.minimum, c.maximum):
            w2c = _camera(camera_overrides(preset, {c.name: v}))(9, MIN_DEPTH)
            assert w2c.shape == (9, 4, 4) and torch.isfinite(w2c).all(), (preset, c.name, v)
            assert starts_at_source(w2c), (preset, c.name, v)


def test_a_control_the_preset_has_no_key_for_is_refused():
    with pytest.raises(InputError, match="zoom control does not apply to camera=orbit"):
        camera_overrides("orbit", {"zoom": 0.3})
    with pytest.raises(InputError, match="angle control must be a finite number"):
        camera_overrides("orbit", {"angle": float("nan")})
    with pytest.raises(InputError, match="not one of"):
        camera_overrides("file", {})
