"""Rendering masks on the GPU: nvdiffrast (antialiased) agrees with the CPU ray caster, and is fast enough
for preprocessing at the training resolution."""

import time

import pytest
import torch

from ex4d.cameras import intrinsics
from ex4d.masking import PoseSampler, RenderMask

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


def _scene(T, H, device):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (T, H, H, 3), dtype=torch.uint8, generator=g).to(device)
    depth = torch.full((T, H, H), 10.0, device=device)
    q = H // 3
    depth[:, q:2 * q, q:2 * q] = 10000.0 / 3900.0
    return frames, depth, intrinsics(H, H, focal_px=float(H))


@pytest.fixture(scope="module")
def renderers():
    from ex4d.render.cpu_backend import CpuRenderer
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    return CpuRenderer(), NvdiffrastRenderer(antialias=True)


@pytest.mark.parametrize("angle", [0.0, 10.0, 30.0])
def test_nvdiffrast_round_trip_matches_cpu(renderers, angle):
    cpu, gpu = renderers
    frames, depth, K = _scene(2, 96, "cuda")
    poses = PoseSampler(angle_deg=angle, sign="positive", pitch_deg=5.0, schedule="constant")
    g = torch.Generator().manual_seed(0)
    m_cpu = RenderMask(poses, renderer=cpu, full_first_frame=False)(frames.cpu(), depth.cpu(), K, g)
    m_gpu = RenderMask(poses, renderer=gpu, full_first_frame=False)(frames, depth, K, torch.Generator().manual_seed(0))
    assert m_gpu.device.type == "cuda"
    agree = (m_cpu == m_gpu.cpu()).float().mean()
    print(f"angle {angle}: agreement {agree:.4f}, holes cpu {(~m_cpu).float().mean():.4f} "
          f"gpu {(~m_gpu).float().mean():.4f}")
    assert agree > 0.97
    assert abs((~m_cpu).float().mean() - (~m_gpu).float().mean().cpu()) < 0.02


def test_training_resolution_throughput(renderers):
    _, gpu = renderers
    frames, depth, K = _scene(49, 512, "cuda")
    m = RenderMask(PoseSampler(angle_deg=(10, 90)), renderer=gpu, chunk_size=49)
    m(frames[:2], depth[:2], K, torch.Generator().manual_seed(0))  # warm-up (plugin load, allocations)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    mask = m(frames, depth, K, torch.Generator().manual_seed(0))
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"RenderMask 49x512x512 on {torch.cuda.get_device_name()}: {dt:.3f} s, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, holes {(~mask).float().mean():.3f}")
    assert mask.shape == (49, 512, 512) and dt < 30
