"""EX-4D adapter: LoRA targets and counts, the geometry encoder, the no-op start, checkpoints in and out."""

from __future__ import annotations

import json

import pytest
import torch

from ex4d.model.adapter import (
    REFERENCE_LORA_TARGETS,
    EX4DTransformer,
    GeometryEncoder,
    LoraSettings,
    build_ex4d_transformer,
)
from ex4d.model.checkpoint import (
    export_reference_checkpoint,
    load_adapter,
    load_reference_checkpoint,
    load_wan_lora,
    read_adapter_metadata,
    reference_key_map,
    save_adapter,
)
from ex4d.model.wan import build_tiny_wan, build_wan_transformer_meta
from ex4d.utils.errors import InputError, MissingWeightsError

HIDDEN = 16  # tiny encoder width


def _tiny_model(rank: int = 4, seed: int = 0, **lora_kw) -> EX4DTransformer:
    c = build_tiny_wan(seed=seed)
    return build_ex4d_transformer(c.transformer, LoraSettings(rank=rank, alpha=rank, **lora_kw), hidden_channels=HIDDEN)


def _dit_inputs(seed: int = 0, F: int = 2, h: int = 4, w: int = 6):
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(1, 36, F, h, w, generator=g),
        timestep=torch.tensor([700.0]),
        encoder_hidden_states=torch.randn(1, 512, 16, generator=g),
        encoder_hidden_states_image=torch.randn(1, 5, 16, generator=g),
    )


def _latents(seed: int = 1, F: int = 2, h: int = 4, w: int = 6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 16, F, h, w, generator=g), torch.randn(1, 16, F, h, w, generator=g)


