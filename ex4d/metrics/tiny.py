"""TEST ONLY: a random-weight frame feature extractor, so CPU smoke runs compute FID/KID without weights.

``metrics=tiny`` injects it into :class:`~ex4d.metrics.fid.FIDKID` (``extractor=``). Its features are
random projections, not Inception-v3: the numbers it gives are for plumbing tests, never a result.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TinyFrameFeatures(nn.Module):
    """(N, 3, H, W) uint8 -> (N, dim) float32: a seeded random 3x3 conv, ReLU, global average pool."""

    def __init__(self, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, dim, 3, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3)
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g) * 0.1)
        self.requires_grad_(False)
        self.eval()

    def __repr__(self) -> str:
        return f"TinyFrameFeatures(dim={self.conv.out_channels}) [TEST ONLY: random weights]"

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        assert x.dtype == torch.uint8 and x.shape[1] == 3, (x.dtype, x.shape)
        return torch.relu(self.conv(x.float() / 255.0)).mean(dim=(2, 3))
