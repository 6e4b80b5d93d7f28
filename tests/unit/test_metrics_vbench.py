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
    QUALITY_NORMALIZE,
    SubjectConsistency,
    TemporalFlickering,
    VBenchQuality,
    clip_preprocess,
    consistency_score,
    dino_preprocess,
    dynamic_degree_params,
    is_dynamic,
    musiq_preprocess,
    run_vbench,
    top5_flow_magnitude,
    vbench_quality_score,
)
from ex4d.metrics.weights import Skipped
from ex4d.utils.errors import InputError, MissingWeightsError


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
    res = run_vbench([MotionSmoothness(weights_root="/nonexistent")], [static_video(5)])  # default: AMT-S
    assert isinstance(res["motion_smoothness"], Skipped) and "/nonexistent/metrics/amt-s.pth" in res["motion_smoothness"].reason
    assert "lalala125/AMT" in res["motion_smoothness"].reason
    res = run_vbench([MotionSmoothness(interpolator=None)], [static_video(5)])
    assert "interpolator=amt" in res["motion_smoothness"].reason
    with pytest.raises(InputError, match="interpolator"):
        MotionSmoothness(interpolator="rife")


def test_motion_smoothness_converts_like_vbench_truncating():
    # VBench's tensor2img: (x * 255).clip(0, 255).astype(uint8), a truncation: 99.9 -> 99, not 100.
    video = torch.full((3, 4, 4, 3), 100, dtype=torch.uint8)
    almost = lambda a, b: torch.full_like(a, 99.9 / 255)  # noqa: E731
    assert MotionSmoothness(interpolator=almost).score_video(video) == pytest.approx(254 / 255)


def zero_amt_s():
    """The real AMT-S class with every parameter 0: no flow, masks 0.5, no residual, so its prediction is the
    average of the two frames (a known answer for the whole wrapper: padding, time 0.5, [0, 1] scaling)."""
    from ex4d.metrics.vbench import amt_s_network

    model = amt_s_network()(corr_radius=3, corr_lvls=4, num_flows=3)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


@pytest.fixture(scope="module")
def amt_files(tmp_path_factory):
    """amt-s.pth-shaped checkpoints ({"state_dict": ...}) of the real AMT-S class: all-zero and seeded random."""
    from ex4d.metrics.vbench import amt_s_network

    d = tmp_path_factory.mktemp("amt")
    torch.save({"state_dict": zero_amt_s().state_dict()}, d / "amt-zero.pth")
    torch.manual_seed(0)
    torch.save({"state_dict": amt_s_network()(corr_radius=3, corr_lvls=4, num_flows=3).state_dict()}, d / "amt-random.pth")
    return d


@pytest.mark.slow  # AMT-S runs at 128x128 (its minimum): about a second per interpolated frame on 2 cores
def test_motion_smoothness_amt_s_loads_vbench_network_from_a_local_file(amt_files, no_download):
    from ex4d.metrics.vbench import AMTInterpolator, blend_interpolator, motion_smoothness_score

    ms = MotionSmoothness(weights_path=amt_files / "amt-zero.pth", sha256="", n_boot=10)
    ms.check_available()
    assert ms.report_name == "motion_smoothness" and isinstance(ms.interp, AMTInterpolator)
    assert type(ms.interp.model).__module__ == "vbench.third_party.amt.networks.AMT-S"
    # Zero weights = neighbour average, through padding (36x52 -> 128x128) and cropping back.
    a, b = torch.rand(1, 3, 36, 52), torch.rand(1, 3, 36, 52)
    mid = ms.interp(a, b)
    assert mid.shape == (1, 3, 36, 52)
    torch.testing.assert_close(mid, (a + b) / 2, atol=1e-4, rtol=0)
    # Sanity cases on a real clip: identical frames are (within VBench's truncation) perfectly smooth;
    # the same frames shuffled are less smooth than in order.
    clip = moving_video(3, shift=8, h=48, w=64)
    assert ms.score_video(clip[[0, 0, 0]]) >= 1 - 1 / 255
    in_order = ms.score_video(clip)
    assert in_order == pytest.approx(motion_smoothness_score(clip, blend_interpolator), abs=2 / 255)
    assert ms.score_video(clip[[0, 2, 1]]) < in_order - 0.01
    # Random weights of the real class: a valid score.
    assert 0.0 <= MotionSmoothness(weights_path=amt_files / "amt-random.pth", sha256="").score_video(clip) <= 1.0
    torch.save({"state_dict": {"comb_block.0.weight": torch.zeros(1)}}, amt_files / "bad.pth")
    with pytest.raises(InputError, match="not an AMT-S checkpoint"):
        MotionSmoothness(weights_path=amt_files / "bad.pth", sha256="").interp
    with pytest.raises(MissingWeightsError, match="sha256 mismatch"):
        MotionSmoothness(weights_path=amt_files / "amt-zero.pth", sha256="deadbeef").check_available()


