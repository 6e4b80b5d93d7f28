"""FVD clips, preprocessing and the TorchScript detector path (ex4d.metrics.fvd)."""

import pytest
import torch
from torch import Tensor, nn

from ex4d.metrics.fvd import FVD, preprocess_clip, video_clips
from ex4d.metrics.weights import Skipped, resolve_weights, run_or_skip
from ex4d.utils.errors import InputError


class TinyI3D(nn.Module):
    """Same call signature as StyleGAN-V's TorchScript I3D: (B, 3, T, 224, 224) in [-1, 1] -> (B, D)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 5, kernel_size=(4, 16, 16), stride=(4, 16, 16))

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = True) -> Tensor:
        return self.conv(x).mean(dim=(2, 3, 4))


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, **kwargs):
        self.calls.append((tuple(x.shape), float(x.min()), float(x.max()), kwargs))
        return x.mean(dim=(2, 3, 4))


def videos(n, t=16, seed=0, h=24, w=32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=g) for _ in range(n)]


def test_clip_variants():
    v = torch.zeros(40, 8, 8, 3, dtype=torch.uint8)
    assert [c.shape[0] for c in video_clips(v, "first16")] == [16]
    clips = video_clips(torch.arange(40).view(40, 1, 1, 1).expand(40, 2, 2, 3).to(torch.uint8), "windows")
    assert len(clips) == 2 and int(clips[1][0, 0, 0, 0]) == 16  # non-overlapping, remainder dropped
    with pytest.raises(InputError, match="has 10 frames, FVD needs at least 16"):
        video_clips(torch.zeros(10, 8, 8, 3, dtype=torch.uint8), "first16", name="clip_x")
    with pytest.raises(InputError, match="variant"):
        FVD(variant="random")


def test_preprocess_shape_and_range():
    clip = torch.full((16, 90, 160, 3), 128, dtype=torch.uint8)
    x = preprocess_clip(clip)
    assert x.shape == (3, 16, 224, 224)
    torch.testing.assert_close(x, torch.full_like(x, 128 / 255 * 2 - 1))
    ramp = torch.linspace(0, 255, 160).round().to(torch.uint8).view(1, 1, 160, 1).expand(16, 90, 160, 3).contiguous()
    y = preprocess_clip(ramp)
    assert -1.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_detector_is_called_like_styleganv():
    rec = Recorder()
    FVD("first16", detector=rec, batch_size=4)(videos(2), videos(2, seed=1))
    shape, lo, hi, kwargs = rec.calls[0]
    assert shape == (2, 3, 16, 224, 224) and -1.0 <= lo and hi <= 1.0
    assert kwargs == {"rescale": False, "resize": False, "return_features": True}


def test_torchscript_detector_identical_zero_different_positive(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(TinyI3D()), str(path))
    fvd = FVD("windows", weights_path=path)
    src = videos(3, t=33)
    same = fvd(src, [v.clone() for v in src])
    assert abs(same.fvd.value) < 1e-3 and same.n_clips == 6 and same.fvd.n == 3
    diff = fvd([v // 3 for v in videos(3, t=33, seed=2)], src)
    assert diff.fvd.value > 1e-3


def test_bad_sets_and_missing_detector(tmp_path):
    fvd = FVD(detector=TinyI3D())
    with pytest.raises(InputError, match="differ in size"):
        fvd(videos(2), videos(1))
    with pytest.raises(InputError, match="generated video has 17 frames but its source has 16"):
        fvd(videos(1, t=17), videos(1))
    res = run_or_skip("fvd", FVD(weights_root=tmp_path), videos(2), videos(2))
    assert isinstance(res, Skipped) and "i3d_torchscript.pt" in res.reason


@pytest.mark.weights
def test_sanity_anchor_zeros_vs_ones():
    """StyleGAN-V detector: all-zeros vs all-ones videos give FVD about 151.26 (ex4d-method.md section 7)."""
    try:
        path = resolve_weights("i3d_styleganv")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    zeros = [torch.zeros(16, 64, 64, 3, dtype=torch.uint8) for _ in range(4)]
    ones = [torch.full((16, 64, 64, 3), 255, dtype=torch.uint8) for _ in range(4)]
    assert FVD("first16", weights_path=path)(zeros, ones).fvd.value == pytest.approx(151.26, abs=1.0)
