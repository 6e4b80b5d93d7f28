"""One answer to "which strategy / is the backbone sharded" (ex4d.training.strategy), for the strategy configs the
runner reads and for the Lightning objects the module sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ex4d.training.strategy import StrategyInfo, strategy_info

CONF = Path(__file__).resolve().parents[2] / "conf" / "strategy"

# option -> (Lightning class, ZeRO stage, shards the backbone, offloads the optimizer)
EXPECTED = {
    "auto": ("auto", 0, False, False),
    "ddp": ("DDPStrategy", 0, False, False),
    "fsdp": ("FSDPStrategy", 0, True, False),
    "deepspeed_zero2": ("DeepSpeedStrategy", 2, False, False),
    "deepspeed_zero3": ("DeepSpeedStrategy", 3, True, False),
    "deepspeed_zero3_offload": ("DeepSpeedStrategy", 3, True, True),
}


def test_every_strategy_config_is_described():
    options = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert options == sorted(EXPECTED), "a new strategy option: add its expected description here"
    for option, (name, stage, sharded, offload) in EXPECTED.items():
        info = strategy_info(OmegaConf.load(CONF / f"{option}.yaml"))
        assert (info.name, info.zero_stage, info.shards_parameters, info.offloads_optimizer) == (
            name, stage, sharded, offload), option
        assert info.deepspeed == (name == "DeepSpeedStrategy") and info.fsdp == (name == "FSDPStrategy")


def test_lightning_objects_and_names_agree_with_the_configs():
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, SingleDeviceStrategy

    assert strategy_info(None) == StrategyInfo("none")
    assert strategy_info(FSDPStrategy()).shards_parameters
    assert not strategy_info(DDPStrategy()).shards_parameters
    assert strategy_info(SingleDeviceStrategy("cpu")).name == "SingleDeviceStrategy"
    assert strategy_info("deepspeed_stage_3_offload") == StrategyInfo("DeepSpeedStrategy", 3, True)
    assert strategy_info("deepspeed") == StrategyInfo("DeepSpeedStrategy", 2, False)

    class DeepSpeedStrategy:  # Lightning's, as far as we read it: the engine config it built
        config = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}

    assert strategy_info(DeepSpeedStrategy()) == StrategyInfo("DeepSpeedStrategy", 3, True)
    DeepSpeedStrategy.config = {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "none"}}}
    assert strategy_info(DeepSpeedStrategy()) == StrategyInfo("DeepSpeedStrategy", 2, False)


def test_real_deepspeed_strategy_object():
    pytest.importorskip("deepspeed")
    from lightning.pytorch.strategies import DeepSpeedStrategy

    assert strategy_info(DeepSpeedStrategy(stage=3)).shards_parameters
    assert strategy_info(DeepSpeedStrategy(stage=2, offload_optimizer=True)) == StrategyInfo("DeepSpeedStrategy", 2, True)
