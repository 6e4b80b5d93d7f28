"""Every option of every config group composes and instantiates (without weights or network)."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from tests.conftest import CONF

# Groups whose options are objects (``_target_``) and which entry config composes them.
OBJECT_GROUPS = {
    "infer": ["depth", "camera", "mesh", "renderer", "model", "lora"],
    "prepare_data": ["masking"],
    "train": ["optimizer"],  # strategy / logger / trainer / callbacks (Lightning objects): test_train_configs.py
}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


CASES = [(cfg, g, o) for cfg, groups in OBJECT_GROUPS.items() for g in groups for o in _options(g)]


def test_every_group_has_options():
    for _, g, _ in CASES:
        assert _options(g), f"config group {g} has no options"
    assert len(CASES) >= 10


@pytest.mark.parametrize("config_name,group,option", CASES, ids=[f"{g}={o}" for _, g, o in CASES])
def test_option_composes_and_instantiates(compose, config_name, group, option):
    overrides = [f"{group}={option}"]
    if group == "camera" and option == "file":
        overrides.append("camera.path=/nonexistent/trajectory.json")  # read lazily, on call
    cfg = compose(config_name, overrides)
    obj = instantiate(cfg[group])
    assert obj is not None
    assert type(obj).__module__.startswith("ex4d."), type(obj)


def test_renderer_composite_is_checked_and_left_out_of_the_shard_fingerprint(compose):
    """renderer.composite changes colour only: masks (alpha) and so the shards' settings do not depend on it;
    the mesh mode does. A bad value names the key."""
    from hydra.errors import InstantiationException

    from ex4d.runners.prepare_data import shard_settings
    from ex4d.utils.errors import InputError

    by_mask = shard_settings(compose("prepare_data", ["renderer=cpu", "renderer.composite=mask"]))
    by_alpha = shard_settings(compose("prepare_data", ["renderer=cpu", "renderer.composite=unpremultiply"]))
    assert by_mask == by_alpha and "composite" not in str(by_mask)
    assert shard_settings(compose("prepare_data", ["renderer=cpu", "mesh=torn"])) != by_mask
    for option in ("auto", "cpu", "nvdiffrast"):
        assert instantiate(compose("infer", [f"renderer={option}"]).renderer).composite == "auto"
        with pytest.raises((InputError, InstantiationException), match="renderer.composite"):
            instantiate(compose("infer", [f"renderer={option}", "renderer.composite=over"]).renderer)


def test_the_pivot_offset_has_one_home(compose):
    """ex4d.cameras.DEFAULT_PIVOT_OFFSET is the only place the reference's offset is written: every camera option and
    the masking pose samplers leave it null and get it from there; settings fingerprints hash the value, so null and
    the spelled-out value agree (shards written before stay valid)."""
    import re

    from ex4d.cameras import DEFAULT_PIVOT_OFFSET
    from ex4d.runners.prepare_data import shard_settings

    spelled = [str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml")
               if re.search(r"^\s*pivot_offset:\s*[-0-9.]", p.read_text(), flags=re.M)]
    assert not spelled, f"pivot_offset spelled out in {spelled}: leave it null (ex4d.cameras.DEFAULT_PIVOT_OFFSET)"
    for option in _options("camera"):
        if option != "file":
            assert instantiate(compose("infer", [f"camera={option}"]).camera).pivot_offset == DEFAULT_PIVOT_OFFSET
    for masking in ("render", "track_render"):
        cfg = compose("prepare_data", [f"masking={masking}"])
        poses = (cfg.masking.poses if masking == "render" else cfg.masking.render.poses)
        assert instantiate(poses).pivot_offset == (DEFAULT_PIVOT_OFFSET, DEFAULT_PIVOT_OFFSET)
    key = "masking.poses.pivot_offset"
    assert shard_settings(compose("prepare_data", [f"{key}={DEFAULT_PIVOT_OFFSET}"])) == \
        shard_settings(compose("prepare_data"))
    assert shard_settings(compose("prepare_data", [f"{key}=0.5"])) != shard_settings(compose("prepare_data"))
