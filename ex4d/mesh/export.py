"""Export one frame of a DW-Mesh to PLY or GLB (through trimesh).

* ``.ply``: binary little-endian, float32 vertex positions in the project frame (world = source
  camera, OpenCV axes: x right, y down, z forward), per-vertex ``red green blue alpha`` uint8, int32
  faces. Occlusion walls are kept with RGBA = 0 (as the reference saves them); a torn mesh exports
  only its kept faces.
* ``.glb``: the same mesh with per-vertex colours (COLOR_0), converted to glTF's axes (+y up,
  viewer looking down -z) by diag(1, -1, -1), so that it opens upright in any glTF viewer.

Vertices are written for every pixel, also those no kept face uses, so vertex index = v * W + u.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ex4d.mesh.dwmesh import DWMesh
from ex4d.utils.errors import InputError

MESH_FORMATS = (".ply", ".glb")
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0])


def mesh_arrays(mesh: DWMesh, frame: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices (V, 3) float32, faces (F_kept, 3) int64, RGBA (V, 4) uint8) of one frame."""
    if not -mesh.num_frames <= frame < mesh.num_frames:
        raise IndexError(f"frame {frame} out of range for a mesh of {mesh.num_frames} frames")
    frame = frame % mesh.num_frames
    verts = mesh.vertices[frame].detach().cpu().float().numpy()
    faces = mesh.faces_of(frame).detach().cpu().numpy().astype(np.int64)
    rgba = (mesh.colors[frame].detach().cpu().float().clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return verts, faces, rgba


def export_mesh(mesh: DWMesh, frame: int, path: str | Path) -> Path:
    """Write frame ``frame`` of ``mesh`` to ``path`` (format from the extension, see the module docstring).

    Returns:
        The path written.
    Raises:
        InputError: unsupported extension.
    """
    import trimesh

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in MESH_FORMATS:
        raise InputError(f"{path}: mesh format must be one of {MESH_FORMATS} (recon.mesh_format), got {ext!r}")
    verts, faces, rgba = mesh_arrays(mesh, frame)
    if ext == ".glb":
        verts = (verts.astype(np.float64) @ OPENCV_TO_GLTF.T).astype(np.float32)
    tm = trimesh.Trimesh(vertices=verts, faces=faces, vertex_colors=rgba, process=False, validate=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".ply":
        data = trimesh.exchange.ply.export_ply(tm, encoding="binary", include_attributes=False)
    else:
        data = trimesh.exchange.gltf.export_glb(tm, include_normals=False)
    path.write_bytes(data)
    return path
