"""Runs as a user types them: one-line errors with their exit status, run folders that are never partial,
stale or mixed, sets of inputs that go on past bad items, summary.json provenance, identical reruns.

Most tests drive :func:`ex4d.runners.cli.run_app` in-process (what the entry points call); two run the real
``python infer.py`` to check the console and Hydra's own errors.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ex4d.io.video import write_video
from ex4d.runners.cli import EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_WEIGHTS, run_app
from ex4d.runners.common import run_lock
from ex4d.runners.infer import run_infer
from tests.conftest import ROOT

# The demo, small: 5 frames of the built-in example at <= 128 px, CPU renderer.
SMALL = ["data.num_frames=5", "data.max_side=128", "data.multiple=16", "renderer=cpu", "stage=recon"]


def _app(cfg, capsys) -> tuple[int, str]:
    """run_app(run_infer, cfg): (exit status, stderr)."""
    try:
        run_app(run_infer, cfg)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir() if not p.name.startswith(".")}


def _one_error_line(err: str) -> str:
    # (progress bars also draw on stderr: not messages)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_input_prints_one_line_leaves_failed_and_log_only(compose, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _app(compose("infer", [*SMALL, f"input={tmp_path / 'missing.mp4'}", f"+output_dir={out}"]), capsys)
    line = _one_error_line(err)
    assert code == EXIT_INPUT and line.startswith("error: ") and "missing.mp4" in line
    assert _files(out) == {"FAILED.txt", "error.log"}
    assert "missing.mp4" in (out / "FAILED.txt").read_text() and len((out / "FAILED.txt").read_text().splitlines()) == 1
    assert "Traceback" in (out / "error.log").read_text()  # the details stay in the log


def test_missing_weights_stop_before_any_reconstruction(compose, tmp_path, capsys, monkeypatch):
    import ex4d.runners.infer as infer

    def no_recon(*a, **k):
        raise AssertionError("reconstruction ran before the weights were checked")

    monkeypatch.setattr(infer, "run_recon", no_recon)
    out = tmp_path / "run"
    code, err = _app(compose("infer", [*SMALL, "stage=all", f"paths.weights_dir={tmp_path}/none",
                                       f"+output_dir={out}"]), capsys)
    line = _one_error_line(err)
    assert code == EXIT_WEIGHTS and "ex4d.ckpt" in line and "download_weights.py" in line
    assert _files(out) == {"FAILED.txt", "error.log"}


@pytest.mark.parametrize("exc, code, word", [(RuntimeError("boom"), EXIT_INTERNAL, "internal error: RuntimeError: boom"),
                                              (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
                                              (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB"),
                                               EXIT_INPUT, "error: out of GPU memory: use smaller sizes")])
def test_internal_errors_and_interrupts_have_their_own_status(compose, tmp_path, capsys, monkeypatch, exc, code, word):
    import ex4d.runners.infer as infer

    def fail(*a, **k):
        raise exc

    monkeypatch.setattr(infer, "run_recon", fail)
    out = tmp_path / "run"
    got, err = _app(compose("infer", [*SMALL, f"+output_dir={out}"]), capsys)
    assert got == code and word in _one_error_line(err)
    assert _files(out) == {"FAILED.txt", "error.log"}


def test_rerun_replaces_outputs_and_a_failed_rerun_leaves_no_stale_files(compose, tmp_path, capsys):
    out = tmp_path / "run"
    args = [*SMALL, f"+output_dir={out}"]
    assert _app(compose("infer", args), capsys)[0] == 0
    first = _files(out)
    assert {"color.mp4", "mask.mp4", "summary.json", "config.yaml"} <= first
    cams = (out / "cameras.json").read_text()
    (out / "stale_from_an_older_version.mp4").write_bytes(b"x")
    assert _app(compose("infer", [*args, "camera=ref_30"]), capsys)[0] == 0
    assert _files(out) == first  # the stale file went with the earlier outputs
    assert (out / "cameras.json").read_text() != cams  # this run's path (30 degrees, not 90)
    code, _ = _app(compose("infer", [*args, f"input={tmp_path / 'gone.mp4'}"]), capsys)
    assert code == EXIT_INPUT and _files(out) == {"FAILED.txt", "error.log"}  # no good-looking outputs beside it


def test_second_run_on_a_busy_folder_is_refused_and_touches_nothing(compose, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "color.mp4").write_bytes(b"the first run's file")
    with run_lock(out):  # another run holds the folder (same EX4D_RUN_ID)
        code, err = _app(compose("infer", [*SMALL, f"+output_dir={out}"]), capsys)
    assert code == EXIT_INPUT and "in use by another run" in _one_error_line(err)
    assert (out / "color.mp4").read_bytes() == b"the first run's file" and not (out / "FAILED.txt").exists()


def test_summary_records_stages_input_commit_and_config_hash(compose, tmp_path, capsys):
    outs = []
    for name in ("a", "b"):
        outs.append(tmp_path / name)
        assert _app(compose("infer", [*SMALL, f"+output_dir={outs[-1]}"]), capsys)[0] == 0
    a, b = (json.loads((o / "summary.json").read_text()) for o in outs)
    assert a["input"] == {"given": "example:motorcycle", "resolved": "example:motorcycle", "kind": "example"}
    assert a["stages"]["recon"]["seconds"] > 0 and "peak_gpu_memory_gib" in a["stages"]["recon"]
    assert len(a["config_hash"]) == 16 and a["config_hash"] == b["config_hash"]  # the folder is not part of it
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert a["commit"].startswith(head)
    # identical runs give identical files (videos included); only timings and dates differ
    for f in ("color.mp4", "mask.mp4", "depth.npz", "cameras.json", "camera_path.npz", "contact_sheet.png"):
        assert hashlib.sha256((outs[0] / f).read_bytes()).digest() == hashlib.sha256((outs[1] / f).read_bytes()).digest(), f


def test_generate_summary_names_the_recon_folder(compose, tmp_path, capsys, rng):
    recon = tmp_path / "recon"
    assert _app(compose("infer", [*SMALL, f"+output_dir={recon}"]), capsys)[0] == 0
    out = tmp_path / "gen"
    args = ["renderer=cpu", "model=wan_tiny", "checkpoint=null", "stage=generate", f"recon_dir={recon}",
            "data.gen_height=32", "data.gen_width=32", "generate.num_steps=1", f"+output_dir={out}"]
    assert _app(compose("infer", args), capsys)[0] == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["input"] == {"given": str(recon), "resolved": str(recon.resolve()), "kind": "recon_dir"}
    assert set(s["stages"]) == {"load_models", "generate"}


def _video_set(folder: Path, rng) -> Path:
    folder.mkdir()
    for name in ("a", "c"):
        write_video(folder / f"{name}.mp4", rng.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8))
    (folder / "b.mp4").write_bytes(b"not a video")  # a corrupt item between two good ones
    return folder


def test_a_set_goes_on_past_bad_items_and_resume_refuses_changed_settings(compose, tmp_path, capsys, rng):
    videos = _video_set(tmp_path / "videos", rng)
    out = tmp_path / "set"
    args = [*SMALL, f"input={videos}", "depth=constant", f"+output_dir={out}"]
    code, err = _app(compose("infer", args), capsys)
    assert code == EXIT_ITEMS_FAILED and "1 of 3 inputs failed" in _one_error_line(err)
    s = json.loads((out / "summary.json").read_text())
    assert [(r["id"], r["status"]) for r in s["items"]] == [("a", "done"), ("b", "failed"), ("c", "done")]
    assert "b.mp4" in s["items"][1]["reason"]
    assert _files(out / "b") == {"FAILED.txt", "infer.log"} and "Traceback" in (out / "b" / "infer.log").read_text()
    assert {"color.mp4", "mask.mp4"} <= _files(out / "a")
    # resume with other settings: refused, naming what changed; nothing touched
    before = (out / "a" / "color.mp4").stat().st_mtime_ns
    code, err = _app(compose("infer", [*args, "camera=ref_30"]), capsys)
    assert code == EXIT_INPUT and "camera" in _one_error_line(err) and "other settings" in err
    assert (out / "a" / "color.mp4").stat().st_mtime_ns == before
    # resume with the same settings, the bad item fixed: only it runs
    write_video(videos / "b.mp4", rng.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8))
    assert _app(compose("infer", args), capsys)[0] == 0
    s = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in s["items"]] == ["skipped", "done", "skipped"]
    assert (out / "a" / "color.mp4").stat().st_mtime_ns == before and not (out / "b" / "FAILED.txt").exists()


def test_a_set_with_generation_records_failed_items(compose, tmp_path, capsys, rng):
    videos = _video_set(tmp_path / "videos", rng)
    out = tmp_path / "set"
    args = ["data.num_frames=5", "data.max_side=128", "data.multiple=16", "renderer=cpu", "model=wan_tiny",
            "checkpoint=null", "data.gen_height=32", "data.gen_width=48", "generate.num_steps=1", f"input={videos}",
            "stage=all", "depth=constant", "trainer.accelerator=cpu", f"+output_dir={out}"]
    code, _ = _app(compose("infer", args), capsys)
    assert code == EXIT_ITEMS_FAILED
    assert {"output.mp4", "color.mp4"} <= _files(out / "a") and {"output.mp4"} <= _files(out / "c")
    assert _files(out / "b") == {"FAILED.txt", "infer.log"}


def test_the_real_cli_prints_one_line_and_maps_hydra_errors_to_status_2(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "infer.py", *args, f"paths.output_dir={tmp_path}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    p = run(f"input={tmp_path / 'nope.mp4'}")
    assert p.returncode == EXIT_INPUT, p.stderr
    line = _one_error_line(p.stderr)
    assert line.startswith("error: ") and "nope.mp4" in line and "Traceback" not in p.stdout
    log = next((tmp_path / "infer").glob("*/infer.log"))
    assert "Traceback" in log.read_text() and str(log) in p.stderr
    p = run("data.no_such_key=1")  # Hydra's composition error: its message, our status
    assert p.returncode == EXIT_INPUT and "no_such_key" in p.stderr and "Traceback" not in p.stderr
    p = run("data=video")  # the inference clip options moved to the clip group: one line naming the new key
    assert p.returncode == EXIT_INPUT and _one_error_line(p.stderr).startswith("error: data=video: ")
    assert "clip=video" in p.stderr and "Traceback" not in p.stderr


def test_moved_clip_options_name_the_new_key():
    from ex4d.runners.cli import check_moved_options
    from ex4d.utils.errors import InputError

    for arg in ("data=video", "+data=video", "data=tiny,video"):
        with pytest.raises(InputError, match=r"clip group now: clip="):
            check_moved_options([arg])
    check_moved_options(["data=tiny", "data=monocular", "clip=tiny", "data.num_frames=5"])  # training sets, values


def test_an_output_folder_that_cannot_be_made_is_one_line_before_hydra(tmp_path):
    # Hydra makes the run folder before any of our code runs and answers a file in the way with a traceback.
    from ex4d.runners.cli import check_output_root
    from ex4d.utils.errors import InputError

    afile = tmp_path / "results.txt"
    afile.write_text("a file where the output folder should go")
    for key in ("paths.output_dir", "hydra.run.dir", "output_dir"):
        with pytest.raises(InputError, match=f"{key}=.*is a file, not a folder"):
            check_output_root([f"{key}={afile}/run"])
    with pytest.raises(InputError, match="cannot write there"):
        check_output_root(["paths.output_dir=/proc/ex4d_cannot_be_here"])
    check_output_root([f"paths.output_dir={tmp_path}/new/folder"])  # creatable: made, no error
    assert (tmp_path / "new" / "folder").is_dir()
    p = subprocess.run([sys.executable, "infer.py", f"paths.output_dir={afile}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == EXIT_INPUT and "is a file" in _one_error_line(p.stderr)
