"""conf/model and conf/lora options instantiate without weights or network, and bad values fail early."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ex4d.model.adapter import REFERENCE_LORA_TARGETS, LoraSettings
from ex4d.model.wan import TinyWanLoader, WanLoader
from ex4d.utils.errors import InputError

CONF = Path(__file__).resolve().parents[2] / "conf"


def _load(group: str, option: str, **overrides):
    cfg = OmegaConf.create({"paths": {"weights_dir": "/nonexistent/weights"}})
    cfg[group] = OmegaConf.load(CONF / group / f"{option}.yaml")
    for k, v in overrides.items():
        cfg[group][k] = v
    return instantiate(cfg[group])


def test_model_options_instantiate_without_loading():
    real = _load("model", "wan_i2v_14b_480p")
    assert isinstance(real, WanLoader) and not real.is_tiny
    assert real.path == "/nonexistent/weights/Wan2.1-I2V-14B-480P-Diffusers"
    assert real.missing_files()  # nothing there, and nothing was downloaded or loaded
    tiny = _load("model", "wan_tiny")
    assert isinstance(tiny, TinyWanLoader) and tiny.is_tiny


def test_tiny_option_is_labelled_test_only():
    assert "TEST ONLY" in (CONF / "model" / "wan_tiny.yaml").read_text()


def test_lora_options_match_the_schema():
    r16 = _load("lora", "r16")
    assert isinstance(r16, LoraSettings) and (r16.rank, r16.alpha) == (16, 16.0)
    assert r16.targets == list(REFERENCE_LORA_TARGETS) == LoraSettings().targets
    r64 = _load("lora", "r64")
    assert (r64.rank, r64.alpha, r64.targets) == (64, 64.0, r16.targets)


def test_lora_alpha_follows_the_rank_unless_set(compose):
    """lora.rank=64 alone keeps the released scale alpha / rank = 1 (it used to keep alpha 16: scale 0.25)."""
    for option in ("r16", "r64"):
        for rank in (4, 64):
            lora = instantiate(compose("train", [f"lora={option}", f"lora.rank={rank}"]).lora)
            assert (lora.rank, lora.alpha, lora.scale) == (rank, float(rank), 1.0)
    lora = instantiate(compose("train", ["lora.rank=64", "lora.alpha=16"]).lora)  # set: kept
    assert (lora.alpha, lora.scale) == (16.0, 0.25)
    assert LoraSettings(rank=8).alpha == 8.0 and LoraSettings(rank=8, alpha=2).scale == 0.25
    assert instantiate(compose("infer", ["lora.rank=32"]).lora).scale == 1.0
    with pytest.raises(InputError, match="lora.alpha"):
        LoraSettings(rank=8, alpha=0)


def test_bad_lora_value_fails_at_instantiation():
    with pytest.raises((InputError, InstantiationException), match="lora.rank"):  # hydra wraps it
        _load("lora", "r16", rank=0)


def test_the_geometry_encoder_width_is_the_model_options():
    """model.encoder_hidden_channels: null = the model's width (the released adapter's for the 14B options, a narrow
    one for the tiny model); the loader hands it to the components every adapter is built on."""
    from ex4d.model.adapter import ENCODER_HIDDEN_CHANNELS
    from ex4d.model.wan import TINY_ENCODER_HIDDEN_CHANNELS

    assert _load("model", "wan_i2v_14b_480p").encoder_hidden_channels == ENCODER_HIDDEN_CHANNELS
    assert _load("model", "wan_i2v_14b_random").encoder_hidden_channels == ENCODER_HIDDEN_CHANNELS
    tiny = _load("model", "wan_tiny")
    assert tiny.encoder_hidden_channels == TINY_ENCODER_HIDDEN_CHANNELS < ENCODER_HIDDEN_CHANNELS
    assert tiny.load().encoder_hidden_channels == TINY_ENCODER_HIDDEN_CHANNELS
    wide = _load("model", "wan_tiny", encoder_hidden_channels=8)
    assert wide.load().encoder_hidden_channels == 8
    with pytest.raises((InputError, InstantiationException), match="model.encoder_hidden_channels"):
        _load("model", "wan_tiny", encoder_hidden_channels=0)


def test_bad_memory_mode_fails_at_instantiation():
    with pytest.raises((InputError, InstantiationException), match="memory_mode"):
        _load("model", "wan_i2v_14b_480p", memory_mode="cpu")


def test_download_plan_matches_the_config_layout(capsys):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("download_weights", CONF.parent / "tools" / "download_weights.py")
    dw = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = dw  # dataclasses need their module registered
    spec.loader.exec_module(dw)
    folders = {f.folder: f.repo_id for f in dw.plan(["all"], native=True)}
    assert folders["Wan2.1-I2V-14B-480P-Diffusers"] == "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
    assert folders["EX-4D"] == "yihouxiang/EX-4D" and "Wan2.1-I2V-14B-480P" in folders
    assert {"DepthCrafter", "stable-video-diffusion-img2vid", "Depth-Anything-V2-Large-hf"} <= set(folders)
    assert dw.main(["ex4d", "--dry-run", "--local-dir", "/tmp/w"]) == 0  # no network in a dry run
    assert "/tmp/w/EX-4D" in capsys.readouterr().out
    real = _load("model", "wan_i2v_14b_480p")
    assert real.path.endswith("/Wan2.1-I2V-14B-480P-Diffusers")
