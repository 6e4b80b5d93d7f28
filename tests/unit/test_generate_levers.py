"""Speed levers of the generator (issue 6): each is a switch that changes nothing numerically where it should
not. Tiny random model on the CPU (TEST ONLY: outputs are noise; we test exactness and plumbing)."""

from __future__ import annotations

import pytest
import torch

from ex4d.model.adapter import LoraSettings, build_ex4d_transformer, lora_modules
from ex4d.model.fp8 import Float8Linear, convert_to_fp8, fp8_targets, restore_from_fp8
from ex4d.model.wan import build_tiny_wan
from ex4d.pipelines.conditioning import first_frame_image, geometry_inputs
from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings
from ex4d.pipelines.memory import (
    ModelPlacement,
    _pin_module,
    efficient_attention,
    require_efficient_attention,
    sdpa_backends_used,
)
from ex4d.utils.errors import InputError
from tests.conftest import masked_video

T, H, W = 5, 16, 16
STEPS = 2


def fast(**kw) -> GenerateSettings:
    return GenerateSettings(num_steps=STEPS, progress=False, **kw)


@pytest.fixture(scope="module")
def video():
    return masked_video(T, H, W)


def _model(dtype=torch.float32, seed=1):
    c = build_tiny_wan(dtype=dtype)
    m = build_ex4d_transformer(c.transformer, LoraSettings(rank=4, alpha=4), hidden_channels=16)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a trained-looking adapter: nonzero LoRA B and encoder output
        for p in m.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return c, m


def _dit(dtype=torch.float32, seed=1, **config):
    """Only the tiny DiT with a randomised adapter (no VAE / encoders to build): for forward-level tests."""
    from diffusers import WanTransformer3DModel

    from ex4d.model.wan import TINY_TRANSFORMER_CONFIG, apply_keep_in_fp32

    torch.manual_seed(0)
    tr = WanTransformer3DModel(**{**TINY_TRANSFORMER_CONFIG, **config}).to(dtype).eval().requires_grad_(False)
    if dtype != torch.float32:
        apply_keep_in_fp32(tr)
    m = build_ex4d_transformer(tr, LoraSettings(rank=4, alpha=4), hidden_channels=16)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return m


def _gen(settings=None, **kw) -> EX4DGenerator:
    c, m = _model()
    return EX4DGenerator(c, m, settings or fast(), device="cpu", **kw)


@pytest.fixture(scope="module")
def plain(video):
    """One plain generator (reference settings, per-call levers off) and its latents, shared by the tests that
    only switch per-call levers (they leave no state behind)."""
    gen = _gen()
    return gen, gen(*video, return_latents=True)


def _dit_inputs(batch=1, dtype=torch.float32, seed=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 36, 2, 8, 8, generator=g).to(dtype)
    text = torch.randn(batch, 512, 16, generator=g).to(dtype)
    img = torch.randn(batch, 5, 16, generator=g).to(dtype)
    geo = torch.randn(1, 24, 2, 4, 4, generator=g).to(dtype)
    return x, torch.full((batch,), 700.0), text, img, geo


def _base_weights(m) -> dict[str, torch.Tensor]:
    return {n: mod.get_base_layer().weight.detach().clone() for n, mod in lora_modules(m.transformer).items()}


# ---- (a) LoRA merge / unmerge --------------------------------------------------------------------


@torch.no_grad()
def test_merge_then_unmerge_restores_the_base_weights_bit_for_bit():
    m = _dit(torch.bfloat16)  # bf16: where peft's subtract-to-unmerge does not give W back
    x, t, text, img, geo = _dit_inputs(dtype=torch.bfloat16)
    before, out = _base_weights(m), m(x, t, text, img, geometry=geo)
    m.merge_lora(keep_base=True)
    assert m.lora_merged and any(not torch.equal(before[n], w) for n, w in _base_weights(m).items())
    torch.testing.assert_close(m(x, t, text, img, geometry=geo), out, atol=0.1, rtol=0.05)  # bf16 rounding of W + BA
    m.unmerge_lora()
    assert not m.lora_merged
    assert all(torch.equal(before[n], w) for n, w in _base_weights(m).items())
    assert torch.equal(m(x, t, text, img, geometry=geo), out)
    # the LoRA changes between merges (training): the kept base copy still restores exactly
    for p in m.lora_parameters().values():
        p.mul_(1.5)
    with m.merged_lora():
        pass
    assert all(torch.equal(before[n], w) for n, w in _base_weights(m).items())
    # without the copy, peft's unmerge leaves bf16 rounding in the weights: why the copy exists
    m.release_base_copy()
    m.merge_lora(keep_base=False)
    m.unmerge_lora()
    assert any(not torch.equal(before[n], w) for n, w in _base_weights(m).items())


