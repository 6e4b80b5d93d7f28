"""PSNR / SSIM / LPIPS against ground-truth targets (ex4d.metrics.image); LPIPS is the lpips package's on a
random-weight torchvision AlexNet file that the tests write (nothing is downloaded), checked against
torchmetrics' port of the same network."""

import hashlib
import math
from pathlib import Path

import pytest
import torch

from ex4d.metrics.image import ImageMetrics, psnr_video, ssim_video
from ex4d.metrics.weights import METRIC_WEIGHTS, Skipped, run_or_skip
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


def torchmetrics_lpips_alex(alexnet_path):
    """torchmetrics' LPIPS (AlexNet, v0.1) with its trunk from the same local AlexNet file (copied in after
    construction: torchmetrics builds the trunk through torchvision's downloading weights API)."""
    from unittest import mock

    import torchvision.models
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    real = torchvision.models.alexnet
    with mock.patch("torchvision.models.alexnet", lambda *a, **k: real(weights=None)):
        metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="mean", normalize=True)
    saved = torch.load(alexnet_path, weights_only=True)
    trunk = metric.net.net
    for name, p in trunk.state_dict().items():  # slice<k>.<features index>.<param>
        p.copy_(saved["features." + name.split(".", 1)[1]])
    return metric.eval()


def test_lpips_is_the_lpips_package_with_the_local_alexnet_and_its_shipped_heads(alexnet_file, no_download):
    import lpips

    from ex4d.metrics.image import LPIPSAlex
    from ex4d.metrics.weights import resolved_weights

    path, digest = alexnet_file
    metrics = ImageMetrics(weights_path=path, sha256=digest, n_boot=20)
    metrics.check_available()
    model = metrics.lpips_model
    assert isinstance(model, LPIPSAlex) and isinstance(model.net, lpips.LPIPS)
    saved = torch.load(path, weights_only=True)  # the trunk is our file's, not a fresh random init
    trunk = model.net.net.state_dict()
    torch.testing.assert_close(trunk["slice1.0.weight"], saved["features.0.weight"])
    torch.testing.assert_close(trunk["slice5.10.weight"], saved["features.10.weight"])
    heads = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.net.state_dict()["lin0.model.1.weight"], heads["lin0.model.1.weight"])
    # the shipped heads were checked against the digest the lpips wheel's RECORD publishes
    checks = {v["key"]: v for v in resolved_weights().values()}
    assert checks["lpips_heads"]["sha256"] == METRIC_WEIGHTS["lpips_heads"].sha256 and "RECORD" in checks["lpips_heads"]["check"]
    same = metrics([video(seed=4)] * 2, [video(seed=4)] * 2)
    assert same.lpips.value == pytest.approx(0.0, abs=1e-6) and same.lpips.n == 2
    diff = metrics([video(seed=5)], [video(seed=6)])
    assert diff.lpips.value > 1e-3 and diff.psnr.n == 1
    # Per-video value = mean over frames, whatever the chunk size.
    chunked = ImageMetrics(lpips_model=model, batch_size=1)
    assert chunked.lpips_video(video(seed=5), video(seed=6)) == pytest.approx(diff.lpips.value, rel=1e-5)


def test_lpips_package_agrees_with_torchmetrics(alexnet_file, no_download):
    """Same trunk weights, each implementation's own shipped heads: the same distances on real images."""
    import skimage.data

    path, digest = alexnet_file
    ours = ImageMetrics(weights_path=path, sha256=digest).lpips_model
    theirs = torchmetrics_lpips_alex(path)
    img = torch.from_numpy(skimage.data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255  # 128x128
    noisy = (img + 0.1 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    shifted = torch.roll(img, 7, dims=2)
    for other in (noisy, shifted, img.flip(2)):
        d_ours = float(ours(img[None], other[None]))
        theirs.reset()
        theirs.update(img[None], other[None])
        assert d_ours > 1e-4 and d_ours == pytest.approx(float(theirs.compute()), rel=1e-4, abs=1e-6)


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
