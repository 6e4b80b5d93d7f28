"""Renderer interface: mask thresholding, frame-0 replacement, backend selection and configs."""

from __future__ import annotations

import pickle

import pytest
import torch

from ex4d.render import (
    MASK_THRESHOLD,
    CpuRenderer,
    NvdiffrastRenderer,
    finalize_rgba,
    make_renderer,
    resolve_composite,
)
from ex4d.render.nvdiffrast_backend import clip_from_camera
from ex4d.utils.errors import InputError


def test_finalize_threshold_and_black_holes():
    rgba = torch.zeros(2, 2, 3, 4)
    rgba[..., :3] = 0.7
    rgba[:, 0, 0, 3] = 125 / 255  # exactly the threshold: a hole (reference: alpha > 125)
    rgba[:, 0, 1, 3] = 126 / 255
    rgba[:, 1, :, 3] = 1.0
    res = finalize_rgba(rgba)
    assert MASK_THRESHOLD == 125 / 255
    assert res.mask[:, 0].tolist() == [[False, True, False]] * 2
    assert res.mask[:, 1].all()
    assert (res.color[~res.mask] == 0).all() and (res.color[res.mask] == pytest.approx(0.7))


def test_finalize_replaces_frame_zero_with_source():
    rgba = torch.zeros(3, 4, 5, 4)  # all holes
    src = torch.randint(0, 256, (4, 5, 3), dtype=torch.uint8)
    res = finalize_rgba(rgba, src)
    assert res.mask[0].all() and not res.mask[1:].any()
    assert torch.equal(res.color[0], src.float() / 255.0)
    assert (res.color[1:] == 0).all()
    assert (rgba == 0).all()  # input untouched
    res_f = finalize_rgba(rgba, src.float() / 255.0)  # float sources in [0, 1] too
    assert torch.equal(res_f.color[0], res.color[0])


def test_composite_unpremultiply_recovers_the_valid_vertex_colour():
    """A face with two valid vertices (rgb c, alpha 1) and one wall vertex (RGBA 0) interpolates to (w c, w) with
    w the valid weight: "mask" keeps the darkened w c, "unpremultiply" gives c back; the mask is the same."""
    c = torch.tensor([0.8, 0.4, 0.2])
    w = torch.tensor([1.0, 0.75, 0.5, 0.3])  # the last is below the threshold: a hole either way
    rgba = torch.cat([w[:, None] * c, w[:, None]], dim=-1).reshape(1, 1, 4, 4)
    by_mask, unpre = finalize_rgba(rgba, composite="mask"), finalize_rgba(rgba, composite="unpremultiply")
    assert torch.equal(by_mask.mask, unpre.mask) and by_mask.mask[0, 0].tolist() == [True, True, True, False]
    assert torch.allclose(by_mask.color[0, 0, :3], w[:3, None] * c)
    assert torch.allclose(unpre.color[0, 0, :3], c.expand(3, 3))
    assert (unpre.color[0, 0, 3] == 0).all() and (by_mask.color[0, 0, 3] == 0).all()
    # wherever alpha is 1 the two agree exactly (torn meshes, interiors of DW-Meshes)
    assert torch.equal(by_mask.color[0, 0, 0], unpre.color[0, 0, 0])
    with pytest.raises(InputError, match="renderer.composite"):
        finalize_rgba(rgba, composite="divide")