def test_merge_lora_per_call_matches_unmerged_and_leaves_weights_untouched(video, plain):
    gen, ref = plain
    before = _base_weights(gen.model)
    merged = gen(*video, settings=fast(merge_lora_per_call=True), return_latents=True)
    torch.testing.assert_close(merged, ref, atol=1e-5, rtol=1e-5)  # fp32: W + BA reassociates only
    assert not gen.model.lora_merged
    assert all(torch.equal(before[n], w) for n, w in _base_weights(gen.model).items())
    with pytest.raises(InputError, match="choose one"):
        fast(fuse_lora=True, merge_lora_per_call=True)


# ---- (b) attention backend -----------------------------------------------------------------------


def test_attention_backend_choice_is_validated_and_the_used_kernel_is_reported():
    with pytest.raises(InputError, match="attention_backend"):
        fast(attention_backend="math")
    with pytest.raises(InputError, match="attention_backend"):
        efficient_attention(torch.device("cpu"), "sage")
    q = torch.randn(1, 2, 16, 12)
    used = sdpa_backends_used(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert sum(used.values()) == 1 and set(used) <= {"cpu_flash", "math"}
    assert require_efficient_attention(torch.device("cpu"), torch.float32, 2, 12, "cudnn") in used


# ---- (c) regional compile ------------------------------------------------------------------------


@torch.no_grad()
def test_every_block_compiles_as_one_graph_with_lora_and_geometry():
    """fullgraph=True fails on any graph break inside a block (eager backend: tracing only, no codegen)."""
    m = _dit()
    x, t, text, img, geo = _dit_inputs()
    eager = m(x, t, text, img, geometry=geo)
    try:
        m.transformer.compile_repeated_blocks(fullgraph=True, backend="eager", dynamic=False)
        assert torch.equal(m(x, t, text, img, geometry=geo), eager)
    finally:
        torch._dynamo.reset()


# ---- (d) CFG as one batch-2 forward --------------------------------------------------------------


@torch.no_grad()
def test_batch_2_forward_equals_two_forwards():
    m = _dit()
    x, t, pos, img, geo = _dit_inputs()
    neg = _dit_inputs(seed=3)[2]
    a = m(x, t, pos, img, geometry=geo)
    b = m(x, t, neg, img, geometry=geo)
    both = m(torch.cat([x, x]), t.expand(2), torch.cat([pos, neg]), torch.cat([img, img]), geometry=geo)
    # not bit-exact on the CPU: oneDNN's Conv3d (patch embedding) blocks a batch of 2 differently; the
    # linears and SDPA are per-sample exact. Differences are float32 reassociation (~1e-7).
    torch.testing.assert_close(both[:1], a, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(both[1:], b, atol=2e-6, rtol=1e-5)


def test_cfg_batch_generation_matches_two_forward_generation(video, plain):
    gen, ref = plain
    batched = gen(*video, settings=fast(cfg_batch=True), return_latents=True)
    assert gen.last_stats == {"dit_calls": STEPS, "dit_batch_items": 2 * STEPS, "cfg_steps": STEPS}
    torch.testing.assert_close(batched, ref, atol=1e-5, rtol=1e-5)


# ---- (e) embeddings computed once ----------------------------------------------------------------


def test_cached_embeddings_are_reused_and_identical(video, plain):
    gen = plain[0]
    runs = {"text": 0, "clip": 0}
    hooks = [gen.components.text_encoder.register_forward_hook(lambda *a: runs.__setitem__("text", runs["text"] + 1)),
             gen.components.image_encoder.register_forward_hook(lambda *a: runs.__setitem__("clip", runs["clip"] + 1))]
    try:
        fresh = gen(*video, prompt="cache test", settings=fast(cache_embeddings=False), return_latents=True)
        assert runs == {"text": 2, "clip": 1}  # prompt + negative prompt
        first = gen(*video, prompt="cache test", return_latents=True)
        assert runs == {"text": 4, "clip": 1}  # a new prompt is encoded; the source frame's CLIP tokens are cached
        again = gen(*video, prompt="cache test", return_latents=True)
        assert runs == {"text": 4, "clip": 1}  # nothing re-encoded
        assert torch.equal(first, fresh) and torch.equal(again, fresh)
    finally:
        for h in hooks:
            h.remove()


# ---- (f) one VAE batch ---------------------------------------------------------------------------


@torch.no_grad()
def test_vae_batch_encodes_match_separate_encodes_and_diffusers_condition(video, plain):
    gen = plain[0]
    colour, mask = (torch.from_numpy(v) for v in video)
    x_c, x_m = geometry_inputs(colour, mask, torch.float32)
    image = first_frame_image(colour[0])
    sep = gen.encode_conditions(image, x_c, x_m, batch=False)
    bat = gen.encode_conditions(image, x_c, x_m, batch=True)
    for a, b in zip(sep, bat):  # Conv3d batch blocking again: float32 reassociation only
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # our first-frame condition is diffusers' prepare_latents, bit for bit
    _, cond = gen.helper.prepare_latents(image, 1, 16, H, W, T, torch.float32, torch.device("cpu"), None,
                                         torch.zeros(1, 16, 2, 2, 2))
    assert torch.equal(gen.first_frame_condition(sep[0], T), cond)


# ---- (g) pinned offload --------------------------------------------------------------------------


def test_pinned_offload_repoints_frozen_weights_and_copies_back_trainable(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self.clone())  # no CUDA here: a stand-in
    lin = torch.nn.Linear(4, 4)
    lin.weight.requires_grad_(False)
    placement = ModelPlacement("offload", torch.device("cpu"), {"m": lin}, resident=[], pin_memory=True)
    assert not placement.pinned  # pinning only happens for CUDA devices
    placement._host["m"] = _pin_module(lin)
    host_w, host_b = (h for _, h in placement._host["m"])
    with placement.stage("m"):
        with torch.no_grad():
            lin.bias.add_(1.0)  # a trainable parameter changed while on the device
    assert lin.weight.data.data_ptr() == host_w.data_ptr() and lin.bias.data.data_ptr() == host_b.data_ptr()
    assert torch.equal(host_b, lin.bias.data)


# ---- (h) inexact, opt-in ---------------------------------------------------------------------------


def test_inexact_levers_are_off_by_default():
    s = GenerateSettings()
    assert (s.fp8_linears, s.first_block_cache, s.cfg_truncate_after) == ("off", 0.0, 1.0)
    # the exact ones are left to the `levers` policy (tests/unit/test_levers_policy.py); no policy turns on an
    # inexact one: an `exact` plan on CUDA keeps them as they are
    assert s.levers == "auto" and (s.fuse_lora, s.cfg_batch, s.vae_batch, s.compile_blocks,
                                   s.stream_text_encoder) == (None,) * 5
    assert not s.merge_lora_per_call
    for bad in ({"fp8_linears": "e5m2"}, {"first_block_cache": -0.1}, {"cfg_truncate_after": 1.5},
                {"merge_lora_per_call": True, "fp8_linears": "rowwise"}):
        with pytest.raises(InputError):
            GenerateSettings(**bad)


@pytest.mark.parametrize("granularity", ["rowwise", "tensorwise"])
@torch.no_grad()
def test_fp8_linear_is_close_and_conversion_is_reversible(granularity):
    # dims that are multiples of 16, as torch._scaled_mm needs (the 14B model's are)
    m = _dit(torch.bfloat16, attention_head_dim=16, ffn_dim=64, added_kv_proj_dim=32)
    tr = m.transformer
    lin = torch.nn.Linear(64, 32).to(torch.bfloat16)
    x = torch.randn(10, 64).to(torch.bfloat16)
    y, ref = Float8Linear(lin, granularity)(x), lin(x)
    assert y.dtype == torch.bfloat16 and y.shape == ref.shape
    assert (y.float() - ref.float()).norm() / ref.float().norm() < 0.06  # e4m3: 3 mantissa bits, ~3.5% here

    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 36, 2, 8, 8, generator=g).to(torch.bfloat16)
    text = torch.randn(1, 512, 16, generator=g).to(torch.bfloat16)
    img = torch.randn(1, 5, 16, generator=g).to(torch.bfloat16)
    t = torch.tensor([700.0])
    ref = m(x, t, text, img)
    n_lora = len(m.lora_parameters())
    originals = convert_to_fp8(tr, granularity)
    # 2 blocks x (attn1 q/k/v/out + attn2 q/k/v/out + image k/v + 2 FFN); LoRA matrices stay bf16 on top
    assert len(originals) == 2 * 12 and not fp8_targets(tr)
    assert all(".lora_" not in n for n in originals) and len(m.lora_parameters()) == n_lora
    out = m(x, t, text, img)
    rel = (out.float() - ref.float()).norm() / ref.float().norm()
    assert 0 < rel < 0.1
    restore_from_fp8(tr, originals)
    assert torch.equal(m(x, t, text, img), ref)


def test_first_block_cache_with_a_zero_threshold_changes_nothing_and_a_high_one_skips(video, plain):
    ref = plain[1]
    c, m = _model()  # the same seeded weights as the shared plain generator
    tiny = EX4DGenerator(c, m, fast(first_block_cache=1e-12), device="cpu")  # hooks on, every block computed
    assert torch.equal(tiny(*video, return_latents=True), ref)
    tiny.close()

    gen = EX4DGenerator(c, m, GenerateSettings(num_steps=4, progress=False, first_block_cache=0.9), device="cpu")
    tail = []
    c.transformer.blocks[-1].ffn.register_forward_hook(lambda *a: tail.append(1))
    a = gen(*video, return_latents=True)
    assert 0 < len(tail) < 2 * 4  # some forwards reused the cached residual of the other blocks
    assert gen.last_stats["fbc_reused"] == 2 * 4 - len(tail)
    n = len(tail)
    assert torch.equal(gen(*video, return_latents=True), a) and len(tail) == 2 * n  # state reset per video
    gen.close()
    assert torch.equal(EX4DGenerator(c, m, fast(), device="cpu")(*video, return_latents=True), ref)


def test_cfg_truncation_drops_the_negative_branch_in_the_last_steps(video, plain):
    assert fast(cfg_truncate_after=0.5).cfg_steps() == 1 and fast().cfg_steps() == STEPS
    assert fast(guidance_scale=1.0).cfg_steps() == 0
    gen, ref = plain
    cut = gen(*video, settings=fast(cfg_truncate_after=0.5), return_latents=True)
    assert gen.last_stats["dit_calls"] == 2 + 1 and not torch.equal(cut, ref)


def test_build_time_levers_cannot_change_per_call_and_close_undoes_them(video):
    c, m = _model()
    before = _base_weights(m)
    gen = EX4DGenerator(c, m, fast(fuse_lora=True, first_block_cache=0.5), device="cpu", reversible=True)
    with pytest.raises(InputError, match="first_block_cache: fixed when the generator is built"):
        gen(*video, settings=fast(fuse_lora=True))
    assert m.lora_merged and c.transformer._cache_config is not None
    gen.close()
    assert not m.lora_merged and c.transformer._cache_config is None
    assert all(torch.equal(before[n], w) for n, w in _base_weights(m).items())


def test_stage_timings_split_out_the_first_denoising_step(plain):
    """generate.json's timings: one entry per stage, and the first step (where a process pays its warm-up)
    as a part of ``denoise``, not a stage of its own."""
    timings = plain[0].last_timings
    assert {"text_encode", "image_encode", "vae_encode", "denoise"} <= set(timings)
    assert 0 < timings["denoise_first_step"] <= timings["denoise"]
