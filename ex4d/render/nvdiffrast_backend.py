"""GPU renderer: nvdiffrast's CUDA rasteriser (rasterize -> interpolate -> antialias), all frames in one call.

This is the one place where the project's camera convention (``ex4d.cameras``: OpenCV axes, ``K`` in
pixels with pixel centres at +0.5) meets clip space. For a camera-frame point (X, Y, Z):

    x_clip = (2 fx / W) X + (2 s / W) Y + (2 cx / W - 1) Z      (s = K[0, 1], normally 0)
    y_clip = (2 fy / H) Y + (2 cy / H - 1) Z
    z_clip = (f + n) / (f - n) Z - 2 f n / (f - n)              (OpenGL depth: -1 at Z = n, +1 at Z = f)
    w_clip = Z

so x_ndc = 2 u / W - 1 and y_ndc = 2 v / H - 1 for the continuous pixel coordinates (u, v) of the
projection. Per-frame intrinsics (``K_B33``, a zoom) give one such matrix per frame, composed with that
frame's ``w2c``; vertex positions then go through one (4, 4) matrix per frame either way. nvdiffrast samples output pixel (row r, column c) at x_ndc = (2 c + 1) / W - 1,
y_ndc = (2 r + 1) / H - 1 (its row 0 is y_ndc = -1), i.e. exactly at our pixel centre
(u, v) = (c + 0.5, r + 0.5): row 0 of its output is the image top, no flip needed (the identity
camera reproduces the source image, ``tests/gpu/test_nvdiffrast.py``).

Batching: frames share one triangle list and differ in vertex positions, which is nvdiffrast's
*instanced mode* (pos (B, V, 4), tri (F, 3)): one rasterize call for the whole batch. A torn mesh
(``face_keep``) keeps a different face subset per frame: *range mode* (pos (B*V, 4), the kept faces
of all frames concatenated, ``ranges`` (B, 2) on the CPU), still one call.

nvdiffrast is imported lazily (constructing the renderer on a CPU-only machine works). Accepted
packages: upstream ``nvdiffrast`` (``pip install git+https://github.com/NVlabs/nvdiffrast``) or the
PyPI repack ``diffrp-nvdiffrast==0.3.3.1``; see :func:`load_nvdiffrast` for the torch >= 2.11 plugin
import workaround.
"""

from __future__ import annotations

import importlib
import logging
import sys

import torch
from torch import Tensor

from ex4d.mesh import DWMesh
from ex4d.render.base import Renderer
from ex4d.utils.checks import check_bool, check_int

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install nvdiffrast (pip install git+https://github.com/NVlabs/nvdiffrast, or the PyPI repack "
    "pip install diffrp-nvdiffrast==0.3.3.1; both JIT-compile a CUDA plugin on first use and need nvcc "
    "and ninja), or use the CPU renderer (renderer=cpu)"
)


class RendererUnavailableError(RuntimeError):
    """The requested renderer cannot run here (no CUDA device, or nvdiffrast missing or failing to build)."""


_DR = None  # the loaded nvdiffrast.torch module


def load_nvdiffrast():
    """Import ``nvdiffrast.torch`` and make sure its CUDA plugin loads; return the module.

    Under torch >= 2.11, the plugin built by the repack (or by upstream's JIT loader) compiles but
    ``importlib.import_module('nvdiffrast_plugin_...')`` fails with ModuleNotFoundError because torch
    no longer puts the extension build directory on ``sys.path``. We add that directory
    (``torch.utils.cpp_extension._get_build_directory(name, False)``) and retry; the second attempt
    finds the already built library.

    Raises:
        RendererUnavailableError: no CUDA device, nvdiffrast not installed, or its plugin fails to build.
    """
    global _DR
    if _DR is not None:
        return _DR
    if not torch.cuda.is_available():
        raise RendererUnavailableError(f"the nvdiffrast renderer needs a CUDA device (torch {torch.__version__} "
                                       f"sees none); use renderer=cpu")
    try:
        dr = importlib.import_module("nvdiffrast.torch")
    except ImportError as e:
        raise RendererUnavailableError(f"nvdiffrast is not installed ({e}); {INSTALL_HINT}") from e
    import torch.utils.cpp_extension as cpp_ext

    for attempt in range(3):
        try:
            dr.get_log_level()  # first call JIT-builds (about 30 s, then cached) and imports the plugin
            break
        except ModuleNotFoundError as e:
            name = e.name or ""
            if attempt == 2 or not name.startswith("nvdiffrast_plugin"):
                raise RendererUnavailableError(f"nvdiffrast's CUDA plugin did not load ({e}); {INSTALL_HINT}") from e
            build_dir = cpp_ext._get_build_directory(name, False)
            if build_dir not in sys.path:
                sys.path.insert(0, build_dir)
            log.info("nvdiffrast: added plugin build directory %s to sys.path", build_dir)
        except Exception as e:  # compiler missing, build failed, ...
            raise RendererUnavailableError(f"nvdiffrast's CUDA plugin failed to build or load ({e}); "
                                           f"{INSTALL_HINT}") from e
    _DR = dr
    return dr


