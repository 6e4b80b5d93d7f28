"""AdamW settings schema and the learning-rate schedule."""

import math

import pytest
import torch

from ex4d.training.optim import OptimizerSettings, build_optimizer, lr_factor
from ex4d.utils.errors import InputError


def test_warmup_then_constant_cosine_linear():
    s = OptimizerSettings(warmup_steps=4)
    assert [lr_factor(i, s) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    c = OptimizerSettings(warmup_steps=2, schedule="cosine", total_steps=12, min_lr_ratio=0.1)
    assert lr_factor(2, c) == pytest.approx(1.0)
    assert lr_factor(7, c) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(12, c) == pytest.approx(0.1) and lr_factor(50, c) == pytest.approx(0.1)
    lin = OptimizerSettings(schedule="linear")
    assert lr_factor(5, lin, total_steps=10) == pytest.approx(0.5)  # total from trainer.max_steps


@pytest.mark.parametrize("field,value", [("lr", 0.0), ("betas", [0.9]), ("weight_decay", -1.0), ("warmup_steps", -1),
                                         ("schedule", "step"), ("impl", "apex"), ("min_lr_ratio", 2.0)])
def test_bad_settings_name_the_key(field, value):
    with pytest.raises(InputError, match=f"optimizer.{field}"):
        OptimizerSettings(**{field: value})


def test_build_optimizer_takes_trainable_params_only():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    b.requires_grad_(False)
    opt = build_optimizer([*a.parameters(), *b.parameters()], OptimizerSettings(lr=1e-3, betas=[0.8, 0.9]))
    assert isinstance(opt, torch.optim.AdamW)
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
    assert opt.param_groups[0]["betas"] == (0.8, 0.9) and opt.param_groups[0]["weight_decay"] == 0.01
    with pytest.raises(InputError, match="no trainable"):
        build_optimizer(b.parameters(), OptimizerSettings())


def test_fused_adamw_is_not_picked_where_lightning_refuses_it():
    # Lightning's AMP plugin raises at the first step when gradients are clipped for an optimizer that
    # unscales inside step() (fused AdamW): python train.py on a GPU crashed there.
    from ex4d.training.optim import fused_conflict

    assert fused_conflict("bf16-mixed", 1.0, deepspeed=False)
    assert not fused_conflict("bf16-mixed", 0.0, deepspeed=False)
    assert not fused_conflict("bf16-mixed", 1.0, deepspeed=True)  # DeepSpeed clips itself
    assert not fused_conflict("32-true", 1.0, deepspeed=False)
    p = [torch.nn.Parameter(torch.zeros(3))]
    auto = build_optimizer(p, OptimizerSettings(), device_type="cuda", fused_allowed=False)
    assert not auto.defaults["fused"] and auto.defaults["foreach"]
    assert build_optimizer(p, OptimizerSettings(), device_type="cuda").defaults["fused"]
    with pytest.raises(InputError, match="optimizer.fused=true.*gradient_clip_val"):
        build_optimizer(p, OptimizerSettings(fused=True), device_type="cuda", fused_allowed=False)
