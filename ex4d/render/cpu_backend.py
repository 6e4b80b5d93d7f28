"""CPU renderer: one primary ray per pixel through Intel Embree (the ``embreex`` wheel that trimesh's
``ray_pyembree`` uses).

No GPU and no compiler needed, so tests, CI and CPU-only users render the same DW-Meshes as the
nvdiffrast backend (``ex4d.render.nvdiffrast_backend``); the two agree to within a few pixels at
occlusion boundaries (``tests/gpu/test_nvdiffrast.py``).

What it computes, per frame i and pixel (row v, column u):

* a ray from the camera centre of ``w2c[i]`` through the pixel centre (u + 0.5, v + 0.5) (plus a tiny
  tie-break offset, see below), direction ``K^-1 (u, v, 1)`` (``K[i]`` for per-frame intrinsics) scaled
  to unit camera z, so the ray parameter *is* the camera depth;
* the first face of frame i's mesh hit with camera z in [near, far] (faces nearer than ``near`` are
  skipped and the ray goes on, as a rasteriser clips at the near plane); no back-face culling; a
  torn mesh (``face_keep``) only has its kept faces;
* RGBA = barycentric interpolation of the hit face's vertex RGBA (Embree's hit (u, v) are the
  barycentric weights of vertices 1 and 2; these are 3-D barycentrics of the hit point, i.e.
  perspective-correct like a rasteriser's); 0 where nothing is hit.

Why embreex directly rather than ``trimesh.ray.ray_pyembree.RayMeshIntersector``: its
``intersects_first`` returns face ids only (a second pass would have to recover barycentrics from
hit points), and it re-centres and rescales the geometry (one more rounding step). ``embreex``'s
``EmbreeScene.run(..., output=1)`` returns face id, barycentrics and distance in one pass, and an
ImportError (no silent fallback to trimesh's pure-numpy tracer) if Embree is missing.

Why the tie-break offset: Embree intersects in float32 and is not watertight at shared vertices. A
DW-Mesh seen from its own camera (frame 0 of every path) has a vertex exactly on every pixel-centre
ray, and about 1% of such rays slip between the faces of the vertex fan and report the back cap
behind it. Sampling at (u + 0.5 + 2^-11, v + 0.5 + 2^-12) px puts every such ray strictly inside one
face (the upper-left triangle of the quad whose top-left vertex is that pixel), 1e-4 px clear of
every edge, which changes an interpolated colour by at most 2^-11 of a neighbour difference (well
under half a uint8 step) and matches a rasteriser's sampling to within 1/2000 px.

Speed: see :class:`CpuRenderer`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from ex4d.mesh import DWMesh
from ex4d.render.base import Renderer
from ex4d.utils.checks import check_int

# Sample offset (px) added to every pixel centre; see the module docstring.
SAMPLE_OFFSET_PX = (2.0**-11, 2.0**-12)


def _embree():
    """The embreex modules; a clear error when the wheel is missing."""
    try:
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh
    except ImportError as e:  # pragma: no cover - embreex is a core dependency
        raise ImportError(
            "The CPU renderer needs Embree through the 'embreex' wheel (the one trimesh's "
            "ray_pyembree uses): pip install embreex==4.4.0.post1"
        ) from e
    return rtcore_scene, TriangleMesh


class _Bvh:
    """An Embree BVH over triangles ``tri`` (indices into ``vertices``), which are the faces
    ``face_index`` of the full mesh (hits are reported as full-mesh face ids)."""

    def __init__(self, vertices: np.ndarray, tri: np.ndarray, face_index: np.ndarray):
        rtcore_scene, TriangleMesh = _embree()
        self.face_index = face_index
        self.scene = None
        if len(face_index):
            self.scene = rtcore_scene.EmbreeScene()
            # TriangleMesh copies (element by element, the slow part of a build) into Embree's own
            # buffers; our arrays may go away afterwards.
            TriangleMesh(scene=self.scene, vertices=np.ascontiguousarray(vertices, np.float32),
                         indices=np.ascontiguousarray(tri, np.int32))

    def trace(self, origins: np.ndarray, dirs: np.ndarray, tfar: np.ndarray, pool, num_threads: int):
        """First hits with ray parameter in [0, tfar]: (face id into the full list or -1, u, v, t)."""
        n = origins.shape[0]
        if self.scene is None or n == 0:
            return np.full(n, -1, np.int64), np.zeros(n, np.float32), np.zeros(n, np.float32), tfar.copy()

        def run(sl):
            # embreex writes the hit distance into the tfar array it is given: pass a copy.
            return self.scene.run(origins[sl], dirs[sl], dists=np.array(tfar[sl], np.float32), output=1)

        if pool is None or num_threads == 1 or n < 8192:
            outs = [run(slice(0, n))]
        else:  # embreex releases the GIL while tracing
            bounds = np.linspace(0, n, num_threads + 1).astype(int)
            outs = list(pool.map(run, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]))
        prim = np.concatenate([o["primID"] for o in outs]).astype(np.int64)
        u, v, t = (np.concatenate([o[k] for o in outs]) for k in ("u", "v", "tfar"))
        hit = prim >= 0
        prim[hit] = self.face_index[prim[hit]]
        return prim, u, v, t


class _Scene:
    """The BVHs of one frame's geometry: its valid faces and, apart, its occlusion walls.

    Walls are long slivers along the source camera's rays (and the skirt out to the z = 100 border):
    in one BVH with the surface they inflate the boxes of every node around them and make each ray
    3-4x more expensive. A surface BVH, plus a walls BVH queried only up to the surface hit, gives the
    same first hit (up to exact ties on an edge shared by a wall and a valid face) at a fraction of
    the cost.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray | None, valid: np.ndarray):
        self.vertices = vertices.copy()  # compared on reuse: a cached BVH must never outlive its data
        self.keep = None if keep is None else keep.copy()
        self.valid = valid.copy()
        kept = np.ones(len(faces), bool) if keep is None else keep
        surface_index = np.flatnonzero(kept & valid)
        self.surface = _Bvh(vertices, faces[surface_index], surface_index)
        wall_index = np.flatnonzero(kept & ~valid)
        self.walls = self.wall_vertices = None
        if len(wall_index):
            # Walls touch few vertices: give their BVH only those (embreex copies every vertex given).
            self.wall_vertices, tri = np.unique(faces[wall_index], return_inverse=True)
            self.walls = _Bvh(vertices[self.wall_vertices], tri.reshape(-1, 3), wall_index)
        self.empty = self.surface.scene is None and self.walls is None

    def matches(self, vertices: np.ndarray, keep: np.ndarray | None, valid: np.ndarray) -> bool:
        if (keep is None) != (self.keep is None):
            return False
        if keep is not None and not np.array_equal(keep, self.keep):
            return False
        return np.array_equal(valid, self.valid) and np.array_equal(vertices, self.vertices)