def nvdiffrast_available() -> bool:
    """True when CUDA is available and nvdiffrast imports with a working plugin (builds it on first call)."""
    try:
        load_nvdiffrast()
        return True
    except RendererUnavailableError as e:
        log.info("nvdiffrast renderer unavailable: %s", e)
        return False


def clip_from_camera(K: Tensor, height: int, width: int, near: float, far: float) -> Tensor:
    """Matrices taking OpenCV camera coordinates to nvdiffrast clip space (module docstring).

    Args:
        K: (3, 3) intrinsics, or (..., 3, 3) (e.g. ``K_B33``, one per frame).

    Returns:
        (4, 4) float64, or (..., 4, 4) matching ``K``'s leading dimensions.
    """
    K = K.detach().to("cpu", torch.float64)
    fx, s, cx = K[..., 0, 0], K[..., 0, 1], K[..., 0, 2]
    fy, cy = K[..., 1, 1], K[..., 1, 2]
    P = torch.zeros(*K.shape[:-2], 4, 4, dtype=torch.float64)
    P[..., 0, 0], P[..., 0, 1], P[..., 0, 2] = 2 * fx / width, 2 * s / width, 2 * cx / width - 1
    P[..., 1, 1], P[..., 1, 2] = 2 * fy / height, 2 * cy / height - 1
    P[..., 2, 2], P[..., 2, 3] = (far + near) / (far - near), -2 * far * near / (far - near)
    P[..., 3, 2] = 1.0
    return P


