"""The generator's speed levers on CUDA (tiny random model): the parts a CPU cannot check (fp8 matmuls through
torch._scaled_mm, which SDPA kernel runs, pinned host memory, the LoRA base copy in pinned memory)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("diffusers")

from ex4d.model.fp8 import Float8Linear  # noqa: E402
from ex4d.pipelines.generate import EX4DGenerator  # noqa: E402
from ex4d.pipelines.memory import require_efficient_attention  # noqa: E402
from tests.unit.test_generate_levers import _base_weights, _dit, _dit_inputs, _model, fast  # noqa: E402

CUDA = torch.device("cuda")


@pytest.mark.parametrize("granularity", ["rowwise", "tensorwise"])
def test_fp8_linear_on_cuda(granularity):
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 matmuls need sm89+ (Ada / Hopper)")
    lin = torch.nn.Linear(256, 512).to(CUDA, torch.bfloat16)
    x = torch.randn(3, 77, 256, device=CUDA, dtype=torch.bfloat16)
    y, ref = Float8Linear(lin, granularity)(x), lin(x)
    assert y.shape == ref.shape and y.dtype == torch.bfloat16
    assert (y.float() - ref.float()).norm() / ref.float().norm() < 0.06


def test_attention_backend_is_a_fused_kernel_and_forcing_one_is_honoured():
    auto = require_efficient_attention(CUDA, torch.bfloat16, 40, 128, "auto")
    assert auto in ("cudnn", "flash", "efficient")
    assert require_efficient_attention(CUDA, torch.bfloat16, 40, 128, "flash") == "flash"


@torch.no_grad()
def test_merge_unmerge_exact_on_cuda_with_a_pinned_copy():
    m = _dit(torch.bfloat16)
    m.to(CUDA)
    x, t, text, img, geo = (v.to(CUDA) for v in _dit_inputs(dtype=torch.bfloat16))
    before, out = _base_weights(m), m(x, t, text, img, geometry=geo)
    with m.merged_lora():
        assert all(h.is_pinned() for h in m._base_copy.values())
    assert all(torch.equal(before[n], w) for n, w in _base_weights(m).items())
    assert torch.equal(m(x, t, text, img, geometry=geo), out)


def test_pinned_offload_gives_the_gpu_result_and_keeps_weights_pinned():
    import numpy as np

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    mask = rng.random((5, 16, 16)) > 0.3
    c, m = _model()
    ref = EX4DGenerator(c, m, fast(), device=CUDA, memory_mode="gpu")(colour, mask, return_latents=True)
    c, m = _model()
    gen = EX4DGenerator(c, m, fast(pin_memory=True), device=CUDA, memory_mode="offload")
    assert gen.placement.pinned and all(p.is_pinned() for p in c.transformer.parameters())
    out = gen(colour, mask, return_latents=True)
    assert all(p.is_pinned() for p in c.transformer.parameters())  # back on their pinned copies
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_levers_at_the_14b_shape_match_the_plain_forward_within_bf16_tolerance():
    """The exact levers the `auto` policy turns on, at the real 14B DiT shape (random weights, 512x512x49
    latents): LoRA merged in place (no base copy), merged + regional compile, and a batch-2 (CFG) forward, each
    against the plain forward (LoRA unmerged, eager). bf16: rel L2 within 3% (docs/performance.md measured
    1.1-1.4% per forward)."""
    from ex4d.model.adapter import LoraSettings, build_ex4d_transformer, randomize_adapter_
    from ex4d.model.wan import random_wan_transformer

    torch._dynamo.reset()
    tr = random_wan_transformer(CUDA, torch.bfloat16).eval().requires_grad_(False)
    m = build_ex4d_transformer(tr, LoraSettings(rank=16, alpha=16), hidden_channels=1024).to(CUDA)
    randomize_adapter_(m, seed=0)
    g = torch.Generator(CUDA).manual_seed(0)
    x = torch.randn(1, 36, 13, 64, 64, device=CUDA, generator=g).to(torch.bfloat16)
    t = torch.full((1,), 700.0, device=CUDA)
    text = torch.randn(1, 512, 4096, device=CUDA, generator=g).to(torch.bfloat16)
    img = torch.randn(1, 257, 1280, device=CUDA, generator=g).to(torch.bfloat16)
    z = torch.randn(2, 16, 13, 64, 64, device=CUDA, generator=g)
    geo = m.encoder(z[:1], z[1:])

    def rel(a, b):
        return ((a.float() - b.float()).norm() / b.float().norm()).item()

    plain = m(x, t, text, img, geometry=geo)
    pair = m(torch.cat([x, x]), t.expand(2), torch.cat([text, text]), torch.cat([img, img]), geometry=geo)
    assert rel(pair[:1], plain) < 0.03 and rel(pair[1:], plain) < 0.03
    m.merge_lora(keep_base=False)
    assert m._base_copy is None
    merged = m(x, t, text, img, geometry=geo)
    assert 0 < rel(merged, plain) < 0.03  # merged weights differ by bf16 rounding of W + BA, not more
    try:
        tr.compile_repeated_blocks(fullgraph=True, dynamic=False)
        compiled = m(x, t, text, img, geometry=geo)
        assert rel(compiled, plain) < 0.03
    finally:
        torch._dynamo.reset()


@torch.no_grad()
def test_streamed_umt5_xxl_matches_the_resident_one_and_holds_a_fraction_of_it():
    """stream_text_encoder at the real UMT5-XXL shape (random weights, 512 tokens): block by block from pinned
    memory on a CUDA stream gives the resident model's output bit for bit, with a device peak far under the
    model's 10.6 GiB."""
    from ex4d.model.wan import random_umt5_encoder
    from ex4d.pipelines.memory import _pin_module, stream_blocks

    te = random_umt5_encoder(CUDA, torch.bfloat16, seed=1).eval()
    size = sum(p.numel() * p.element_size() for p in te.parameters())
    ids = torch.randint(0, 32000, (1, 512), device=CUDA)
    mask = torch.ones_like(ids)
    ref = te(ids, mask).last_hidden_state.clone()
    _pin_module(te)
    stream_blocks(te, CUDA)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = te(ids, mask).last_hidden_state
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    assert torch.equal(out, ref)
    assert peak < 0.35 * size, (peak / 2**30, size / 2**30)  # the 2 GB embedding + two blocks + activations
    assert all(p.device.type == "cpu" for p in te.parameters())  # back on their pinned copies after the call


