"""FID/KID over frames (ex4d.metrics.fid) and the FID Inception-v3 module (ex4d.metrics.inception)."""

import hashlib

import pytest
import torch
from torch import nn

from ex4d.metrics.fid import FIDKID
from ex4d.metrics.inception import FIDInceptionV3, resize_bilinear_tf1
from ex4d.metrics.weights import Skipped, run_or_skip
from ex4d.utils.errors import InputError


class TinyExtractor(nn.Module):
    """(N, 3, H, W) uint8 -> (N, 6) features, random weights."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3)

    def forward(self, x):
        assert x.dtype == torch.uint8
        return self.conv(x.float() / 255.0).mean(dim=(2, 3))


def videos(n, t=4, seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (t, size, size, 3), dtype=torch.uint8, generator=g) for _ in range(n)]


def test_identical_sets_give_zero_and_different_sets_do_not():
    fid = FIDKID(extractor=TinyExtractor(), kid_subsets=5)
    src = videos(3)
    same = fid(src, [v.clone() for v in src])
    assert abs(same.fid.value) < 1e-3
    assert same.n_videos == 3 and same.n_frames_generated == same.n_frames_source == 12
    assert "(N=3)" in str(same.fid)
    dark = [(v // 4) for v in videos(3, seed=1)]
    diff = fid(dark, src)
    assert diff.fid.value > 1e-3 and diff.kid_mean > 0


def test_streaming_update_matches_call_and_bootstrap_has_interval():
    src, gen = videos(4), videos(4, seed=1)
    ext = TinyExtractor()
    direct = FIDKID(extractor=ext, kid_subsets=3)(gen, src)
    stream = FIDKID(extractor=ext, kid_subsets=3)
    for g, s in zip(gen, src):
        stream.update(g, real=False)
        stream.update(s, real=True)
    assert stream.compute().fid.value == pytest.approx(direct.fid.value, rel=1e-10)
    boot = FIDKID(extractor=ext, kid_subsets=3, n_boot=20)(gen, src)
    assert boot.fid.low <= boot.fid.high and boot.fid.n == 4


def test_mismatched_sets_raise_clear_errors():
    fid = FIDKID(extractor=TinyExtractor())
    with pytest.raises(InputError, match="differ in size: 2 generated vs 3 source"):
        fid(videos(2), videos(3))
    short = videos(2, t=3)
    with pytest.raises(InputError, match="clip_b: generated video has 3 frames but its source has 4"):
        fid([videos(1)[0], short[1]], videos(2), names=["clip_a", "clip_b"])
    with pytest.raises(InputError, match="uint8"):
        fid([v.float() for v in videos(2)], videos(2))


def test_missing_weights_skip_names_the_file(tmp_path):
    res = run_or_skip("fid", FIDKID(weights_root=tmp_path), videos(2), videos(2))
    assert isinstance(res, Skipped)
    assert "pt_inception-2015-12-05-6726825d.pth" in res.reason and str(tmp_path) in res.reason


@pytest.mark.slow  # ~1 s alone; one 299x299 Inception forward can pass 5 s on a busy 2-core machine
def test_real_inception_class_loads_from_a_checked_file(tmp_path):
    # Random weights of the real network, saved the way the released file is (no BN counters).
    torch.manual_seed(0)
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "inception.pth"
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    fid = FIDKID(weights_path=path, sha256=digest)
    feats = fid.features(videos(1, t=1, size=40)[0])
    assert feats.shape == (1, 2048) and feats.dtype.name == "float32"
    with pytest.raises(InputError, match="not the FID Inception"):
        torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
        FIDInceptionV3.from_file(tmp_path / "wrong.pth")


def test_tf1_bilinear_resize_known_values():
    # TF1 (align_corners=False, no half-pixel): output i samples input at i * in/out, clamped at the border.
    x = torch.tensor([0.0, 10.0]).view(1, 1, 1, 2)
    out = resize_bilinear_tf1(x, (1, 4))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 5.0, 10.0, 10.0]))
    y = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(resize_bilinear_tf1(y, (2, 2)).flatten(), torch.tensor([0.0, 2.0, 8.0, 10.0]))


def test_matches_torch_fidelity_when_importable(tmp_path):
    # torch-fidelity imports torchvision, which does not work with the CPU torch here; runs where both import.
    tf_incep = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3", exc_type=ImportError)
    torch.manual_seed(0)
    path = tmp_path / "w.pth"
    torch.save(FIDInceptionV3().state_dict(), path)
    ref = tf_incep.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    x = torch.randint(0, 256, (2, 3, 120, 200), dtype=torch.uint8)
    torch.testing.assert_close(FIDInceptionV3.from_file(path)(x), ref(x)[0])
