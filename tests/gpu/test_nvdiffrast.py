"""nvdiffrast backend vs the CPU ray caster, identity reproduction, batching (needs CUDA + nvdiffrast).

Run on the GPU host: ``python -m pytest -q -m gpu tests/gpu/test_nvdiffrast.py -s`` (``-s`` prints the
measured agreement numbers). The first test JIT-builds nvdiffrast's plugin (~30 s, then cached).

Antialiasing is *off* for the CPU comparison: the CPU renderer point-samples each pixel centre, and
nvdiffrast's antialias is a post-process that blends colour and alpha across silhouette edges (it
moves the mask boundary by up to a pixel), so only the point-sampled outputs are the same function.
A separate check bounds what antialiasing changes.
"""

from __future__ import annotations

import pytest
import torch

from ex4d.cameras import intrinsics
from ex4d.cameras.trajectories import ReferenceOrbit
from ex4d.data.examples import load_motorcycle
from ex4d.depth.base import EX4D_NEAR
from ex4d.mesh import DWMesh, build_dwmesh, face_min_angle_deg
from ex4d.render import CpuRenderer, finalize_rgba, make_renderer

pytestmark = pytest.mark.gpu

H, W, N = 256, 384, 6


@pytest.fixture(scope="module")
def dr():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from ex4d.render.nvdiffrast_backend import RendererUnavailableError, load_nvdiffrast

    try:
        return load_nvdiffrast()
    except RendererUnavailableError as e:
        pytest.skip(str(e))


