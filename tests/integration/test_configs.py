"""Every option of every config group composes and instantiates (without weights or network)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

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


# The full matrix: every option of every group in the defaults list of the three entry configs, composed into
# that config (as `python <entry>.py <group>=<option>` would) and every `_target_` node it adds instantiated
# (constructing loads no weights). Read from the YAML files, so a new group or option is in it without an edit.
ENTRIES = ("infer", "train", "evaluate")
# Options that compose but are not instantiated here, and why (each is checked elsewhere, named).
NOT_INSTANTIATED = {
    ("train", "strategy", "deepspeed_zero2"): "needs the deepspeed package: test_train_configs.py "
                                              "test_strategy_configs_without_deepspeed constructs it with a stub",
    ("train", "strategy", "deepspeed_zero3"): "as deepspeed_zero2",
    ("train", "strategy", "deepspeed_zero3_offload"): "as deepspeed_zero2",
}
# Options whose construction needs hardware or packages this machine may lack: instantiated where they are present.
NEEDS = {
    ("train", "trainer", "gpu"): lambda: torch.cuda.is_available(),
    ("evaluate", "logger", "wandb"): lambda: importlib.util.find_spec("wandb") is not None,  # train.py: CSV fallback
}


def _defaults(entry: str) -> list[tuple[str, str]]:
    """(override key, group folder) of each group in conf/<entry>.yaml's defaults list (hydra's own excluded)."""
    out = []
    for item in OmegaConf.load(CONF / f"{entry}.yaml").defaults:
        if isinstance(item, str):  # _self_
            continue
        (key, _), = item.items()
        group = key.removeprefix("override ").split("@")[0].lstrip("/")
        if group != "hydra":
            out.append((key, group))
    return out


def _package(key: str, group: str, option: str) -> str:
    """Where the option lands: `group@pkg` in the defaults list, else the file's `# @package` header, else group."""
    if "@" in key:
        return key.split("@", 1)[1]
    first = (CONF / group / f"{option}.yaml").read_text().splitlines()[0]
    if first.startswith("# @package "):
        pkg = first.removeprefix("# @package ").strip()
        return "" if pkg == "_global_" else pkg
    return group


MATRIX = [(e, key, g, o) for e in ENTRIES for key, g in _defaults(e) for o in _options(g)]


def _targets(node, path: str = ""):
    """The outermost `_target_` nodes under node: (path, node)."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
            return
        for k in node:
            if isinstance(node._get_node(k), DictConfig):
                yield from _targets(node[k], f"{path}.{k}" if path else str(k))


def test_the_matrix_covers_every_group_and_option():
    groups = {(e, g) for e, _, g, _ in MATRIX}
    for entry, expect in {"infer": {"clip", "data", "depth", "camera", "mesh", "renderer", "model", "lora", "generate",
                                    "recon", "paths"},
                          "train": {"data", "model", "lora", "optimizer", "strategy", "trainer", "callbacks",
                                    "generate", "logger", "paths", "experiment"},
                          "evaluate": {"benchmark", "metrics", "clip", "data", "depth", "mesh", "renderer", "model",
                                       "lora", "generate", "recon", "logger", "paths"}}.items():
        assert expect <= {g for e, g in groups if e == entry}, entry
    assert len(MATRIX) > 100


@pytest.mark.parametrize("entry,key,group,option", MATRIX, ids=[f"{e}:{k}={o}" for e, k, _, o in MATRIX])
def test_every_option_of_every_entry_composes_and_instantiates(compose, tmp_path, entry, key, group, option):
    from ex4d.data.inputs import clip_options
    from ex4d.runners.train import build_callbacks, build_logger, build_strategy
    from ex4d.utils.errors import InputError

    overrides = [f"{key.removeprefix('override ')}={option}"]
    if entry == "train":
        overrides.append(f"output_dir={tmp_path}")
    if group == "camera" and option == "file":
        overrides.append("camera.path=/nonexistent/trajectory.json")  # read lazily, on call
    cfg = compose(entry, overrides)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    if entry in ("infer", "evaluate"):
        if group == "data":  # training sets: they compose, and the inference pipeline refuses them with one line
            with pytest.raises(InputError, match="training data option"):
                clip_options(cfg.data)
            return
        clip_options(cfg.data)  # the inference inputs (conf/clip at data.*): checked as infer.py checks them
    reason = NOT_INSTANTIATED.get((entry, group, option))
    if reason is not None:  # composed; the option itself: see the reason; the rest is built
        assert cfg[group]._target_
        _build_train_parts(cfg, tmp_path, strategy=False)
        return
    needs = NEEDS.get((entry, group, option))
    if needs is not None and not needs():
        pytest.skip(f"{entry}: {group}={option} needs hardware or a package this machine lacks")
    if entry == "train":  # what train.py builds from any option: every part, as it builds them (loads nothing)
        _build_train_parts(cfg, tmp_path)
        return
    package = _package(key, group, option)
    node = OmegaConf.select(cfg, package) if package else cfg
    if group == "logger":  # evaluate: the save_dir is the results folder (ex4d.runners.evaluate.log_to_logger)
        if node.get("_target_"):
            instantiate(node, **{k: str(tmp_path) for k in ("save_dir",) if node.get(k, "") is None})
        return
    if group == "recon":  # a value group: checked as infer.py / evaluate.py check it
        from ex4d.pipelines.recon import check_recon_options
        from ex4d.runners.validate import RECON_KEYS

        assert set(node) <= set(RECON_KEYS), sorted(set(node) - set(RECON_KEYS))
        check_recon_options(**node)
        return
    targets = list(_targets(node))
    for path, target in targets:
        assert instantiate(target) is not None, f"{package}.{path}"
    if group not in ("clip", "paths"):  # value groups: checked above (clip) or interpolated (paths)
        assert targets, f"{entry}: {group}={option} has nothing to instantiate"


def _build_train_parts(cfg: DictConfig, tmp_path, strategy: bool = True) -> None:
    from ex4d.runners.train import build_callbacks, build_logger, build_strategy
    from ex4d.runners.validate import check_train_config

    check_train_config(cfg)
    module = instantiate(cfg.module)
    assert module.model is None and type(module.sample).__name__ == "GenerateSettings"
    assert instantiate(cfg.datamodule).train_set is None
    if strategy:
        built = build_strategy(cfg.strategy)
        assert built == "auto" or type(built).__module__.startswith("lightning."), built
    build_logger(cfg.get("logger"), tmp_path, "run-1", "run")  # wandb missing: CSV, as train.py does
    build_callbacks(cfg.get("callbacks"))
    if cfg.trainer.accelerator != "gpu":
        instantiate(cfg.trainer, logger=False, enable_checkpointing=False, default_root_dir=str(tmp_path))


def test_renderer_composite_is_checked_and_left_out_of_the_shard_fingerprint(compose):
    """renderer.composite changes colour only: masks (alpha) and so the shards' settings do not depend on it;
    the mesh mode does. A bad value names the key."""
    from hydra.errors import InstantiationException

    from ex4d.runners.shards import shard_settings
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
    from ex4d.runners.shards import shard_settings

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