def test_compiled_blocks_run_in_offload_mode_without_recompiling():
    """auto compiles the DiT blocks in offload mode too: the pinned offload re-points the weights between the
    device and pinned memory, which must neither change the output nor make dynamo recompile per video."""
    import numpy as np
    from torch._dynamo.utils import counters

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    mask = rng.random((5, 16, 16)) > 0.3
    c, m = _model()
    ref = EX4DGenerator(c, m, fast(), device=CUDA, memory_mode="gpu")(colour, mask, return_latents=True)
    torch._dynamo.reset()
    counters.clear()
    try:
        c, m = _model()
        gen = EX4DGenerator(c, m, fast(compile_blocks=True, compile_cache=None), device=CUDA, memory_mode="offload")
        first = gen(colour, mask, return_latents=True)
        compiles = counters["stats"]["unique_graphs"]
        second = gen(colour, mask, return_latents=True)
        assert compiles >= 1 and counters["stats"]["unique_graphs"] == compiles  # no recompile on the 2nd video
        assert all(p.device.type == "cpu" for p in c.transformer.parameters())  # offloaded between stages
        torch.testing.assert_close(first, ref, atol=1e-4, rtol=1e-4)
        assert torch.equal(first, second)
    finally:
        torch._dynamo.reset()


def test_streaming_the_text_encoder_keeps_the_dit_blocks_fullgraph(monkeypatch):
    """Only a group-offloaded DiT needs graph breaks; the streamed text encoder must not cost fullgraph."""
    c, m = _model()
    seen = {}
    monkeypatch.setattr(c.transformer, "compile_repeated_blocks", lambda **kw: seen.update(kw))
    gen = EX4DGenerator(c, m, fast(compile_blocks=True, stream_text_encoder=True, compile_cache=None), device=CUDA,
                        memory_mode="gpu")
    assert "text_encoder" in gen.placement.streamed and seen["fullgraph"] is True


def test_random_dit_for_the_offload_modes_never_holds_the_whole_model_on_the_device():
    """model=wan_i2v_14b_random with memory_mode=offload / low_vram: the DiT is made one parameter at a time
    (a 24 GB card must not need its 31 GB while loading), with the values it has when made whole."""
    from ex4d.model.wan import WAN_I2V_14B_TRANSFORMER_CONFIG, random_wan_transformer

    cfg = {**WAN_I2V_14B_TRANSFORMER_CONFIG, "num_layers": 4}  # real-width blocks
    whole = {k: v.cpu() for k, v in random_wan_transformer(CUDA, torch.bfloat16, 5, cfg).state_dict().items()}
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    piecewise = random_wan_transformer(CUDA, torch.bfloat16, 5, cfg, home="cpu")
    peak = torch.cuda.max_memory_allocated() - base
    size = sum(p.numel() * p.element_size() for p in piecewise.parameters())
    largest = max(p.numel() * p.element_size() for p in piecewise.parameters())  # time_proj: 300 MiB
    assert all(p.device.type == "cpu" for p in piecewise.parameters())
    assert peak <= 1.5 * largest and peak < 0.15 * size, (peak / 2**20, largest / 2**20, size / 2**20)
    sd = piecewise.state_dict()
    assert sd.keys() == whole.keys() and all(torch.equal(sd[k], whole[k]) for k in whole)
