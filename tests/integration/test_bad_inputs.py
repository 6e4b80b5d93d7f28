"""Bad values of every config group of ``infer.py`` fail up front with an InputError naming the key.

Each case composes the real config (Hydra, as the command line does) and runs the up-front checks plus the
construction of every stage object, which is all a run does before it reads the input.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException

from ex4d.runners.infer import run_infer
from ex4d.runners.validate import check_infer_config, instantiate_checked
from ex4d.utils.errors import InputError, MissingWeightsError

SMALL = ["data.num_frames=5", "data.max_side=128", "data.multiple=16", "renderer=cpu"]

BAD_VALUES = [
    # data (the clip options)
    (["data.num_frames=0"], "data.num_frames"),
    (["data.num_frames=2.5"], "data.num_frames"),
    (["data.stride=-1"], "data.stride"),
    (["data.multiple=0"], "data.multiple"),
    (["data.max_side=8"], "data.max_side"),
    (["data.resize=squash", "data.height=0", "data.width=64"], "data.height"),
    (["data.height=100", "data.width=128"], "data.height must be a multiple of data.multiple=16"),
    (["data.resize=crop"], "data.resize"),
    (["data.frame_mode=random"], "data.frame_mode"),
    (["data.gen_height=500"], "data.gen_height"),
    (["data=monocular"], "training data option"),
    # recon and the top level
    (["recon.fps=0"], "recon.fps"),
    (["recon.fps=nan"], "recon.fps"),
    (["output_fps=-15"], "output_fps"),
    (["recon.chunk_size=0"], "recon.chunk_size"),
    (["recon.contact_columns=0"], "recon.contact_columns"),
    (["recon.save_meshes=some"], "recon.save_meshes"),
    (["recon.mesh_format=obj"], "recon.mesh_format"),
    (["recon.replace_first_frame=maybe"], "recon.replace_first_frame"),
    (["device=gpu0"], "device"),
    (["input="], "input"),
    # camera
    (["camera=file"], "camera.path must be set"),
    (["camera=orbit", "camera.lead_in=maybe"], "camera.lead_in"),
    (["camera=orbit", "camera.pitch_deg=90"], "camera.pitch_deg"),
    (["camera=zoom_in", "camera.fraction=1.5"], "camera.fraction"),
    (["camera=ref_90", "camera.angle_deg=nan"], "camera.angle_deg"),
    (["camera=ref_60", "camera.frame_rescale=abc"], "camera.frame_rescale"),
    # depth (constructing a backend loads no weights)
    (["depth=file", "depth.focal_px=0"], "depth.focal_px"),
    (["depth=file", "depth.resize=sometimes"], "depth.resize"),
    (["depth=constant", "depth.value=nan"], "depth.value"),
    (["depth=planes", "depth.box=[0.5,0.5]"], "depth.box"),
    (["depth=ground_truth", "depth.focal_px=-500"], "depth.focal_px"),
    (["depth=depthcrafter", "depth.steps=0"], "depth.steps"),
    (["depth=depthcrafter", "depth.focal_px=abc"], "depth.focal_px"),
    (["depth=depth_anything", "depth.batch_size=0"], "depth.batch_size"),
    # mesh
    (["mesh.border_depth=0"], "mesh.border_depth"),
    (["mesh.min_angle_deg=nan"], "mesh.min_angle_deg"),
    (["mesh.mode=solid"], "mesh.mode"),
    # renderer
    (["renderer.near=0"], "renderer.near/far"),
    (["renderer.far=inf"], "renderer.far"),
    (["renderer.num_threads=0"], "renderer.num_threads"),
    (["renderer=auto", "renderer.backend=opengl"], "renderer.backend"),
    (["renderer=nvdiffrast", "renderer.max_frames_per_call=0"], "renderer.max_frames_per_call"),
    # generation (stage=all)
    (["stage=all", "data.num_frames=4"], "data.num_frames=4: generation needs 4k \\+ 1 frames.*use 5"),
    (["stage=all", "model=wan_tiny", "checkpoint=null", "generate.num_steps=0"], "generate.num_steps"),
    (["stage=all", "model=wan_tiny", "checkpoint=null", "generate.guidance_scale=abc"], "generate.guidance_scale"),
    (["stage=all", "model=wan_tiny", "checkpoint=null", "generate.cfg_batch=maybe"], "generate.cfg_batch"),
    (["stage=all", "model=wan_tiny", "checkpoint=null", "lora.rank=0"], "lora.rank"),
    (["stage=all", "data.gen_height=null", "data.gen_width=null", "data.multiple=8", "data.max_side=64"],
     "data.multiple=8: with data.gen_height/gen_width null"),
    (["stage=generate", "recon_dir=/nonexistent/recon"], "recon_dir /nonexistent/recon"),
]


def _construct_all(cfg):
    """What a run does before reading its input: the up-front checks, then every stage object."""
    check_infer_config(cfg)
    if cfg.stage in ("recon", "all", "auto"):
        for group in ("depth", "camera", "mesh", "renderer"):
            instantiate_checked(cfg[group])


@pytest.mark.parametrize("overrides,key", BAD_VALUES, ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_bad_config_values_name_the_key(compose, overrides, key):
    cfg = compose("infer", [*(SMALL if not overrides[0].startswith("data=") else []), *overrides])
    with pytest.raises(InputError, match=key) as e:
        _construct_all(cfg)
    assert "\n" not in str(e.value), "messages are one line"


def test_the_default_config_passes_the_checks(compose):
    _construct_all(compose("infer", SMALL))
    _construct_all(compose("infer", [*SMALL, "stage=all", "model=wan_tiny", "checkpoint=null"]))


def test_stage_all_without_weights_fails_before_the_dw_mesh_stage(compose, tmp_path):
    cfg = compose("infer", [*SMALL, "stage=all", f"paths.weights_dir={tmp_path}/w", f"+output_dir={tmp_path}/run"])
    with pytest.raises(MissingWeightsError, match=r"stage=all needs .*EX-4D/ex4d.ckpt.*download_weights.py "
                                                  r"wan_i2v_14b_480p ex4d --local-dir"):
        run_infer(cfg)
    assert not (tmp_path / "run" / "color.mp4").exists()


def test_config_errors_come_before_reading_the_input(compose, tmp_path):
    # The input does not exist and the camera file has the wrong frame count: the config value is named first,
    # then the camera file (checked against data.num_frames before the video is opened).
    cams = tmp_path / "three.json"
    cams.write_text('{"w2c": ' + str([np.eye(4).tolist()] * 3) + "}")
    missing = tmp_path / "missing.mp4"
    base = [*SMALL, f"input={missing}", "camera=file", f"camera.path={cams}", f"+output_dir={tmp_path / 'run'}"]
    with pytest.raises(InputError, match="data.multiple"):
        run_infer(compose("infer", [*base, "data.multiple=0"]))
    with pytest.raises(InputError, match=r"three.json: has 3 poses but the clip has 5 frames.*data.num_frames=3"):
        run_infer(compose("infer", base))
    with pytest.raises(InputError, match=r"input .*missing.mp4 does not exist"):
        run_infer(compose("infer", [*base, "data.num_frames=3"]))


def test_manifest_entries_are_checked_before_the_first_input(compose, tmp_path, rng):
    from ex4d.io.video import write_video

    write_video(tmp_path / "ok.mp4", rng.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8))
    (tmp_path / "list.txt").write_text("ok.mp4\ntypo.mp4\n")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)))
    out = tmp_path / "run"
    for name, match in (("list.txt", r"list.txt, line 2: typo.mp4 .* does not exist"), ("binary.txt", "not a text file")):
        with pytest.raises(InputError, match=match):
            run_infer(compose("infer", [*SMALL, f"input={tmp_path / name}", "depth=constant", f"+output_dir={out}"]))
    assert not (out / "ok" / "color.mp4").exists()


def test_recon_memory_is_checked_before_depth(monkeypatch):
    from ex4d.cameras.trajectories import ReferenceOrbit
    from ex4d.io.video import VideoClip
    from ex4d.pipelines.recon import ReconPipeline
    from ex4d.render.cpu_backend import CpuRenderer

    def depth(*a, **k):
        raise AssertionError("depth estimated before the memory check")

    monkeypatch.setattr("ex4d.utils.checks.host_memory_bytes", lambda: 2**20)
    clip = VideoClip(np.zeros((5, 64, 96, 3), np.uint8), 30.0, "clip.mp4")
    with pytest.raises(InputError, match=r"reconstructing 5 frames at 64x96.*1 MiB.*data.max_side"):
        ReconPipeline(depth, ReferenceOrbit(90), CpuRenderer(), device="cpu", progress=False)(clip)


def test_a_renderer_refuses_a_singular_K():
    from ex4d.mesh import DWMeshBuilder
    from ex4d.render.cpu_backend import CpuRenderer

    mesh = DWMeshBuilder()(torch.zeros(1, 8, 8, 3, dtype=torch.uint8), torch.full((1, 8, 8), 5.0),
                           torch.tensor([[500.0, 0, 4], [0, 500, 4], [0, 0, 1]], dtype=torch.float64))
    for K in (torch.zeros(3, 3), torch.diag(torch.tensor([500.0, 500.0, 0.0]))):
        with pytest.raises(InputError, match="renderer: 'K'"):
            CpuRenderer().render(mesh, torch.eye(4, dtype=torch.float64)[None], K)


TRAIN_BAD_VALUES = [
    (["seed=abc"], "seed"),
    (["resume_in_place=maybe"], "resume_in_place"),
    (["data.num_frames=6"], "data.num_frames=6: the Wan VAE needs 4k \\+ 1"),
    (["data.height=abc"], "data.height"),
    (["data.batch_size=abc"], "data.batch_size"),
    (["data.erosion.k_min=5", "data.erosion.k_max=2"], "data.erosion.k_max"),
    (["data.erosion.enabled=maybe"], "data.erosion.enabled"),
    (["lora.alpha=nan"], "lora.alpha"),
    (["optimizer.lr=abc"], "optimizer.lr"),
    (["optimizer.weight_decay=nan"], "optimizer.weight_decay"),
    (["trainer.max_steps=abc"], "trainer.max_steps"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches"),
    (["module.sample.guidance_scale=nan"], "generate.guidance_scale"),
]


@pytest.mark.parametrize("overrides,key", TRAIN_BAD_VALUES, ids=[" ".join(o) for o, _ in TRAIN_BAD_VALUES])
def test_bad_train_values_name_the_key(compose, tmp_path, overrides, key):
    from ex4d.runners.validate import check_shape, check_train_config

    cfg = compose("train", ["model=wan_tiny", "data=tiny", f"data.shards_dir={tmp_path}", f"output_dir={tmp_path}",
                            *overrides])
    with pytest.raises(InputError, match=key) as e:
        check_train_config(cfg)
        check_shape(cfg.data)
        for node in (cfg.lora, cfg.optimizer, cfg.module.sample):
            instantiate_checked(node)
        instantiate_checked(cfg.datamodule)
    assert "\n" not in str(e.value)


def test_a_non_checkpoint_ckpt_path_is_named(compose, tmp_path):
    from ex4d.runners.validate import check_train_config

    (tmp_path / "adapter.safetensors").write_bytes(b"x")
    cfg = compose("train", ["model=wan_tiny", "data=tiny", f"ckpt_path={tmp_path / 'adapter.safetensors'}",
                            f"output_dir={tmp_path}"])
    with pytest.raises(InputError, match=r"ckpt_path .*adapter.safetensors: expected a Lightning .ckpt.*init_adapter"):
        check_train_config(cfg)


PREPARE_BAD_VALUES = [
    (["data.num_frames=abc"], "data.num_frames"),
    (["data.num_frames=4"], "data.num_frames=4: the Wan VAE"),  # shards that could never be trained on
    (["data.height=15"], "data.height=15"),
    (["data.min_val_videos=-1"], "data.min_val_videos"),
    (["data.val_fraction=abc"], "data.val_fraction"),
    (["masking.chunk_size=abc"], "masking.chunk_size"),
    (["masking.full_first_frame=maybe"], "masking.full_first_frame"),
    (["masking=track", "masking.num_blobs=[1.5,2]"], "masking.num_blobs"),
    (["masking=mixed", "masking.ratio=abc"], "masking.ratio"),
    (["seed=abc"], "seed"),
    (["overwrite=maybe"], "overwrite"),
    (["limit=-1"], "limit"),
]


@pytest.mark.parametrize("overrides,key", PREPARE_BAD_VALUES, ids=[" ".join(o) for o, _ in PREPARE_BAD_VALUES])
def test_bad_prepare_data_values_name_the_key(compose, tmp_path, monkeypatch, overrides, key):
    from ex4d.runners.prepare_data import run_prepare_data

    monkeypatch.setattr("ex4d.data.prepare.process_clip", lambda *a, **k: pytest.fail("a clip was processed"))
    cfg = compose("prepare_data", ["data=tiny", "depth=planes", "renderer=cpu", "progress=false", *overrides])
    with pytest.raises(Exception) as e:
        run_prepare_data(cfg)
    # Hydra wraps a constructor's error in InstantiationException (the CLI reports its cause).
    err = e.value.__cause__ if isinstance(e.value, InstantiationException) else e.value
    assert isinstance(err, InputError), repr(e.value)
    assert re.search(key, str(err)) and "\n" not in str(err), str(err)


EVALUATE_BAD_VALUES = [
    (["benchmark.datasets.tiny.multiple=0"], "data.multiple"),
    (["benchmark.datasets.tiny.gen_height=33"], "data.gen_height"),
    (["benchmark.datasets.tiny.num_frames=4"], "data.num_frames .*=4: generation needs 4k \\+ 1"),
    (["output_fps=0"], "output_fps"),
    (["n_boot=abc"], "n_boot"),
    (["metrics_device=gpu"], "metrics_device"),
    (["check_sha256=maybe"], "check_sha256"),
    (["camera_following_focal_px=0"], "camera_following_focal_px"),
    (["recon.chunk_size=0"], "recon.chunk_size"),
]


@pytest.mark.parametrize("overrides,key", EVALUATE_BAD_VALUES, ids=[" ".join(o) for o, _ in EVALUATE_BAD_VALUES])
def test_bad_evaluate_values_fail_before_generating(compose, tmp_path, monkeypatch, overrides, key):
    from ex4d.runners.evaluate import run_evaluate

    monkeypatch.setattr("ex4d.runners.evaluate.generate_videos", lambda *a, **k: pytest.fail("generation started"))
    cfg = compose("evaluate", ["benchmark=extreme_90", "model=wan_tiny", "benchmark.data=tiny", "renderer=cpu",
                               "metrics=tiny", f"output_dir={tmp_path / 'eval'}", *overrides])
    with pytest.raises(InputError, match=key) as e:
        run_evaluate(cfg)
    assert "\n" not in str(e.value)
