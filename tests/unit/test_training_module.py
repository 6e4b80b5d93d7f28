"""EX4DTrainingModule on the tiny random Wan: trainable set, the loss formula, checkpoints and adapter files."""

import pytest
import torch

from ex4d.model.adapter import LoraSettings
from ex4d.model.wan import TinyWanLoader
from ex4d.pipelines.generate import GenerateSettings, build_generator
from ex4d.training.module import LATENT_KEYS, EX4DTrainingModule, dit_tokens
from ex4d.training.optim import OptimizerSettings
from ex4d.utils.errors import InputError

T, H, W = 5, 32, 32


def _module(**kw) -> EX4DTrainingModule:
    m = EX4DTrainingModule(TinyWanLoader(), LoraSettings(rank=4, alpha=4), OptimizerSettings(lr=1e-3),
                           sample=GenerateSettings(num_steps=2, erosion_min=1, erosion_max=1, progress=False), **kw)
    m.build()
    return m


@pytest.fixture(scope="module")
def module():
    return _module()


def _batch(seed=0, B=2):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (B, T, H, W, 3), dtype=torch.uint8, generator=g)
    mask = torch.rand(B, T, H, W, generator=g) > 0.3
    mask[:, 0] = True
    return {"frames": frames, "mask": mask, "clip_id": [f"c{i}" for i in range(B)], "prompt": [""] * B}


def test_only_adapter_parameters_require_grad(module):
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n or n.startswith("model.encoder.") for n in trainable)
    assert {id(p) for p in module.trainable_parameters()} == {id(p) for p in module.parameters() if p.requires_grad}
    counts = module.model.parameter_counts()
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == counts["total"]
    assert not any(p.requires_grad for p in module.vae.parameters())
    assert not any(p.requires_grad for p in module.image_encoder.parameters())
    assert module.components.text_encoder is None  # dropped after the empty prompt was encoded
    assert module.text_empty.shape == (1, 512, 16)


