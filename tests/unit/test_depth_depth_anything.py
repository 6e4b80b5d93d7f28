"""DepthAnythingBackend on a tiny random-weight Depth Anything (Dinov2 backbone) saved like a hub checkpoint."""

from __future__ import annotations

import pytest
import torch

from ex4d.depth import EX4D_NEAR, DepthAnythingBackend, disparity_to_ex4d_depth
from ex4d.utils.errors import InputError, MissingWeightsError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    root = tmp_path_factory.mktemp("depth_anything")
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            image_size=28, patch_size=14, out_indices=[1, 2], reshape_hidden_states=False)
    # initializer_range 0.2: the default 0.02 gives a near-constant output through the final ReLU.
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, reassemble_factors=[2, 1],
                                 neck_hidden_sizes=[8, 16], fusion_hidden_size=8, head_hidden_size=4,
                                 initializer_range=0.2, depth_estimation_type="relative")
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(root)
    # Depth Anything V2's processor settings, at a tiny size: keep aspect, multiples of 14, ImageNet norm.
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14, do_pad=False,
                      resample=3, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def frames():
    g = torch.Generator().manual_seed(2)
    return torch.randint(0, 256, (3, 30, 44, 3), dtype=torch.uint8, generator=g)


def test_per_frame_batched_depth_on_the_ex4d_scale(model_dir, frames):
    b = DepthAnythingBackend(str(model_dir), batch_size=2, dtype="float32", device="cpu")
    r = b(frames)
    assert r.depth.shape == (3, 30, 44) and torch.isfinite(r.depth).all()
    assert float(r.depth.min()) == pytest.approx(EX4D_NEAR, abs=1e-4)
    assert r.K[0, 0] == 500.0 and r.K[0, 2] == 22.0 and r.K[1, 2] == 15.0
    disp = b.predict_disparity(frames)
    assert disp.shape == (3, 30, 44) and float(disp.max() - disp.min()) > 0
    assert torch.allclose(r.depth, disparity_to_ex4d_depth(disp))  # one normalisation over the whole clip
    # Frames are independent: batching does not change a frame's disparity.
    single = DepthAnythingBackend(str(model_dir), batch_size=1, dtype="float32", device="cpu").predict_disparity(frames)
    assert torch.allclose(single, disp, rtol=1e-3, atol=1e-5 * float(disp.abs().max()))
    assert torch.equal(b(frames).depth, r.depth)


def test_construction_loads_nothing_and_missing_weights_name_the_fix(tmp_path, frames):
    b = DepthAnythingBackend(str(tmp_path / "Depth-Anything-V2-Large-hf"))
    assert b._model is None
    with pytest.raises(MissingWeightsError) as e:
        b(frames)
    msg = str(e.value)
    assert "Depth-Anything-V2-Large-hf" in msg
    assert f"python tools/download_weights.py depth_anything --local-dir {tmp_path}`" in msg  # positional item
    assert f"hf download depth-anything/Depth-Anything-V2-Large-hf --local-dir {tmp_path}" in msg
    off = DepthAnythingBackend(cache_dir=str(tmp_path / "hf"), local_files_only=True, device="cpu")
    with pytest.raises(MissingWeightsError, match="depth-anything/Depth-Anything-V2-Large-hf"):
        off.load()


def test_bad_frames_and_options():
    with pytest.raises(InputError, match="uint8"):
        DepthAnythingBackend()(torch.zeros(2, 8, 8, 3))
    with pytest.raises(InputError, match="depth.batch_size"):
        DepthAnythingBackend(batch_size=0)
