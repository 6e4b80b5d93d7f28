"""VBench dimensions: formulas on synthetic videos with known answers, and tiny real model classes."""

import numpy as np
import pytest
import torch

from ex4d.metrics.vbench import (
    AestheticQuality,
    BackgroundConsistency,
    DynamicDegree,
    ImagingQuality,
    MotionSmoothness,
    RaftTorchvisionFlow,
    SubjectConsistency,
    clip_preprocess,
    consistency_score,
    dino_preprocess,
    dynamic_degree_params,
    is_dynamic,
    musiq_preprocess,
    run_vbench,
    top5_flow_magnitude,
)
from ex4d.metrics.weights import Skipped
from ex4d.utils.errors import InputError


def textured(h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return torch.from_numpy(np.kron(small, np.ones((8, 8, 1), dtype=np.uint8)))  # blocky texture, trackable


def static_video(t=6, **kw):
    return textured(**kw)[None].repeat(t, 1, 1, 1)


def moving_video(t=9, shift=24, h=96, w=128):
    big = textured(h, w + shift * t, seed=3)
    return torch.stack([big[:, i * shift : i * shift + w] for i in range(t)])


@pytest.fixture(scope="module")
def tiny_dino_dir(tmp_path_factory):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, image_size=224, patch_size=16)
    d = tmp_path_factory.mktemp("dino-vitb16")
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, image_size=224, patch_size=32, projection_dim=768
    )
    d = tmp_path_factory.mktemp("clip")
    CLIPVisionModelWithProjection(cfg).save_pretrained(d)
    return d


def test_consistency_formula_known_answers():
    e0, e1 = [1.0, 0.0], [0.0, 1.0]
    # frame 1: cos(prev)=0, cos(first)=0 -> 0; frame 2: cos(prev)=0, cos(first)=1 -> 0.5; mean 0.25
    assert consistency_score(torch.tensor([e0, e1, e0])) == pytest.approx(0.25)
    # negative cosines are clamped to 0
    assert consistency_score(torch.tensor([e0, [-1.0, 0.0]])) == 0.0
    assert consistency_score(torch.tensor([e0, e0, e0])) == pytest.approx(1.0)
    assert consistency_score(torch.tensor([e0])) == 1.0


def test_preprocessing_shapes():
    v = static_video(2, h=64, w=96)
    assert dino_preprocess(v).shape == (2, 3, 224, 336)  # shorter side 224, no crop
    assert clip_preprocess(v).shape == (2, 3, 224, 224)  # shorter side 224 + centre crop
    big = torch.zeros(1024, 640, 3, dtype=torch.uint8)
    assert musiq_preprocess(big).shape == (1, 3, 512, 320)  # longer side capped at 512
    assert musiq_preprocess(torch.zeros(100, 80, 3, dtype=torch.uint8)).shape == (1, 3, 100, 80)


def test_subject_and_background_consistency_static_video_is_one(tiny_dino_dir, tiny_clip_dir):
    vids = [static_video(4), static_video(4, seed=1)]
    sc = SubjectConsistency(weights_path=tiny_dino_dir, n_boot=50)(vids)
    bc = BackgroundConsistency(weights_path=tiny_clip_dir, n_boot=50)(vids)
    for r in (sc, bc):
        assert r.score.value == pytest.approx(1.0, abs=1e-6) and r.score.n == 2 and len(r.per_video) == 2
    changing = torch.stack([textured(seed=s) for s in range(4)])
    assert SubjectConsistency(weights_path=tiny_dino_dir).score_video(changing) < 1.0 - 1e-4


def test_motion_smoothness_formula():
    ms = MotionSmoothness(interpolator="blend")
    assert ms.report_name == "motion_smoothness_blend"
    assert ms.score_video(static_video(7)) == pytest.approx(1.0)
    fade = torch.arange(0, 70, 10, dtype=torch.uint8).view(7, 1, 1, 1).expand(7, 8, 8, 3).contiguous()
    assert ms.score_video(fade) == pytest.approx(1.0)  # neighbour average is exact for a linear fade
    flicker = torch.tensor([0, 255] * 3 + [0], dtype=torch.uint8).view(7, 1, 1, 1).expand(7, 8, 8, 3).contiguous()
    assert ms.score_video(flicker) == pytest.approx(0.0)  # predicts 0 where the real frame is 255
    # An oracle interpolator that returns the true middle frame scores 1 whatever the motion.
    video = moving_video(7)
    odd_frames = iter(video[1::2])
    oracle = lambda a, b: next(odd_frames).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    assert MotionSmoothness(interpolator=oracle).score_video(video) == pytest.approx(1.0)
    res = run_vbench([MotionSmoothness()], [static_video(5)])
    assert isinstance(res["motion_smoothness"], Skipped) and "amt-s.pth" in res["motion_smoothness"].reason


