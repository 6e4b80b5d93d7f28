"""Wan backbone loading: tiny random components of the real classes, local-folder loading, missing files.

The tiny model is random (TEST ONLY): these tests check plumbing, never output quality.
"""

from __future__ import annotations

import json

import pytest
import torch

from ex4d.model.wan import (
    WAN_I2V_14B_DIT_PARAMETERS,
    WAN_I2V_14B_TRANSFORMER_CONFIG,
    RandomWanLoader,
    TinyWanLoader,
    WanLoader,
    build_tiny_wan,
    build_wan_transformer_meta,
    load_transformer_native,
    load_wan_components,
)
from ex4d.utils.errors import InputError, MissingWeightsError


def test_tiny_components_are_the_real_classes_and_frozen():
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import CLIPVisionModel, UMT5EncoderModel

    c = build_tiny_wan()
    assert c.is_tiny and "TEST ONLY" in c.source
    assert isinstance(c.transformer, WanTransformer3DModel)
    assert isinstance(c.vae, AutoencoderKLWan)
    assert isinstance(c.text_encoder, UMT5EncoderModel)
    assert isinstance(c.image_encoder, CLIPVisionModel)
    assert len(c.transformer.blocks) == 2
    assert not any(p.requires_grad for m in c.modules().values() for p in m.parameters())
    assert c.transformer.config.in_channels == 36  # 16 noise + 4 frame mask + 16 first-frame latent


def test_tiny_build_is_deterministic():
    a, b = build_tiny_wan(seed=3), build_tiny_wan(seed=3)
    for (na, pa), (nb, pb) in zip(a.transformer.state_dict().items(), b.transformer.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)


def test_tiny_tokenizer_appends_eos_and_pads_to_512():
    tok = build_tiny_wan().tokenizer
    out = tok("hi", padding="max_length", max_length=512, truncation=True, return_tensors="pt")
    assert out.input_ids.shape == (1, 512)
    assert out.attention_mask.sum() == 3 and out.input_ids[0, 2] == tok.eos_token_id == 1
    assert (out.input_ids[0, 3:] == tok.pad_token_id).all()


def test_14b_shape_on_meta_has_16_39b_parameters():
    m = build_wan_transformer_meta()
    assert next(m.parameters()).device.type == "meta"
    assert sum(p.numel() for p in m.parameters()) == 16_394_878_784 == WAN_I2V_14B_DIT_PARAMETERS
    # what the loaders report without loading (train.py refuses CPU training above 2 B)
    assert WanLoader("/nowhere").dit_parameters() == RandomWanLoader().dit_parameters() == WAN_I2V_14B_DIT_PARAMETERS
    tiny = TinyWanLoader()
    assert tiny.dit_parameters() == sum(p.numel() for p in tiny.load().transformer.parameters())
    small = RandomWanLoader(transformer={"num_layers": 1, "num_attention_heads": 2, "attention_head_dim": 12,
                                         "ffn_dim": 32, "text_dim": 16, "image_dim": 16, "added_kv_proj_dim": 24},
                            text_encoder={"d_model": 16})
    assert 0 < small.dit_parameters() < 1e6


def test_local_diffusers_folder_loads(tmp_path):
    c = build_tiny_wan()
    c.transformer.save_pretrained(tmp_path / "transformer")
    c.vae.save_pretrained(tmp_path / "vae")
    c.text_encoder.save_pretrained(tmp_path / "text_encoder")
    c.tokenizer.save_pretrained(tmp_path / "tokenizer")
    c.image_encoder.save_pretrained(tmp_path / "image_encoder")
    c.image_processor.save_pretrained(tmp_path / "image_processor")
    loaded = load_wan_components(tmp_path, dtype="float32")
    assert not loaded.is_tiny
    sd = loaded.transformer.state_dict()
    for k, v in c.transformer.state_dict().items():
        assert torch.equal(sd[k], v), k
    # the loader object finds nothing missing
    assert WanLoader(str(tmp_path)).missing_files() == []


def test_missing_folder_names_path_and_download_command(tmp_path):
    with pytest.raises(MissingWeightsError, match="download_weights.py wan_i2v_14b_480p"):
        load_wan_components(tmp_path / "nope")
    (tmp_path / "transformer").mkdir()
    with pytest.raises(MissingWeightsError, match="vae") as e:
        load_wan_components(tmp_path)
    assert "download_weights.py" in str(e.value)
    assert str(tmp_path / "text_encoder") in WanLoader(str(tmp_path)).missing_files()


def test_uncached_repo_id_is_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="download_weights.py"):
        load_wan_components("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers")


def _native_keys(diffusers_sd: dict) -> dict:
    """Inverse of diffusers' Wan key conversion, for a synthetic native checkpoint (test helper)."""
    rules = [
        ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
        ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
        ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
        ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
        ("condition_embedder.time_proj", "time_projection.1"),
        ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
        ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
        ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
        ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
        ("attn1", "self_attn"), ("attn2", "cross_attn"),
        (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
        (".add_k_proj.", ".k_img."), (".add_v_proj.", ".v_img."), (".norm_added_k.", ".norm_k_img."),
        ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), ("proj_out", "head.head"),
    ]
    out = {}
    for k, v in diffusers_sd.items():
        n = k
        for a, b in rules:
            n = n.replace(a, b)
        n = n.replace(".norm2.", ".norm3.")  # diffusers' norm2 is the native cross-attention norm3
        if n == "scale_shift_table":
            n = "head.modulation"
        elif n.endswith(".scale_shift_table"):
            n = n.replace(".scale_shift_table", ".modulation")
        out[n] = v.clone()
    return out


