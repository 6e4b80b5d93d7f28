"""Selective activation checkpointing of the DiT blocks (ex4d.training.checkpointing) on the tiny model."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ex4d.training.checkpointing import (
    SDPA_OPS,
    enable_block_checkpointing,
    is_self_attention,
    resolve_checkpoint_policy,
)
from ex4d.utils.errors import InputError
from tests.unit.test_adapter import _dit_inputs, _latents, _randomise, _tiny_model


class SdpaCounter(TorchDispatchMode):
    """Counts the SDPA forward kernels that actually run (SAC's cached replays never reach this mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.self_attention = 0
        self.cross_attention = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SDPA_OPS:
            if is_self_attention(func, args):
                self.self_attention += 1
            else:
                self.cross_attention += 1
        return func(*args, **(kwargs or {}))


def _model(policy: str | None, compile_backend: str | None = None):
    m = _tiny_model()
    _randomise(m)  # non-zero LoRA B and encoder output: every path carries gradient
    m.mark_trainable()
    if policy is not None:
        enable_block_checkpointing(m.transformer, policy)
    if compile_backend is not None:
        m.transformer.compile_repeated_blocks(fullgraph=True, backend=compile_backend, dynamic=False)
    m.train()
    return m


def _loss_and_grads(m, counter: SdpaCounter | None = None):
    zc, zm = _latents()
    with torch.enable_grad():
        loss = m(**_dit_inputs(), z_colour=zc, z_mask=zm).square().mean()
        if counter is None:
            loss.backward()
        else:
            with counter:
                loss.backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    return loss.detach(), grads


def test_save_self_attention_gives_the_gradients_of_full_checkpointing():
    loss_plain, plain = _loss_and_grads(_model(None))
    loss_full, full = _loss_and_grads(_model("full"))
    loss_sac, sac = _loss_and_grads(_model("save_self_attention"))
    assert torch.equal(loss_full, loss_plain) and torch.equal(loss_sac, loss_plain)
    assert set(sac) == set(full) == set(plain)
    assert any(g.abs().sum() > 0 for g in sac.values())
    for n in plain:
        torch.testing.assert_close(full[n], plain[n], rtol=0, atol=1e-6, msg=n)
        torch.testing.assert_close(sac[n], plain[n], rtol=0, atol=1e-6, msg=n)


def test_the_backward_pass_recomputes_cross_attention_only():
    blocks = len(_tiny_model().transformer.blocks)
    counts = {}
    for policy in ("full", "save_self_attention"):
        c = SdpaCounter()
        _loss_and_grads(_model(policy), c)
        counts[policy] = (c.self_attention, c.cross_attention)
    # I2V blocks: one self-attention and two cross-attention calls (text, CLIP image tokens) per block
    assert counts["full"] == (blocks, 2 * blocks)
    assert counts["save_self_attention"] == (0, 2 * blocks)


def test_compiled_blocks_trace_the_selective_checkpoint_as_one_graph():
    torch._dynamo.reset()
    try:
        _, ref = _loss_and_grads(_model("save_self_attention"))
        _, comp = _loss_and_grads(_model("save_self_attention", compile_backend="aot_eager"))  # fullgraph=True
    finally:
        torch._dynamo.reset()
    for n in ref:
        torch.testing.assert_close(comp[n], ref[n], rtol=1e-5, atol=1e-6, msg=n)


def test_no_grad_forward_is_unchanged_and_policy_is_checked():
    plain, sac = _model(None), _model("save_self_attention")
    with torch.no_grad():
        assert torch.equal(plain(**_dit_inputs()), sac(**_dit_inputs()))
    with pytest.raises(InputError, match="module.checkpoint_policy"):
        enable_block_checkpointing(_tiny_model().transformer, "some")
    with pytest.raises(RuntimeError, match="already checkpointed"):
        enable_block_checkpointing(sac.transformer, "save_self_attention")


def test_auto_policy_keeps_full_checkpointing_where_parameters_are_sharded():
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    class DeepSpeedStrategy:  # stands in for Lightning's (DeepSpeed is not installed here): its engine config
        def __init__(self, stage):
            self.config = {"zero_optimization": {"stage": stage}}

    assert resolve_checkpoint_policy("auto") == "save_self_attention"  # no trainer attached
    assert resolve_checkpoint_policy("auto", DeepSpeedStrategy(2)) == "save_self_attention"
    assert resolve_checkpoint_policy("auto", DeepSpeedStrategy(3)) == "full"
    assert resolve_checkpoint_policy("save_self_attention", DeepSpeedStrategy(3)) == "save_self_attention"
    assert resolve_checkpoint_policy("auto", FSDPStrategy()) == "full"
    assert resolve_checkpoint_policy("auto", DDPStrategy()) == "save_self_attention"
    with pytest.raises(InputError, match="module.checkpoint_policy"):
        resolve_checkpoint_policy("most")


def test_auto_policy_reads_lightnings_deepspeed_stage():
    pytest.importorskip("deepspeed")
    from lightning.pytorch.strategies import DeepSpeedStrategy

    assert resolve_checkpoint_policy("auto", DeepSpeedStrategy(stage=3)) == "full"
    assert resolve_checkpoint_policy("auto", DeepSpeedStrategy(stage=2)) == "save_self_attention"
