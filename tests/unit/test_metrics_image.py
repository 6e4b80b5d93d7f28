"""PSNR / SSIM / LPIPS against ground-truth targets (ex4d.metrics.image)."""

import math

import pytest
import torch

from ex4d.metrics.image import ImageMetrics, LPIPSAlex, psnr_video, ssim_video
from ex4d.metrics.weights import Skipped, run_or_skip
from ex4d.utils.errors import InputError


def video(value=None, t=3, seed=0, h=64, w=64):
    if value is not None:
        return torch.full((t, h, w, 3), value, dtype=torch.uint8)
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=g)


def test_psnr_ssim_known_values():
    assert psnr_video(video(110), video(100)) == pytest.approx(20 * math.log10(255 / 10), rel=1e-5)
    assert psnr_video(video(seed=1), video(seed=1)) == 100.0  # identical: capped, not inf
    assert ssim_video(video(seed=2), video(seed=2)) == pytest.approx(1.0, abs=1e-6)
    assert ssim_video(video(seed=2), video(seed=3)) < 0.2


def test_lpips_from_files_identical_zero(tmp_path):
    torch.manual_seed(0)
    # torchvision's AlexNet state-dict layout: features.{0,3,6,8,10} + a classifier that LPIPS ignores.
    state = {f"features.{k}": v for k, v in LPIPSAlex().features.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "alexnet.pth")
    metrics = ImageMetrics(weights_path=tmp_path / "alexnet.pth", sha256="", n_boot=20)
    same = metrics([video(seed=4)] * 2, [video(seed=4)] * 2)
    assert same.lpips.value == pytest.approx(0.0, abs=1e-7) and same.lpips.n == 2
    diff = metrics([video(seed=5)], [video(seed=6)])
    assert diff.lpips.value > 0 and diff.psnr.n == 1


def test_missing_lpips_weights_skip_and_bad_pairs(tmp_path):
    res = run_or_skip("image", ImageMetrics(weights_root=tmp_path), [video(seed=1)], [video(seed=1)])
    assert isinstance(res, Skipped) and "alexnet-owt-7be5be79.pth" in res.reason
    no_lpips = ImageMetrics(lpips=False)([video(seed=1)], [video(seed=1)])
    assert no_lpips.lpips is None and no_lpips.ssim.value == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InputError, match="differ in size"):
        ImageMetrics(lpips=False)([video(seed=1, h=32)], [video(seed=1)])
