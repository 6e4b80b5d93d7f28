"""``python infer.py`` (DW-Mesh stage) end to end on the built-in example, small and fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ex4d.io.video import read_mask_video, read_video
from ex4d.runners.infer import run_infer
from tests.conftest import ROOT

SMALL = ["data.num_frames=5", "data.max_side=128", "data.multiple=16", "renderer=cpu"]


def test_infer_recon_on_example_writes_every_output(compose, tmp_path):
    out = tmp_path / "run"
    cfg = compose("infer", [*SMALL, "stage=recon", "recon.save_meshes=first", f"+output_dir={out}"])
    summary = run_infer(cfg)["recon"]
    assert summary["frames"] == 5
    H, W = summary["size"]
    assert (H, W) == (80, 128)  # 500x741 scaled to long side 128, sides multiples of 16
    for name in ["first_frame.png", "color.mp4", "mask.mp4", "cameras.json", "camera_path.npz", "depth.npz", "contact_sheet.png",
                 "camera_path.png", "config.yaml", "summary.json", "recon.json", "meshes/mesh_0000.ply"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not (out / ".incomplete").exists() and not (out / "FAILED.txt").exists()
    color, _ = read_video(out / "color.mp4")
    mask = read_mask_video(out / "mask.mp4")
    assert color.shape == (5, H, W, 3) and mask.shape == (5, H, W)
    assert mask[0].all(), "frame 0 is the source frame with a full mask"
    # The orbit moves the camera: later frames reveal holes, but most of the scene stays visible.
    assert 0.3 < mask[-1].mean() < 1.0
    depth = np.load(out / "depth.npz")
    assert depth["depth"].shape == (5, H, W) and np.isfinite(depth["depth"]).all()
    cams = json.loads((out / "cameras.json").read_text())
    assert len(cams["w2c"]) == 5


def test_bad_input_fails_cleanly_without_outputs(compose, tmp_path):
    out = tmp_path / "run"
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    cfg = compose("infer", [*SMALL, f"input={bad}", f"+output_dir={out}"])
    with pytest.raises(ValueError, match="broken.mp4"):
        run_infer(cfg)
    assert not (out / "color.mp4").exists() and not (out / ".incomplete").exists()
    assert "broken.mp4" in (out / "FAILED.txt").read_text()


def test_bad_config_value_is_named(compose, tmp_path):
    cfg = compose("infer", [*SMALL, "stage=sideways", f"+output_dir={tmp_path / 'r'}"])
    with pytest.raises(ValueError, match="stage must be one of"):
        run_infer(cfg)


@pytest.mark.slow
def test_infer_cli_runs_as_a_hydra_app(tmp_path):
    proc = subprocess.run(
        [sys.executable, "infer.py", *SMALL, "data.num_frames=3", f"paths.output_dir={tmp_path}", "hydra.run.dir="
         + str(tmp_path / "cli")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (Path(tmp_path) / "cli" / "color.mp4").is_file()
    assert (Path(tmp_path) / "cli" / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow
def test_infer_multirun_gives_one_run_dir_per_camera(tmp_path):
    proc = subprocess.run(
        [sys.executable, "infer.py", "-m", "camera=ref_30,ref_60", *SMALL, "data.num_frames=3",
         f"paths.output_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted(p.parent.name for p in tmp_path.glob("infer/multirun_*/*/color.mp4"))
    assert len(runs) == 2 and runs[0].startswith("0_camera=ref_30") and runs[1].startswith("1_camera=ref_60")


def test_dolly_zoom_writes_per_frame_K_that_a_camera_file_run_reproduces(compose, tmp_path):
    """camera=dolly_zoom renders with one K per frame and writes them; its cameras.json, given back as
    camera=file, renders the same path (poses and per-frame K) bit for bit."""
    import torch

    from ex4d.cameras.io import load_cameras_json, load_reference_npz

    out = tmp_path / "dz"
    run_infer(compose("infer", [*SMALL, "stage=recon", "camera=dolly_zoom", f"+output_dir={out}"]))
    cams = load_cameras_json(out / "cameras.json")
    K_src = torch.from_numpy(np.load(out / "depth.npz")["K"])
    assert cams.K.shape == (5, 3, 3) and torch.equal(cams.K[0], K_src)
    assert (cams.K[1:, 0, 0] < cams.K[:-1, 0, 0]).all()  # dollying in: the focal length falls
    assert cams.K[-1, 0, 0] == pytest.approx(0.5 * float(K_src[0, 0]))  # fraction 0.5: f -> (1 - 0.5) f
    w2c_npz, K_npz = load_reference_npz(out / "camera_path.npz")
    assert torch.equal(K_npz, cams.K) and torch.equal(w2c_npz, cams.w2c)
    again = tmp_path / "file"
    run_infer(compose("infer", [*SMALL, "stage=recon", "camera=file", f"camera.path={out / 'cameras.json'}",
                                f"+output_dir={again}"]))
    assert (again / "cameras.json").read_text() == (out / "cameras.json").read_text()
    assert np.array_equal(read_mask_video(again / "mask.mp4"), read_mask_video(out / "mask.mp4"))
    # the plain dolly (same poses, one K) renders something else: the zoom reached the renderer
    plain = tmp_path / "dolly"
    run_infer(compose("infer", [*SMALL, "stage=recon", "camera=zoom_in", f"+output_dir={plain}"]))
    assert load_cameras_json(plain / "cameras.json").K.shape == (3, 3)
    assert not np.array_equal(read_mask_video(plain / "mask.mp4"), read_mask_video(out / "mask.mp4"))


def test_recon_export_option_writes_colmap_and_meshes(compose, tmp_path):
    """recon.export=[colmap,gltf,ply]: export/ holds the COLMAP model of cameras.json and frame 0's DW-Mesh as
    the run built it (mesh=parity here); an unknown format is refused before any work, naming the key."""
    import torch
    import trimesh

    from ex4d.cameras.colmap import read_colmap_text
    from ex4d.cameras.io import load_cameras_json

    out = tmp_path / "run"
    summary = run_infer(compose("infer", [*SMALL, "stage=recon", "mesh=parity", "recon.save_meshes=first",
                                          "recon.export=[colmap,gltf,ply]", f"+output_dir={out}"]))
    assert {"colmap_cameras", "colmap_images", "colmap_points3D", "mesh_gltf", "mesh_ply"} <= set(summary["recon"]["files"])
    model = read_colmap_text(out / "export" / "colmap")
    cams = load_cameras_json(out / "cameras.json")
    torch.testing.assert_close(model.w2c, cams.w2c, atol=1e-12, rtol=0)
    assert torch.equal(model.K_T33, cams.K_T33) and list(model.cameras) == [1]
    stage_mesh = trimesh.load(out / "meshes" / "mesh_0000.ply", process=False)  # saved by the stage itself
    exported = trimesh.load(out / "export" / "mesh_0000.ply", process=False)
    assert np.array_equal(exported.vertices, stage_mesh.vertices) and np.array_equal(exported.faces, stage_mesh.faces)
    assert (out / "export" / "mesh_0000.glb").stat().st_size > 0
    with pytest.raises(ValueError, match=r"recon.export: unknown export format\(s\) \['obj'\]"):
        run_infer(compose("infer", [*SMALL, "stage=recon", "recon.export=[obj]", f"+output_dir={tmp_path / 'bad'}"]))
