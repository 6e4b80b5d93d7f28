"""The app's logic without a browser (ex4d.app.session): configs are infer.py's, the preview renders the frames
the full run renders, a run writes infer.py's run folder, refusals are infer.py's one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ex4d.app.session import AppSession, Choices, FramesOfPath, override_value, preview_clip_options, preview_frames
from ex4d.cameras.trajectories import ReferenceOrbit
from ex4d.io.video import read_mask_video
from ex4d.runners.cli import EXIT_INPUT, EXIT_OK, EXIT_WEIGHTS
from ex4d.runners.common import config_hash
from ex4d.runners.infer import run_infer
from tests.conftest import CONF

SMALL = ["data.num_frames=9", "data.max_side=128", "data.multiple=16", "renderer=cpu"]
EXAMPLE = "example:motorcycle"


@pytest.fixture
def session(tmp_path):
    return AppSession([*SMALL, f"paths.output_dir={tmp_path}/outputs", f"paths.weights_dir={tmp_path}/no_weights"],
                      conf_dir=CONF)


def test_preview_frames_spread_over_the_clip():
    assert preview_frames(49, 4) == [0, 16, 32, 48]
    assert preview_frames(5, 4) == [0, 1, 3, 4]
    assert preview_frames(3, 4) == [0, 1, 2]
    assert preview_frames(1, 4) == [0]


def test_preview_size_caps_the_long_side():
    opts = {"num_frames": 49, "stride": 1, "frame_mode": "first", "resize": "keep_aspect", "multiple": 64,
            "max_side": 1024, "height": None, "width": None}
    assert preview_clip_options(opts) == dict(opts, multiple=16, max_side=256)
    fixed = preview_clip_options(dict(opts, resize="squash", height=512, width=768))
    assert (fixed["height"], fixed["width"]) == (176, 256)  # 512x768 scaled by 1/3, rounded to 16
    assert preview_clip_options(dict(opts, resize="none"))["resize"] == "keep_aspect"


def test_frames_of_path_are_the_full_paths_frames():
    full = ReferenceOrbit(90)(49, 2.5)
    sub = FramesOfPath(ReferenceOrbit(90), 49, [0, 16, 32, 48])(4, 2.5)
    assert np.array_equal(sub.numpy(), full[[0, 16, 32, 48]].numpy())  # not a 4-frame path (rho = 49/4)


def test_override_values_survive_composition(session, tmp_path):
    odd = tmp_path / "my video, take 'two' [final].mp4"
    assert override_value("example:motorcycle") == "example:motorcycle"
    cfg = session.choices_config(Choices(input=str(odd)))
    assert cfg.input == str(odd)


def test_the_page_keys_are_not_base_overrides(tmp_path):
    for o in ("input=x.mp4", "camera=orbit", "camera.yaw_end_deg=3", "+camera.dolly=0.2", "depth=planes", "stage=all"):
        with pytest.raises(ValueError, match="is set on the page"):
            AppSession([o], conf_dir=CONF)
    with pytest.raises(ValueError, match="config: Could not override 'nosuchkey'"):
        AppSession(["nosuchkey=1"], conf_dir=CONF).compose(["nosuchkey=1"])
    with pytest.raises(ValueError, match="data=video: .*clip=video"):  # the clip group's old name, as infer.py
        AppSession(["data=video"], conf_dir=CONF)
    assert AppSession(["clip=tiny"], conf_dir=CONF).base_num_frames == 5


def test_the_command_line_is_quoted_for_the_shell(session, tmp_path):
    import shlex

    odd = str(tmp_path / "my video.mp4")
    cmd = session.command(Choices(input=odd))
    assert shlex.split(cmd)[:2] == ["python", "infer.py"]
    assert f"input='{odd}'" in shlex.split(cmd)  # Hydra's quoting survives the shell's


def test_command_lists_only_what_differs(session):
    cmd = session.command(Choices(input=EXAMPLE, preset="orbit", controls={"angle": 45.0}, num_frames=9), "recon")
    assert cmd.endswith("input=example:motorcycle camera=orbit camera.yaw_end_deg=45.0 stage=recon")
    assert cmd.count("data.num_frames") == 1  # the base's 9: not repeated
    assert "data.num_frames=17" in session.command(Choices(input=EXAMPLE, num_frames=17))


def test_preview_renders_the_frames_of_the_full_run(session, compose, tmp_path):
    choices = Choices(input=EXAMPLE, preset="orbit", controls={"angle": 60.0, "dolly": 0.3})
    p = session.preview(choices)
    assert p.frames == [0, 3, 5, 8] and p.num_frames == 9
    assert p.color.shape == (4, *p.size, 3) and p.mask.shape == (4, *p.size)
    assert p.strip.ndim == 3 and p.strip.shape[1] > p.strip.shape[0] and p.path_plot.shape[2] == 3
    # The same frames from infer.py's DW-Mesh stage (SMALL is within the preview's size): identical pixels.
    out = tmp_path / "full"
    run_infer(compose("infer", [*session.overrides(choices, "recon"), f"+output_dir={out}"]))
    mask = read_mask_video(out / "mask.mp4")
    assert mask.shape[1:] == p.size
    assert np.array_equal(mask[p.frames], p.mask)
    assert p.mask[0].all() and 0.2 < p.mask[-1].mean() < 1.0


def test_preview_follows_the_angle(session):
    a = session.preview(Choices(input=EXAMPLE, preset="orbit", controls={"angle": 90.0}))
    b = session.preview(Choices(input=EXAMPLE, preset="orbit", controls={"angle": 10.0}))
    assert np.array_equal(a.color[0], b.color[0])  # frame 0 is the source either way
    assert not np.array_equal(a.color[-1], b.color[-1])
    assert b.mask[-1].mean() > a.mask[-1].mean()  # a smaller angle uncovers fewer holes


def test_recon_run_writes_infer_py_run_folder(session, compose, tmp_path):
    choices = Choices(input=EXAMPLE, preset="ref_60", controls={"angle": 45.0})
    report = session.run(choices, "recon")
    assert report.code == EXIT_OK, report.message
    out = report.output_dir
    assert out.parent == tmp_path / "outputs" / "infer"  # <paths.output_dir>/infer/<date_time>, as infer.py's
    for name in ("color.mp4", "mask.mp4", "cameras.json", "camera_ref_60.npz", "depth.npz", "first_frame.png",
                 "contact_sheet.png", "camera_path.png", "recon.json", "config.yaml", "summary.json", "infer.log"):
        assert (out / name).is_file(), name
    assert not (out / "FAILED.txt").exists() and not list(out.glob(".incomplete*"))
    assert report.message == f"done: {out}"
    # The same config infer.py composes from the overrides it records (the hash leaves out the folder's name).
    overrides = yaml.safe_load((out / ".hydra" / "overrides.yaml").read_text())
    assert report.command == " ".join(["python infer.py", *overrides])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage"] == "recon" and summary["recon"]["frames"] == 9
    assert summary["config_hash"] == config_hash(compose("infer", overrides))
    cams = json.loads((out / "cameras.json").read_text())
    assert len(cams["w2c"]) == 9


def test_generation_without_weights_is_refused_before_a_folder_exists(session, tmp_path):
    report = session.run(Choices(input=EXAMPLE), "all")
    assert report.code == EXIT_WEIGHTS and report.output_dir is None
    assert report.message.startswith("error: stage=all needs ")
    assert "no_weights/EX-4D/ex4d.ckpt" in report.message and "download_weights.py" in report.message
    assert "\n" not in report.message and not (tmp_path / "outputs" / "infer").exists()


def test_a_bad_input_is_one_line_and_the_folder_says_failed(session, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    report = session.run(Choices(input=str(bad)), "recon")
    assert report.code == EXIT_INPUT and "broken.mp4" in report.message and "\n" not in report.message
    assert report.message.startswith("error: ")
    assert "broken.mp4" in (report.output_dir / "FAILED.txt").read_text()
    with pytest.raises(ValueError, match="broken.mp4"):
        session.preview(Choices(input=str(bad)))
    with pytest.raises(ValueError, match="no input"):
        session.preview(Choices(input=" "))


@pytest.mark.slow
def test_generation_runs_with_a_tiny_model(tmp_path):
    tiny = ["model=wan_tiny", "checkpoint=null", "data.gen_height=32", "data.gen_width=48", "generate.num_steps=2"]
    session = AppSession([*SMALL, "data.num_frames=5", *tiny, f"paths.output_dir={tmp_path}"], conf_dir=CONF)
    report = session.run(Choices(input=EXAMPLE), "all")
    assert report.code == EXIT_OK, report.message
    assert (report.output_dir / "output.mp4").is_file() and (report.output_dir / "contact_sheet_output.png").is_file()
    assert json.loads((report.output_dir / "summary.json").read_text())["generate"]["frames"] == 5


@pytest.mark.slow  # imports diffusers and transformers for the two backends
def test_a_video_without_depth_weights_is_the_download_line(session, sample_videos):
    from ex4d.utils.errors import MissingWeightsError

    video = str(next(iter(sample_videos.values())))
    for depth, item in (("auto", "depthcrafter"), ("depth_anything", "depth_anything")):
        with pytest.raises(MissingWeightsError, match=f"download_weights.py {item} --local-dir"):
            session.preview(Choices(input=video, depth=depth))
