"""Renderer interface: rasterise a batch of DW-Meshes along a camera path into RGBA, then colour + mask.

Every backend implements :meth:`Renderer.rasterize_rgba`; the thresholding that turns interpolated
alpha into the trusted-pixel mask lives here once, so all backends produce identical conventions:

* mask M = alpha > 125/255 (the reference's ``> 125`` on 0..255 values);
* colour, by ``composite`` (config ``renderer.composite``):

  - ``"mask"``: C = rgb * M, the reference's. A DW-Mesh zeroes the RGBA of every wall vertex, so the
    interpolated rgb is *premultiplied* by alpha: a trusted pixel on a face that touches a wall (or blended
    with the background by antialiasing) comes out darkened by its alpha;
  - ``"unpremultiply"``: C = (rgb / alpha) * M, the colour of the valid vertices alone (the alpha-weighted
    average); identical to ``"mask"`` wherever alpha = 1;
  - ``"auto"`` (renderer default): ``"mask"`` for a ``mesh=parity`` DW-Mesh (the reference's output, bit for
    bit), ``"unpremultiply"`` otherwise, the better of the two against a real second view (measured in
    docs/fidelity.md with experiments/fidelity/right_view.py);

  holes are black either way; the mask does not depend on it;
* frame 0 optionally replaced by the source frame with a full mask (the path starts at the source pose).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ex4d.cameras.io import validate_intrinsics
from ex4d.mesh import DWMesh
from ex4d.utils.checks import check_number
from ex4d.utils.errors import InputError

MASK_THRESHOLD = 125.0 / 255.0
COMPOSITES = ("mask", "unpremultiply")  # what finalize_rgba does
RENDERER_COMPOSITES = ("auto", *COMPOSITES)  # what a renderer accepts (renderer.composite)


def resolve_composite(composite: str, mesh_mode: str) -> str:
    """``renderer.composite`` for a mesh of ``mesh_mode``: ``auto`` is ``mask`` for parity meshes (the
    reference's rgb * M), ``unpremultiply`` otherwise (measured in docs/fidelity.md)."""
    if composite not in RENDERER_COMPOSITES:
        raise InputError(f"renderer.composite: expected one of {list(RENDERER_COMPOSITES)}, got {composite!r}")
    if composite == "auto":
        return "mask" if mesh_mode == "parity" else "unpremultiply"
    return composite


@dataclass
class RenderResult:
    """Rendered path.

    Attributes:
        color: (B, H, W, 3) float32 in [0, 1], zero where ``mask`` is False.
        mask: (B, H, W) bool, True = trusted pixel, False = hole to synthesise.
    """

    color: Tensor
    mask: Tensor


class Renderer(ABC):
    """Rasterises per-frame DW-Meshes. Attributes shared by all backends:

    near, far: clip distances along the camera z axis (reference 1e-3, 1e3).
    composite: how trusted colour is made from the interpolated RGBA: ``"mask"`` (the reference's rgb * M),
        ``"unpremultiply"`` (rgb / alpha * M) or ``"auto"`` (mask for parity meshes, else unpremultiply); see
        the module docstring.
    """

    def __init__(self, near: float = 1e-3, far: float = 1e3, composite: str = "auto"):
        near, far = check_number(near, "renderer.near"), check_number(far, "renderer.far")
        if not 0.0 < near < far:
            raise InputError(f"renderer.near/far must satisfy 0 < near < far, got near={near}, far={far}")
        resolve_composite(composite, "fixed")  # validates the name
        self.near = near
        self.far = far
        self.composite = composite

    @abstractmethod
    def rasterize_rgba(self, mesh: DWMesh, w2c: Tensor, K: Tensor, height: int, width: int) -> Tensor:
        """Render mesh frame i with camera i.

        Args:
            mesh: B frames of DW-Mesh (world frame).
            w2c: (B, 4, 4) world-to-camera poses (OpenCV).
            K: (3, 3) intrinsics of the target camera shared by every frame, or ``K_B33`` (B, 3, 3) one per
                frame (a zoom); float64, on the CPU.
            height, width: output size.

        Returns:
            (B, H, W, 4) float32 RGBA in [0, 1], barycentric interpolation of the vertex RGBA of the
            nearest face at each pixel centre; 0 where no face covers the pixel.
        """

    def render(
        self,
        mesh: DWMesh,
        w2c: Tensor,
        K: Tensor,
        height: int | None = None,
        width: int | None = None,
        source_rgb: Tensor | None = None,
    ) -> RenderResult:
        """Rasterise, threshold the alpha into a mask, black out holes.

        Args:
            source_rgb: optional (H, W, 3) source frame 0 (uint8 or float in [0, 1]); when given,
                frame 0 of the output is this frame with a full mask.
        """
        height = mesh.height if height is None else height
        width = mesh.width if width is None else width
        if w2c.shape[0] != mesh.num_frames:
            raise ValueError(f"camera path has {w2c.shape[0]} poses but the mesh has {mesh.num_frames} frames")
        # a singular K would fail deep in a backend (the CPU one inverts it)
        validate_intrinsics(K, "renderer", "K", w2c.shape[0])
        rgba = self.rasterize_rgba(mesh, w2c, K, height, width)
        return finalize_rgba(rgba, source_rgb, composite=resolve_composite(self.composite, mesh.mode))


def finalize_rgba(rgba: Tensor, source_rgb: Tensor | None = None, composite: str = "mask") -> RenderResult:
    """Turn (B, H, W, 4) RGBA into colour + mask (see the module docstring for ``composite``)."""
    if composite not in COMPOSITES:
        raise InputError(f"renderer.composite: expected one of {list(COMPOSITES)}, got {composite!r}")
    alpha = rgba[..., 3:4]
    mask = alpha[..., 0] > MASK_THRESHOLD
    rgb = rgba[..., :3]
    if composite == "unpremultiply":
        # alpha > 125/255 wherever the result is kept, so the division is safe there; elsewhere it is masked.
        rgb = rgb / alpha.clamp_min(MASK_THRESHOLD)
    color = rgb.clamp(0, 1) * mask.unsqueeze(-1)
    if source_rgb is not None:
        src = source_rgb.float() / 255.0 if source_rgb.dtype == torch.uint8 else source_rgb.float()
        color = color.clone()
        mask = mask.clone()
        color[0] = src.to(color.device)
        mask[0] = True
    return RenderResult(color=color, mask=mask)
