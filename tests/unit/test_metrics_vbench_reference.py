"""Our VBench dimensions against VBench's own code (the vbench package, requirements/eval-nodeps.txt) on the same
frames and the same (random) weights: temporal flickering, AMT-S motion smoothness end to end, MUSIQ's
preprocessing. Nothing is downloaded; VBench's functions read frames from files as they do in a real run."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ex4d.metrics.vbench import MotionSmoothness, TemporalFlickering, musiq_preprocess

vbench = pytest.importorskip("vbench", reason="the vbench package (pip install --no-deps -r requirements/eval-nodeps.txt)")


@pytest.fixture(autouse=True)
def keep_pil_truncated_images_flag(monkeypatch):
    """vbench's modules set PIL's process-wide LOAD_TRUNCATED_IMAGES = True when imported (here, by the tests):
    restored after each test, so later tests still see truncated images refused."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", ImageFile.LOAD_TRUNCATED_IMAGES)


def clip(t=5, h=130, w=150, seed=0):
    """A textured clip drifting right with a brightness ramp: neither static nor trivially predictable."""
    rng = np.random.default_rng(seed)
    tile = np.kron(rng.integers(0, 256, (h // 6 + 1, (w + 4 * t) // 6 + 1, 3), dtype=np.uint8), np.ones((6, 6, 1), np.uint8))
    frames = [np.clip(tile[:h, 3 * i : 3 * i + w].astype(int) + 4 * i, 0, 255).astype(np.uint8) for i in range(t)]
    return np.stack(frames)


def test_temporal_flickering_matches_vbench():
    from vbench.temporal_flickering import mae_seq

    for frames in (clip(), clip(4, 64, 96, seed=1)):
        theirs = (255.0 - np.mean(mae_seq(list(frames))).item()) / 255.0  # cal_score's formula on its frame list
        # (VBench averages each pair's float32 differences in float32; we accumulate in float64)
        assert TemporalFlickering().score_video(torch.from_numpy(frames)) == pytest.approx(theirs, abs=1e-7)


@pytest.mark.slow  # two AMT-S runs at 144x160 on CPU (a few seconds)
def test_motion_smoothness_matches_vbench_end_to_end(tmp_path):
    """VBench's MotionSmoothness class (its AMT-S config, its checkpoint loading, its padding, its uint8
    conversion, reading PNG frames from a folder) and ours on the same random-weight amt-s.pth: same score."""
    from vbench.motion_smoothness import MotionSmoothness as VBenchMotionSmoothness

    from ex4d.metrics.vbench import amt_s_network

    torch.manual_seed(0)
    ckpt = tmp_path / "amt-s.pth"
    torch.save({"state_dict": amt_s_network()(corr_radius=3, corr_lvls=4, num_flows=3).state_dict()}, ckpt)
    frames = clip(5)  # 130x150: both pad to 144x160
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    config = Path(vbench.__file__).parent / "third_party" / "amt" / "cfgs" / "AMT-S.yaml"
    theirs = VBenchMotionSmoothness(str(config), str(ckpt), "cpu").motion_score(str(folder))
    ours = MotionSmoothness(weights_path=ckpt, sha256="").score_video(torch.from_numpy(frames))
    # The two runs of the network differ at float32 noise (~4e-6), which flips a handful of the ~10^5 truncated
    # uint8 values by one level: 1e-6 of score allows about 30 such flips.
    assert ours == pytest.approx(float(theirs), abs=1e-6)


def test_musiq_preprocessing_matches_vbench():
    from vbench.imaging_quality import transform

    rng = np.random.default_rng(0)
    for h, w in ((600, 800), (720, 500), (300, 400)):  # longer side above, above, below 512
        frames = torch.from_numpy(rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8))
        theirs = transform(frames.permute(0, 3, 1, 2), "longer")  # VBench: (T, 3, H, W) uint8 -> float [0, 1]
        ours = torch.cat([musiq_preprocess(f) for f in frames])
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs.float(), atol=1e-6, rtol=0)
