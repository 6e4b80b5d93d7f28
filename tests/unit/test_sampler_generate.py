"""The generator end to end on the tiny random model (TEST ONLY: output is noise; we test the plumbing)."""

from __future__ import annotations

import pytest
import torch

from ex4d.model.adapter import LoraSettings, build_ex4d_transformer, randomize_adapter_
from ex4d.model.checkpoint import save_adapter
from ex4d.model.wan import TinyWanLoader, build_tiny_wan
from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings, build_generator, generate
from ex4d.utils.errors import InputError
from tests.conftest import masked_video

T, H, W = 5, 32, 32
FAST = GenerateSettings(num_steps=2, progress=False)


@pytest.fixture
def video():
    return masked_video(T, H, W)


def _gen(settings=FAST, memory_mode="gpu", rank=4) -> EX4DGenerator:
    c = build_tiny_wan()
    m = build_ex4d_transformer(c.transformer, LoraSettings(rank=rank, alpha=rank), hidden_channels=16)
    return EX4DGenerator(c, m, settings, device="cpu", memory_mode=memory_mode)


def _randomise(gen: EX4DGenerator, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in gen.model.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_output_shape_and_dtype(video):
    out = _gen()(*video)
    assert out.shape == (T, H, W, 3) and out.dtype == torch.uint8 and out.device.type == "cpu"


def test_same_seed_is_bit_identical_and_seed_matters(video):
    gen = _gen()
    _randomise(gen)
    a, b = gen(*video), gen(*video)
    assert torch.equal(a, b)
    assert not torch.equal(a, gen(*video, seed=1))
    # a fresh generator built the same way gives the same result
    gen2 = _gen()
    _randomise(gen2)
    assert torch.equal(gen(*video, return_latents=True), gen2(*video, return_latents=True))


def test_fresh_adapter_is_a_no_op_for_the_whole_pipeline(video):
    gen = _gen()
    with_adapter = gen(*video, return_latents=True)
    gen.model.detach_hook()
    gen.components.transformer.disable_adapters()
    base = gen(*video, return_latents=True)
    assert torch.equal(with_adapter, base)


def test_geometry_enters_both_cfg_branches_every_step(video):
    gen = _gen()
    _randomise(gen)
    seen = []
    orig = gen.model._add_geometry

    def spy(module, args, output):
        seen.append(gen.model._geometry is not None)
        return orig(module, args, output)

    gen.model._hook.remove()
    gen.model._hook = gen.components.transformer.patch_embedding.register_forward_hook(spy)
    gen(*video, return_latents=True)
    assert seen == [True] * (2 * FAST.num_steps)
    seen.clear()
    gen(*video, settings=GenerateSettings(num_steps=2, guidance_scale=1.0, progress=False), return_latents=True)
    assert seen == [True] * 2


@pytest.mark.parametrize("mode", ["offload", "low_vram"])
def test_memory_modes_give_identical_frames(video, mode):
    ref = _gen()
    _randomise(ref)
    other = _gen(memory_mode=mode)
    _randomise(other)
    assert torch.equal(ref(*video, return_latents=True), other(*video, return_latents=True))


def test_precomputed_prompt_embeddings_match_text_encoder(video):
    gen = _gen()
    pos, neg = gen.encode_prompts(FAST.prompt, FAST.negative_prompt)
    assert pos.shape == (1, 512, 16)
    assert (pos[0, 200:] == 0).all() and pos[0, 0].abs().sum() > 0  # zero padded after the prompt's tokens, as the reference
    a = gen(*video, return_latents=True)
    assert torch.equal(a, gen(*video, prompt_embeds=pos, negative_prompt_embeds=neg, return_latents=True))
    assert not torch.equal(a, gen(*video, prompt="a different prompt", return_latents=True))


def test_bad_input_fails_before_any_model_runs(video):
    gen = _gen()
    calls = []
    gen.components.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    colour, mask = video
    with pytest.raises(InputError, match="different lengths"):
        gen(colour, mask[:4])
    with pytest.raises(InputError, match="4k \\+ 1"):
        gen(colour[:4], mask[:4])
    assert calls == []


def test_erosion_seed_changes_only_the_geometry(video):
    gen = _gen()
    _randomise(gen)
    a = gen(*video, return_latents=True)
    b = gen(*video, settings=GenerateSettings(num_steps=2, progress=False, erosion_seed=123), return_latents=True)
    assert not torch.equal(a, b)


def test_generate_function_and_settings_override(video):
    gen = _gen()
    one = generate(gen, *video, settings=GenerateSettings(num_steps=1, progress=False))
    assert one.shape == (T, H, W, 3)
    with pytest.raises(InputError, match="fixed when the generator is built"):
        generate(gen, *video, settings=GenerateSettings(num_steps=1, fuse_lora=True))


def test_fused_lora_matches_unfused(video):
    plain = _gen()
    _randomise(plain)
    # fusing happens when the generator is built, so the LoRA weights must be final by then
    c = build_tiny_wan()
    m = build_ex4d_transformer(c.transformer, LoraSettings(rank=4, alpha=4), hidden_channels=16)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    fused = EX4DGenerator(c, m, GenerateSettings(num_steps=2, progress=False, fuse_lora=True), device="cpu")
    a = plain(*video, return_latents=True)
    b = fused(*video, return_latents=True)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_build_generator_from_configs_and_adapter_file(video, tmp_path):
    lora = LoraSettings(rank=4, alpha=4)
    src = _gen()
    _randomise(src)
    path = save_adapter(tmp_path / "a.safetensors", src.model, lora, {"mask_encoding": "reference"})
    gen = build_generator(TinyWanLoader(), None, path, FAST, device="cpu")
    assert gen.model.parameter_counts() == src.model.parameter_counts()
    assert torch.equal(gen(*video), src(*video))
    with pytest.raises(InputError, match="rank 4"):
        build_generator(TinyWanLoader(), LoraSettings(rank=8, alpha=8), path, FAST, device="cpu")
    with pytest.raises(InputError, match="mask_encoding"):
        build_generator(TinyWanLoader(), None, path, GenerateSettings(mask_encoding="fixed"), device="cpu")


def test_missing_weights_lists_absent_files(tmp_path):
    from ex4d.model.wan import WanLoader
    from ex4d.pipelines.generate import missing_weights

    assert missing_weights(TinyWanLoader(), None) == []
    missing = missing_weights(WanLoader(str(tmp_path / "wan")), tmp_path / "EX-4D" / "ex4d.ckpt")
    assert str(tmp_path / "EX-4D" / "ex4d.ckpt") in missing and len(missing) >= 2


@pytest.mark.slow
def test_checkpoint_random_makes_the_geometry_reach_the_output(caplog):
    """checkpoint=random: a seeded non-zero adapter (TEST / BENCHMARK ONLY), so two renders of different camera paths
    (same first frame) give different videos, which is what lets a smoke run show wiring errors. checkpoint=None
    stays the zero adapter, an exact no-op: the same two renders give the same video."""
    from ex4d.pipelines.generate import RANDOM_ADAPTER, missing_weights

    rng = torch.Generator().manual_seed(0)
    colour = torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8, generator=rng).numpy()
    mask = torch.ones(T, H, W, dtype=torch.bool).numpy()
    colour2, mask2 = colour.copy(), mask.copy()
    mask2[1:, :, W // 2 :] = False  # a disocclusion on the right from frame 1 on
    colour2[~mask2] = 0
    lora = LoraSettings(rank=4, alpha=4)
    zero = build_generator(TinyWanLoader(), lora, None, FAST, device="cpu")
    assert not zero.model.encoder.latent_patch_embedding.weight.any()
    assert torch.equal(zero(colour, mask), zero(colour2, mask2))
    with caplog.at_level("WARNING"):
        rand = build_generator(TinyWanLoader(), lora, RANDOM_ADAPTER, FAST, device="cpu")
    assert "RANDOM adapter (TEST / BENCHMARK ONLY" in caplog.text
    assert rand.model.encoder.latent_patch_embedding.weight.any()
    assert all(p.any() for p in rand.model.lora_parameters().values())
    out, out2 = rand(colour, mask), rand(colour2, mask2)
    assert (out != out2).float().mean() > 0.01  # the geometry inputs move the output
    assert missing_weights(TinyWanLoader(), RANDOM_ADAPTER) == []
    randomize_adapter_(zero.model, seed=TinyWanLoader().seed)  # seeded: the loader's seed
    assert all(torch.equal(a, b) for a, b in zip(rand.model.adapter_parameters(), zero.model.adapter_parameters()))


def test_predict_loop_over_two_videos(video):
    import lightning as L
    from torch.utils.data import DataLoader

    from ex4d.lightning.predict import GeneratePredictModule

    colour, mask = video
    items = [{"id": "a", "colour": colour, "mask": mask}, {"id": "b", "colour": colour, "mask": mask, "seed": 3}]
    module = GeneratePredictModule(TinyWanLoader(), LoraSettings(rank=4, alpha=4), settings=FAST)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)
    out = trainer.predict(module, DataLoader(items, batch_size=None))
    assert [o["id"] for o in out] == ["a", "b"]
    assert out[0]["frames"].shape == (T, H, W, 3) and not torch.equal(out[0]["frames"], out[1]["frames"])
    assert torch.equal(out[0]["frames"], module.generator(colour, mask))  # same as a direct call
