"""DW-Mesh export to PLY / GLB (ex4d.mesh.export)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from ex4d.cameras import intrinsics
from ex4d.mesh import build_dwmesh
from ex4d.mesh.export import OPENCV_TO_GLTF, export_mesh
from ex4d.utils.errors import InputError

H, W = 6, 9


@pytest.fixture(scope="module")
def meshes():
    rgb = torch.randint(0, 256, (2, H, W, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    d = torch.full((2, H, W), 3.0)
    d[1, :, 4:] = 4.0  # frame 1 has a depth step: walls
    K = intrinsics(H, W)
    return {m: build_dwmesh(rgb, d, K, mode=m) for m in ("fixed", "torn")}


def _expected_rgba(mesh, frame):
    return (mesh.colors[frame] * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("mode", ["fixed", "torn"])
def test_ply_roundtrip(meshes, tmp_path, mode):
    mesh = meshes[mode]
    path = export_mesh(mesh, 1, tmp_path / "sub" / "m.ply")
    head = path.read_bytes()[:400]
    assert head.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert b"property uchar red" in head and b"property uchar alpha" in head
    tm = trimesh.load(path, process=False)
    np.testing.assert_array_equal(tm.vertices, mesh.vertices[1].numpy())
    np.testing.assert_array_equal(tm.faces, mesh.faces_of(1).numpy())
    np.testing.assert_array_equal(tm.visual.vertex_colors, _expected_rgba(mesh, 1))
    if mode == "torn":  # only kept faces: no wall is exported
        assert len(tm.faces) == int(mesh.face_valid[1].sum()) < len(mesh.faces)
    else:
        assert len(tm.faces) == 2 * (H - 1) * (W - 1) + 2


def test_glb_roundtrip_in_gltf_axes(meshes, tmp_path):
    mesh = meshes["fixed"]
    path = export_mesh(mesh, 0, tmp_path / "m.glb")
    tm = trimesh.load(path, force="mesh", process=False)
    np.testing.assert_allclose(tm.vertices, mesh.vertices[0].numpy() @ OPENCV_TO_GLTF.T, atol=1e-6)
    np.testing.assert_array_equal(tm.faces, mesh.faces.numpy())
    np.testing.assert_array_equal(tm.visual.vertex_colors, _expected_rgba(mesh, 0))


def test_bad_extension_and_frame(meshes, tmp_path):
    with pytest.raises(InputError, match="mesh format"):
        export_mesh(meshes["fixed"], 0, tmp_path / "m.obj")
    with pytest.raises(IndexError):
        export_mesh(meshes["fixed"], 5, tmp_path / "m.ply")