class CpuRenderer(Renderer):
    """Embree ray caster (see the module docstring).

    Speed on a 2-core x86 CPU (the project's dev/CI machine, shared with other jobs), 512x384, DW-Mesh
    of the motorcycle with GT depth, reference 90-degree orbit: one image viewed along 49 poses (one
    BVH, reused) renders in ~4.3 s (~88 ms/frame); a video (a new mesh every frame) costs ~0.4 s per
    frame, of which ~0.3 s is building the BVHs (embreex copies the mesh element by element, then
    Embree builds). Frames whose geometry equals the last one built (expanded views, equal copies,
    repeated calls) reuse it.

    Args:
        near, far: camera-z clip range; hits outside it are ignored (reference 1e-3, 1e3).
        num_threads: threads that trace a frame's rays (chunks of rows); default: all CPU cores.
        composite: ``auto`` | ``mask`` | ``unpremultiply``, how trusted colour is made (``ex4d.render.base``).
    """

    def __init__(self, near: float = 1e-3, far: float = 1e3, num_threads: int | None = None, composite: str = "auto"):
        super().__init__(near=near, far=far, composite=composite)
        if num_threads is not None:
            check_int(num_threads, "renderer.num_threads", minimum=1)
        self.num_threads = max(1, num_threads or os.cpu_count() or 1)
        self._scene: _Scene | None = None  # last BVHs, reused while the geometry is unchanged
        self._pool: ThreadPoolExecutor | None = None
        self.scene_builds = 0  # geometries for which BVHs were built (tests check reuse with it)

    def __getstate__(self):  # picklable (Hydra, multiprocessing): drop the BVHs and the pool
        state = self.__dict__.copy()
        state["_scene"] = None
        state["_pool"] = None
        return state

    def _scene_for(self, vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray | None,
                   valid: np.ndarray) -> _Scene:
        if self._scene is None or not self._scene.matches(vertices, keep, valid):
            self._scene = None  # free the old BVHs before building the next ones
            self._scene = _Scene(vertices, faces, keep, valid)
            self.scene_builds += 1
        return self._scene

    def _first_hits(self, scene: _Scene, colors: np.ndarray, origins: np.ndarray, dirs: np.ndarray):
        """(face id or -1, u, v) of the first hit of every ray among all kept faces."""
        if self.num_threads > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="ex4d-embree")
        n = origins.shape[0]
        tfar = np.full(n, self.far - self.near, np.float32)
        prim, u, v, t = scene.surface.trace(origins, dirs, tfar, self._pool, self.num_threads)
        if scene.walls is not None:
            # Walls normally carry RGBA = 0 (a DWMesh invariant): then only rays that hit the surface
            # can change (to 0); a wall hit elsewhere reads the same as a miss.
            black = not colors[scene.wall_vertices].any()
            rays = np.flatnonzero(prim >= 0) if black else np.arange(n)
            wp, wu, wv, _ = scene.walls.trace(origins[rays], dirs[rays], t[rays], self._pool, self.num_threads)
            closer = wp >= 0  # the walls were queried only up to the surface hit
            r = rays[closer]
            prim[r], u[r], v[r] = wp[closer], wu[closer], wv[closer]
        return prim, u, v

    @torch.no_grad()
    def rasterize_rgba(self, mesh: DWMesh, w2c: Tensor, K: Tensor, height: int, width: int) -> Tensor:
        B = mesh.num_frames
        if w2c.shape != (B, 4, 4):
            raise ValueError(f"w2c must have shape ({B}, 4, 4) for a mesh of {B} frames, got {tuple(w2c.shape)}")
        out_device = mesh.vertices.device
        faces = np.ascontiguousarray(mesh.faces.detach().cpu().numpy(), dtype=np.int32)
        w2c64 = w2c.detach().cpu().to(torch.float64).numpy()
        K64 = K.detach().cpu().to(torch.float64).numpy()
        if K64.shape not in ((3, 3), (B, 3, 3)):
            raise ValueError(f"K must have shape (3, 3) or ({B}, 3, 3) for a mesh of {B} frames, got {K64.shape}")
        # All per-frame maths below is elementwise numpy on purpose: torch's (and BLAS's) thread pools
        # spin-wait against Embree's TBB workers on small machines; one (N,3)@(3,3) product then
        # takes ~100 ms instead of ~1 ms.
        v, u = np.meshgrid(np.arange(height, dtype=np.float64) + 0.5 + SAMPLE_OFFSET_PX[1],
                           np.arange(width, dtype=np.float64) + 0.5 + SAMPLE_OFFSET_PX[0], indexing="ij")
        u, v = u.reshape(-1), v.reshape(-1)

        def camera_rays(K33: np.ndarray) -> list[np.ndarray]:
            # Camera-frame ray directions with unit z, so the ray parameter is the camera z (minus near).
            Kinv = np.linalg.inv(K33)
            d = [Kinv[r, 0] * u + Kinv[r, 1] * v + Kinv[r, 2] for r in range(3)]
            return [x / d[2] for x in d]

        # One K: the rays once. Per-frame K: recomputed only when a frame's K differs from the last one's.
        K_rays = K64 if K64.ndim == 2 else K64[0]
        d_cam = camera_rays(K_rays)

        rgba = np.zeros((B, height * width, 4), dtype=np.float32)
        verts_all = mesh.vertices.detach().cpu().float()
        cols_all = mesh.colors.detach().cpu().float()
        valid_all = mesh.face_valid.detach().cpu()
        keep_all = None if mesh.face_keep is None else mesh.face_keep.detach().cpu()
        for i in range(B):
            keep = None if keep_all is None else keep_all[i].numpy()
            scene = self._scene_for(verts_all[i].numpy(), faces, keep, valid_all[i].numpy())
            if scene.empty:
                continue
            cols = cols_all[i].numpy()
            if K64.ndim == 3 and not np.array_equal(K64[i], K_rays):
                K_rays = K64[i]
                d_cam = camera_rays(K_rays)
            R, t = w2c64[i, :3, :3], w2c64[i, :3, 3]
            centre = -R.T @ t
            # World directions R^T d_cam; rays start on the near plane (z = near) so that the ray
            # parameter is z - near and tfar = far - near.
            dirs = np.empty((len(u), 3), np.float32)
            origins = np.empty((len(u), 3), np.float32)
            for j in range(3):
                dirs[:, j] = R[0, j] * d_cam[0] + R[1, j] * d_cam[1] + R[2, j] * d_cam[2]
                origins[:, j] = centre[j] + self.near * dirs[:, j]
            prim, bu, bv = self._first_hits(scene, cols, origins, dirs)
            idx = np.flatnonzero(prim >= 0)
            if len(idx) == 0:
                continue
            tri = faces[prim[idx]]
            w1, w2 = bu[idx, None], bv[idx, None]
            rgba[i, idx] = (1.0 - w1 - w2) * cols[tri[:, 0]] + w1 * cols[tri[:, 1]] + w2 * cols[tri[:, 2]]
        return torch.from_numpy(rgba.reshape(B, height, width, 4)).to(out_device)
