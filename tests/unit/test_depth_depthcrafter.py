"""DepthCrafterBackend end to end on tiny random-weight components laid out like the real repositories."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ex4d.depth import EX4D_NEAR, DepthCrafterBackend
from ex4d.depth.depthcrafter import blend_overlap, window_schedule
from ex4d.utils.errors import InputError, MissingWeightsError

# SVD img2vid's scheduler_config.json (Karras sigmas, v-prediction, continuous timesteps).
SVD_SCHEDULER = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
                     num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
                     steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)
CLIP_NORM = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
             "image_processor_type": "CLIPImageProcessor"}


def _tiny_unet():
    from diffusers import UNetSpatioTemporalConditionModel

    # 3 added time ids x addition_time_embed_dim = projection_class_embeddings_input_dim;
    # channels are multiples of 32 (GroupNorm groups).
    return UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=2, addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24)


def build_tiny_repos(root):
    """Tiny DepthCrafter UNet folder + SVD base folder (vae/, image_encoder/ as fp16 variants, scheduler/,
    feature_extractor/), laid out like tencent/DepthCrafter and stabilityai/stable-video-diffusion-img2vid."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    _tiny_unet().save_pretrained(root / "DepthCrafter")
    base = root / "svd"
    # Four blocks: the same 8x latent downsampling as the real VAE, on tiny channels.
    AutoencoderKLTemporalDecoder(block_out_channels=[32, 32, 32, 32], down_block_types=["DownEncoderBlock2D"] * 4,
                                 latent_channels=4).save_pretrained(base / "vae", variant="fp16")
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, projection_dim=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
        intermediate_size=32, patch_size=8)).save_pretrained(base / "image_encoder", variant="fp16")
    EulerDiscreteScheduler(**SVD_SCHEDULER).save_pretrained(base / "scheduler")
    (base / "feature_extractor").mkdir()
    (base / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps(CLIP_NORM))
    return root


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    return build_tiny_repos(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def backend(repos):
    return DepthCrafterBackend(unet=str(repos / "DepthCrafter"), base=str(repos / "svd"), window=4, overlap=2,
                               dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def frames():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8, generator=g)


def test_window_schedule_matches_depthcrafter():
    assert window_schedule(5, 4, 2) == (4, 2, [(0, 4), (2, 5)])
    assert window_schedule(49, 110, 25) == (49, 0, [(0, 49)])  # the reference clip: one window
    window, overlap, spans = window_schedule(200, 110, 25)
    assert spans == [(0, 110), (85, 195), (170, 200)]
    # every frame covered; consecutive windows share exactly `overlap` frames
    assert spans[-1][1] == 200 and all(b[0] == a[1] - overlap for a, b in zip(spans, spans[1:]))
    with pytest.raises(InputError, match="overlap < window"):
        window_schedule(10, 4, 4)


def test_blend_overlap_is_a_linear_ramp():
    old, new = torch.zeros(1, 4, 1, 1, 1), torch.ones(1, 3, 1, 1, 1)
    out = blend_overlap(old, new, overlap=2)
    assert out.shape[1] == 5
    assert out.flatten().tolist() == [0, 0, 0, 1, 1]  # weights linspace(0, 1, 2) = [0, 1] on the shared frames
    out = blend_overlap(torch.zeros(1, 5, 1, 1, 1), torch.ones(1, 5, 1, 1, 1), overlap=5)
    assert torch.allclose(out.flatten(), torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))


def test_unet_matches_stock_forward_when_frames_share_an_embedding(repos):
    from diffusers import UNetSpatioTemporalConditionModel

    from ex4d.depth._depthcrafter_unet import DepthCrafterUNet

    stock = UNetSpatioTemporalConditionModel.from_pretrained(repos / "DepthCrafter")
    ours = DepthCrafterUNet.from_pretrained(repos / "DepthCrafter")
    g = torch.Generator().manual_seed(0)
    x, emb = torch.randn(1, 3, 8, 8, 8, generator=g), torch.randn(1, 1, 32, generator=g)
    ids = torch.tensor([[7.0, 127.0, 0.02]])
    with torch.no_grad():
        ref = stock(x, torch.tensor(1.5), emb, ids).sample
        out = ours(x, torch.tensor(1.5), emb.expand(1, 3, 32), ids)
        per_frame = ours(x, torch.tensor(1.5), torch.randn(1, 3, 32, generator=g), ids)
    assert torch.allclose(out, ref, atol=1e-5)
    assert not torch.allclose(per_frame, ref, atol=1e-3)  # frames do see their own embeddings