def _motorcycle_or_procedural() -> tuple[torch.Tensor, torch.Tensor, str]:
    """(rgb (H, W, 3) uint8, depth (H, W) float32 on the EX-4D scale, source name).

    The Middlebury motorcycle (scikit-image, GT depth) when scikit-image is installed, resized here
    with torch (no PyAV needed); else a procedural textured scene with depth steps, so that one run
    on a host without scikit-image still checks everything.
    """
    try:
        m = load_motorcycle()  # native size: no resize, so no PyAV import
        rgb = torch.from_numpy(m["left"]).permute(2, 0, 1)[None].float()
        rgb = torch.nn.functional.interpolate(rgb, size=(H, W), mode="bilinear", antialias=True, align_corners=False)
        rgb = rgb.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()
        depth = torch.nn.functional.interpolate(torch.from_numpy(m["depth_m"])[None, None], size=(H, W),
                                                mode="nearest-exact")[0, 0]
        return rgb, depth * (EX4D_NEAR / float(depth.min())), "motorcycle (GT depth)"
    except ImportError as e:
        g = torch.Generator().manual_seed(0)
        v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
        rgb = torch.stack([0.5 + 0.4 * torch.sin(u / 7.0), 0.5 + 0.4 * torch.cos(v / 5.0),
                           0.5 + 0.3 * torch.sin((u + v) / 11.0)], -1)
        rgb = ((rgb + 0.05 * torch.rand(H, W, 3, generator=g)).clamp(0, 1) * 255).round().to(torch.uint8)
        depth = 8.0 - 4.0 * v / H + 0.3 * torch.sin(u / 23.0)
        depth[H // 4 : H // 2, W // 5 : W // 2] = 3.0  # a box in front
        depth[(u - 0.7 * W) ** 2 + (v - 0.6 * H) ** 2 < (H / 6) ** 2] = 2.6  # a disc in front
        return rgb, depth, f"procedural (scikit-image unavailable: {e})"


@pytest.fixture(scope="module")
def scene():
    """A 6-frame 'video' (depth slightly different per frame) and a path: 0..30 degree reference
    orbit, last pose replaced by a sideways translation."""
    rgb, depth, source = _motorcycle_or_procedural()
    print(f"\nGPU test scene: {source}, {H}x{W}, {N} frames")
    depth = depth[None] * torch.linspace(1.0, 1.1, N)[:, None, None]
    rgb = rgb[None].expand(N, -1, -1, -1)
    K = intrinsics(H, W)
    w2c = ReferenceOrbit(30, frame_rescale=False)(N, float(depth[0].min()))
    w2c[-1] = torch.eye(4, dtype=torch.float64)
    w2c[-1, 0, 3] = -0.15
    return {"rgb": rgb, "depth": depth, "K": K, "w2c": w2c}


@pytest.fixture(scope="module")
def cpu_renderer():
    """The CPU ray caster (needs the embreex wheel on the GPU host too)."""
    try:
        import embreex.rtcore_scene  # noqa: F401
    except ImportError as e:
        pytest.skip(f"embreex missing ({e}): bring its wheel "
                    "(bash ../shared/tools/device-wheels.sh embreex==4.4.0.post1)")
    return CpuRenderer()


def _metrics(cpu: torch.Tensor, gpu: torch.Tensor) -> tuple[float, float, list[float]]:
    """Mask IoU (pooled), PSNR on the shared valid region (pooled), per-frame IoU."""
    a, b = finalize_rgba(cpu.cpu()), finalize_rgba(gpu.cpu())
    inter, union = (a.mask & b.mask), (a.mask | b.mask)
    iou = float(inter.sum() / union.sum().clamp_min(1))
    per_frame = [float(inter[i].sum() / union[i].sum().clamp_min(1)) for i in range(cpu.shape[0])]
    mse = ((a.color - b.color) ** 2)[inter].mean()
    psnr = float(10 * torch.log10(1.0 / mse.clamp_min(1e-12)))
    return iou, psnr, per_frame


@pytest.mark.parametrize("mode", ["fixed", "torn", "parity"])
def test_matches_cpu_renderer(dr, scene, cpu_renderer, mode):
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    mesh = build_dwmesh(scene["rgb"], scene["depth"], scene["K"], mode=mode)
    cpu = cpu_renderer.rasterize_rgba(mesh, scene["w2c"], scene["K"], H, W)
    gpu = NvdiffrastRenderer(antialias=False).rasterize_rgba(mesh.to("cuda"), scene["w2c"], scene["K"], H, W)
    assert gpu.shape == (N, H, W, 4) and gpu.device.type == "cuda"
    iou, psnr, per_frame = _metrics(cpu, gpu)
    print(f"\n[{mode}] CPU vs nvdiffrast (no AA): mask IoU {iou:.5f} (per frame {[round(x, 4) for x in per_frame]}), "
          f"PSNR on shared valid pixels {psnr:.2f} dB")
    assert iou >= 0.99
    assert psnr >= 40.0


def test_antialias_changes_only_edges(dr, scene):
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    mesh = build_dwmesh(scene["rgb"], scene["depth"], scene["K"]).to("cuda")
    plain = NvdiffrastRenderer(antialias=False).rasterize_rgba(mesh, scene["w2c"], scene["K"], H, W)
    aa = NvdiffrastRenderer(antialias=True).rasterize_rgba(mesh, scene["w2c"], scene["K"], H, W)
    changed = (aa - plain).abs().amax(-1) > 1e-6
    iou, psnr, _ = _metrics(plain, aa)
    print(f"\nantialias on vs off: {float(changed.float().mean()) * 100:.2f}% pixels changed, "
          f"mask IoU {iou:.5f}, PSNR on shared valid {psnr:.2f} dB")
    # Sanity bounds only (the printed numbers are the record): AA touches pixels next to silhouettes.
    assert float(changed.float().mean()) < 0.3
    assert iou >= 0.9


def test_identity_reproduces_source(dr, scene):
    """Frame 0 at the source pose: pixel centres hit the vertices, so the render is the source image
    where the vertex is untouched by walls (row 0 of nvdiffrast's output is the image top)."""
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    mesh = build_dwmesh(scene["rgb"][:1], scene["depth"][:1], scene["K"])
    eye = torch.eye(4, dtype=torch.float64)[None]
    good = (mesh.colors[0, :, 3] > 0).reshape(H, W)
    src = scene["rgb"][0]
    res = NvdiffrastRenderer(antialias=False).render(mesh.to("cuda"), eye, scene["K"])
    mask, color = res.mask[0].cpu(), res.color[0].cpu()
    print(f"\nidentity (no AA): mask == good vertices: {torch.equal(mask, good)}, "
          f"{int((mask != good).sum())} pixels differ")
    assert torch.equal(mask, good)
    assert torch.equal((color * 255).round().to(torch.uint8)[good], src[good])
    # With antialiasing: unchanged at least two pixels away from any wall-touched vertex.
    res_aa = NvdiffrastRenderer(antialias=True).render(mesh.to("cuda"), eye, scene["K"])
    far_from_walls = -torch.nn.functional.max_pool2d(-good.float()[None, None], 5, stride=1, padding=2)[0, 0] > 0.5
    err = (res_aa.color[0].cpu() - src.float() / 255.0).abs().amax(-1)[far_from_walls]
    m_aa = res_aa.mask[0].cpu()
    print(f"identity (AA): max colour error away from walls {float(err.max()):.2e}, "
          f"mask IoU vs good vertices {float((m_aa & good).sum() / (m_aa | good).sum()):.5f}")
    assert res_aa.mask[0].cpu()[far_from_walls].all()
    assert float(err.max()) < 1e-3  # half a uint8 step is 2e-3


@pytest.mark.parametrize("mode", ["fixed", "torn"])
def test_batched_equals_per_frame(dr, scene, mode):
    """One instanced (fixed) / range-mode (torn) call over all frames == one call per frame == chunked."""
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    mesh = build_dwmesh(scene["rgb"], scene["depth"], scene["K"], mode=mode).to("cuda")
    r = NvdiffrastRenderer(antialias=True)
    batched = r.rasterize_rgba(mesh, scene["w2c"], scene["K"], H, W)
    single = torch.cat([r.rasterize_rgba(mesh.frame(i), scene["w2c"][i : i + 1], scene["K"], H, W) for i in range(N)])
    chunked = NvdiffrastRenderer(antialias=True, max_frames_per_call=4).rasterize_rgba(
        mesh, scene["w2c"], scene["K"], H, W)
    diff = float((batched - single).abs().max())
    print(f"\n[{mode}] batched vs per-frame max |diff| {diff:.2e}")
    assert diff <= 1e-6
    assert float((batched - chunked).abs().max()) <= 1e-6


@pytest.mark.parametrize("mode", ["fixed", "torn"])
def test_per_frame_intrinsics(dr, scene, cpu_renderer, mode):
    """A zoom (K per frame, focal 1.0 -> 0.6 of the source's) along the path: nvdiffrast agrees with the CPU
    ray caster as for one K, and batched == per frame == chunked (each chunk takes its frames' K)."""
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    K_T33 = scene["K"].expand(N, 3, 3).clone()
    K_T33[:, :2, :2] *= torch.linspace(1.0, 0.6, N, dtype=torch.float64)[:, None, None]
    mesh = build_dwmesh(scene["rgb"], scene["depth"], scene["K"], mode=mode)
    cpu = cpu_renderer.rasterize_rgba(mesh, scene["w2c"], K_T33, H, W)
    gpu = NvdiffrastRenderer(antialias=False).rasterize_rgba(mesh.to("cuda"), scene["w2c"], K_T33, H, W)
    iou, psnr, per_frame = _metrics(cpu, gpu)
    print(f"\n[{mode}] per-frame K, CPU vs nvdiffrast (no AA): mask IoU {iou:.5f} "
          f"(per frame {[round(x, 4) for x in per_frame]}), PSNR on shared valid pixels {psnr:.2f} dB")
    assert iou >= 0.99
    assert psnr >= 40.0
    r = NvdiffrastRenderer(antialias=True)
    m = mesh.to("cuda")
    batched = r.rasterize_rgba(m, scene["w2c"], K_T33, H, W)
    single = torch.cat([r.rasterize_rgba(m.frame(i), scene["w2c"][i : i + 1], K_T33[i], H, W) for i in range(N)])
    chunked = NvdiffrastRenderer(antialias=True, max_frames_per_call=4).rasterize_rgba(m, scene["w2c"], K_T33, H, W)
    assert float((batched - single).abs().max()) <= 1e-6
    assert float((batched - chunked).abs().max()) <= 1e-6


def test_static_expanded_mesh_and_cpu_inputs(dr, scene):
    """A single image viewed along the path (expanded, stride-0 views; mesh left on the CPU) renders
    like the materialised copy."""
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    one = build_dwmesh(scene["rgb"][:1], scene["depth"][:1], scene["K"])
    expanded = DWMesh(one.vertices.expand(N, -1, -1), one.faces, one.colors.expand(N, -1, -1),
                      one.face_valid.expand(N, -1), None, H, W)
    copied = DWMesh(one.vertices.repeat(N, 1, 1), one.faces, one.colors.repeat(N, 1, 1),
                    one.face_valid.repeat(N, 1), None, H, W)
    r = NvdiffrastRenderer()
    a = r.rasterize_rgba(expanded, scene["w2c"], scene["K"], H, W)
    b = r.rasterize_rgba(copied.to("cuda"), scene["w2c"], scene["K"], H, W)
    assert float((a - b).abs().max()) <= 1e-6


def test_near_plane_and_auto(dr, scene):
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    mesh = build_dwmesh(scene["rgb"][:1], scene["depth"][:1], scene["K"])
    eye = torch.eye(4, dtype=torch.float64)[None]
    full = NvdiffrastRenderer(antialias=False).rasterize_rgba(mesh, eye, scene["K"], H, W).cpu()
    assert float((full[..., 3] > 0.5).float().mean()) > 0.3
    # near beyond the whole surface (the CPU test does the same): only the skirt and the cap remain,
    # both walls with alpha 0.
    clipped = NvdiffrastRenderer(near=50.0, antialias=False).rasterize_rgba(mesh, eye, scene["K"], H, W).cpu()
    assert float(clipped[..., 3].max()) < 0.01
    assert type(make_renderer("auto")).__name__ == "NvdiffrastRenderer"


def test_build_dwmesh_on_gpu_matches_cpu(scene):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    K = scene["K"]
    cpu = build_dwmesh(scene["rgb"], scene["depth"], K)
    gpu = build_dwmesh(scene["rgb"].cuda(), scene["depth"].cuda(), K)
    assert torch.allclose(gpu.vertices.cpu(), cpu.vertices, rtol=1e-6, atol=1e-6)
    flips = int((gpu.face_valid.cpu() != cpu.face_valid).sum())
    print(f"\nbuild_dwmesh CUDA vs CPU: {flips} of {cpu.face_valid.numel()} face labels differ "
          "(float rounding at 2.5 deg)")
    assert flips <= cpu.face_valid.numel() * 1e-5
    # On one device, labels are exactly the angle rule and colours exactly the wall dilation.
    ref_valid = face_min_angle_deg(gpu.vertices, gpu.faces) >= 2.5
    ref_valid[:, -2:] = False
    assert torch.equal(gpu.face_valid, ref_valid)
    count = torch.zeros(N, H * W, dtype=torch.int32, device="cuda")
    for k in range(3):
        count.scatter_add_(1, gpu.faces.long()[:, k].expand(N, -1), (~gpu.face_valid).int())
    assert torch.equal(gpu.colors[..., 3] == 0, count > 0)