class NvdiffrastRenderer(Renderer):
    """nvdiffrast CUDA rasteriser, batched over frames (see the module docstring).

    Args:
        near, far: clip distances along camera z (reference 1e-3, 1e3).
        antialias: run nvdiffrast's analytic antialiasing on the interpolated RGBA (the reference does).
            It blends colour *and* alpha across silhouette edges, so it moves the mask boundary by up
            to a pixel; turn it off for point-sampled output identical in kind to the CPU renderer.
        device: CUDA device to render on; meshes on another device are moved there. Output stays there.
        max_frames_per_call: frames rasterised per nvdiffrast call (None = all); bounds nvdiffrast's
            internal buffers (~80 bytes per triangle and frame) for long clips at high resolution.
        composite: ``auto`` | ``mask`` | ``unpremultiply``, how trusted colour is made (``ex4d.render.base``);
            ``unpremultiply`` also undoes antialiasing's blend with the black background at silhouettes.
    """

    def __init__(self, near: float = 1e-3, far: float = 1e3, antialias: bool = True, device: str = "cuda",
                 max_frames_per_call: int | None = None, composite: str = "auto"):
        super().__init__(near=near, far=far, composite=composite)
        if max_frames_per_call is not None:
            check_int(max_frames_per_call, "renderer.max_frames_per_call", minimum=1)
        self.antialias = check_bool(antialias, "renderer.antialias")
        self.device = device
        self.max_frames_per_call = max_frames_per_call
        self._ctx = None  # RasterizeCudaContext, created on first use
        self._topo: tuple | None = None  # (copy of the faces tensor, topology hash) for antialias

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_ctx"] = None
        state["_topo"] = None
        return state

    def _context(self):
        dr = load_nvdiffrast()
        if self._ctx is None:
            self._ctx = dr.RasterizeCudaContext(device=torch.device(self.device))
        return dr, self._ctx

    def _topology_hash(self, dr, tri: Tensor):
        # The DW-Mesh face list is shared by every frame (and cached per (H, W, device) by grid_faces),
        # so the hash (an O(F) GPU pass) is built once per resolution instead of once per call. Reuse is
        # decided by value (torch.equal, one cheap pass), not by the tensor's version counter: the runners
        # work under torch.inference_mode, whose tensors have no version counter to read.
        if self._topo is not None:
            ref, topo_hash = self._topo
            if tri.shape == ref.shape and tri.device == ref.device and torch.equal(tri, ref):
                return topo_hash
        # Keep our own copy: the caller's tensor may be reused or changed in place later.
        self._topo = (tri.clone(), dr.antialias_construct_topology_hash(tri))
        return self._topo[1]

    def clip_positions(self, vertices: Tensor, w2c: Tensor, K: Tensor, height: int, width: int) -> Tensor:
        """(B, V, 4) float32 clip-space positions of world vertices (B, V, 3) seen by cameras w2c (B, 4, 4)
        with intrinsics K (3, 3) shared, or (B, 3, 3) one per frame."""
        # Compose in float64 on the CPU (tiny), apply in float32 on the GPU as explicit multiply-adds:
        # a matmul could run in TF32 (10-bit mantissa) when the process enabled it for the model,
        # which would move vertices by up to half a pixel.
        M = clip_from_camera(K, height, width, self.near, self.far) @ w2c.detach().to("cpu", torch.float64)
        M = M.to(vertices.device, torch.float32).transpose(1, 2)[:, None]  # (B, 1, 4 in, 4 out)
        v = vertices.float()
        return v[..., 0:1] * M[:, :, 0] + v[..., 1:2] * M[:, :, 1] + v[..., 2:3] * M[:, :, 2] + M[:, :, 3]

    @torch.no_grad()
    def rasterize_rgba(self, mesh: DWMesh, w2c: Tensor, K: Tensor, height: int, width: int) -> Tensor:
        B = mesh.num_frames
        if w2c.shape != (B, 4, 4):
            raise ValueError(f"w2c must have shape ({B}, 4, 4) for a mesh of {B} frames, got {tuple(w2c.shape)}")
        dr, ctx = self._context()
        step = self.max_frames_per_call or B
        if K.shape not in ((3, 3), (B, 3, 3)):
            raise ValueError(f"K must have shape (3, 3) or ({B}, 3, 3) for a mesh of {B} frames, got {tuple(K.shape)}")
        outs = [self._rasterize_chunk(dr, ctx, mesh, w2c, K, height, width, s, min(B, s + step))
                for s in range(0, B, step)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _rasterize_chunk(self, dr, ctx, mesh: DWMesh, w2c, K, height, width, start, stop) -> Tensor:
        dev = torch.device(self.device)
        n = stop - start
        verts = mesh.vertices[start:stop].to(dev)
        colors = mesh.colors[start:stop].to(dev, torch.float32)
        tri = mesh.faces.to(dev, torch.int32).contiguous()
        K_chunk = K if K.ndim == 2 else K[start:stop]
        pos = self.clip_positions(verts, w2c[start:stop], K_chunk, height, width).contiguous()
        if mesh.face_keep is None:
            # Instanced mode. colors may be an expanded view (static scene): interpolate broadcasts
            # over the batch only for a size-1 batch dim, so materialise otherwise.
            attr = colors.contiguous() if colors.stride(0) != 0 else colors[:1].contiguous()
            rast, _ = dr.rasterize(ctx, pos, tri, (height, width), grad_db=False)
            rgba, _ = dr.interpolate(attr, rast, tri)
            if self.antialias:
                rgba = dr.antialias(rgba.contiguous(), rast, pos, tri, topology_hash=self._topology_hash(dr, tri))
            return rgba
        # Range mode: each frame's kept faces, re-indexed into the flattened (n*V, 4) positions.
        V = verts.shape[1]
        keep = mesh.face_keep[start:stop].to(dev)
        counts = keep.sum(dim=1).to("cpu", torch.int64)
        if int(counts.sum()) == 0:
            return torch.zeros(n, height, width, 4, device=dev)
        frame_idx, face_idx = keep.nonzero(as_tuple=True)  # row-major: grouped by frame
        tri_all = (tri[face_idx] + (frame_idx * V).to(torch.int32)[:, None]).contiguous()
        starts = torch.cumsum(counts, 0) - counts
        ranges = torch.stack([starts, counts], dim=1).to(torch.int32).contiguous()
        pos_flat = pos.reshape(n * V, 4).contiguous()
        rast, _ = dr.rasterize(ctx, pos_flat, tri_all, (height, width), ranges=ranges, grad_db=False)
        rgba, _ = dr.interpolate(colors.reshape(n * V, 4).contiguous(), rast, tri_all)
        if self.antialias:
            rgba = dr.antialias(rgba.contiguous(), rast, pos_flat, tri_all)
        return rgba