def test_end_to_end_sliding_window_scale_and_determinism(backend, frames):
    r = backend(frames)
    assert r.depth.shape == (5, 64, 64) and r.depth.dtype == torch.float32
    assert torch.isfinite(r.depth).all()
    assert float(r.depth.min()) == pytest.approx(10000 / 3900, abs=1e-4)
    assert float(r.depth.max()) == 1e4  # the farthest point of the clip saturates
    assert r.K[0, 0] == 500.0 and r.K[0, 2] == 32.0 and r.metric_scale is None
    assert r.info["backend"] == "depthcrafter" and r.info["window"] == 4
    again = backend(frames)
    assert torch.equal(r.depth, again.depth)  # seeded: bit-identical


def test_seed_window_and_guidance_change_the_result(repos, backend, frames):
    def run(**kw):
        b = DepthCrafterBackend(unet=str(repos / "DepthCrafter"), base=str(repos / "svd"), dtype="float32",
                                device="cpu", **{"window": 4, "overlap": 2, "steps": 2, **kw})
        b._c, b._device, b._dtype = backend._c, backend._device, backend._dtype  # reuse the loaded weights
        return b.predict_disparity(frames)

    ref = run()
    assert ref.shape == (5, 64, 64) and 0 <= float(ref.min()) and float(ref.max()) <= 1  # channel mean of [0, 1] images
    for kw in ({"seed": 7}, {"window": 110}, {"guidance": 2.0}):
        out = run(**kw)
        assert torch.isfinite(out).all() and not torch.equal(out, ref), kw


def test_frames_must_be_multiples_of_8(backend):
    with pytest.raises(InputError, match="divisible by 8"):
        backend(torch.zeros(2, 60, 64, 3, dtype=torch.uint8), source="odd.mp4")


def test_construction_loads_nothing_and_missing_weights_name_the_fix(tmp_path):
    b = DepthCrafterBackend(unet=str(tmp_path / "nope" / "DepthCrafter"), base=str(tmp_path / "svd"))
    assert b._c is None
    with pytest.raises(MissingWeightsError) as e:
        b(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    msg = str(e.value)
    assert "nope/DepthCrafter" in msg and "does not exist" in msg
    assert f"hf download tencent/DepthCrafter --local-dir {tmp_path / 'nope' / 'DepthCrafter'}" in msg
    # The tool takes the item as a positional argument and writes <local-dir>/DepthCrafter.
    assert f"python tools/download_weights.py depthcrafter --local-dir {tmp_path / 'nope'}`" in msg


def test_offline_hub_id_without_cache_raises_missing_weights(tmp_path):
    b = DepthCrafterBackend(cache_dir=str(tmp_path / "hf"), local_files_only=True, device="cpu")
    with pytest.raises(MissingWeightsError, match=r"tencent/DepthCrafter.*hf download tencent/DepthCrafter"):
        b.load()


def test_incomplete_base_names_the_component_and_full_files_are_a_fallback(repos, tmp_path):
    base = tmp_path / "svd"
    shutil.copytree(repos / "svd", base)
    shutil.rmtree(base / "image_encoder")
    b = DepthCrafterBackend(unet=str(repos / "DepthCrafter"), base=str(base), dtype="float32", device="cpu")
    with pytest.raises(MissingWeightsError, match=r"image_encoder.*stable-video-diffusion-img2vid"):
        b.load()
    # A base with full-precision files only (no *.fp16.* variant) loads with the default variant="fp16".
    from transformers import CLIPVisionModelWithProjection

    CLIPVisionModelWithProjection.from_pretrained(repos / "svd" / "image_encoder", variant="fp16").save_pretrained(
        base / "image_encoder")
    b.load()
    assert b._c is not None