def test_temporal_flickering_vbench_formula():
    tf = TemporalFlickering(n_boot=20)
    assert tf.score_video(static_video(4)) == 1.0
    flicker = torch.tensor([0, 255, 0, 255], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 8, 8, 3).contiguous()
    assert tf.score_video(flicker) == 0.0
    ramp = torch.tensor([0, 10, 30], dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 8, 8, 3).contiguous()
    assert tf.score_video(ramp) == pytest.approx((255 - 15) / 255)  # pair MAEs 10 and 20
    vid = moving_video(5)
    res = tf([static_video(5), vid])
    assert res.per_video[0] == 1.0 and res.per_video[1] < 1.0 and res.score.n == 2
    tf.check_available()  # no weights, nothing to miss


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


@pytest.mark.slow  # MUSIQ scores 224- and 384-px rescales of every frame: about a second per frame on 2 cores
def test_imaging_quality_loads_pyiqa_musiq_from_a_local_file(tmp_path, no_download):
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(0)
    path = tmp_path / "musiq-random.pth"
    torch.save({"module." + k: v for k, v in MUSIQ(pretrained=False).state_dict().items()}, path)  # DataParallel keys
    iq = ImagingQuality(weights_path=path, sha256="", n_boot=10)
    iq.check_available()
    assert isinstance(iq.scorer, MUSIQ) and not iq.scorer.training
    saved = torch.load(path, weights_only=True)
    torch.testing.assert_close(iq.scorer.state_dict()["head.weight"], saved["module.head.weight"])
    frame = static_video(1, h=32, w=48)  # the tiny benchmark's size: MUSIQ's multi-scale patches cope
    with torch.no_grad():
        raw = float(iq.scorer(musiq_preprocess(frame[0])))
    assert iq.score_video(frame) == pytest.approx(raw / 100, rel=1e-6)  # deterministic, / 100
    torch.save({"head.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="not a MUSIQ"):
        ImagingQuality(weights_path=tmp_path / "bad.pth", sha256="").scorer


def test_vbench_quality_is_the_leaderboard_formula():
    top = {k: hi for k, (lo, hi) in QUALITY_NORMALIZE.items()}
    bottom = {k: lo for k, (lo, hi) in QUALITY_NORMALIZE.items()}
    assert vbench_quality_score(top) == pytest.approx(1.0) and vbench_quality_score(bottom) == pytest.approx(0.0)
    # Hand computation from Vchitect/VBench scripts/constant.py + cal_final_score.py (dynamic degree weighs 0.5):
    s = {"subject_consistency": 0.9141, "background_consistency": 0.9747, "temporal_flickering": 0.9830,
         "motion_smoothness": 0.9638, "dynamic_degree": 0.4972, "aesthetic_quality": 0.5494, "imaging_quality": 0.6190}
    expected = ((0.9141 - 0.1462) / 0.8538 + (0.9747 - 0.2615) / 0.7385 + (0.9830 - 0.6293) / 0.3707
                + (0.9638 - 0.706) / 0.2915 + 0.5 * 0.4972 + 0.5494 + 0.6190) / 6.5
    assert vbench_quality_score(s) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(InputError, match="temporal_flickering"):
        vbench_quality_score({k: v for k, v in s.items() if k != "temporal_flickering"})
    per = {k: [v, top[k]] for k, v in s.items()}
    res = VBenchQuality(n_boot=20)(per)
    assert res.per_video == pytest.approx([expected, 1.0]) and res.score.value == pytest.approx((expected + 1) / 2)


def test_run_vbench_aggregates_only_the_real_dimensions(tiny_dino_dir, tiny_clip_dir, tmp_path, amt_files):
    head = tmp_path / "head.pth"
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.tensor([5.0])}, head)
    const = lambda a, b: torch.zeros((1, 2, *a.shape[-2:]))  # noqa: E731
    dims = [SubjectConsistency(weights_path=tiny_dino_dir, n_boot=10), BackgroundConsistency(weights_path=tiny_clip_dir, n_boot=10),
            TemporalFlickering(n_boot=10), MotionSmoothness(interpolator=lambda a, b: (a + b) / 2, n_boot=10),
            DynamicDegree(flow=const, fps=8.0, n_boot=10), AestheticQuality(clip_path=tiny_clip_dir, head_path=head, n_boot=10),
            ImagingQuality(scorer=lambda x: torch.tensor(80.0), n_boot=10)]
    res = run_vbench(dims, [static_video(3)])
    q = res["vbench_quality"]
    assert q.score.value == pytest.approx((1 + 1 + 1 + (1 - 0.706) / 0.2915 + 0 + 0.5 + 0.8) / 6.5)
    dims[3] = MotionSmoothness(interpolator="blend")  # a stand-in: no aggregate under VBench's name
    assert "vbench_quality" not in run_vbench(dims, [static_video(3)])


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
