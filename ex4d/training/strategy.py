"""Which training strategy runs, and whether it shards the backbone: the one place that answers it.

Every question the code asks about the strategy (is it DeepSpeed, which ZeRO stage, does it shard the block
parameters, does it offload the optimizer) goes through :func:`strategy_info`, for a Lightning strategy object
(inside the LightningModule and callbacks) as for a strategy config (``conf/strategy/*.yaml``: ``_target_`` +
keys, read by the runner before anything loads), so the two sides can never disagree.

Strategies are recognised by their Lightning class name: a config's ``_target_`` ends with it, an object's type
has it. Nothing here imports Lightning or DeepSpeed.

Sharded (``shards_parameters``): DeepSpeed ZeRO-3, FSDP and Lightning's ModelParallelStrategy partition the block
parameters, frozen backbone included, over the ranks: reading a parameter's full value is a collective, module
hooks gather parameters, and selective checkpointing and regional compile have not run there
(:func:`ex4d.training.checkpointing.resolve_checkpoint_policy`, ``module.compile_blocks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEEPSPEED = "DeepSpeedStrategy"
FSDP = "FSDPStrategy"
MODEL_PARALLEL = "ModelParallelStrategy"
# Lightning's string names of the DeepSpeed presets (``Trainer(strategy="deepspeed_stage_3")``) -> ZeRO stage.
_DEEPSPEED_NAMES = {"deepspeed": 2, "deepspeed_stage_1": 1, "deepspeed_stage_2": 2, "deepspeed_stage_2_offload": 2,
                    "deepspeed_stage_3": 3, "deepspeed_stage_3_offload": 3}


@dataclass(frozen=True)
class StrategyInfo:
    """What the code needs to know about a training strategy.

    Attributes:
        name: the Lightning class name (``DeepSpeedStrategy``, ``FSDPStrategy``, ``DDPStrategy``, ...) or the
            string a config gave (``auto``, ``ddp``); ``none`` when there is no strategy (tests, plain loops).
        zero_stage: DeepSpeed ZeRO stage (1-3); 0 when not DeepSpeed.
        offloads_optimizer: the optimizer state lives on the CPU (ZeRO-Offload: needs DeepSpeed's CPU Adam).
    """

    name: str
    zero_stage: int = 0
    offloads_optimizer: bool = False

    @property
    def deepspeed(self) -> bool:
        return self.name == DEEPSPEED

    @property
    def fsdp(self) -> bool:
        return self.name == FSDP

    @property
    def shards_parameters(self) -> bool:
        """The block parameters (frozen backbone included) are partitioned over the ranks."""
        return (self.deepspeed and self.zero_stage == 3) or self.name in (FSDP, MODEL_PARALLEL)


def _offload_on(value) -> bool:
    """A DeepSpeed offload entry: ``{"device": "cpu", ...}`` (engine config) or a bool (Lightning argument)."""
    if isinstance(value, Mapping):
        return value.get("device", "none") not in (None, "none")
    return bool(value)


def strategy_info(strategy) -> StrategyInfo:
    """Describe ``strategy``: a Lightning strategy object, a strategy config (mapping with ``_target_``, as
    ``cfg.strategy``), a strategy name string (``auto``, ``ddp``, ``deepspeed_stage_3``), or None."""
    if strategy is None:
        return StrategyInfo("none")
    if isinstance(strategy, str):
        if strategy in _DEEPSPEED_NAMES:
            return StrategyInfo(DEEPSPEED, _DEEPSPEED_NAMES[strategy], strategy.endswith("_offload"))
        if strategy.startswith("fsdp"):
            return StrategyInfo(FSDP)
        return StrategyInfo(strategy)
    if isinstance(strategy, Mapping):  # a config node: conf/strategy/<name>.yaml
        target = strategy.get("_target_")
        if target is None:  # strategy=auto: {name: auto}
            return strategy_info(str(strategy.get("name", "auto")))
        name = str(target).rsplit(".", 1)[-1]
        if name != DEEPSPEED:
            return StrategyInfo(name)
        return StrategyInfo(DEEPSPEED, int(strategy.get("stage", 2) or 0), _offload_on(strategy.get("offload_optimizer")))
    name = type(strategy).__name__  # a Lightning strategy object
    if name != DEEPSPEED:
        return StrategyInfo(name)
    config = getattr(strategy, "config", None)  # the DeepSpeed engine config Lightning built
    zero = (config.get("zero_optimization") or {}) if isinstance(config, Mapping) else {}
    stage = int(zero.get("stage", 3 if getattr(strategy, "zero_stage_3", False) else 0) or 0)
    return StrategyInfo(DEEPSPEED, stage, _offload_on(zero.get("offload_optimizer")))


__all__ = ["StrategyInfo", "strategy_info"]
