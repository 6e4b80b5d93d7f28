"""``python evaluate.py``: benchmarks compose; the tiny benchmark runs end to end on CPU; bad inputs fail clearly.

The generating runs use the TEST-ONLY tiny random Wan and ``metrics=tiny`` (random-feature FID, DIS flow,
neighbour-blend smoothness): the numbers check the plumbing, not the method.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from ex4d.io.video import read_video, write_video
from ex4d.metrics.vbench import vbench_quality_score
from ex4d.runners.evaluate import run_evaluate
from ex4d.utils.errors import InputError, MissingWeightsError
from tests.conftest import CONF, ROOT

BENCHMARKS = sorted(p.stem for p in (CONF / "benchmark").glob("*.yaml"))
TINY = ["model=wan_tiny", "benchmark.data=tiny", "generate.num_steps=2", "renderer=cpu", "trainer.accelerator=cpu"]


def _results(out):
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("bench", BENCHMARKS)
def test_every_benchmark_composes_with_both_sets(compose, bench):
    for data in ("user", "tiny"):
        cfg = compose("evaluate", [f"benchmark={bench}", f"benchmark.data={data}"])
        assert cfg.benchmark.name == bench and cfg.dataset.name == data
        assert cfg.data.num_frames == cfg.benchmark.datasets[data].num_frames
        w2c = instantiate(cfg.camera)(int(cfg.data.num_frames), 2.0)
        assert torch.allclose(w2c[0], torch.eye(4, dtype=torch.float64))  # every path starts at the source
        assert set(cfg.benchmark.metrics) <= set(cfg.metrics)


def test_benchmark_paths_reach_their_range_and_match_the_reference_presets(compose):
    from ex4d.cameras.core import w2c_to_c2w
    from ex4d.cameras.trajectories import ReferenceOrbit

    def azimuth_deg(w2c, radius):  # of the camera centre about the pivot (0, 0, radius)
        eye = w2c_to_c2w(w2c)[:, :3, 3].numpy()
        return np.degrees(np.arctan2(eye[:, 0], radius - eye[:, 2]))

    r = 2.0 + 0.15  # min_depth + pivot_offset
    for bench, angle in (("small_30", 30), ("large_60", 60), ("extreme_90", 90)):
        cam = instantiate(compose("evaluate", [f"benchmark={bench}"]).camera)
        for n in (5, 49):  # exact at any N (no rho rescale) ...
            assert azimuth_deg(cam(n, 2.0), r)[-1] == pytest.approx(angle, abs=1e-9)
        # ... and at the reference's 49 frames the --cam preset itself, bit for bit
        assert torch.equal(cam(49, 2.0), ReferenceOrbit(angle, frame_rescale=True)(49, 2.0))
    az = azimuth_deg(instantiate(compose("evaluate", ["benchmark=full_180"]).camera)(49, 2.0), r)
    assert az[0] == 0 and az.min() == pytest.approx(-90, abs=1e-9) and az.max() == pytest.approx(90, abs=1e-9)


@pytest.mark.parametrize("option", ["default", "tiny"])
def test_metric_options_construct_without_weights(compose, tmp_path, option):
    cfg = compose("evaluate", [f"metrics={option}", f"paths.weights_dir={tmp_path}/none"])
    for name, node in cfg.metrics.items():
        assert instantiate(node) is not None, name


def test_tiny_benchmark_end_to_end_then_resume(compose, tmp_path, caplog):
    out = tmp_path / "eval"
    args = [*TINY, "benchmark=extreme_90", "metrics=tiny", f"paths.weights_dir={tmp_path}/no_weights",
            f"output_dir={out}", "n_boot=50", "allow_skip=true", "logger=csv"]
    with caplog.at_level("WARNING"):
        res = run_evaluate(compose("evaluate", args))
    assert res["n_videos"] == 2 and res["test_only"] and res["generation"]["processed"] == 2
    m = res["metrics"]
    assert m["fid"]["n"] == 2 and np.isfinite(m["fid"]["value"]) and m["fid"]["ci_low"] <= m["fid"]["ci_high"]
    assert "TEST ONLY" in m["fid"]["note"] and m["kid"]["n"] == 2
    assert m["dynamic_degree_dis"]["n"] == 2 and m["motion_smoothness_blend"]["n"] == 2
    assert m["temporal_flickering"]["n"] == 2 and 0 < m["temporal_flickering"]["value"] <= 1
    assert {"camera_rotation_error_deg", "camera_translation_error_deg"} <= set(m)  # (noise videos: may fail to estimate)
    # Missing weights with allow_skip=true: skipped with the file named, never a number.
    for k in ("fvd_first16", "fvd_windows", "subject_consistency", "vbench_aq", "imaging_quality"):
        assert m[k]["skipped"] and "no_weights/metrics/" in m[k]["reason"], k
    assert "i3d_torchscript.pt" in m["fvd_first16"]["reason"] and "i3d_torchscript.pt" in caplog.text
    assert m["vbench_quality"]["skipped"] and "subject_consistency" in m["vbench_quality"]["reason"]
    assert m["psnr"]["skipped"] and "target" in m["psnr"]["reason"]
    assert res["allow_skip"] is True and "image_metrics" not in res["skipped"]  # not applicable is not a skip
    assert {"fvd_first16", "imaging_quality", "vbench_quality"} <= set(res["skipped"]) and "fid" not in res["skipped"]
    table = (out / "table.md").read_text()
    assert "TEST ONLY" in table and "| EX-4D (paper) | 55.42 | 823.61 | 0.450 |" in table
    assert "| **ours (TEST ONLY: random tiny model)** | " in table and "(N=2) | skipped | skipped |" in table
    assert "| fvd_first16 | skipped | missing weights file:" in table
    with open(out / "per_video.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["bikes", "carphone_pristine"] and rows[0]["frames"] == "5"
    assert _results(out)["metrics"] == json.loads(json.dumps(m))
    assert (out / "csv" / "metrics.csv").read_text().count("extreme_90/fid") >= 1
    frames, _ = read_video(rows[0]["generated"])
    assert frames.shape == (5, 32, 48, 3)
    # A rerun with the same settings reuses the generated videos; a changed setting gets a fresh folder.
    again = run_evaluate(compose("evaluate", args[:-1] + [f"output_dir={tmp_path}/eval2"]))
    assert again["generation"]["processed"] == 0 and again["generation"]["skipped"] == 2
    assert again["generation"]["dir"] == res["generation"]["dir"]
    assert again["metrics"]["fid"]["value"] == pytest.approx(m["fid"]["value"])


@pytest.fixture
def tiny_clips(compose):
    """The tiny set's source frames as evaluate reads them (the clip options of ``data``), at the clip's size."""
    from omegaconf import OmegaConf

    from ex4d.data.benchmark import list_benchmark_videos
    from ex4d.evaluation import SourceFrames

    cfg = compose("evaluate", [*TINY])
    vids = list_benchmark_videos(cfg.dataset.source, cfg.dataset.videos)
    sources = SourceFrames(**{k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items()
                              if not k.startswith("gen_")})
    return {v.id: sources(v.path) for v in vids}


@pytest.fixture
def tiny_sources(tiny_clips):
    """The tiny set's source frames resized to 32x48 (what a generator would output)."""
    from ex4d.io.video import resize_frames

    return {vid: resize_frames(frames, 32, 48) for vid, frames in tiny_clips.items()}