def _randomise(model: EX4DTransformer, seed: int = 5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_parameter_counts_at_14b_shape_on_meta():
    with torch.device("meta"):
        m = build_ex4d_transformer(build_wan_transformer_meta(), LoraSettings(rank=16, alpha=16))
    assert m.parameter_counts() == {"lora": 76_677_120, "encoder": 23_109_632, "total": 99_786_752}
    assert all(p.device.type == "meta" for p in m.adapter_parameters())


def test_lora_targets_are_the_reference_ones_and_not_image_kv():
    m = _tiny_model()
    wrapped = {n.split(".", 2)[2] for n, mod in m.transformer.named_modules() if hasattr(mod, "lora_A") and "ex4d" in mod.lora_A}
    assert wrapped == set(REFERENCE_LORA_TARGETS)
    names = [n for n, _ in m.transformer.named_modules()]
    assert not any("add_k_proj.lora" in n or "add_v_proj.lora" in n for n in names)
    assert not any(n.startswith("condition_embedder") and "lora" in n for n in names)
    assert len(m.lora_parameters()) == 2 * len(REFERENCE_LORA_TARGETS) * 2  # A+B, 10 targets, 2 blocks


def test_encoder_layout_matches_reference():
    e = GeometryEncoder(16, 1024, 5120)
    kinds = [type(x).__name__ for x in e.latent_encoder]
    assert kinds == ["Conv3d", "SiLU", "Conv3d", "SiLU", "Conv3d"]
    assert e.latent_encoder[0].in_channels == 32 and e.latent_encoder[0].kernel_size == (1, 1, 1)
    assert e.latent_patch_embedding.kernel_size == (1, 2, 2) == e.latent_patch_embedding.stride
    assert e.latent_patch_embedding.weight.abs().sum() == 0 and e.latent_patch_embedding.bias.abs().sum() == 0


def test_zero_encoder_and_zero_lora_b_give_exactly_the_base_output():
    c = build_tiny_wan()
    x = _dit_inputs()
    base = c.transformer(**x, return_dict=False)[0]
    m = build_ex4d_transformer(c.transformer, LoraSettings(rank=4, alpha=4), hidden_channels=HIDDEN)
    zc, zm = _latents()
    out = m(**x, z_colour=zc, z_mask=zm)
    assert torch.equal(out, base)
    # LoRA A is random (Kaiming) and the encoder's hidden convs too: only B and the patch conv are zero
    assert any(p.abs().sum() > 0 for n, p in m.lora_parameters().items() if "lora_A" in n)


def test_geometry_is_added_right_after_the_patch_embedding():
    c = build_tiny_wan()
    m = build_ex4d_transformer(c.transformer, None, hidden_channels=HIDDEN)
    x = _dit_inputs()
    const = torch.randn(24).view(1, 24, 1, 1, 1)
    geometry = const.expand(1, 24, 2, 2, 3)
    with_geom = m(**x, geometry=geometry)
    # the same shift folded into the patch embedding's bias
    with torch.no_grad():
        c.transformer.patch_embedding.bias += const.flatten()
    m.detach_hook()
    folded = c.transformer(**x, return_dict=False)[0]
    torch.testing.assert_close(with_geom, folded, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(with_geom, m(**x))


def test_geometry_shape_mismatch_is_an_error():
    m = _tiny_model()
    with pytest.raises(InputError, match="do not match"):
        m(**_dit_inputs(), geometry=torch.zeros(1, 24, 2, 4, 4))


def test_only_lora_and_encoder_are_trainable():
    m = _tiny_model()
    m.mark_trainable()
    trainable = {id(p) for p in m.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in m.adapter_parameters()}
    n_train = sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert n_train == m.parameter_counts()["total"]


@pytest.mark.parametrize(
    "kwargs,key",
    [
        (dict(rank=0), "lora.rank"),
        (dict(rank=2.5), "lora.rank"),
        (dict(alpha=-1), "lora.alpha"),
        (dict(targets=[]), "lora.targets"),
        (dict(targets="attn1.to_q"), "lora.targets"),
        (dict(dropout=1.0), "lora.dropout"),
        (dict(init="orthogonal"), "lora.init"),
    ],
)
def test_lora_settings_schema_rejects_bad_values(kwargs, key):
    with pytest.raises(InputError, match=key):
        LoraSettings(**kwargs)


def test_unknown_lora_target_is_an_error():
    c = build_tiny_wan()
    with pytest.raises(InputError, match="matches no module"):
        build_ex4d_transformer(c.transformer, LoraSettings(targets=["attn1.to_qkv"]), hidden_channels=HIDDEN)


# ---- checkpoints ---------------------------------------------------------------------------------

REF_MODULES = ["self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
               "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2"]


def _reference_state(rank: int = 4, layers: int = 2, seed: int = 7) -> dict[str, torch.Tensor]:
    """A synthetic ex4d.ckpt written with the reference's names and the tiny model's shapes."""
    g = torch.Generator().manual_seed(seed)
    dims = {"self_attn": (24, 24), "cross_attn": (24, 24), "ffn.0": (24, 32), "ffn.2": (32, 24)}
    sd = {}
    for i in range(layers):
        for mod in REF_MODULES:
            fin, fout = dims[mod] if mod.startswith("ffn") else dims[mod.split(".")[0]]
            sd[f"blocks.{i}.{mod}.lora_A.default.weight"] = torch.randn(rank, fin, generator=g)
            sd[f"blocks.{i}.{mod}.lora_B.default.weight"] = torch.randn(fout, rank, generator=g)
    sd["latent_encoder.0.weight"] = torch.randn(HIDDEN, 32, 1, 1, 1, generator=g)
    sd["latent_encoder.0.bias"] = torch.randn(HIDDEN, generator=g)
    for j in (2, 4):
        sd[f"latent_encoder.{j}.weight"] = torch.randn(HIDDEN, HIDDEN, 1, 1, 1, generator=g)
        sd[f"latent_encoder.{j}.bias"] = torch.randn(HIDDEN, generator=g)
    sd["latent_patch_embedding.weight"] = torch.randn(24, HIDDEN, 1, 2, 2, generator=g)
    sd["latent_patch_embedding.bias"] = torch.randn(24, generator=g)
    return sd


def test_reference_checkpoint_loads_with_every_key_consumed(tmp_path):
    sd = _reference_state()
    torch.save(sd, tmp_path / "ex4d.ckpt")
    m = _tiny_model()
    counts = load_reference_checkpoint(tmp_path / "ex4d.ckpt", m)
    assert counts == {"lora": 2 * 10 * 2, "encoder": 8}
    assert len(reference_key_map(m)) == len(sd)
    p = dict(m.transformer.named_parameters())
    assert torch.equal(p["blocks.1.attn2.to_out.0.lora_B.ex4d.weight"], sd["blocks.1.cross_attn.o.lora_B.default.weight"])
    assert torch.equal(p["blocks.0.ffn.net.0.proj.lora_A.ex4d.weight"], sd["blocks.0.ffn.0.lora_A.default.weight"])
    assert torch.equal(p["blocks.0.attn1.to_v.lora_A.ex4d.weight"], sd["blocks.0.self_attn.v.lora_A.default.weight"])
    assert torch.equal(m.encoder.latent_patch_embedding.weight, sd["latent_patch_embedding.weight"])
    # and the reference layout round-trips
    export_reference_checkpoint(tmp_path / "again.ckpt", m)
    again = torch.load(tmp_path / "again.ckpt", weights_only=True)
    assert set(again) == set(sd) and all(torch.equal(again[k], sd[k]) for k in sd)


def test_reference_checkpoint_missing_extra_or_misshaped_key_is_an_error(tmp_path):
    m = _tiny_model()
    sd = _reference_state()
    missing = dict(sd)
    del missing["blocks.1.ffn.2.lora_B.default.weight"]
    torch.save(missing, tmp_path / "missing.ckpt")
    with pytest.raises(InputError, match=r"missing key.*blocks\.1\.ffn\.2\.lora_B\.default\.weight"):
        load_reference_checkpoint(tmp_path / "missing.ckpt", m)
    extra = dict(sd, **{"blocks.0.cross_attn.k_img.lora_A.default.weight": torch.zeros(4, 24)})
    torch.save(extra, tmp_path / "extra.ckpt")
    with pytest.raises(InputError, match=r"unknown key.*cross_attn\.k_img"):
        load_reference_checkpoint(tmp_path / "extra.ckpt", m)
    torch.save(_reference_state(rank=8), tmp_path / "rank8.ckpt")
    with pytest.raises(InputError, match="shape"):
        load_reference_checkpoint(tmp_path / "rank8.ckpt", m)
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(InputError, match="flat dict"):
        load_reference_checkpoint(tmp_path / "list.ckpt", m)
    with pytest.raises(MissingWeightsError, match="download_weights.py ex4d"):
        load_reference_checkpoint(tmp_path / "absent.ckpt", m)


def test_adapter_safetensors_round_trip_is_exact(tmp_path):
    lora = LoraSettings(rank=4, alpha=8)
    a = build_ex4d_transformer(build_tiny_wan().transformer, lora, hidden_channels=HIDDEN)
    _randomise(a)
    path = save_adapter(tmp_path / "adapter.safetensors", a, lora, {"mask_encoding": "reference", "step": 12})
    b = build_ex4d_transformer(build_tiny_wan().transformer, lora, hidden_channels=HIDDEN)
    meta = load_adapter(path, b)
    assert meta["mask_encoding"] == "reference" and json.loads(meta["step"]) == 12
    assert int(meta["lora_rank"]) == 4 and float(meta["lora_alpha"]) == 8.0
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert set(pa) == set(pb)
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    x, (zc, zm) = _dit_inputs(), _latents()
    assert torch.equal(a(**x, z_colour=zc, z_mask=zm), b(**x, z_colour=zc, z_mask=zm))
    assert read_adapter_metadata(path)["format"] == "ex4d-adapter"


def test_adapter_file_with_other_rank_is_an_error(tmp_path):
    lora = LoraSettings(rank=4, alpha=4)
    a = build_ex4d_transformer(build_tiny_wan().transformer, lora, hidden_channels=HIDDEN)
    path = save_adapter(tmp_path / "a.safetensors", a, lora)
    b = _tiny_model(rank=2)
    with pytest.raises(InputError, match="shape"):
        load_adapter(path, b)


def test_wan_format_lora_file_loads_through_diffusers_conversion(tmp_path):
    from safetensors.torch import save_file

    m = _tiny_model()
    g = torch.Generator().manual_seed(3)
    sd = {}
    for i in range(2):
        for mod, (fin, fout) in {"self_attn.q": (24, 24), "cross_attn.o": (24, 24), "ffn.2": (32, 24)}.items():
            sd[f"diffusion_model.blocks.{i}.{mod}.lora_down.weight"] = torch.randn(2, fin, generator=g)
            sd[f"diffusion_model.blocks.{i}.{mod}.lora_up.weight"] = torch.randn(fout, 2, generator=g)
    save_file(sd, str(tmp_path / "style.safetensors"))
    x = _dit_inputs()
    before = m(**x)
    n = load_wan_lora(tmp_path / "style.safetensors", m.transformer, adapter_name="style", weight=0.5)
    assert n == len(sd)
    p = dict(m.transformer.named_parameters())
    assert torch.equal(p["blocks.1.attn2.to_out.0.lora_B.style.weight"], sd["diffusion_model.blocks.1.cross_attn.o.lora_up.weight"])
    assert not torch.equal(m(**x), before)  # the extra LoRA is active next to the (still no-op) EX-4D one
    assert set(m.transformer.active_adapters()) == {"ex4d", "style"}


def test_gradients_reach_lora_and_encoder_only():
    m = _tiny_model()
    m.mark_trainable()
    m.transformer.enable_gradient_checkpointing()
    m.train()
    zc, zm = _latents()
    with torch.enable_grad():  # other tests may leave grad mode off (e.g. runners calling set_grad_enabled(False))
        m(**_dit_inputs(), z_colour=zc, z_mask=zm).square().mean().backward()
    assert m.encoder.latent_patch_embedding.weight.grad.abs().sum() > 0  # zero-init output still learns
    assert all(p.grad is not None for n, p in m.lora_parameters().items() if "lora_B" in n)
    assert any(p.grad.abs().sum() > 0 for n, p in m.lora_parameters().items() if "lora_B" in n)
    assert all(p.grad is None for n, p in m.transformer.named_parameters() if "lora_" not in n)