def test_renderer_composite_auto_follows_the_mesh_mode():
    """auto = the reference's rgb * M for parity meshes, unpremultiply otherwise (docs/fidelity.md)."""
    assert resolve_composite("auto", "parity") == "mask"
    assert resolve_composite("auto", "fixed") == resolve_composite("auto", "torn") == "unpremultiply"
    assert resolve_composite("mask", "fixed") == "mask" and resolve_composite("unpremultiply", "parity") == "unpremultiply"
    # End to end on the CPU renderer: a step edge seen from a moved camera has darkened trusted pixels with mask.
    from ex4d.cameras import intrinsics
    from ex4d.mesh import build_dwmesh

    h, w = 16, 24
    rgb = torch.full((1, h, w, 3), 200, dtype=torch.uint8)
    depth = torch.full((1, h, w), 4.0)
    depth[:, :, : w // 2] = 2.0
    K = intrinsics(h, w, focal_px=20.0)
    w2c = torch.eye(4, dtype=torch.float64)[None]
    w2c[0, 0, 3] = -0.3
    results = {}
    for mode in ("fixed", "parity"):
        mesh = build_dwmesh(rgb, depth, K, mode=mode)
        for comp in ("auto", "mask", "unpremultiply"):
            results[mode, comp] = CpuRenderer(num_threads=1, composite=comp).render(mesh, w2c, K)
    for mode in ("fixed", "parity"):
        trusted = results[mode, "mask"].mask
        assert torch.equal(trusted, results[mode, "unpremultiply"].mask) and trusted.any()
        assert (results[mode, "mask"].color[trusted] < 200 / 255 - 1e-3).any()  # darkened edge pixels
        assert torch.allclose(results[mode, "unpremultiply"].color[trusted], torch.tensor(200 / 255))
    assert torch.equal(results["parity", "auto"].color, results["parity", "mask"].color)
    assert torch.equal(results["fixed", "auto"].color, results["fixed", "unpremultiply"].color)
    with pytest.raises(InputError, match="renderer.composite"):
        CpuRenderer(composite="over")
    with pytest.raises(InputError, match="renderer.composite"):
        make_renderer("cpu", composite="over")


def test_make_renderer_and_lazy_gpu_backend():
    assert isinstance(make_renderer("cpu"), CpuRenderer)
    gpu = NvdiffrastRenderer()  # constructing on a CPU machine must work: nothing loads until used
    assert gpu._ctx is None
    pickle.loads(pickle.dumps(gpu))
    pickle.loads(pickle.dumps(make_renderer("cpu")))
    if not torch.cuda.is_available():
        assert isinstance(make_renderer("auto"), CpuRenderer)
        from ex4d.render import RendererUnavailableError

        with pytest.raises(RendererUnavailableError, match="CUDA"):
            gpu._context()
    with pytest.raises(ValueError, match="backend"):
        make_renderer("opengl")


def test_clip_matrix_maps_pixels_to_ndc():
    """x_ndc = 2u/W - 1, y_ndc = 2v/H - 1 for the projection (u, v); z_ndc = -1 at near, +1 at far."""
    H, W, near, far = 48, 64, 0.01, 100.0
    K = torch.tensor([[70.0, 0.0, 30.0], [0.0, 60.0, 25.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    P = clip_from_camera(K, H, W, near, far)
    pts = torch.tensor([[0.3, -0.2, 2.0], [-1.0, 0.5, 5.0], [0.0, 0.0, near], [0.0, 0.0, far]], dtype=torch.float64)
    clip = torch.cat([pts, torch.ones(4, 1, dtype=torch.float64)], 1) @ P.T
    ndc = clip[:, :3] / clip[:, 3:]
    u = K[0, 0] * pts[:, 0] / pts[:, 2] + K[0, 2]
    v = K[1, 1] * pts[:, 1] / pts[:, 2] + K[1, 2]
    assert torch.allclose(ndc[:, 0], 2 * u / W - 1) and torch.allclose(ndc[:, 1], 2 * v / H - 1)
    assert ndc[2, 2] == pytest.approx(-1.0) and ndc[3, 2] == pytest.approx(1.0)
    assert torch.equal(clip[:, 3], pts[:, 2])  # w = camera z


def _zoom_K(n: int, H: int, W: int) -> torch.Tensor:
    K = torch.tensor([[70.0, 0.0, W / 2], [0.0, 60.0, H / 2], [0.0, 0.0, 1.0]], dtype=torch.float64).repeat(n, 1, 1)
    K[:, :2, :2] *= torch.linspace(1.0, 0.5, n, dtype=torch.float64)[:, None, None]
    return K


def test_clip_matrix_per_frame():
    """clip_from_camera on K_B33 is the per-frame matrices stacked; the clip positions the nvdiffrast backend
    rasterises (computed on the CPU here) land every vertex of frame i on its projection with K[i] and w2c[i]."""
    from ex4d.cameras import project
    from ex4d.cameras.trajectories import ReferenceOrbit

    H, W, n = 48, 64, 4
    K_B33 = _zoom_K(n, H, W)
    P = clip_from_camera(K_B33, H, W, 0.01, 100.0)
    assert P.shape == (n, 4, 4)
    for i in range(n):
        assert torch.equal(P[i], clip_from_camera(K_B33[i], H, W, 0.01, 100.0))
    w2c = ReferenceOrbit(30)(n, 3.0)
    g = torch.Generator().manual_seed(0)
    verts = torch.rand(n, 20, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 2.0, 3.0]) + torch.tensor(
        [-1.0, -1.0, 2.0])
    r = NvdiffrastRenderer(device="cpu", near=0.01, far=100.0)
    pos = r.clip_positions(verts.float(), w2c, K_B33, H, W)
    assert pos.shape == (n, 20, 4) and pos.dtype == torch.float32
    uv, z = project(verts, K_B33, w2c)
    ndc = pos[..., :2] / pos[..., 3:]
    torch.testing.assert_close(ndc[..., 0].double(), 2 * uv[..., 0] / W - 1, atol=1e-5, rtol=0)
    torch.testing.assert_close(ndc[..., 1].double(), 2 * uv[..., 1] / H - 1, atol=1e-5, rtol=0)
    torch.testing.assert_close(pos[..., 3].double(), z, atol=1e-5, rtol=0)
    for i in range(n):  # batched per-frame K = one frame at a time
        assert torch.equal(pos[i], r.clip_positions(verts[i : i + 1].float(), w2c[i : i + 1], K_B33[i], H, W)[0])
    # one shared K given per frame: the same clip positions as the (3, 3) path
    shared = K_B33[:1].expand(n, 3, 3)
    torch.testing.assert_close(r.clip_positions(verts.float(), w2c, shared, H, W),
                               r.clip_positions(verts.float(), w2c, K_B33[0], H, W), atol=0, rtol=0)


def test_nvdiffrast_chunks_slice_per_frame_K(monkeypatch):
    """max_frames_per_call splits the batch; each chunk's clip positions use its own frames' K (checked with a
    stand-in for nvdiffrast that records what it is given: the real one needs CUDA)."""
    from ex4d.cameras import intrinsics
    from ex4d.cameras.trajectories import ReferenceOrbit
    from ex4d.mesh import build_dwmesh

    H, W, n = 16, 24, 5
    seen = []

    class FakeDr:
        def rasterize(self, ctx, pos, tri, resolution, grad_db=False):
            seen.append(pos.clone())
            return torch.zeros(pos.shape[0], *resolution, 4), None

        def interpolate(self, attr, rast, tri):
            return torch.zeros(*rast.shape[:3], 4), None

    r = NvdiffrastRenderer(device="cpu", antialias=False, max_frames_per_call=2)
    monkeypatch.setattr(r, "_context", lambda: (FakeDr(), None))
    K = intrinsics(H, W)
    mesh = build_dwmesh(torch.zeros(n, H, W, 3, dtype=torch.uint8), torch.full((n, H, W), 4.0), K)
    w2c = ReferenceOrbit(30)(n, 3.0)
    K_B33 = _zoom_K(n, H, W)
    out = r.rasterize_rgba(mesh, w2c, K_B33, H, W)
    assert out.shape == (n, H, W, 4) and [p.shape[0] for p in seen] == [2, 2, 1]
    assert torch.equal(torch.cat(seen), r.clip_positions(mesh.vertices, w2c, K_B33, H, W))
    with pytest.raises(ValueError, match=r"\(3, 3\) or \(5, 3, 3\)"):
        r.rasterize_rgba(mesh, w2c, K_B33[:4], H, W)