def test_dynamic_degree_params_and_rules():
    assert dynamic_degree_params((256, 320), 16, fps=8.0) == (6.0, 4)
    assert dynamic_degree_params((512, 512), 16, fps=4.0) == (24.0, 4)  # factor 8/fps = 2, scale 512/256 = 2
    assert not is_dynamic([7.0, 7.0, 7.0, 1.0], 6.0, 4) and is_dynamic([7.0] * 4, 6.0, 4)
    flow = torch.zeros(1, 2, 20, 20)
    flow[0, 0, 0, :20] = 10.0  # 20 of 400 pixels (5%) move 10 px
    assert top5_flow_magnitude(flow) == pytest.approx(10.0)


def test_dynamic_degree_static_zero_moving_one():
    const = lambda m: (lambda a, b: torch.full((1, 2, *a.shape[-2:]), m / np.sqrt(2)))  # noqa: E731
    vids = [static_video(16, h=64, w=64)]
    assert DynamicDegree(flow=const(10.0), fps=8.0)(vids).score.value == 1.0  # 10 px > 6 * 64/256
    assert DynamicDegree(flow=const(1.0), fps=8.0)(vids).score.value == 0.0
    dis = DynamicDegree(flow="dis", fps=8.0)
    assert dis.report_name == "dynamic_degree_dis"
    r = dis([static_video(9, h=96, w=128), moving_video(9)])
    assert r.per_video == [0.0, 1.0] and r.score.value == 0.5
    with pytest.raises(InputError, match="flow"):
        DynamicDegree(flow="farneback")


def test_dynamic_degree_raft_is_torchvision_raft_large_from_a_local_file(tmp_path, monkeypatch):
    from torchvision.models.optical_flow import RAFT, raft_large

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    torch.manual_seed(0)
    path = tmp_path / "raft-random.pth"
    torch.save(raft_large(weights=None).state_dict(), path)  # random weights of the real class
    dd = DynamicDegree(flow="raft", fps=8.0, weights_path=path, sha256="", n_boot=10)
    assert dd.report_name == "dynamic_degree"
    raft = dd.flow
    assert isinstance(raft, RaftTorchvisionFlow) and isinstance(raft.model, RAFT) and raft.iters == 20
    torch.testing.assert_close(raft.model.state_dict()["update_block.flow_head.conv2.weight"],
                               torch.load(path, weights_only=True)["update_block.flow_head.conv2.weight"])
    raft.iters = 2  # the padding/cropping is what is checked here, not RAFT's refinement
    frames = torch.rand(2, 3, 130, 140) * 255  # not multiples of 8: padded for RAFT, cropped back
    for h, w in ((130, 140), (36, 52)):  # under 128 px: padded up to torchvision's minimum
        flow = raft(frames[:1, :, :h, :w], frames[1:, :, :h, :w])
        assert flow.shape == (1, 2, h, w) and torch.isfinite(flow).all()
    res = dd([static_video(3, h=32, w=48)])  # the tiny benchmark's generated size
    assert res.score.n == 1 and res.per_video[0] in (0.0, 1.0)
    torch.save({"update_block.flow_head.conv2.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="not torchvision's raft_large weights"):
        RaftTorchvisionFlow(tmp_path / "bad.pth")
    res = run_vbench([DynamicDegree(weights_root=tmp_path / "none")], [static_video(3)])
    assert isinstance(res["dynamic_degree"], Skipped) and "raft_large_C_T_V1-22a6c225.pth" in res["dynamic_degree"].reason


def test_aesthetic_quality_is_vbench_aq(tiny_clip_dir, tmp_path):
    head = tmp_path / "sa_0_4_vit_l_14_linear.pth"
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.tensor([4.5])}, head)
    aq = AestheticQuality(clip_path=tiny_clip_dir, head_path=head, n_boot=20)
    res = run_vbench([aq], [static_video(3), static_video(3, seed=2)])
    assert res["aesthetic_quality"].score.value == pytest.approx(0.45)  # head output 4.5, divided by 10
    assert res["vbench_aq"].name == "vbench_aq" and res["vbench_aq"].score.value == pytest.approx(0.45)


def test_imaging_quality_scorer_and_missing_weights(tmp_path):
    iq = ImagingQuality(scorer=lambda x: torch.tensor(73.0))
    assert iq([static_video(3)]).score.value == pytest.approx(0.73)
    res = run_vbench(
        [ImagingQuality(weights_root=tmp_path), SubjectConsistency(weights_root=tmp_path), AestheticQuality(weights_root=tmp_path)],
        [static_video(3)],
    )
    assert "musiq_spaq_ckpt-358bb6af.pth" in res["imaging_quality"].reason
    assert "dino-vitb16" in res["subject_consistency"].reason
    assert "sa_0_4_vit_l_14_linear.pth" in res["vbench_aq"].reason
