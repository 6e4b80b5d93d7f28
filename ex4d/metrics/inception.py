"""The FID Inception-v3 (TF "2015-12-05" graph) as a plain PyTorch module, 2048-d pool features.

Why our own module and not torchmetrics' extractor: torchmetrics' FID feature extractor is
torch-fidelity's ``FeatureExtractorInceptionV3``, and ``import torch_fidelity`` imports torchvision
in its package ``__init__``. Here torch is a CPU build (2.13.0+cpu); the PyPI torchvision wheel is the
CUDA build, whose ops fail to register against it ("operator torchvision::nms does not exist"), and
with torch-fidelity installed but no working torchvision, ``import torchmetrics`` itself fails (its
``__init__`` imports ``torchmetrics.image.fid``), which would break Lightning everywhere. So this file
re-states the same network from the published architecture (the TF graph as ported by pytorch-fid and
torch-fidelity), with the same parameter names, so the same weights file loads strictly:
``pt_inception-2015-12-05-6726825d.pth`` (= torch-fidelity's ``weights-inception-...-6726825d.pth``).

What makes it the *FID* Inception rather than torchvision's classifier (these change the numbers):

* input: uint8 RGB resized to 299x299 with TensorFlow 1.x bilinear resampling (no antialias, no
  half-pixel centres), then ``(x - 128) / 128``;
* average pools inside blocks A, C and the first E block exclude the zero padding
  (``count_include_pad=False``), as TF does;
* the last E block (``Mixed_7c``) pools with a *max* pool, a quirk of the TF graph;
* BatchNorm eps 1e-3; features are the 2048-d global average pool of ``Mixed_7c``.

A ``weights``-marked test compares this module with torch-fidelity's on a machine where both import.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ex4d.utils.errors import InputError, MissingWeightsError

INPUT_SIZE = 299


def resize_bilinear_tf1(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize as TensorFlow 1.x ``resize_bilinear(align_corners=False)`` computes it.

    Output pixel i samples the input at ``i * in / out`` (no half-pixel offset), blending the two
    neighbours; indices past the border clamp. This is the resize the TF FID code applies, so FID on
    non-299 inputs matches the reference.

    Args:
        x: (N, C, H, W) float. size: (out_h, out_w).
    """
    n, c, h, w = x.shape
    oh, ow = size

    def axis(in_size: int, out_size: int) -> tuple[Tensor, Tensor, Tensor]:
        # float32 coordinates, as the TF kernel uses.
        pos = torch.arange(out_size, dtype=torch.float32, device=x.device) * torch.tensor(
            in_size / out_size, dtype=torch.float32
        )
        lo = pos.floor().long().clamp(max=in_size - 1)
        hi = (lo + 1).clamp(max=in_size - 1)
        return lo, hi, (pos - lo.float()).to(x.dtype)

    ylo, yhi, dy = axis(h, oh)
    xlo, xhi, dx = axis(w, ow)
    top = x[:, :, ylo]
    bottom = x[:, :, yhi]
    left = top[..., xlo] + (top[..., xhi] - top[..., xlo]) * dx
    right = bottom[..., xlo] + (bottom[..., xhi] - bottom[..., xlo]) * dx
    return left + (right - left) * dy.view(1, 1, oh, 1)


class _ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm(eps=1e-3) + ReLU; parameter names ``conv.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3_excl_pad(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):  # Mixed_5b..5d: 35x35
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 64, 1)
        self.branch5x5_1 = _ConvBN(cin, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg3_excl_pad(x))], 1)


class _BlockB(nn.Module):  # Mixed_6a: 35x35 -> 17x17
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockC(nn.Module):  # Mixed_6b..6e: 17x17 with factorised 7x7
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 192, 1)
        self.branch7x7_1 = _ConvBN(cin, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = m(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3_excl_pad(x))], 1)


class _BlockD(nn.Module):  # Mixed_7a: 17x17 -> 8x8
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(cin, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for m in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = m(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockE(nn.Module):  # Mixed_7b (avg pool) and Mixed_7c (max pool, the TF graph's quirk)
    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _ConvBN(cin, 320, 1)
        self.branch3x3_1 = _ConvBN(cin, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3_excl_pad(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """FID Inception-v3: (N, 3, H, W) uint8 RGB -> (N, 2048) float32 pool features.

    Construct with random weights (tests) or use :meth:`from_file`. Always in eval mode, no grads.
    """

    num_features = 2048

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _BlockA(192, 32)
        self.Mixed_5c = _BlockA(256, 64)
        self.Mixed_5d = _BlockA(288, 64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, 128)
        self.Mixed_6c = _BlockC(768, 160)
        self.Mixed_6d = _BlockC(768, 160)
        self.Mixed_6e = _BlockC(768, 192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)  # logits head of the TF graph; unused, kept so the file loads strictly
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionV3:
        # BatchNorm must use the stored statistics: never leave eval mode.
        return super().train(False)

    @classmethod
    def from_file(cls, path: str | Path) -> FIDInceptionV3:
        """Load the FID Inception weights (``pt_inception-2015-12-05-6726825d.pth``)."""
        path = Path(path)
        if not path.exists():
            raise MissingWeightsError(f"missing FID Inception weights file: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = cls()
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise InputError(f"{path}: not the FID Inception-v3 weights ({str(e)[:300]})") from e
        # Files converted without BatchNorm counters are fine; anything else means the wrong file.
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise InputError(
                f"{path}: not the FID Inception-v3 weights (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
            )
        return model

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"FID Inception: expected (N, 3, H, W) uint8 RGB, got {tuple(images.shape)} {images.dtype}")
        x = images.float()
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = resize_bilinear_tf1(x, (INPUT_SIZE, INPUT_SIZE))
        x = (x - 128.0) / 128.0
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
            self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c,
        ):  # fmt: skip
            x = block(x)
        return x.mean(dim=(2, 3)).float()