def test_generated_dir_identical_to_sources_gives_fid_zero(compose, tmp_path, tiny_clips):
    from ex4d.io.video import resize_frames
    from ex4d.metrics.camera_following import relative_rotations_from_w2c, rotation_angle_deg

    # 96x128: large enough for SIFT on carphone (bikes' 48x128 clip has too few matches at any size)
    copies = {vid: resize_frames(frames, 96, 128) for vid, frames in tiny_clips.items()}
    gen = tmp_path / "other_method"
    gen.mkdir()
    write_video(gen / "bikes.mp4", copies["bikes"], fps=15, lossless=True)
    (gen / "carphone_pristine").mkdir()  # our own layout works too
    write_video(gen / "carphone_pristine" / "output.mp4", copies["carphone_pristine"], fps=15, lossless=True)
    out = tmp_path / "eval"
    # Only metrics that can run here: no allow_skip needed.
    cfg = compose("evaluate", [*TINY, "metrics=tiny", f"generated_dir={gen}", "method=copy of the input",
                               f"output_dir={out}", "n_boot=20",
                               "benchmark.metrics=[fid,temporal_flickering,camera_following]"])
    res = run_evaluate(cfg)
    assert res["skipped"] == [] and res["allow_skip"] is False
    assert res["method"] == "copy of the input" and res["generation"]["external"]
    assert abs(res["metrics"]["fid"]["value"]) < 1e-3  # identical sets
    assert "| **copy of the input** | 0.00" in (out / "table.md").read_text()
    # Camera-following ran on the benchmark path (no cameras.json for other methods; 90 degrees at the last frame).
    # A copy of the input does not turn: an estimated rotation near zero, so a following ratio near 0 and an
    # error equal to the requested rotation itself (mean over frames 1-4). carphone gives the estimate; bikes none.
    m = res["metrics"]
    requested = relative_rotations_from_w2c(instantiate(cfg.camera)(5, 1.0).numpy())
    ratio, err = m["camera_following_ratio"], m["camera_rotation_error_deg"]
    assert ratio["n"] == 1 and abs(ratio["value"]) < 0.05 and "1 of 2 videos without an estimate" in ratio["note"]
    mean_requested_deg = np.mean([rotation_angle_deg(R) for R in requested[1:]])
    assert err["n"] == 1 and err["value"] == pytest.approx(mean_requested_deg, abs=3)
    with open(out / "per_video.csv") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    assert float(rows["carphone_pristine"]["camera_final_yaw_req_deg"]) == pytest.approx(90)
    assert abs(float(rows["carphone_pristine"]["camera_final_yaw_est_deg"])) < 3
    assert rows["bikes"]["camera_following_ratio"] == "nan" and rows["bikes"]["camera_failed_frames"] == "4"


