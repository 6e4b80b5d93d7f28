"""PSNR / SSIM / LPIPS against ground-truth targets (ex4d.metrics.image); LPIPS is torchmetrics' on a
random-weight torchvision AlexNet file that the tests write (nothing is downloaded)."""

import hashlib
import math

import pytest
import torch

from ex4d.metrics.image import ImageMetrics, psnr_video, ssim_video
from ex4d.metrics.weights import Skipped, run_or_skip
from ex4d.utils.errors import InputError, MissingWeightsError


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


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """(path, sha256) of a random-weight state dict of torchvision's AlexNet (the file layout LPIPS loads)."""
    from torchvision.models import alexnet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "alexnet-random.pth"
    torch.save(alexnet(weights=None).state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_lpips_is_torchmetrics_with_the_local_alexnet(alexnet_file, no_download):
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    path, digest = alexnet_file
    hub_before = torch.hub.get_dir()
    metrics = ImageMetrics(weights_path=path, sha256=digest, n_boot=20)
    model = metrics.lpips_model
    assert isinstance(model, LearnedPerceptualImagePatchSimilarity) and torch.hub.get_dir() == hub_before
    saved = torch.load(path, weights_only=True)  # the backbone is our file's, not a fresh random init
    backbone = model.net.net.state_dict()  # torchmetrics' slices keep torchvision's `features` indices
    torch.testing.assert_close(backbone["slice1.0.weight"], saved["features.0.weight"])
    torch.testing.assert_close(backbone["slice5.10.weight"], saved["features.10.weight"])
    same = metrics([video(seed=4)] * 2, [video(seed=4)] * 2)
    assert same.lpips.value == pytest.approx(0.0, abs=1e-6) and same.lpips.n == 2
    diff = metrics([video(seed=5)], [video(seed=6)])
    assert diff.lpips.value > 1e-3 and diff.psnr.n == 1
    # Per-video value = mean over frames, whatever the chunk size.
    chunked = ImageMetrics(lpips_model=model, batch_size=1)
    assert chunked.lpips_video(video(seed=5), video(seed=6)) == pytest.approx(diff.lpips.value, rel=1e-5)


def test_lpips_wrong_sha256_or_wrong_file_fail_clearly(alexnet_file, tmp_path, no_download):
    path, _ = alexnet_file
    with pytest.raises(MissingWeightsError, match=r"sha256 mismatch .*Get 'alexnet-owt-7be5be79.pth'"):
        ImageMetrics(weights_path=path).lpips_model  # default check: the prefix in the released file's name
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, tmp_path / "partial.pth")
    with pytest.raises(InputError, match="(?s)not torchvision's AlexNet weights.*Missing key"):
        ImageMetrics(weights_path=tmp_path / "partial.pth", sha256="").lpips_model


def test_missing_lpips_weights_skip_and_bad_pairs(tmp_path):
    res = run_or_skip("image", ImageMetrics(weights_root=tmp_path), [video(seed=1)], [video(seed=1)])
    assert isinstance(res, Skipped) and "alexnet-owt-7be5be79.pth" in res.reason and str(tmp_path) in res.reason
    no_lpips = ImageMetrics(lpips=False)([video(seed=1)], [video(seed=1)])
    assert no_lpips.lpips is None and no_lpips.ssim.value == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InputError, match="differ in size"):
        ImageMetrics(lpips=False)([video(seed=1, h=32)], [video(seed=1)])
