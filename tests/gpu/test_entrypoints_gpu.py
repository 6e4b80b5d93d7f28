"""The three entry points as a user types them, on a GPU: each test runs a real ``python infer.py / train.py /
evaluate.py`` subprocess (only ``paths.output_dir`` and, where said, the step count are added) and checks its
exit status and its files.

* the demo (``renderer=auto`` -> nvdiffrast), twice: identical colour and mask videos;
* ``stage=all model=wan_i2v_14b_random`` at 512x512x49: every stage at the real 14B shapes (random UMT5, CLIP,
  VAE, DiT, adapter, writer), 2 denoising steps;
* ``train.py model=wan_tiny data=tiny`` for 5 steps under the default strategy and under DeepSpeed ZeRO-2;
* ``evaluate.py`` on the tiny benchmark set with the tiny model, and with the 14B random model at 512x512x49.

With ``EX4D_GPU_REPORT=<file.jsonl>`` every run appends {name, command, seconds, stages, peak GPU memory}, the
figures of docs/performance.md ("Entry points on a GPU"). Run on the GPU host:
``EX4D_GPU_REPORT=$OUT/entrypoints.jsonl python -m pytest -m gpu tests/gpu/test_entrypoints_gpu.py -s``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _run(name: str, args: list[str], out: Path, timeout: int = 600) -> tuple[Path, dict]:
    """Run ``python <args> paths.output_dir=<out>``; returns (the run folder, its summary.json)."""
    cmd = [sys.executable, *args, f"paths.output_dir={out}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    print(f"\n$ {' '.join(args)}  [{seconds:.1f} s, exit {proc.returncode}]")
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    job = args[0].removesuffix(".py")
    runs = sorted(p for p in (out / job).iterdir() if (p / "summary.json").is_file())
    assert len(runs) == 1, runs
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["commit"] and summary["config_hash"] and summary["stages"], summary.keys()
    report = os.environ.get("EX4D_GPU_REPORT")
    if report:
        peak = max((s.get("peak_gpu_memory_gib") or 0 for s in summary["stages"].values()), default=None)
        with open(report, "a") as f:
            f.write(json.dumps({"name": name, "command": "python " + " ".join(args), "wall_s": round(seconds, 1),
                                "stages": summary["stages"], "peak_gpu_memory_gib": peak, "gpu": summary.get("gpu"),
                                "commit": summary["commit"]}) + "\n")
    return runs[0], summary


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_demo_renders_with_nvdiffrast_and_repeats_bit_for_bit(tmp_path):
    # python infer.py  (renderer=auto: nvdiffrast on a GPU; it crashed under inference_mode before)
    a, sa = _run("demo (recon, nvdiffrast)", ["infer.py"], tmp_path / "a")
    b, _ = _run("demo again", ["infer.py"], tmp_path / "b")
    assert "renderer=auto picked nvdiffrast" in (a / "infer.log").read_text()
    assert sa["stage"] == "recon" and sa["input"]["resolved"] == "example:motorcycle"
    for f in ("color.mp4", "mask.mp4", "depth.npz", "cameras.json"):
        assert _md5(a / f) == _md5(b / f), f"{f} differs between identical runs"


def test_stage_all_at_14b_shapes(tmp_path):
    # python infer.py stage=all model=wan_i2v_14b_random  (2 steps instead of 25)
    from ex4d.io.video import read_video

    run, s = _run("infer stage=all, 14B random, 512x512x49, 2 steps",
                  ["infer.py", "stage=all", "model=wan_i2v_14b_random", "generate.num_steps=2"], tmp_path)
    frames, _ = read_video(run / "output.mp4")
    assert frames.shape == (49, 512, 512, 3)
    assert frames.std() > 1.0  # not a constant (NaN) video: the random adapter stays finite in bf16
    assert set(s["stages"]) == {"recon", "load_models", "generate"}
    assert s["stages"]["generate"]["peak_gpu_memory_gib"] > 30  # the 14B DiT alone is 33 GB in bf16
    assert {"text", "denoise"} <= set(s["generate"]["timings"]) or s["generate"]["timings"]


@pytest.mark.parametrize("strategy", ["auto", "deepspeed_zero2"])
def test_train_tiny_short_run(tmp_path, strategy):
    # python train.py model=wan_tiny data=tiny strategy=<s> trainer.max_steps=5
    if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed")
    _, s = _run(f"train tiny, strategy={strategy}, 5 steps",
                ["train.py", "model=wan_tiny", "data=tiny", f"strategy={strategy}", "trainer.max_steps=5",
                 "logger=csv"], tmp_path)
    assert s["global_step"] == 5 and s["adapter"]


def test_evaluate_tiny(tmp_path):
    # python evaluate.py benchmark=extreme_90 model=wan_tiny benchmark.data=tiny allow_skip=true (no metric weights here)
    run, s = _run("evaluate tiny set, tiny model",
                  ["evaluate.py", "benchmark=extreme_90", "model=wan_tiny", "benchmark.data=tiny", "allow_skip=true"], tmp_path)
    assert (run / "results.json").is_file() and (run / "table.md").is_file()
    assert s["n_videos"] == 2


def test_evaluate_at_14b_shapes(tmp_path):
    # python evaluate.py benchmark=extreme_90 model=wan_i2v_14b_random benchmark.data=tiny, at 512x512x49, 2 steps
    d = "benchmark.datasets.tiny"
    run, s = _run("evaluate tiny set, 14B random, 512x512x49, 2 steps",
                  ["evaluate.py", "benchmark=extreme_90", "model=wan_i2v_14b_random", "benchmark.data=tiny", "allow_skip=true",
                   f"{d}.num_frames=49", f"{d}.max_side=512", f"{d}.multiple=64", f"{d}.gen_height=512",
                   f"{d}.gen_width=512", "generate.num_steps=2"], tmp_path)
    results = json.loads((run / "results.json").read_text())
    assert results["n_videos"] == 2 and results["generation"]["processed"] == 2
