"""Rendering mask: the DW-Mesh round trip (source -> sampled novel pose -> source).

1. Build the DW-Mesh of every source frame and render it to a sampled novel pose; besides the trusted
   mask we need the *depth* of that render. The Renderer interface interpolates per-vertex RGBA, so
   the depth comes from a second set of vertex "colours": R = camera-space z / ``depth_scale`` in the
   novel camera (z is affine in 3-D, so barycentric interpolation reproduces it exactly), G = 1
   (coverage), A = the DW-Mesh alpha. One rasterisation gives mask, depth and coverage.
2. Re-mesh that render with its depth: a DW-Mesh in the novel camera whose vertex alpha is the
   render's mask (so holes stay holes) times its own wall labels (new depth edges seen from the
   novel pose become walls too).
3. Render the re-mesh back into the source camera. What survives is trusted; the rest is exactly the
   kind of hole an inference render of that pose leaves, but on content we have ground truth for.

At the identity pose nothing is lost beyond the DW-Mesh's own walls: the two-pixel border ring (the
skirt to z = 100) and a one-pixel band on each side of every depth edge, which inference renders
have too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ex4d.cameras.core import w2c_to_c2w
from ex4d.masking.base import MaskSample, SimulatedMask
from ex4d.masking.poses import PoseSampler
from ex4d.mesh.dwmesh import DWMesh, DWMeshBuilder, set_border
from ex4d.render.base import MASK_THRESHOLD, Renderer
from ex4d.utils.checks import check_int


def resolve_renderer(renderer: Renderer | str) -> Renderer:
    """A Renderer instance, or a backend name handed to ``ex4d.render.make_renderer``."""
    if isinstance(renderer, Renderer):
        return renderer
    from ex4d.render import make_renderer  # lazy: backends import heavy optional packages

    return make_renderer(renderer)


def render_mask_and_depth(renderer: Renderer, mesh: DWMesh, w2c: Tensor, K: Tensor, height: int, width: int,
                          depth_scale: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Render DW-Meshes and return the trusted mask, the camera-space depth and the coverage.

    Args:
        mesh: B frames (world frame). w2c: (B, 4, 4) target cameras. K: (3, 3) target intrinsics.
        depth_scale: z is stored as z / depth_scale in the red channel (default: ``renderer.far``, so
            every visible depth lands in (0, 1]).

    Returns:
        mask (B, H, W) bool (alpha > 125/255), depth (B, H, W) float32 z in the target camera (only
        meaningful where covered), covered (B, H, W) bool (some face hit the pixel).
    """
    scale = float(depth_scale or renderer.far)
    w2c_d = w2c.to(mesh.vertices.device, torch.float32)
    z = (mesh.vertices @ w2c_d[:, 2, :3].unsqueeze(-1)).squeeze(-1) + w2c_d[:, 2, 3:4]  # (B, V)
    alpha = mesh.colors[..., 3]
    colors = torch.stack([z / scale, torch.ones_like(z), torch.zeros_like(z), alpha], dim=-1)
    coded = DWMesh(mesh.vertices, mesh.faces, colors, mesh.face_valid, mesh.face_keep, mesh.height, mesh.width,
                   mesh.mode)
    rgba = renderer.rasterize_rgba(coded, w2c, K, height, width)
    covered = rgba[..., 1] > 0.5
    # Antialiasing backends blend coverage at silhouettes; undo that weight before decoding depth.
    depth = rgba[..., 0] / rgba[..., 1].clamp_min(1e-6) * scale
    return rgba[..., 3] > MASK_THRESHOLD, depth, covered


