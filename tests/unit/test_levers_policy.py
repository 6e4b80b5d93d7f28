"""The levers policy (ex4d/pipelines/levers.py), memory_mode=auto and the compile-cache files: which exact
lever runs where, overrides, and what the run reports. Plans are pure functions of the device *type*, so the
CUDA branches are tested here without a GPU; the tiny model checks the plumbing on the CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from ex4d.model.adapter import LoraSettings, build_ex4d_transformer
from ex4d.model.wan import build_tiny_wan
from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings
from ex4d.pipelines.levers import EXACT_LEVERS, compile_cache_file, default_cache_dir, plan_levers
from ex4d.pipelines.memory import ACTIVATION_HEADROOM, choose_memory_mode
from ex4d.utils.errors import InputError
from tests.conftest import masked_video

CUDA = torch.device("cuda")


def plan(device=CUDA, tiny=False, memory_mode="gpu", **kw):
    return plan_levers(GenerateSettings(**kw), device=device, tiny=tiny, memory_mode=memory_mode)


def test_auto_on_cuda_turns_on_the_measured_exact_levers_and_says_why():
    p = plan()
    assert p.values == {"fuse_lora": True, "compile_blocks": True, "cfg_batch": False, "vae_batch": False,
                        "stream_text_encoder": True}
    assert "no faster" in p.reasons["cfg_batch"] and "in place" in p.reasons["fuse_lora"]
    assert "peak memory" in p.reasons["vae_batch"] and "once per prompt" in p.reasons["stream_text_encoder"]
    assert p.compile_cache is not None  # compiled: artefacts persist
    report = p.report()
    assert report["mode"] == "auto" and report["compile_blocks"] == {"on": True, "why": p.reasons["compile_blocks"]}


def test_auto_follows_the_memory_mode():
    low = plan(memory_mode="low_vram")
    assert low.values["cfg_batch"] and not low.values["compile_blocks"]  # streamed DiT: batch 2 halves traffic
    off = plan(memory_mode="offload")
    assert not off.values["cfg_batch"] and off.values["fuse_lora"] and off.values["compile_blocks"]
    # offload modes move the text encoder per stage already: nothing to stream, even when asked
    assert not off.values["stream_text_encoder"] and not low.values["stream_text_encoder"]
    asked = plan(memory_mode="offload", stream_text_encoder=True)
    assert not asked.values["stream_text_encoder"] and "moves the text encoder" in asked.reasons["stream_text_encoder"]
    bare = plan_levers(GenerateSettings(), device=CUDA, tiny=False, memory_mode="gpu", text_encoder=False)
    assert not bare.values["stream_text_encoder"] and bare.values["compile_blocks"]


@pytest.mark.parametrize("device,tiny", [(torch.device("cpu"), False), (CUDA, True)])
def test_cpu_and_the_tiny_model_keep_the_plain_path(device, tiny):
    p = plan(device=device, tiny=tiny)
    assert not any(p.values.values()) and p.compile_cache is None


def test_off_exact_and_per_lever_overrides():
    assert not any(plan(levers="off").values.values())
    assert all(plan(tiny=True, levers="exact").values.values())
    p = plan(fuse_lora=False, cfg_batch=True)
    assert (p.values["fuse_lora"], p.values["cfg_batch"]) == (False, True)
    assert p.reasons["fuse_lora"] == p.reasons["cfg_batch"] == "set"
    assert plan(device=torch.device("cpu"), vae_batch=True).values["vae_batch"]  # an override runs on the CPU too
    assert not plan(device=torch.device("cpu"), compile_blocks=True).values["compile_blocks"]  # CUDA only
    with pytest.raises(InputError, match="generate.levers"):
        GenerateSettings(levers="fast")
    with pytest.raises(InputError, match="generate.fuse_lora"):
        GenerateSettings(fuse_lora="yes")


def test_a_dit_shared_with_training_is_never_merged_or_compiled():
    p = plan_levers(GenerateSettings(), device=CUDA, tiny=False, memory_mode="gpu", shared_dit=True)
    assert not p.values["fuse_lora"] and not p.values["compile_blocks"] and p.values["stream_text_encoder"]
    assert not plan(merge_lora_per_call=True).values["fuse_lora"]


def test_compile_cache_lives_in_the_machine_cache_one_file_per_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("EX4D_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    assert plan().compile_cache == str(tmp_path / "compile")
    assert plan(compile_cache=None).compile_cache is None
    cfg = {"num_layers": 40}
    a = compile_cache_file(tmp_path / "compile", model_config=cfg, key={"latents": [1, 16, 13, 64, 64]})
    b = compile_cache_file(tmp_path / "compile", model_config=cfg, key={"latents": [1, 16, 21, 60, 104]})
    c = compile_cache_file(tmp_path / "compile", model_config={"num_layers": 2}, key={"latents": [1, 16, 13, 64, 64]})
    assert a.parent == tmp_path / "compile" and a.suffix == ".bin" and len({a, b, c}) == 3
    assert a == compile_cache_file(tmp_path / "compile", model_config=dict(cfg), key={"latents": [1, 16, 13, 64, 64]})
    assert compile_cache_file(tmp_path / "x.bin", model_config=cfg, key={}) == tmp_path / "x.bin"


def test_memory_mode_auto_picks_the_fastest_mode_that_fits():
    models = {"transformer": nn.Linear(1024, 1024), "vae": nn.Linear(256, 256)}  # 4 MiB + 0.25 MiB in fp32
    dit = sum(p.numel() * 4 for p in models["transformer"].parameters())
    total = dit + sum(p.numel() * 4 for p in models["vae"].parameters())
    assert choose_memory_mode(models, CUDA, free_bytes=total + ACTIVATION_HEADROOM)[0] == "gpu"
    assert choose_memory_mode(models, CUDA, free_bytes=total + ACTIVATION_HEADROOM - 1)[0] == "offload"
    assert choose_memory_mode(models, CUDA, free_bytes=dit + ACTIVATION_HEADROOM)[0] == "offload"
    mode, why = choose_memory_mode(models, CUDA, free_bytes=dit + ACTIVATION_HEADROOM - 1)
    assert mode == "low_vram" and "GiB free" in why
    assert choose_memory_mode(models, "cpu")[0] == "gpu"
    # a streamed model does not count as resident in gpu mode
    models["text_encoder"] = nn.Linear(2048, 2048)  # 16 MiB
    assert choose_memory_mode(models, CUDA, free_bytes=total + ACTIVATION_HEADROOM)[0] == "offload"
    mode, why = choose_memory_mode(models, CUDA, free_bytes=total + ACTIVATION_HEADROOM, streamed=("text_encoder",))
    assert mode == "gpu" and "streamed text_encoder" in why


def _tiny(seed=1):
    c = build_tiny_wan()
    m = build_ex4d_transformer(c.transformer, LoraSettings(rank=4, alpha=4), hidden_channels=16)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return c, m


def test_generator_resolves_the_policy_and_reports_it():
    c, m = _tiny()
    gen = EX4DGenerator(c, m, GenerateSettings(num_steps=2, progress=False), device="cpu", memory_mode="auto")
    assert all(getattr(gen.settings, k) is False for k in EXACT_LEVERS)  # CPU: plain
    report = gen.lever_report()
    assert report["memory_mode"]["mode"] == "gpu" and report["fuse_lora"]["on"] is False
    # a per-call settings object that leaves the levers to the policy gets the generator's resolution
    per_call = dataclasses.replace(GenerateSettings(num_steps=2, progress=False), seed=3)
    assert gen._resolve(per_call).fuse_lora is False


@torch.no_grad()
def test_merge_in_place_keeps_no_base_copy_and_matches_the_unmerged_output():
    video = masked_video(5, 16, 16)
    c, m = _tiny()
    plain = EX4DGenerator(c, m, GenerateSettings(num_steps=2, progress=False, levers="off"), device="cpu")
    ref = plain(*video, return_latents=True)
    c2, m2 = _tiny()
    fused = EX4DGenerator(c2, m2, GenerateSettings(num_steps=2, progress=False, fuse_lora=True), device="cpu")
    assert m2.lora_merged and m2._base_copy is None  # merged in place: no copy of the base weights
    assert fused.lever_report()["build_seconds"]["lora_merge"] >= 0
    torch.testing.assert_close(fused(*video, return_latents=True), ref, atol=1e-4, rtol=1e-4)


def _tiny_with_text(seed=1):
    from ex4d.model.wan import TinyWanLoader

    c = TinyWanLoader(seed=seed).load()
    m = build_ex4d_transformer(c.transformer, LoraSettings(rank=4, alpha=4), hidden_channels=16)
    return c, m


@torch.no_grad()
def test_streamed_text_encoder_gives_the_resident_embeddings_bit_for_bit_and_close_undoes_it():
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    c, m = _tiny_with_text()
    assert c.text_encoder is not None
    kw = dict(num_steps=2, progress=False, cache_embeddings=False)
    plain = EX4DGenerator(c, m, GenerateSettings(**kw), device="cpu")
    ref = plain.encode_prompts("a prompt", "a negative prompt")
    plain.close()
    gen = EX4DGenerator(c, m, GenerateSettings(stream_text_encoder=True, **kw), device="cpu")
    assert gen.lever_report()["stream_text_encoder"] == {"on": True, "why": "set"}
    # no text cache: the settings' prompts will need UMT5, so it is pinned and hooked while building (a run
    # whose prompts the text cache holds never pays that: the text-cache test below)
    assert "text_encoder" in gen.placement.streamed and "text_encoder" in gen.placement.group_offloaded
    # the blocks are streamed (one group per UMT5 block), the stack's embedding and final norm as one more group
    assert _is_group_offload_enabled(c.text_encoder.encoder.block[0])
    for _ in range(2):
        for a, b in zip(gen.encode_prompts("a prompt", "a negative prompt"), ref):
            assert torch.equal(a, b)
    gen.close()
    assert not any(_is_group_offload_enabled(mod) for mod in c.text_encoder.modules())
    assert "text_encoder" not in gen.placement.group_offloaded and not gen.placement.streamed
    # the whole generator runs with it (two prompts, CFG) and matches the resident one
    video = masked_video(5, 16, 16)
    c2, m2 = _tiny_with_text()
    want = EX4DGenerator(c2, m2, GenerateSettings(**kw), device="cpu")(*video, return_latents=True)
    c3, m3 = _tiny_with_text()
    got = EX4DGenerator(c3, m3, GenerateSettings(stream_text_encoder=True, **kw), device="cpu")(*video,
                                                                                               return_latents=True)
    assert torch.equal(got, want)


def test_text_cache_is_per_machine_on_cuda_only_and_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("EX4D_CACHE_DIR", str(tmp_path))
    assert plan().text_cache == str(tmp_path / "text") and plan().report()["text_cache"] == str(tmp_path / "text")
    assert plan(levers="off").text_cache is None  # the reference path keeps nothing
    assert plan(device=torch.device("cpu")).text_cache is None and plan(tiny=True).text_cache is None
    assert plan(device=torch.device("cpu"), text_cache=str(tmp_path / "t")).text_cache == str(tmp_path / "t")
    bare = plan_levers(GenerateSettings(), device=CUDA, tiny=False, memory_mode="gpu", text_encoder=False)
    assert bare.text_cache is None
    with pytest.raises(InputError, match="generate.text_cache"):
        GenerateSettings(text_cache=3)


def test_weights_fingerprint_tells_weights_apart_and_is_stable():
    from ex4d.pipelines.levers import weights_fingerprint

    a, b = nn.Linear(64, 64), nn.Linear(64, 64)
    assert weights_fingerprint(a) == weights_fingerprint(a) != weights_fingerprint(b)
    c = nn.Linear(64, 64)
    c.load_state_dict(a.state_dict())
    assert weights_fingerprint(c) == weights_fingerprint(a)
    with torch.no_grad():
        c.weight.mul_(1.001)  # a fine-tune moves every sampled value
    assert weights_fingerprint(c) != weights_fingerprint(a)


@torch.no_grad()
def test_text_cache_serves_a_later_generator_without_running_the_text_encoder(tmp_path, monkeypatch):
    video = masked_video(5, 16, 16)
    kw = dict(num_steps=2, progress=False, text_cache=str(tmp_path))
    c, m = _tiny_with_text()
    first = EX4DGenerator(c, m, GenerateSettings(**kw), device="cpu")
    want = first(*video, return_latents=True)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and first.text_cache_hits == 0
    # a new generator on the same weights (a later process): the embeddings come from the file, UMT5 never runs
    c2, m2 = _tiny_with_text()
    later = EX4DGenerator(c2, m2, GenerateSettings(stream_text_encoder=True, **kw), device="cpu")
    monkeypatch.setattr(later, "encode_prompts", lambda *a, **k: pytest.fail("UMT5 ran despite the text cache"))
    assert torch.equal(later(*video, return_latents=True), want)
    assert later.text_cache_hits == 1 and later.lever_report()["text_cache_hits"] == 1
    assert not later.placement.group_offloaded  # a streamed UMT5 that never ran was never pinned or hooked
    monkeypatch.undo()
    later.text_embeddings("a prompt the cache lacks", "n", True, str(tmp_path))
    assert "text_encoder" in later.placement.group_offloaded  # hooked at its first use
    # other text-encoder weights or another prompt: another file
    c3, m3 = _tiny_with_text(seed=2)
    EX4DGenerator(c3, m3, GenerateSettings(**kw), device="cpu").text_embeddings("p", "n", True, str(tmp_path))
    assert len(list(tmp_path.glob("*.safetensors"))) == 3  # the first pair, the new prompt, the other weights
    # a damaged file costs one UMT5 run and is rewritten, never the video
    files[0].write_bytes(b"garbage")
    c4, m4 = _tiny_with_text()
    again = EX4DGenerator(c4, m4, GenerateSettings(**kw), device="cpu")
    assert torch.equal(again(*video, return_latents=True), want) and again.text_cache_hits == 0
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []  # atomic writes left no temp


def test_each_compiled_variant_gets_its_own_compile_cache_file(tmp_path):
    """The compile-artefact file is written once, after its variant's first call, and only when absent: two
    variants sharing a file would leave the second one's artefacts unsaved (fp8 blocks are other graphs)."""
    c, m = _tiny()
    gen = EX4DGenerator(c, m, GenerateSettings(num_steps=2, progress=False, compile_cache=str(tmp_path)),
                        device="cpu")
    gen._compiled = True  # compile runs on CUDA only; the file naming is what is checked here
    gen.settings = dataclasses.replace(gen.settings, compile_cache=str(tmp_path))
    shape = (1, 16, 2, 8, 8)
    base = gen._compile_file(shape, gen.settings)
    others = [gen._compile_file((1, 16, 3, 8, 8), gen.settings),
              gen._compile_file(shape, dataclasses.replace(gen.settings, cfg_batch=True)),
              gen._compile_file(shape, dataclasses.replace(gen.settings, cfg_truncate_after=0.5))]
    gen.settings = dataclasses.replace(gen.settings, fp8_linears="rowwise")
    others.append(gen._compile_file(shape, gen.settings))
    assert base.parent == tmp_path and len({base, *others}) == 5