def test_generated_and_source_sets_must_match(compose, tmp_path, tiny_sources):
    gen = tmp_path / "gen"
    gen.mkdir()
    write_video(gen / "bikes.mp4", tiny_sources["bikes"])
    base = [*TINY, f"generated_dir={gen}", f"output_dir={tmp_path / 'o'}", "allow_skip=true"]
    with pytest.raises(InputError, match=r"sets differ: 1 generated videos .* vs 2 source.*carphone_pristine"):
        run_evaluate(compose("evaluate", base))
    write_video(gen / "carphone_pristine.mp4", tiny_sources["carphone_pristine"][:4])
    with pytest.raises(InputError, match=r"carphone_pristine\.mp4 has 4 frames but its source .*gives 5"):
        run_evaluate(compose("evaluate", base))
    (gen / "carphone_pristine.mp4").write_bytes(b"\x00not a video")
    with pytest.raises(InputError, match=r"generated video .*carphone_pristine\.mp4 could not be read"):
        run_evaluate(compose("evaluate", base))
    write_video(gen / "carphone_pristine.mp4", tiny_sources["carphone_pristine"])
    write_video(gen / "extra.mp4", tiny_sources["bikes"])
    with pytest.raises(InputError, match=r"generated videos without a source: \['extra'\]"):
        run_evaluate(compose("evaluate", base))


