"""``python infer.py`` with generation, on the TEST-ONLY tiny random Wan (its output is noise)."""

from __future__ import annotations

import numpy as np
import pytest

from ex4d.io.video import read_video, write_mask_video, write_video
from ex4d.pipelines.levers import EXACT_LEVERS
from ex4d.runners.infer import run_infer

TINY = ["data.num_frames=5", "data.max_side=128", "data.multiple=16", "renderer=cpu", "model=wan_tiny",
        "checkpoint=null", "data.gen_height=32", "data.gen_width=48", "generate.num_steps=2"]


def test_stage_all_writes_video_of_requested_frames_and_size(compose, tmp_path):
    out = tmp_path / "run"
    summary = run_infer(compose("infer", [*TINY, "stage=all", f"+output_dir={out}"]))
    frames, fps = read_video(out / "output.mp4")
    assert frames.shape == (5, 32, 48, 3)
    assert fps == pytest.approx(15)
    assert summary["generate"]["frames"] == 5
    assert (out / "contact_sheet_output.png").is_file() and (out / "color.mp4").is_file()
    # the levers policy is reported: the tiny model on the CPU keeps the plain path, and says so
    levers = summary["generate"]["levers"]
    assert levers["mode"] == "auto" and levers["memory_mode"]["mode"] == "gpu"
    assert {k: levers[k]["on"] for k in EXACT_LEVERS} == dict.fromkeys(EXACT_LEVERS, False)
    assert "CUDA" in levers["fuse_lora"]["why"]


def test_stage_auto_without_weights_runs_recon_only_and_names_files(compose, tmp_path, caplog):
    out = tmp_path / "run"
    cfg = compose("infer", ["data.num_frames=5", "data.max_side=128", "data.multiple=16", "renderer=cpu",
                            f"paths.weights_dir={tmp_path}/no_weights", f"+output_dir={out}"])
    with caplog.at_level("WARNING"):
        summary = run_infer(cfg)
    assert summary["stage"] == "recon"
    assert (out / "color.mp4").is_file() and not (out / "output.mp4").exists()
    assert "no_weights/EX-4D/ex4d.ckpt" in caplog.text and "download_weights.py" in caplog.text


def test_stage_generate_from_reference_named_files(compose, tmp_path, rng):
    recon = tmp_path / "ref"
    recon.mkdir()
    colour = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    mask = rng.random((5, 32, 32)) > 0.3
    write_video(recon / "render_90.mp4", colour, lossless=True)
    write_mask_video(recon / "mask_90.mp4", mask)
    out = tmp_path / "gen"
    run_infer(compose("infer", [*TINY, "stage=generate", f"recon_dir={recon}", "data.gen_height=null",
                                "data.gen_width=null", f"+output_dir={out}"]))
    assert read_video(out / "output.mp4")[0].shape == (5, 32, 32, 3)


def test_mismatched_colour_and_mask_fail_without_output(compose, tmp_path, rng):
    recon = tmp_path / "bad"
    recon.mkdir()
    write_video(recon / "color.mp4", rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8))
    write_mask_video(recon / "mask.mp4", rng.random((3, 32, 32)) > 0.5)
    out = tmp_path / "gen"
    with pytest.raises(ValueError, match="has 5 frames but .*mask.mp4 has 3"):
        run_infer(compose("infer", [*TINY, "stage=generate", f"recon_dir={recon}", f"+output_dir={out}"]))
    assert not (out / "output.mp4").exists() and (out / "FAILED.txt").is_file()


def test_frames_not_4k_plus_1_is_an_error(compose, tmp_path):
    cfg = compose("infer", [*TINY, "data.num_frames=4", "stage=all", f"+output_dir={tmp_path / 'r'}"])
    with pytest.raises(ValueError, match="4k"):
        run_infer(cfg)


def test_folder_of_videos_runs_predict_loop_and_resumes(compose, tmp_path, rng):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        write_video(videos / f"{name}.mp4", rng.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8))
    out = tmp_path / "set"
    args = [*TINY, f"input={videos}", "stage=all", "depth=constant", "trainer.accelerator=cpu", f"+output_dir={out}"]
    first = run_infer(compose("infer", args))
    assert first["processed"] == 2 and first["skipped"] == 0
    for name in ("a", "b"):
        assert read_video(out / name / "output.mp4")[0].shape == (5, 32, 48, 3)
    mtime = (out / "a" / "output.mp4").stat().st_mtime_ns
    second = run_infer(compose("infer", args))
    assert second["processed"] == 0 and second["skipped"] == 2
    assert (out / "a" / "output.mp4").stat().st_mtime_ns == mtime


def test_random_14b_loader_runs_stage_all_with_its_text_path_and_a_random_adapter(compose, tmp_path, caplog):
    # python infer.py stage=all model=wan_i2v_14b_random (shapes shrunk for the CPU; random UMT5 included):
    # the default checkpoint= is absent, so a seeded random adapter stands in, which changes the output.
    from omegaconf import open_dict

    from tests.integration.test_train_synthetic import SMALL

    args = [a for a in TINY if a not in ("model=wan_tiny", "checkpoint=null")]
    args += ["model=wan_i2v_14b_random", "model.dtype=float32", "model.device=cpu", "stage=all", "depth=constant",
             f"paths.weights_dir={tmp_path}/no_weights"]
    outs = {}
    for name, extra in (("random_adapter", []), ("zero_adapter", ["checkpoint=null"])):
        cfg = compose("infer", [*args, *extra, f"+output_dir={tmp_path / name}"])
        with open_dict(cfg):
            cfg.model.update(SMALL)
        with caplog.at_level("WARNING"):
            summary = run_infer(cfg)
        assert summary["stage"] == "all"
        outs[name] = read_video(tmp_path / name / "output.mp4")[0]
        assert outs[name].shape == (5, 32, 48, 3)
    assert "RANDOM adapter" in caplog.text and "no_weights/EX-4D/ex4d.ckpt" in caplog.text
    assert not np.array_equal(outs["random_adapter"], outs["zero_adapter"])


def test_a_clip_longer_than_the_window_is_generated_in_windows(compose, tmp_path):
    """12 frames (not 4k + 1: only each window must be) in windows of 5 overlapping by at least 2."""
    out = tmp_path / "run"
    summary = run_infer(compose("infer", [*TINY, "data.num_frames=12", "windows.frames=5", "windows.overlap=2",
                                          "stage=all", f"+output_dir={out}"]))
    assert read_video(out / "output.mp4")[0].shape == (12, 32, 48, 3)
    assert [list(w) for w in summary["generate"]["windows"]] == [[0, 5], [2, 7], [5, 10], [7, 12]]


@pytest.mark.parametrize("overrides,key", [(["windows.frames=5", "windows.overlap=5"], "windows.overlap"),
                                           (["windows.frames=6"], "windows.frames")])
def test_bad_window_settings_fail_before_any_work(compose, tmp_path, overrides, key):
    out = tmp_path / "r"
    with pytest.raises(ValueError, match=key):
        run_infer(compose("infer", [*TINY, "data.num_frames=12", *overrides, "stage=all", f"+output_dir={out}"]))
    assert not (out / "color.mp4").exists()
