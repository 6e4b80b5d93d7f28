"""DepthCrafterBackend on CUDA in float16 (the reference precision), tiny random-weight components."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("diffusers")

from ex4d.depth import EX4D_NEAR, DepthCrafterBackend  # noqa: E402
from tests.unit.test_depth_depthcrafter import build_tiny_repos  # noqa: E402


def test_depthcrafter_fp16_cuda_sliding_window(tmp_path):
    repos = build_tiny_repos(tmp_path)
    b = DepthCrafterBackend(unet=str(repos / "DepthCrafter"), base=str(repos / "svd"), window=4, overlap=2,
                            dtype="float16", device="cuda")
    frames = torch.randint(0, 256, (7, 64, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    r = b(frames)
    # the VAE is back in fp16 after its fp32 encode
    assert b._c.vae.dtype == torch.float16 and b._c.unet.dtype == torch.float16
    assert r.depth.shape == (7, 64, 96) and torch.isfinite(r.depth).all()
    assert float(r.depth.min()) == pytest.approx(EX4D_NEAR, abs=1e-4)
    assert torch.equal(b(frames).depth, r.depth)  # seeded CUDA generator: reproducible