def test_manifest_with_a_wrong_hash_or_unreadable_source_fails_before_generating(compose, tmp_path, sample_videos):
    m = tmp_path / "bench.csv"
    m.write_text(f"path,sha256\n{sample_videos['bikes']},{'ab' * 32}\n")
    args = [*TINY, "benchmark.data=user", f"benchmark.datasets.user.source={m}", f"output_dir={tmp_path / 'o'}",
            f"generation_root={tmp_path / 'videos'}"]
    with pytest.raises(InputError, match=r"bikes\.mp4: sha256 mismatch: .*bench\.csv expects abab"):
        run_evaluate(compose("evaluate", args))
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"garbage")
    m.write_text(f"path\n{bad}\n")
    with pytest.raises(InputError, match="broken.mp4 could not be read"):
        run_evaluate(compose("evaluate", args))
    assert not (tmp_path / "videos").exists()
    with pytest.raises(InputError, match=r"benchmark.data='nope': expected one of \['user', 'tiny'\]"):
        run_evaluate(compose("evaluate", [*TINY, "benchmark.data=nope", f"output_dir={tmp_path / 'o'}"]))


def test_missing_generator_weights_name_the_file(compose, tmp_path):
    with pytest.raises(MissingWeightsError, match=r"nowhere/adapter\.safetensors.*generated_dir"):
        run_evaluate(compose("evaluate", [*TINY, f"checkpoint={tmp_path}/nowhere/adapter.safetensors",
                                          f"output_dir={tmp_path / 'o'}", "allow_skip=true"]))


def test_a_requested_metric_that_cannot_run_fails_before_generating(compose, tmp_path):
    base = [*TINY, "metrics=tiny", f"paths.weights_dir={tmp_path}/w", f"output_dir={tmp_path / 'o'}",
            f"generation_root={tmp_path / 'videos'}"]
    with pytest.raises(MissingWeightsError) as e:
        run_evaluate(compose("evaluate", base + ["benchmark.metrics=[fid,fvd_first16,imaging_quality,motion_smoothness]"]))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("2 requested metric(s) cannot run (missing weights files or packages): ")
    assert "fvd_first16 (missing i3d_torchscript.pt)" in msg and "imaging_quality (missing musiq_spaq_ckpt-358bb6af.pth)" in msg
    assert "fid" not in msg.split("Fix:")[0].replace("fvd", "") and "motion_smoothness" not in msg  # stand-ins need nothing
    assert f"--metric-keys i3d_styleganv,musiq_spaq --local-dir {tmp_path}/w" in msg and "allow_skip=true" in msg
    assert not (tmp_path / "videos").exists()  # nothing was generated
    # The aggregate names what it lacks; a list without its dimensions is a config error.
    with pytest.raises(MissingWeightsError, match=r"vbench_quality \(needs \['subject_consistency'.*imaging_quality'\], which"):
        run_evaluate(compose("evaluate", [*base, "benchmark.metrics=[subject_consistency,background_consistency,"
                                          "temporal_flickering,motion_smoothness,dynamic_degree,aesthetic_quality,"
                                          "imaging_quality,vbench_quality]"]))
    with pytest.raises(InputError, match=r"vbench_quality aggregates .*list \['subject_consistency'"):
        run_evaluate(compose("evaluate", [*base, "benchmark.metrics=[temporal_flickering,vbench_quality]"]))
    with pytest.raises(InputError, match="allow_skip must be true or false"):
        run_evaluate(compose("evaluate", [*base, "allow_skip=sometimes"]))


