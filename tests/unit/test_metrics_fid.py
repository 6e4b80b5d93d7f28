"""FID/KID over frames (ex4d.metrics.fid): the statistics on an injected tiny extractor, and torch-fidelity's
real Inception-v3 class wired from a random-weight file that the tests write (nothing is downloaded)."""

import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from ex4d.metrics.fid import FIDKID
from ex4d.metrics.weights import Skipped, run_or_skip
from ex4d.utils.errors import InputError, MissingWeightsError


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
    assert "tools/download_weights.py" in res.reason


# ---- torch-fidelity's FeatureExtractorInceptionV3 (what torchmetrics' FID/KID run), random weights ----


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """(path, sha256) of a random-weight state dict of the real class, saved as the released file is."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class RandomInit(FeatureExtractorInceptionV3):  # the real class, built without any weights file
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    d = tmp_path_factory.mktemp("fid_inception")
    torch.save({}, d / "empty.pth")
    torch.manual_seed(0)
    state = RandomInit("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(d / "empty.pth")).state_dict()
    for k, v in state.items():
        if k.endswith("conv.weight"):  # He init: PyTorch's default init leaves ~1e-8 pool features here
            v.normal_(0.0, (2.0 / v[0].numel()) ** 0.5)
    path = d / "inception-random.pth"
    torch.save(state, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow  # Inception-v3 at 299x299 on 2 CPU cores: ~0.2 s a frame
def test_real_inception_loads_strictly_and_matches_torchmetrics(inception_file, no_download):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import poly_mmd

    path, digest = inception_file
    fid = FIDKID(weights_path=path, sha256=digest, kid_subsets=1, kid_subset_size=2)
    net = fid.extractor.net
    assert isinstance(net, FeatureExtractorInceptionV3)
    saved = torch.load(path, weights_only=True)
    assert net.state_dict().keys() == saved.keys()
    torch.testing.assert_close(net.Mixed_7c.branch_pool.conv.weight, saved["Mixed_7c.branch_pool.conv.weight"])
    src, gen = videos(2, t=1, size=40), [v // 2 for v in videos(2, t=1, seed=1, size=40)]  # 2 frames a set
    same = fid(src, [v.clone() for v in src])
    assert abs(same.fid.value) < 1e-3 and same.n_frames_source == 2
    diff = fid(gen, src)
    assert diff.fid.value > 1e-3 and diff.kid_mean > 0
    # torchmetrics' FID on the same file and frames (TF1 resize: antialias=False) gives the same number, and
    # its KID kernel on our features (one subset of both frames, so no sampling) the same KID.
    frames = lambda vs: torch.cat(vs).permute(0, 3, 1, 2)  # noqa: E731
    tm_fid = FrechetInceptionDistance(feature_extractor_weights_path=str(path), antialias=False)
    tm_fid.update(frames(src), real=True)
    tm_fid.update(frames(gen), real=False)
    assert diff.fid.value == pytest.approx(float(tm_fid.compute()), rel=1e-3)
    f_src, f_gen = (torch.from_numpy(np.concatenate(fid._features[real])).double() for real in (True, False))
    assert diff.kid_mean == pytest.approx(float(poly_mmd(f_src, f_gen)), rel=1e-6)


def test_real_inception_chunked_features_equal_one_pass(inception_file):
    # Per-video streaming into FeatureStats equals __call__ (tested above on the tiny extractor); here the
    # real network: frames fed one at a time give the features of one batched pass.
    path, digest = inception_file
    one_pass = FIDKID(weights_path=path, sha256=digest, batch_size=3)
    chunked = FIDKID(extractor=one_pass.extractor, batch_size=1)
    video = videos(1, t=3, size=40)[0]
    np.testing.assert_allclose(chunked.features(video), one_pass.features(video), rtol=1e-4, atol=1e-6)


def test_wrong_sha256_or_wrong_file_fail_clearly(inception_file, tmp_path, no_download):
    path, _ = inception_file
    # Default check: the sha256 prefix in the released file's name.
    with pytest.raises(MissingWeightsError, match=r"sha256 mismatch .*Get 'pt_inception-2015-12-05-6726825d.pth'"):
        FIDKID(weights_path=path).extractor
    # Strict loading: a state dict lacking one tensor of the real network is refused.
    state = torch.load(path, weights_only=True)
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(InputError, match="(?s)not the FID Inception-v3 weights.*Mixed_7c.branch_pool.conv.weight"):
        FIDKID(weights_path=tmp_path / "short.pth", sha256="").extractor


