"""Selective checkpointing of the DiT blocks under inductor on CUDA (tiny model): the compiled path the
training benchmark measures gives the gradients of eager full checkpointing."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("diffusers")

from ex4d.training.checkpointing import enable_block_checkpointing  # noqa: E402
from tests.unit.test_adapter import _dit_inputs, _latents, _randomise, _tiny_model  # noqa: E402

CUDA = torch.device("cuda")


def _grads(policy: str, compiled: bool) -> dict[str, torch.Tensor]:
    m = _tiny_model()
    _randomise(m)
    m.mark_trainable()
    enable_block_checkpointing(m.transformer, policy)
    m.to(CUDA).train()
    if compiled:
        m.transformer.compile_repeated_blocks(fullgraph=True, dynamic=False)  # inductor
    x = {k: v.to(CUDA) for k, v in _dit_inputs().items()}
    zc, zm = (z.to(CUDA) for z in _latents())
    with torch.enable_grad():
        m(**x, z_colour=zc, z_mask=zm).square().mean().backward()
    return {n: p.grad.detach().cpu() for n, p in m.named_parameters() if p.requires_grad}


def test_compiled_selective_checkpoint_matches_eager_full_checkpoint():
    torch._dynamo.reset()
    try:
        ref = _grads("full", compiled=False)
        got = _grads("save_self_attention", compiled=True)
    finally:
        torch._dynamo.reset()
    assert set(got) == set(ref) and any(g.abs().sum() > 0 for g in got.values())
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-4, atol=1e-5, msg=n)