def test_native_dit_shards_load_through_single_file_loader(tmp_path):
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from safetensors.torch import save_file

    c = build_tiny_wan()
    sd = c.transformer.state_dict()
    native = _native_keys(sd)
    assert set(convert_wan_transformer_to_diffusers(dict(native))) == set(sd)  # helper is a true inverse
    keys = sorted(native)
    half = len(keys) // 2
    files = [tmp_path / "s1.safetensors", tmp_path / "s2.safetensors"]
    save_file({k: native[k] for k in keys[:half]}, str(files[0]))
    save_file({k: native[k] for k in keys[half:]}, str(files[1]))
    cfg_dir = tmp_path / "cfg"
    c.transformer.save_config(cfg_dir / "transformer")
    m = load_transformer_native(files, dtype=torch.float32, config_folder=cfg_dir)
    msd = m.state_dict()
    for k, v in sd.items():
        assert torch.equal(msd[k], v), k
    # in bf16 the native path keeps the same fp32 islands (norms, modulation, time embedder, rope) as from_pretrained
    from diffusers import WanTransformer3DModel

    c.transformer.save_pretrained(tmp_path / "dp")
    want = WanTransformer3DModel.from_pretrained(tmp_path / "dp", torch_dtype=torch.bfloat16)
    got = load_transformer_native(files, dtype=torch.bfloat16, config_folder=cfg_dir)
    want_sd, got_sd = want.state_dict(), got.state_dict()
    for k in want_sd:
        assert got_sd[k].dtype == want_sd[k].dtype and torch.equal(got_sd[k], want_sd[k]), k
    assert got.rope.freqs_cos.dtype == want.rope.freqs_cos.dtype == torch.float32
    # a shard missing -> strict key check names the missing keys
    with pytest.raises(InputError, match="missing"):
        load_transformer_native(files[:1], dtype=torch.float32, config_folder=cfg_dir)
    with pytest.raises(MissingWeightsError):
        load_transformer_native([tmp_path / "absent.safetensors"])


def test_loader_objects_do_not_load_on_construction(tmp_path):
    w = WanLoader(str(tmp_path / "nothing-here"), memory_mode="low_vram")
    assert w.memory_mode == "low_vram" and w.missing_files()
    t = TinyWanLoader()
    assert t.is_tiny and "TEST ONLY" in repr(t)
    with pytest.raises(InputError, match="memory_mode"):
        WanLoader(memory_mode="cpu")


def test_builtin_14b_config_matches_method_doc():
    c = WAN_I2V_14B_TRANSFORMER_CONFIG
    assert c["num_attention_heads"] * c["attention_head_dim"] == 5120
    assert (c["num_layers"], c["ffn_dim"], c["in_channels"], c["image_dim"]) == (40, 13824, 36, 1280)
    json.dumps(c)  # serialisable (written as config.json for the offline single-file loader)


def test_random_dit_made_piecewise_equals_the_one_made_whole():
    """The offload memory modes get the random DiT one parameter at a time (the device never holds the whole
    model): same values, dtypes (fp32 norms / modulation / time embedder) and rotary tables as made whole."""
    from ex4d.model.wan import TINY_TRANSFORMER_CONFIG, _random_init_piecewise_, random_wan_transformer

    cfg = TINY_TRANSFORMER_CONFIG
    whole = random_wan_transformer("cpu", torch.bfloat16, seed=3, config=cfg)
    meta = build_wan_transformer_meta(cfg).to(torch.bfloat16)
    piecewise = _random_init_piecewise_(meta, torch.device("cpu"), torch.device("cpu"), seed=3)
    a, b = whole.state_dict(keep_vars=True), piecewise.state_dict(keep_vars=True)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert {p.dtype for p in piecewise.parameters()} == {torch.bfloat16, torch.float32}
    for name in ("freqs_cos", "freqs_sin"):  # non-persistent: not in the state dict
        assert torch.equal(getattr(whole.rope, name), getattr(piecewise.rope, name))
    assert not any(t.is_meta for t in [*piecewise.parameters(), *piecewise.buffers()])


def test_random_loader_keeps_the_dit_off_the_device_only_where_the_memory_mode_needs_it(monkeypatch):
    cuda = torch.device("cuda", 0)
    assert RandomWanLoader(memory_mode="gpu")._dit_home(cuda) is None
    assert RandomWanLoader(memory_mode=None)._dit_home(cuda) is None  # training places it itself
    assert RandomWanLoader(memory_mode="low_vram")._dit_home(cuda) == "cpu"
    assert RandomWanLoader(memory_mode="offload")._dit_home(cuda) == "cpu"
    assert RandomWanLoader(memory_mode="offload")._dit_home(torch.device("cpu")) is None
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (24 * gib, 24 * gib))
    assert RandomWanLoader(memory_mode="auto")._dit_home(cuda) == "cpu"  # 30.5 GiB of DiT + headroom > 24
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (140 * gib, 141 * gib))
    assert RandomWanLoader(memory_mode="auto")._dit_home(cuda) is None
