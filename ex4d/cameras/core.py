"""Core camera maths in the project convention (see ``ex4d.cameras``)."""

from __future__ import annotations

import torch
from torch import Tensor


def intrinsics(height: int, width: int, focal_px: float = 500.0, dtype=torch.float64) -> Tensor:
    """Pinhole ``K`` (3, 3) with fx = fy = ``focal_px`` and principal point at the image centre (W/2, H/2)."""
    return torch.tensor(
        [[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]], dtype=dtype
    )


def look_at(eye: Tensor, target: Tensor, up: tuple[float, float, float] = (0.0, 1.0, 0.0)) -> Tensor:
    """World-to-camera poses looking from ``eye`` at ``target``.

    Args:
        eye: (N, 3) camera centres in world coordinates.
        target: (3,) or (N, 3) points the optical axis passes through.
        up: the world direction that maps to image *down* (+y in OpenCV); (0, 1, 0) keeps the
            source camera's roll.

    Returns:
        w2c: (N, 4, 4) float64, rotation rows = (x right, y down, z forward) of each camera.

    The reference builds ``[s; u; f]`` with ``s = normalize(f x up)``, a mirrored frame (det -1); its
    renderer then negates rows 0..2 and applies an OpenGL projection, which is the same image as the
    proper OpenCV rotation ``[-s; u; f]`` used here.
    """
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64).expand_as(eye)
    up_t = torch.tensor(up, dtype=torch.float64).expand_as(eye)
    fwd = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.nn.functional.normalize(torch.cross(up_t, fwd, dim=-1), dim=-1)  # = -s of the reference
    down = torch.cross(fwd, right, dim=-1)  # = u of the reference
    R = torch.stack([right, down, fwd], dim=-2)
    w2c = torch.eye(4, dtype=torch.float64).repeat(eye.shape[0], 1, 1)
    w2c[:, :3, :3] = R
    w2c[:, :3, 3] = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    return w2c


def w2c_to_c2w(w2c: Tensor) -> Tensor:
    """Invert rigid (..., 4, 4) world-to-camera poses exactly (R^T, -R^T t)."""
    R = w2c[..., :3, :3]
    t = w2c[..., :3, 3:]
    c2w = torch.zeros_like(w2c)
    c2w[..., :3, :3] = R.transpose(-1, -2)
    c2w[..., :3, 3:] = -R.transpose(-1, -2) @ t
    c2w[..., 3, 3] = 1.0
    return c2w


c2w_to_w2c = w2c_to_c2w  # the rigid inverse is its own inverse


def camera_centers(w2c: Tensor) -> Tensor:
    """Camera centres (..., 3) in world coordinates of (..., 4, 4) world-to-camera poses."""
    return w2c_to_c2w(w2c)[..., :3, 3]


def unproject_depth(depth: Tensor, K: Tensor, pixel_center: bool = True) -> Tensor:
    """Lift planar z-depth maps to camera-frame points.

    Args:
        depth: (..., H, W) z-depth (distance along the optical axis), > 0.
        K: (3, 3) intrinsics.
        pixel_center: True puts pixel (v, u) at (u + 0.5, v + 0.5), consistent with rasteriser pixel
            centres; False uses the integer coordinates (u, v) as the reference does (half-pixel quirk).

    Returns:
        points: (..., H, W, 3) in the camera frame, same dtype as ``depth``.
    """
    H, W = depth.shape[-2:]
    off = 0.5 if pixel_center else 0.0
    K = K.to(device=depth.device, dtype=torch.float64)
    v, u = torch.meshgrid(
        torch.arange(H, device=depth.device, dtype=torch.float64) + off,
        torch.arange(W, device=depth.device, dtype=torch.float64) + off,
        indexing="ij",
    )
    x = ((u - K[0, 2]) / K[0, 0]).to(depth.dtype)
    y = ((v - K[1, 2]) / K[1, 1]).to(depth.dtype)
    return torch.stack([x * depth, y * depth, depth], dim=-1)


def project(points: Tensor, K: Tensor, w2c: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Project world points to continuous pixel coordinates.

    Args:
        points: (..., P, 3) world points.
        K: (3, 3) intrinsics, or (..., 3, 3) one per leading index (e.g. ``K_T33`` with points (T, P, 3)).
        w2c: optional (..., 4, 4) pose; identity when None.

    Returns:
        uv: (..., P, 2) continuous pixel coordinates (pixel centres at +0.5), z: (..., P) camera depth.
    """
    pts = points
    if w2c is not None:
        w2c = w2c.to(points.dtype)
        pts = pts @ w2c[..., :3, :3].transpose(-1, -2) + w2c[..., None, :3, 3]
    z = pts[..., 2]
    K = K.to(points.dtype)
    fx, cx, fy, cy = (K[..., i, j, None] for i, j in ((0, 0), (0, 2), (1, 1), (1, 2)))  # (..., 1)
    uv = torch.stack([fx * pts[..., 0] / z + cx, fy * pts[..., 1] / z + cy], dim=-1)
    return uv, z


def per_frame_intrinsics(K: Tensor, num_frames: int) -> Tensor:
    """``K_T33`` (N, 3, 3): a shared (3, 3) ``K`` repeated for every frame, or a per-frame one as given.

    Raises:
        ValueError: a per-frame ``K`` whose count is not ``num_frames`` (callers that read user input check
            the count first, naming their key).
    """
    if K.ndim == 2:
        return K.expand(num_frames, 3, 3).clone()
    if K.shape != (num_frames, 3, 3):
        raise ValueError(f"K: expected (3, 3) or ({num_frames}, 3, 3), got {tuple(K.shape)}")
    return K


def shared_intrinsics(K_T33: Tensor) -> Tensor:
    """The compact form of per-frame intrinsics: one (3, 3) ``K`` when every frame has the same (bit for bit),
    else ``K_T33`` (N, 3, 3) unchanged. Files and renderers take this form, so a path with one K keeps exactly
    the single-K code paths and file layouts it had before per-frame intrinsics existed."""
    if K_T33.ndim == 2:
        return K_T33
    if bool((K_T33 == K_T33[:1]).all()):
        return K_T33[0].clone()
    return K_T33