@pytest.mark.slow
def test_cli_tiny_benchmark_writes_the_table(tmp_path):
    """The issue's command, as a user types it (outputs redirected under tmp_path)."""
    cmd = [sys.executable, "evaluate.py", "benchmark=extreme_90", "model=wan_tiny", "benchmark.data=tiny",
           f"paths.output_dir={tmp_path}", f"paths.weights_dir={tmp_path}/no_weights"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    # Without the metric weights: one line naming what cannot run and the fix, exit status 3, nothing generated.
    assert r.returncode == 3, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]  # (the run's INFO log goes to stdout)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "requested metric(s) cannot run" in lines[0], lines
    assert "fvd_first16, fvd_windows (missing i3d_torchscript.pt)" in lines[0] and "Traceback" not in r.stdout
    assert "allow_skip=true" in lines[0] and not (tmp_path / "benchmark_videos").exists()
    r = subprocess.run([*cmd, "allow_skip=true"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (table,) = list((tmp_path / "evaluate").glob("*/table.md"))
    text = table.read_text()
    assert "| EX-4D (paper) | 55.42 | 823.61 | 0.450 |" in text and "ours (TEST ONLY: random tiny model)" in text
    res = json.loads((table.parent / "results.json").read_text())
    assert res["n_videos"] == 2 and res["metrics"]["fid"]["skipped"]


def test_vbench_quality_from_the_seven_dimensions(compose, tmp_path, tiny_sources, monkeypatch):
    """All seven quality dimensions with local weight files (tiny random models of the real classes; MUSIQ,
    AMT-S and RAFT replaced by cheap stand-ins at load time to keep this fast) -> the aggregate under
    VBench's name, equal to the leaderboard formula on the dimensions' set values."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, ViTConfig, ViTModel

    import ex4d.metrics.vbench as vb

    gen = tmp_path / "other_method"
    gen.mkdir()
    for vid, frames in tiny_sources.items():
        write_video(gen / f"{vid}.mp4", frames, fps=15, lossless=True)
    w = tmp_path / "w" / "metrics"
    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, image_size=224)
    ViTModel(ViTConfig(patch_size=16, **small), add_pooling_layer=False).save_pretrained(w / "dino-vitb16")
    for name in ("clip-vit-base-patch32", "clip-vit-large-patch14"):
        CLIPVisionModelWithProjection(CLIPVisionConfig(patch_size=32, projection_dim=768, **small)).save_pretrained(w / name)
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.tensor([6.0])}, w / "sa_0_4_vit_l_14_linear.pth")
    for name in ("musiq_spaq_ckpt-358bb6af.pth", "amt-s.pth", "raft_large_C_T_V1-22a6c225.pth"):
        (w / name).write_bytes(b"stand-in")
    monkeypatch.setattr(vb, "load_musiq", lambda path, device="cpu": (lambda x: torch.tensor(70.0)))
    monkeypatch.setattr(vb.AMTInterpolator, "from_file", classmethod(lambda cls, path, device="cpu": vb.blend_interpolator))
    monkeypatch.setattr(vb, "RaftTorchvisionFlow", lambda path, device="cpu": vb.DISFlow())
    dims = ["subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
            "dynamic_degree", "aesthetic_quality", "imaging_quality"]
    res = run_evaluate(compose("evaluate", [
        *TINY, f"generated_dir={gen}", f"output_dir={tmp_path / 'o'}", f"paths.weights_dir={tmp_path / 'w'}", "n_boot=20",
        f"benchmark.metrics=[{','.join(dims)},vbench_quality]", "metrics.imaging_quality.sha256=''",
        "metrics.motion_smoothness.sha256=''", "metrics.dynamic_degree.sha256=''"]))
    m = res["metrics"]
    assert res["skipped"] == [] and all(m[d]["n"] == 2 for d in dims)
    assert m["imaging_quality"]["value"] == pytest.approx(0.70) and m["aesthetic_quality"]["value"] == pytest.approx(0.60)
    q = m["vbench_quality"]
    assert q["n"] == 2 and len(q["per_video"]) == 2 and "Quality Score" in q["note"]
    assert q["value"] == pytest.approx(vbench_quality_score({d: m[d]["value"] for d in dims}), abs=1e-9)
    # every metric file used is recorded with its digest and what it was checked against
    used = {v["key"]: v for v in res["weights"].values()}
    assert {"dino_vitb16", "clip_vitb32", "clip_vitl14", "laion_aesthetic", "musiq_spaq", "amt_s", "raft_large"} <= set(used)
    assert used["amt_s"]["check"] == "no check (sha256='')" and used["laion_aesthetic"]["check"].startswith("none:")


@pytest.mark.slow
def test_smoke_tables_of_two_camera_paths_differ(compose, tmp_path):
    """The tiny smoke run's checkpoint=auto is a seeded random adapter (checkpoint=random), so the rendered colour
    and mask of the camera path reach the generated videos: ref_30 and ref_180 give different videos and tables.
    Control: with checkpoint=null (the zero adapter, an exact no-op) the two tables are identical, as every smoke
    table used to be, so this test fails when the geometry does not reach the model."""
    base = [*TINY, "benchmark=small_30", "metrics=tiny", f"paths.weights_dir={tmp_path}/no_weights", "n_boot=20",
            f"generation_root={tmp_path / 'videos'}", "allow_skip=true"]  # (no weights here for the real-network metrics)
    cameras = {"ref_30": [], "ref_180": ["camera@benchmark.camera=ref_180"]}
    res, tables = {}, {}
    for adapter in ("auto", "null"):
        for name, camera in cameras.items():
            out = tmp_path / f"{adapter}_{name}"
            res[adapter, name] = run_evaluate(compose("evaluate", [*base, *camera, f"checkpoint={adapter}",
                                                                   f"output_dir={out}"]))
            tables[adapter, name] = (out / "table.md").read_text()
    a, b = res["auto", "ref_30"], res["auto", "ref_180"]
    assert a["generation"]["checkpoint"] == b["generation"]["checkpoint"] == "random"
    for vid in ("bikes", "carphone_pristine"):
        va = read_video(f"{a['generation']['dir']}/{vid}/output.mp4")[0]
        vb = read_video(f"{b['generation']['dir']}/{vid}/output.mp4")[0]
        assert not np.array_equal(va, vb), vid
    # metrics of the generated frames alone (not of the requested path) differ, and so do the tables
    assert a["metrics"]["fid"]["value"] != b["metrics"]["fid"]["value"]
    assert tables["auto", "ref_30"] != tables["auto", "ref_180"]
    assert res["null", "ref_30"]["generation"]["checkpoint"] is None
    assert tables["null", "ref_30"] == tables["null", "ref_180"]


@pytest.mark.slow
def test_two_processes_give_the_one_process_numbers(compose, tmp_path, tiny_sources):
    """trainer.devices=2 (two CPU processes, DDP over gloo, launched by Lightning as for GPUs): each process scores
    its share of the videos, rank 0 merges them in video order, so results.json and per_video.csv match one process."""
    gen = tmp_path / "gen"
    gen.mkdir()
    for vid, frames in tiny_sources.items():
        write_video(gen / f"{vid}.mp4", frames[::-1].copy(), fps=15, lossless=True)  # not the source: FID > 0
    args = ["benchmark=extreme_90", "model=wan_tiny", "benchmark.data=tiny", "renderer=cpu", "metrics=tiny",
            f"generated_dir={gen}", "n_boot=20", "benchmark.metrics=[fid,temporal_flickering,dynamic_degree]",
            "trainer.accelerator=cpu", f"paths.output_dir={tmp_path}", f"paths.weights_dir={tmp_path}/no_weights"]
    one = run_evaluate(compose("evaluate", [*args, f"output_dir={tmp_path / 'one'}"]))
    r = subprocess.run([sys.executable, "evaluate.py", *args, f"output_dir={tmp_path / 'two'}", "trainer.devices=2",
                        "trainer.strategy=ddp"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "MEMBER: 2/2" in r.stdout + r.stderr
    two = _results(tmp_path / "two")
    assert two["metrics"] == json.loads(json.dumps(one["metrics"])) and two["metrics"]["fid"]["value"] > 0
    assert (tmp_path / "two" / "per_video.csv").read_text() == (tmp_path / "one" / "per_video.csv").read_text()
