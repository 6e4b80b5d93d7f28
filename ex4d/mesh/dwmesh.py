"""DW-Mesh: the depth watertight mesh of EX-4D, built for all frames at once.

One vertex per pixel, two triangles per pixel quad, and two back-cap triangles over the image corners:
``2 (H-1)(W-1) + 2`` faces, shared by every frame (only vertex positions and colours change). A face
whose smallest interior angle is below ``min_angle_deg`` is a sliver stretched along the view ray, i.e.
it spans a depth discontinuity: it is kept as an *occlusion wall* with RGBA = 0 on its vertices, so it
hides what the source camera could not see. The one-pixel border ring is pushed to z = 100 so the
mesh closes into a frustum-shaped volume (watertight): every novel ray near the source pose hits
either real surface or a transparent wall.

Modes (``mode`` argument):

* ``"fixed"`` (default for new work): vertices sit on pixel centres (consistent with rasterisers) and
  the back cap is an occlusion wall too.
* ``"parity"``: the reference's quirks, for checkpoint parity: vertices on integer pixel coordinates
  (half-pixel offset) and the back cap labelled by the angle rule only (two of its corners keep alpha,
  so half the cap renders as smeared valid colour).
* ``"torn"``: the reference's ``use_dwmesh=0`` ablation ("without DW-Mesh"): the faces that fail the angle
  rule are *deleted* (``face_keep``), nothing else changes: every vertex keeps its colour and alpha 1, and
  the back cap stays (labelled by the angle rule like any face, so normally kept). Rays through a tear
  therefore hit the real surface behind it or the cap, whose corner colours render as *valid*: almost
  every disoccluded pixel is marked trusted, which is what the paper's ablation shows. Vertices on pixel
  centres like ``fixed`` (so the ablation differs from the default only by the walls);
  ``pixel_center=False`` gives the reference's integer-pixel geometry, i.e. its ``use_dwmesh=0`` mesh
  face for face.

``pixel_center`` (None = the mode's own: False for ``parity``, True otherwise) only moves the vertices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ex4d.cameras import unproject_depth
from ex4d.utils.checks import check_choice, check_number
from ex4d.utils.errors import InputError

BORDER_DEPTH = 100.0
MESH_MODES = ("fixed", "parity", "torn")


@dataclass
class DWMesh:
    """A batch of per-frame DW-Meshes sharing one topology.

    Attributes:
        vertices: (B, V, 3) float32, world (= source camera) frame, OpenCV axes, V = H * W.
        faces: (F, 3) int32 vertex indices, shared by all frames, F = 2 (H-1)(W-1) + 2.
        colors: (B, V, 4) float32 RGBA in [0, 1]; RGBA 0 on every vertex of an invalid face (except in
            ``torn`` mode, where invalid faces are deleted and every vertex keeps alpha 1).
        face_valid: (B, F) bool, False for faces that fail the angle rule (and the cap in ``fixed`` mode):
            occlusion walls, or in ``torn`` mode the deleted faces.
        face_keep: (B, F) bool faces present in the mesh, or None when all are (``torn`` mode deletes
            the invalid ones).
        height, width: image size the mesh was built from.
        mode: the ``build_dwmesh`` mode that made it (renderers composite ``parity`` meshes the reference's way).
    """

    vertices: Tensor
    faces: Tensor
    colors: Tensor
    face_valid: Tensor
    face_keep: Tensor | None
    height: int
    width: int
    mode: str = "fixed"

    @property
    def num_frames(self) -> int:
        return self.vertices.shape[0]

    def frame(self, i: int) -> "DWMesh":
        """The mesh of frame ``i`` as a batch of one."""
        return DWMesh(
            self.vertices[i : i + 1],
            self.faces,
            self.colors[i : i + 1],
            self.face_valid[i : i + 1],
            None if self.face_keep is None else self.face_keep[i : i + 1],
            self.height,
            self.width,
            self.mode,
        )

    def faces_of(self, i: int) -> Tensor:
        """(F_i, 3) faces present in frame ``i`` (all faces unless the mesh is torn)."""
        if self.face_keep is None:
            return self.faces
        return self.faces[self.face_keep[i]]

    def to(self, device) -> "DWMesh":
        return DWMesh(
            self.vertices.to(device),
            self.faces.to(device),
            self.colors.to(device),
            self.face_valid.to(device),
            None if self.face_keep is None else self.face_keep.to(device),
            self.height,
            self.width,
            self.mode,
        )


_FACE_CACHE: dict[tuple[int, int, str], Tensor] = {}


def grid_faces(height: int, width: int, device=None) -> Tensor:
    """Faces (F, 3) int32 of an H x W vertex grid: two per quad, then the two back-cap faces.

    With p(v, u) = v W + u, quad (v, u) gives T1 = (p(v+1,u), p(v,u), p(v,u+1)) and
    T2 = (p(v+1,u), p(v,u+1), p(v+1,u+1)); all T1 come first, then all T2 (the reference's order),
    then the cap (p(0,W-1), p(0,0), p(H-1,W-1)) and (p(H-1,W-1), p(0,0), p(H-1,0)).
    """
    key = (height, width, str(device))
    if key not in _FACE_CACHE:
        p = torch.arange(height * width, dtype=torch.int32, device=device).view(height, width)
        tl, tr, bl, br = p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]
        t1 = torch.stack([bl, tl, tr], dim=-1).reshape(-1, 3)
        t2 = torch.stack([bl, tr, br], dim=-1).reshape(-1, 3)
        W, H = width, height
        cap = torch.tensor(
            [[W - 1, 0, (H - 1) * W + W - 1], [(H - 1) * W + W - 1, 0, (H - 1) * W]],
            dtype=torch.int32,
            device=device,
        )
        _FACE_CACHE[key] = torch.cat([t1, t2, cap], dim=0)
    return _FACE_CACHE[key]


def face_min_angle_deg(vertices: Tensor, faces: Tensor) -> Tensor:
    """Smallest interior angle (degrees) of every face.

    Args:
        vertices: (B, V, 3) float. faces: (F, 3) int.
    Returns:
        (B, F) float32 angles in [0, 60].
    """
    f = faces.long()
    v0, v1, v2 = vertices[:, f[:, 0]], vertices[:, f[:, 1]], vertices[:, f[:, 2]]

    def angle(a: Tensor, b: Tensor) -> Tensor:
        # atan2(|a x b|, a.b) is accurate for the near-0 angles we threshold (acos is not).
        cross = torch.linalg.vector_norm(torch.cross(a, b, dim=-1), dim=-1)
        return torch.atan2(cross, (a * b).sum(-1))

    a0 = angle(v1 - v0, v2 - v0)
    a1 = angle(v2 - v1, v0 - v1)
    a2 = math.pi - a0 - a1
    return torch.rad2deg(torch.minimum(torch.minimum(a0, a1), a2))


def _grid_bad_vertices(face_valid: Tensor, height: int, width: int) -> Tensor:
    """(B, H*W) bool: vertices of the grid touched by at least one invalid face (B, F) of ``grid_faces``.

    Equivalent to scattering the invalid faces onto their three vertices, written as shifted ORs of
    the (H-1, W-1) per-quad maps (no atomics). Vertex (v, u) is the top-left of T1(v, u), bottom-left
    of T1(v-1, u), top-right of T1(v, u-1), bottom-left of T2(v-1, u), top-right of T2(v, u-1) and
    bottom-right of T2(v-1, u-1).
    """
    B = face_valid.shape[0]
    H, W = height, width
    nq = (H - 1) * (W - 1)
    inv = ~face_valid
    p1 = torch.zeros(B, H + 1, W + 1, dtype=torch.bool, device=inv.device)
    p2 = torch.zeros_like(p1)
    p1[:, 1:H, 1:W] = inv[:, :nq].reshape(B, H - 1, W - 1)  # p[v + 1, u + 1] = quad (v, u)
    p2[:, 1:H, 1:W] = inv[:, nq : 2 * nq].reshape(B, H - 1, W - 1)
    bad = p1[:, 1:, 1:] | p1[:, :-1, 1:] | p1[:, 1:, :-1] | p2[:, :-1, 1:] | p2[:, 1:, :-1] | p2[:, :-1, :-1]
    bad = bad.reshape(B, H * W)
    cap0, cap1 = inv[:, -2], inv[:, -1]  # (p(0,W-1), p(0,0), p(H-1,W-1)), (p(H-1,W-1), p(0,0), p(H-1,0))
    bad[:, W - 1] |= cap0
    bad[:, 0] |= cap0 | cap1
    bad[:, (H - 1) * W + W - 1] |= cap0 | cap1
    bad[:, (H - 1) * W] |= cap1
    return bad


def set_border(depth: Tensor, value: float = BORDER_DEPTH) -> Tensor:
    """Copy of ``depth`` (..., H, W) with its one-pixel border ring set to ``value``."""
    d = depth.clone()
    d[..., 0, :] = value
    d[..., -1, :] = value
    d[..., :, 0] = value
    d[..., :, -1] = value
    return d


def build_dwmesh(
    rgb: Tensor,
    depth: Tensor,
    K: Tensor,
    mode: str = "fixed",
    min_angle_deg: float = 2.5,
    border_depth: float = BORDER_DEPTH,
    pixel_center: bool | None = None,
) -> DWMesh:
    """Build the DW-Mesh of every frame, batched, on the device of ``depth``.

    Args:
        rgb: (B, H, W, 3) colours, uint8 or float in [0, 1].
        depth: (B, H, W) float planar z-depth on the EX-4D scale, finite and > 0.
        K: (3, 3) intrinsics of the source camera.
        mode: ``fixed`` | ``parity`` | ``torn`` (see the module docstring).
        min_angle_deg: faces with a smaller minimum interior angle are occlusion walls.
        border_depth: depth given to the one-pixel border ring.
        pixel_center: vertices on pixel centres (True) or on integer pixel coordinates (False, the
            reference's); None = the mode's own (False for ``parity`` only).

    Returns:
        DWMesh in the source-camera (world) frame.
    """
    check_choice(mode, "mesh.mode", MESH_MODES)
    assert rgb.shape[:3] == depth.shape, (rgb.shape, depth.shape)
    B, H, W = depth.shape
    device = depth.device
    d = set_border(depth.float(), border_depth)
    if pixel_center is None:
        pixel_center = mode != "parity"
    verts = unproject_depth(d, K, pixel_center=pixel_center).reshape(B, H * W, 3)
    faces = grid_faces(H, W, device)
    face_valid = face_min_angle_deg(verts, faces) >= min_angle_deg
    if mode == "fixed":
        face_valid[:, -2:] = False  # the back cap is a wall too
    col = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
    colors = torch.cat([col.reshape(B, H * W, 3).to(device), torch.ones(B, H * W, 1, device=device)], -1)
    face_keep = None
    if mode == "torn":
        # The reference's use_dwmesh=0: `faces = faces[valid_faces]`, colours untouched (alpha 255 everywhere).
        face_keep = face_valid.clone()
    else:
        # A vertex touched by any invalid face loses its colour and alpha (RGBA = 0).
        bad_vertex = _grid_bad_vertices(face_valid, H, W)
        colors = colors * (~bad_vertex).unsqueeze(-1)
    return DWMesh(verts, faces, colors, face_valid, face_keep, H, W, mode)


class DWMeshBuilder:
    """Configured DW-Mesh construction (the ``mesh`` config group): ``builder(rgb, depth, K) -> DWMesh``."""

    def __init__(self, mode: str = "fixed", min_angle_deg: float = 2.5, border_depth: float = BORDER_DEPTH,
                 pixel_center: bool | None = None):
        check_choice(mode, "mesh.mode", MESH_MODES)
        if not 0.0 < check_number(min_angle_deg, "mesh.min_angle_deg") < 60.0:
            raise InputError(f"mesh.min_angle_deg must be in (0, 60), got {min_angle_deg}")
        if pixel_center is not None and not isinstance(pixel_center, bool):
            raise InputError(f"mesh.pixel_center must be true, false or null, got {pixel_center!r}")
        self.mode = mode
        self.min_angle_deg = float(min_angle_deg)
        self.border_depth = check_number(border_depth, "mesh.border_depth", positive=True)
        self._pixel_center = pixel_center

    @property
    def pixel_center(self) -> bool:
        """Whether vertices sit on pixel centres (by default False only in ``parity`` mode)."""
        return self.mode != "parity" if self._pixel_center is None else self._pixel_center

    def __call__(self, rgb: Tensor, depth: Tensor, K: Tensor) -> DWMesh:
        return build_dwmesh(rgb, depth, K, self.mode, self.min_angle_deg, self.border_depth, self.pixel_center)