def round_trip_mask(renderer: Renderer, builder: DWMeshBuilder, frames: Tensor, depth: Tensor, K: Tensor,
                    w2c: Tensor) -> Tensor:
    """Trusted mask (B, H, W) bool of a source -> ``w2c`` -> source round trip.

    Args:
        frames: (B, H, W, 3) uint8 source frames. depth: (B, H, W) EX-4D depth. K: (3, 3).
        w2c: (B, 4, 4) novel poses (world = source camera).
    """
    B, H, W = depth.shape
    src = builder(frames, depth, K)
    mask_nv, z_nv, covered = render_mask_and_depth(renderer, src, w2c, K, H, W)
    mask_nv, z_nv, covered = (t.to(depth.device) for t in (mask_nv, z_nv, covered))
    # Uncovered pixels see nothing: push them to the wall depth so the re-mesh stays a closed skirt.
    z_nv = torch.where(covered, z_nv, torch.full_like(z_nv, builder.border_depth))
    z_nv = z_nv.clamp(min=renderer.near * 10, max=renderer.far)
    blank = torch.zeros(B, H, W, 3, dtype=torch.uint8, device=depth.device)
    back = builder(blank, z_nv, K)
    ok = (mask_nv & covered).reshape(B, H * W)
    if back.face_keep is not None:
        # Torn meshes (the reference's use_dwmesh=0) delete what the novel view did not see instead of walling it,
        # but, as every mesh the reference builds, keep a valid back cap: its four corners are trusted whatever the
        # novel view saw there, so source rays through a tear hit the cap and come back trusted, as in a torn render.
        ok[:, [0, W - 1, (H - 1) * W, H * W - 1]] = True
        back.face_keep = back.face_keep & ok[:, back.faces.long()].all(-1)
    back.colors = back.colors * ok.unsqueeze(-1)
    return renderer.render(back, w2c_to_c2w(w2c), K, H, W).mask.to(depth.device)


class RenderMask(SimulatedMask):
    """DW-Mesh round trip to one sampled novel path per clip (module docstring).

    Args:
        poses: the PoseSampler (angle range, sign, pitch, pivot offset, schedule).
        renderer: a Renderer, or a backend name for ``ex4d.render.make_renderer`` ("auto", "cpu",
            "nvdiffrast"), created on first use.
        mesh: the DWMeshBuilder for both meshes (default fixed mode).
        chunk_size: frames meshed and rendered at once (bounds memory).
        full_first_frame: see ``SimulatedMask``.
    """

    name = "render"

    def __init__(self, poses: PoseSampler | None = None, renderer: Renderer | str = "auto",
                 mesh: DWMeshBuilder | None = None, chunk_size: int = 8, full_first_frame: bool = True):
        super().__init__(full_first_frame)
        check_int(chunk_size, "masking.chunk_size", minimum=1)
        self.poses = poses or PoseSampler()
        self._renderer = renderer
        self.mesh = mesh or DWMeshBuilder()
        self.chunk_size = chunk_size

    @property
    def renderer(self) -> Renderer:
        if not isinstance(self._renderer, Renderer):
            self._renderer = resolve_renderer(self._renderer)
        return self._renderer

    def min_depth(self, depth: Tensor) -> float:
        """Smallest depth of frame 0 after the border ring is set (the pivot convention)."""
        return float(set_border(depth[0].float(), self.mesh.border_depth).min())

    def mask_for_path(self, frames: Tensor, depth: Tensor, K: Tensor, w2c: Tensor) -> Tensor:
        """Round-trip masks (T, H, W) bool of a given path (T, 4, 4), in chunks of ``chunk_size`` frames."""
        depth = depth.float()
        out = []
        for s in range(0, depth.shape[0], self.chunk_size):
            e = min(depth.shape[0], s + self.chunk_size)
            out.append(round_trip_mask(self.renderer, self.mesh, frames[s:e].to(depth.device), depth[s:e], K,
                                       w2c[s:e]))
        return torch.cat(out)

    def _sample(self, frames, depth, K, generator) -> MaskSample:
        pose = self.poses.sample(depth.shape[0], self.min_depth(depth), generator)
        return MaskSample(self.mask_for_path(frames, depth, K, pose.w2c),
                          {"strategy": self.name, "mesh": self.mesh.mode, **pose.info()})