def test_gradients_reach_only_the_adapter(module):
    module.zero_grad(set_to_none=True)
    lat = module.encode_batch(_batch())
    assert set(lat) == set(LATENT_KEYS) and lat["latent_video"].shape == (2, 16, 2, H // 8, W // 8)
    assert lat["i2v_condition"].shape == (2, 20, 2, H // 8, W // 8)
    with torch.enable_grad():  # (another test in the session may have left grad mode off)
        out = module.flow_loss(lat, torch.Generator().manual_seed(0))
        out["loss"].backward()
    with_grad = {n for n, p in module.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, p in module.named_parameters() if p.requires_grad}
    assert module.model.encoder.latent_patch_embedding.weight.grad.abs().sum() > 0  # geometry route is live
    module.zero_grad(set_to_none=True)


def test_flow_loss_is_the_weighted_velocity_mse(module):
    lat = module.encode_batch(_batch(1))
    with torch.no_grad():
        out = module.flow_loss(lat, torch.Generator().manual_seed(7))
        g = torch.Generator().manual_seed(7)
        draw = module.flow.sample(2, g)
        z0 = lat["latent_video"]
        eps = torch.randn(z0.shape, generator=g)
        x_t = (1 - draw.sigma.view(-1, 1, 1, 1, 1)) * z0 + draw.sigma.view(-1, 1, 1, 1, 1) * eps
        pred = module.model(torch.cat([x_t, lat["i2v_condition"]], 1), draw.timestep, module.text_empty.expand(2, -1, -1),
                            lat["clip_tokens"], z_colour=lat["latent_cond"], z_mask=lat["latent_mask"])
        mse = ((pred - (eps - z0)) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(out["mse"], mse)
    torch.testing.assert_close(out["loss"], (mse * draw.weight).mean())


def test_cached_latents_pass_through_and_bad_shapes_fail(module):
    lat = {k: torch.zeros(1) for k in LATENT_KEYS}
    assert module.encode_batch(lat) is not lat and module.encode_batch(lat)["clip_tokens"] is lat["clip_tokens"]
    bad = _batch()
    bad["frames"], bad["mask"] = bad["frames"][:, :4], bad["mask"][:, :4]
    with pytest.raises(InputError, match="data.num_frames=4"):
        module.encode_batch(bad)
    assert dit_tokens(49, 512, 512) == 13_312


def test_checkpoint_holds_only_the_adapter(module):
    ckpt = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)
    assert set(ckpt["state_dict"]) == module.trainable_state_names()
    assert ckpt["ex4d"]["lora"]["rank"] == 4 and ckpt["ex4d"]["mask_encoding"] == "reference"
    module.on_load_checkpoint(ckpt)  # consistent: no error
    broken = {"state_dict": dict(list(ckpt["state_dict"].items())[1:])}
    with pytest.raises(InputError, match="adapter tensors missing"):
        module.on_load_checkpoint(broken)


def test_adapter_file_loads_into_the_generator(module, tmp_path):
    with torch.no_grad():
        for p in module.trainable_parameters():
            p.add_(0.01)
    path = module.save_adapter_file(tmp_path / "a.safetensors")
    gen = build_generator(TinyWanLoader(), checkpoint=path, settings=GenerateSettings(progress=False))
    ours = dict(module.model.lora_parameters())
    for k, p in gen.model.lora_parameters().items():
        torch.testing.assert_close(p, ours[k])
    with pytest.raises(InputError, match="mask_encoding"):  # trained with the reference encoding
        build_generator(TinyWanLoader(), checkpoint=path, settings=GenerateSettings(mask_encoding="fixed"))


def test_sample_video_renders(module):
    b = _batch(B=1)
    frames = module.render_sample(b["frames"][0], b["mask"][0])
    assert frames.shape == (T, H, W, 3) and frames.dtype == torch.uint8
    assert module.model.training  # building the generator did not leave the adapter in eval mode


def test_bad_module_settings():
    with pytest.raises(InputError, match="module.mask_encoding"):
        EX4DTrainingModule(TinyWanLoader(), LoraSettings(), OptimizerSettings(), mask_encoding="twice")
    with pytest.raises(InputError, match="module.sample.fuse_lora"):
        EX4DTrainingModule(TinyWanLoader(), LoraSettings(), OptimizerSettings(), sample=GenerateSettings(fuse_lora=True))
    with pytest.raises(InputError, match="module.sample.mask_encoding"):
        EX4DTrainingModule(TinyWanLoader(), LoraSettings(), OptimizerSettings(), mask_encoding="fixed",
                           sample=GenerateSettings())


def test_training_conditions_exactly_as_inference(module):
    """The DiT and the geometry encoder see the same conditioning in a training step as in generation
    (captured by hooks during a 1-step generation of the same clip, erosion off on both sides)."""
    from ex4d.pipelines.conditioning import encode_clip

    b = _batch(3, B=1)
    frames, mask = b["frames"][0], b["mask"][0]
    seen = {}

    def dit_inputs(mod, args, kwargs):
        seen.setdefault("dit", kwargs)

    def encoder_inputs(mod, args):
        seen.setdefault("encoder", args)

    h1 = module.model.transformer.register_forward_pre_hook(dit_inputs, with_kwargs=True)
    h2 = module.model.encoder.register_forward_pre_hook(encoder_inputs)
    try:
        settings = GenerateSettings(num_steps=1, guidance_scale=1.0, erosion_min=1, erosion_max=1, progress=False)
        module.conditioner(frames * mask[..., None], mask, frames[0], prompt_embeds=module.text_empty, settings=settings)
    finally:
        h1.remove()
        h2.remove()
    ours = encode_clip(module.conditioner, frames, mask)
    torch.testing.assert_close(ours["latent_cond"], seen["encoder"][0], rtol=0, atol=0)
    torch.testing.assert_close(ours["latent_mask"], seen["encoder"][1], rtol=0, atol=0)
    torch.testing.assert_close(ours["i2v_condition"], seen["dit"]["hidden_states"][:, 16:].float(), rtol=0, atol=0)
    torch.testing.assert_close(ours["clip_tokens"], seen["dit"]["encoder_hidden_states_image"], rtol=0, atol=0)
