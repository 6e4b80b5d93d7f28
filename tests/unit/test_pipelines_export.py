"""Exports of a run folder (ex4d.pipelines.export, tools/export_run.py): COLMAP model, GLB and PLY read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from ex4d.cameras.colmap import read_colmap_text
from ex4d.cameras.io import load_cameras_json
from ex4d.cameras.trajectories import DollyZoom
from ex4d.depth.constant import PlanesDepthBackend
from ex4d.io.video import VideoClip, write_video
from ex4d.mesh import DWMeshBuilder
from ex4d.mesh.export import OPENCV_TO_GLTF, mesh_arrays
from ex4d.pipelines.export import check_export_formats, export_run, first_frame_mesh
from ex4d.pipelines.recon import ReconPipeline, save_recon
from ex4d.render import CpuRenderer
from ex4d.utils.errors import InputError

T, H, W = 5, 32, 48


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A DW-Mesh stage folder of a dolly zoom (one K per frame) over a textured two-plane scene, parity mesh."""
    v, u = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    frames = np.stack([np.stack([(u * 5 + 9 * t) % 256, (v * 7) % 256, (u + v) % 256], -1) for t in range(T)])
    clip = VideoClip(frames.astype(np.uint8), 30.0, "test")
    pipe = ReconPipeline(PlanesDepthBackend(), DollyZoom("in", fraction=0.4), CpuRenderer(num_threads=1),
                         DWMeshBuilder("parity"), device="cpu", progress=False, keep_meshes="first")
    result = pipe(clip)
    out = tmp_path_factory.mktemp("run")
    save_recon(result, out)
    return out, result


def test_colmap_export_round_trips_the_run_cameras(run_dir):
    run, result = run_dir
    files = export_run(run, ["colmap"], mesh_builder=DWMeshBuilder("parity"))
    model = read_colmap_text(run / "export" / "colmap")
    cams = load_cameras_json(run / "cameras.json")
    torch.testing.assert_close(model.w2c, cams.w2c, atol=1e-12, rtol=0)
    assert torch.equal(model.K_T33, result.K_T33) and len(model.cameras) == T  # one camera per distinct K
    assert {c[1:3] for c in model.cameras.values()} == {(W, H)}
    # points3D: the trusted first-frame surface, every 4th pixel, coloured by the source frame
    mesh = result.meshes[0]
    verts, _, rgba = mesh_arrays(mesh)
    trusted = (rgba[:, 3] == 255).reshape(H, W)
    assert len(model.points_xyz) == int(trusted[::4, ::4].sum()) > 0
    index = {tuple(p): i for i, p in enumerate(verts.astype(np.float64).round(5).tolist())}
    for p, c in zip(model.points_xyz.round(5).tolist(), model.points_rgb):
        i = index[tuple(p)]
        assert rgba[i, 3] == 255 and np.array_equal(rgba[i, :3], c)
    assert "colmap_image_folder" not in files


def test_mesh_exports_round_trip_through_trimesh(run_dir):
    run, result = run_dir
    files = export_run(run, "gltf,ply", mesh_builder=DWMeshBuilder("parity"))
    verts, faces, rgba = mesh_arrays(result.meshes[0])  # the mesh the stage rendered frame 0 from
    ply = trimesh.load(files["mesh_ply"], process=False)
    np.testing.assert_array_equal(np.asarray(ply.vertices, np.float32), verts)
    np.testing.assert_array_equal(ply.faces, faces)
    np.testing.assert_array_equal(ply.visual.vertex_colors, rgba)
    glb = trimesh.load(files["mesh_gltf"], force="mesh", process=False)
    np.testing.assert_allclose(glb.vertices, verts.astype(np.float64) @ OPENCV_TO_GLTF.T, atol=1e-6)
    np.testing.assert_array_equal(glb.faces, faces)
    np.testing.assert_array_equal(glb.visual.vertex_colors, rgba)
    # rebuilt from the folder's files: the same mesh
    rebuilt = first_frame_mesh(run, DWMeshBuilder("parity"))
    assert torch.equal(rebuilt.vertices, result.meshes[0].vertices) and torch.equal(rebuilt.colors, result.meshes[0].colors)


def test_images_from_a_generated_video_rescale_K(run_dir, tmp_path):
    run, result = run_dir
    gen = np.random.default_rng(0).integers(0, 256, (T, 64, 64, 3), dtype=np.uint8)
    write_video(run / "output.mp4", gen, fps=15, lossless=True)
    export_run(run, ["colmap"], out_dir=tmp_path / "e", images="output", points_stride=0)
    model = read_colmap_text(tmp_path / "e" / "colmap")
    K = result.K_T33.clone()
    K[:, 0] *= 64 / W
    K[:, 1] *= 64 / H
    torch.testing.assert_close(model.K_T33, K, atol=1e-12, rtol=0)
    assert {c[1:3] for c in model.cameras.values()} == {(64, 64)} and len(model.points_xyz) == 0
    pngs = sorted((tmp_path / "e" / "colmap" / "images").glob("*.png"))
    assert [p.name for p in pngs] == model.names
    export_run(run, ["colmap"], out_dir=tmp_path / "r", images="render", points_stride=0)
    assert torch.equal(read_colmap_text(tmp_path / "r" / "colmap").K_T33, result.K_T33)
    (run / "output.mp4").unlink()


def test_tool_and_bad_values(run_dir, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    run, _ = run_dir
    spec = importlib.util.spec_from_file_location("export_run_tool", Path(__file__).parents[2] / "tools" / "export_run.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(run), "--formats", "colmap,ply", "--out", str(tmp_path / "t")]) == 0
    record = json.loads((tmp_path / "t" / "export.json").read_text())
    assert set(record["files"]) == {"colmap_cameras", "colmap_images", "colmap_points3D", "mesh_ply"}
    assert record["mesh"] == "default (mesh=fixed)"  # a bare save_recon folder has no config.yaml
    assert tool.main([str(run), "--formats", "obj"]) == 2
    assert "unknown export format" in capsys.readouterr().err
    assert tool.main([str(tmp_path / "absent")]) == 2
    assert check_export_formats(["colmap", "GLTF", "colmap"]) == ("colmap", "gltf")
    assert check_export_formats("") == () and check_export_formats(None) == ()
    with pytest.raises(InputError, match=r"recon.export: unknown export format\(s\) \['obj'\]"):
        check_export_formats(["obj"])
    with pytest.raises(InputError, match="images"):
        export_run(run, ["colmap"], images="both")
    with pytest.raises(InputError, match="no depth.npz"):
        export_run(tmp_path, ["ply"])
