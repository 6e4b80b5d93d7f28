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
