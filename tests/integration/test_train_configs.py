"""Every option of the training groups composes and constructs (strategies: construction only; DeepSpeed
refuses CPU training, and constructing a strategy touches no GPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from ex4d.runners.train import build_callbacks, build_logger, build_strategy
from tests.conftest import CONF


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_have_the_promised_options():
    assert set(_options("strategy")) == {"auto", "ddp", "deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload",
                                         "fsdp"}
    assert {"default", "cpu", "gpu"} <= set(_options("trainer"))
    assert {"wandb", "csv", "none"} <= set(_options("logger"))
    assert {"ex4d_paper", "no_dwmesh", "rank_sweep", "mask_mix"} <= set(_options("experiment"))


@pytest.mark.parametrize("option", _options("strategy"))
def test_strategy_constructs(compose, option):
    if option.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed not installed (pip install deepspeed==0.19.8, DS_BUILD_OPS=0)")
    cfg = compose("train", [f"strategy={option}"])
    strategy = build_strategy(cfg.strategy)
    if option == "auto":
        assert strategy == "auto"
        return
    assert type(strategy).__module__.startswith("lightning.")
    if option.startswith("deepspeed"):
        assert strategy.exclude_frozen_parameters  # checkpoints without the frozen backbone
        zero = strategy.config["zero_optimization"]
        assert zero["stage"] == (2 if option == "deepspeed_zero2" else 3)
        assert ("offload_optimizer" in zero) == option.endswith("offload")


def _deepspeed_stub(monkeypatch):
    """A stand-in ``deepspeed`` module with the one attribute Lightning's DeepSpeedStrategy constructor touches (its
    logger level), and Lightning's availability flags set: the strategy object is built as train.py builds it,
    on a CPU, without the deepspeed package (which is only imported where the engine starts: Strategy.setup)."""
    import logging
    import sys
    import types

    import lightning.pytorch.strategies.deepspeed as lds

    stub = types.ModuleType("deepspeed")
    stub.utils = types.SimpleNamespace(logging=types.SimpleNamespace(logger=logging.getLogger("deepspeed-stub")))
    monkeypatch.setitem(sys.modules, "deepspeed", stub)
    monkeypatch.setattr(lds, "_DEEPSPEED_AVAILABLE", True)
    monkeypatch.setattr(lds, "_DEEPSPEED_GREATER_EQUAL_0_16", True, raising=False)
    return stub


# What train.py and the module read from each strategy: (class, ZeRO stage, optimizer offloaded, checkpoint policy of
# checkpoint_policy=auto, compile_blocks=auto).
STRATEGIES = {
    "auto": ("auto", None, False, "save_self_attention", False),
    "ddp": ("DDPStrategy", None, False, "save_self_attention", False),
    "fsdp": ("FSDPStrategy", None, False, "full", False),
    "deepspeed_zero2": ("DeepSpeedStrategy", 2, False, "save_self_attention", True),
    "deepspeed_zero3": ("DeepSpeedStrategy", 3, False, "full", False),
    "deepspeed_zero3_offload": ("DeepSpeedStrategy", 3, True, "full", False),
}


def test_strategy_table_lists_every_option():
    assert set(STRATEGIES) == set(_options("strategy"))


@pytest.mark.parametrize("option", sorted(STRATEGIES))
def test_strategy_configs_without_deepspeed(compose, monkeypatch, option):
    """Every conf/strategy option composes and builds (build_strategy, as train.py) into what train.py and the module
    expect, on a CPU, with no deepspeed package: the DeepSpeed ones against a stub (_deepspeed_stub), so the YAML's
    keys are checked against the real constructor and the ZeRO settings read back from its config."""
    import sys

    from ex4d.runners.train import resolve_compile_blocks
    from ex4d.training.checkpointing import resolve_checkpoint_policy
    from ex4d.training.strategy import strategy_info

    had_deepspeed = "deepspeed" in sys.modules
    # only where needed, after our imports: a stub without a real spec confuses packages that probe for deepspeed
    stub = _deepspeed_stub(monkeypatch) if option.startswith("deepspeed") else None
    cls, stage, offloaded, policy, compiled = STRATEGIES[option]
    cfg = compose("train", [f"strategy={option}"])
    strategy = build_strategy(cfg.strategy)
    assert (strategy if cls == "auto" else type(strategy).__name__) == cls
    assert resolve_checkpoint_policy("auto", None if cls == "auto" else strategy) == policy
    assert resolve_compile_blocks(cfg) is compiled
    assert strategy_info(strategy).offloads_optimizer is offloaded  # what the module's optimizer reads
    if stage is not None:
        assert strategy.config["zero_optimization"]["stage"] == stage and strategy.zero_stage_3 == (stage == 3)
        assert strategy.exclude_frozen_parameters  # checkpoints without the frozen backbone
    assert had_deepspeed or sys.modules.get("deepspeed", stub) is stub  # nothing imported the real package


def test_memory_mode_is_an_inference_setting_refused_by_train(compose, tmp_path):
    """model.memory_mode places the model for infer.py / evaluate.py; the training module places it itself, so
    conf/train.yaml leaves it null and a value is refused (it used to be ignored silently)."""
    from ex4d.runners.train import run_train
    from ex4d.utils.errors import InputError

    for model in _options("model"):
        assert compose("train", [f"model={model}"]).model.memory_mode is None
        assert compose("infer", [f"model={model}"]).model.memory_mode in ("auto", "gpu", "offload", "low_vram")
    cfg = compose("train", ["model=wan_tiny", "data=synthetic", "model.memory_mode=low_vram", f"output_dir={tmp_path}"])
    with pytest.raises(InputError, match="model.memory_mode=low_vram: an inference setting"):
        run_train(cfg)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_experiments_are_training_only(compose):
    """conf/experiment holds training recipes (`override /data: monocular`, ...): only train.py offers the group."""
    from hydra.errors import ConfigCompositionException

    for entry in ("infer", "evaluate", "prepare_data", "mask_preview"):
        with pytest.raises(ConfigCompositionException, match="experiment"):
            compose(entry, ["experiment=ex4d_paper"])
    for experiment in _options("experiment"):
        assert "python train.py" in (CONF / "experiment" / f"{experiment}.yaml").read_text()


@pytest.mark.parametrize("option", _options("logger"))
def test_logger_constructs(compose, tmp_path, option):
    if option == "wandb" and importlib.util.find_spec("wandb") is None:
        pytest.skip("wandb not installed (pip install wandb==0.31.0)")
    cfg = compose("train", [f"logger={option}"])
    logger = build_logger(cfg.logger, tmp_path, "run-1234", "run")
    if option == "none":
        assert logger is False
        return
    assert Path(logger.save_dir) == tmp_path
    if option == "wandb":  # offline by default; id and name from the run (construction starts no W&B process)
        assert logger._wandb_init["id"] == "run-1234" and logger._offline


@pytest.mark.parametrize("option", _options("trainer"))
def test_trainer_composes_and_cpu_ones_construct(compose, tmp_path, option):
    cfg = compose("train", [f"trainer={option}", f"output_dir={tmp_path}"])
    assert cfg.trainer.use_distributed_sampler is False
    if cfg.trainer.accelerator == "gpu":
        return  # needs CUDA to construct
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, default_root_dir=str(tmp_path))
    assert trainer.max_steps == cfg.trainer.max_steps


@pytest.mark.parametrize("option", _options("callbacks"))
def test_callbacks_construct(compose, tmp_path, option):
    cfg = compose("train", [f"callbacks={option}", f"output_dir={tmp_path}"])
    callbacks = build_callbacks(cfg.callbacks)
    names = {type(c).__name__ for c in callbacks}
    if option == "default":
        assert names == {"ModelCheckpoint", "AdapterCheckpoint", "TrainingMonitor"}
        ckpt = next(c for c in callbacks if type(c).__name__ == "ModelCheckpoint")
        assert Path(ckpt.dirpath) == tmp_path / "checkpoints"


def test_periodic_checkpoints_land_on_every_boundary_also_at_epoch_ends(compose, tmp_path):
    """callbacks.model_checkpoint every 3 steps over 3-batch epochs: every boundary is an epoch's last batch, with
    validation every 4 steps counted across epochs, as trainer=default counts it. All of 3, 6, 9 are saved."""
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel, RandomDataset
    from torch.utils.data import DataLoader

    class Boring(BoringModel):
        def train_dataloader(self):
            return DataLoader(RandomDataset(32, 3), batch_size=1)

        def val_dataloader(self):
            return DataLoader(RandomDataset(32, 2), batch_size=1)

    cfg = compose("train", [f"output_dir={tmp_path}", "callbacks.model_checkpoint.every_n_train_steps=3",
                            "callbacks.model_checkpoint.save_top_k=-1"])
    ckpt = instantiate(cfg.callbacks.model_checkpoint)
    trainer = L.Trainer(accelerator="cpu", max_steps=9, max_epochs=-1, val_check_interval=4,
                        check_val_every_n_epoch=cfg.trainer.check_val_every_n_epoch, num_sanity_val_steps=0,
                        callbacks=[ckpt], logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Boring())
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "last.ckpt", "step_0000003.ckpt", "step_0000006.ckpt", "step_0000009.ckpt"]


@pytest.mark.parametrize("model", ["wan_i2v_14b_480p", "wan_i2v_14b_random"])
@pytest.mark.parametrize("trainer", ["cpu", "default"])
def test_training_a_14b_model_without_a_gpu_is_refused_before_loading(compose, tmp_path, monkeypatch, model, trainer):
    from ex4d.model import wan
    from ex4d.runners.train import run_train
    from ex4d.utils.errors import InputError

    if trainer == "default" and torch.cuda.is_available():
        pytest.skip("trainer=default trains on the GPU here")

    def no_load(self):
        raise AssertionError("weights loaded before the device check")

    for loader in (wan.WanLoader, wan.RandomWanLoader, wan.TinyWanLoader):
        monkeypatch.setattr(loader, "load", no_load)
    cfg = compose("train", [f"model={model}", f"trainer={trainer}", "data=synthetic", f"output_dir={tmp_path / 'run'}"])
    accelerator = "cpu" if trainer == "cpu" else "auto"
    with pytest.raises(InputError, match=rf"model=ex4d\.model\.wan\.\w+ has a 16\.4 B-parameter DiT.*"
                                         rf"trainer\.accelerator={accelerator}.*model=wan_tiny data=tiny trainer=cpu"):
        run_train(cfg)
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_cpu_check_lets_the_test_models_through(compose):
    from ex4d.runners.train import check_training_device, training_on_cpu

    cfg = compose("train", ["model=wan_tiny", "trainer=cpu"])
    assert training_on_cpu(cfg.trainer)
    check_training_device(cfg)  # tiny: fine
    small = compose("train", ["model=wan_i2v_14b_random", "trainer=cpu", "+model.transformer.num_layers=1",
                              "+model.transformer.num_attention_heads=2", "+model.transformer.attention_head_dim=12",
                              "+model.transformer.ffn_dim=32", "+model.transformer.text_dim=16",
                              "+model.transformer.added_kv_proj_dim=24", "+model.text_encoder.d_model=16"])
    check_training_device(small)  # random weights at small shapes: fine
    assert not training_on_cpu(compose("train", ["trainer=gpu"]).trainer) or not torch.cuda.is_available()


def test_module_and_datamodule_construct_without_loading(compose, tmp_path):
    cfg = compose("train", [f"output_dir={tmp_path}"])  # the 14B model: constructing loads nothing
    module = instantiate(cfg.module)
    assert module.model is None and module.lora.rank == 16 and module.flow.shift == 5.0
    assert module.checkpoint_policy == "auto"  # decided in build, from the strategy
    assert module.sample.erosion_min == module.sample.erosion_max == 1  # the loader erodes already
    datamodule = instantiate(cfg.datamodule)
    assert datamodule.train_set is None and datamodule.batch_size == 1


def test_wandb_default_falls_back_to_csv_without_wandb(compose, tmp_path, monkeypatch):
    import ex4d.runners.train as runner

    real = runner.importlib.util.find_spec
    monkeypatch.setattr(runner.importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = compose("train", ["logger=wandb"])
    logger = build_logger(cfg.logger, tmp_path, "run-1", "run")
    assert type(logger).__name__ == "CSVLogger" and Path(logger.log_dir) == tmp_path / "csv"


def test_prompt_cache_round_trip_skips_the_text_encoder(tmp_path):
    from ex4d.model.adapter import LoraSettings
    from ex4d.model.wan import TinyWanLoader
    from ex4d.training.module import EX4DTrainingModule
    from ex4d.training.optim import OptimizerSettings

    def module(loader):
        m = EX4DTrainingModule(loader, LoraSettings(rank=2, alpha=2), OptimizerSettings(), num_val_samples=0,
                               prompt_cache=str(tmp_path / "prompts.safetensors"))
        m.build()
        return m

    first = module(TinyWanLoader())
    assert (tmp_path / "prompts.safetensors").is_file()

    class NoTextEncoder(TinyWanLoader):  # fails if the cache is not used
        def load(self):
            comps = super().load()
            comps.text_encoder = None
            return comps

    second = module(NoTextEncoder())
    assert (second.text_empty == first.text_empty).all()


@pytest.mark.parametrize("strategy, value, expected", [
    ("deepspeed_zero2", "auto", True), ("auto", "auto", False), ("ddp", "auto", False), ("fsdp", "auto", False),
    ("deepspeed_zero3", "auto", False), ("deepspeed_zero3_offload", "auto", False), ("deepspeed_zero3", False, False),
    ("ddp", True, True), ("auto", True, True),
])
def test_compile_blocks_auto_is_on_only_where_measured(compose, strategy, value, expected):
    from ex4d.runners.train import resolve_compile_blocks

    cfg = compose("train", [f"strategy={strategy}", f"module.compile_blocks={str(value).lower()}"])
    assert resolve_compile_blocks(cfg) is expected and cfg.module.compile_blocks is expected


def test_compile_blocks_true_with_zero3_is_refused_before_loading(compose, tmp_path):
    from ex4d.runners.train import run_train
    from ex4d.utils.errors import InputError

    cfg = compose("train", ["strategy=deepspeed_zero3", "module.compile_blocks=true", f"output_dir={tmp_path}"])
    with pytest.raises(InputError, match="compile_blocks=true does not work with DeepSpeed ZeRO-3"):
        run_train(cfg)
    from ex4d.runners.train import resolve_compile_blocks

    with pytest.raises(InputError, match="module.compile_blocks"):
        resolve_compile_blocks(compose("train", ["module.compile_blocks=sometimes"]))
