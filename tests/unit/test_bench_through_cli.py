"""tools/bench_generate.py --through-cli: the table it writes (ratios vs the reference path, the second-process
check) and the doc section it replaces; one real tiny run of `infer.py` through it on the CPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "tools" / "bench_generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _row(run, first, warm, denoise):
    timings = {"text_encode": 0.5, "image_encode": 0.1, "vae_encode": 1.5, "denoise": denoise, "vae_decode": 0.9}
    videos = [{"id": "a", "recon_s": 1.0, "generate_s": first - 1, "video_s": first, "timings": timings},
              {"id": "b", "recon_s": 1.0, "generate_s": warm - 1, "video_s": warm, "timings": timings}]
    levers = {"mode": "auto", "fuse_lora": {"on": True, "why": "x"}, "cfg_batch": {"on": False, "why": "y"},
              "memory_mode": {"mode": "gpu", "why": "140 GiB free"}, "build_seconds": {"lora_merge": 0.4}}
    return {"shape": "512x512x49", "run": run, "label": run, "wall_s": 100.0, "command": f"python infer.py {run}",
            "returncode": 0, "peak_gib": 40.0, "levers": levers, "videos": videos, "first_video_s": first,
            "warm_video_s": warm}


def test_table_has_ratios_against_the_reference_path_and_the_second_process_check(bench):
    rows = [_row("ref", 62.0, 60.0, 55.0), _row("cold", 80.0, 45.0, 40.0), _row("second", 48.0, 45.0, 40.0)]
    rows.append({"shape": "480x832x81", "run": "ref", "label": "ref", "wall_s": 3.0, "command": "c", "returncode": 2,
                 "error": ["error: out of memory"]})
    table = bench.cli_table(rows, "NVIDIA H200")
    assert "**NVIDIA H200**" in table
    lines = [line for line in table.splitlines() if line.startswith("| 512x512x49")]
    assert [line.rsplit("|", 2)[-2].strip() for line in lines] == ["x1.00", "x1.33", "x1.33"]
    assert "a second process's first video 48.0 s vs a warm video 45.0 s (+7%; goal within 10%)" in table
    assert "failed: error: out of memory" in table
    assert "fuse_lora" in table and "cfg_batch" not in table.split("Default levers")[1].split(";")[0]
    assert "merged in place in 0.40 s" in table


def test_doc_section_is_replaced_between_markers(bench, tmp_path):
    doc = tmp_path / "perf.md"
    doc.write_text("# Perf\n\nintro\n")
    bench.write_doc_table(doc, "table one")
    assert doc.read_text().count(bench.CLI_BEGIN) == 1 and "table one" in doc.read_text()
    doc.write_text(doc.read_text() + "\n## Later section\n")
    bench.write_doc_table(doc, "table two")
    text = doc.read_text()
    assert "table one" not in text and "table two" in text and text.endswith("## Later section\n")
    assert text.count(bench.CLI_BEGIN) == text.count(bench.CLI_END) == 1


def test_offload_rows_get_their_per_forward_ratio_and_split_runs_merge_into_one_table(bench, tmp_path):
    low = _row("low_vram", 70.0, 60.0, 52.0)
    low["peak_gib"] = 9.5
    parts = [{"device": "NVIDIA H200", "rows": [_row("ref", 62.0, 60.0, 55.0), _row("cold", 80.0, 45.0, 40.0)]},
             {"device": "NVIDIA H200", "rows": [_row("offload", 50.0, 46.0, 42.0), low]}]
    files = []
    for i, part in enumerate(parts):
        files.append(tmp_path / f"part{i}.json")
        files[-1].write_text(json.dumps(part))
    doc = tmp_path / "perf.md"
    proc = subprocess.run([sys.executable, "tools/bench_generate.py", "--through-cli", "--cli-merge", *map(str, files),
                           "--doc", str(doc)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = doc.read_text()
    assert "**NVIDIA H200**" in text and text.count("| 512x512x49 |") == 4
    assert "`offload` (call 2): warm denoise 42.0 s vs 40.0 s resident (`gpu` (call 1)" in text
    assert "x1.05 per forward (goal <= 1.1x)" in text
    assert "`low_vram` (call 2): warm denoise 52.0 s vs 40.0 s" in text
    assert "x1.30 per forward (goal <= 1.3x); peak 9.5 GiB" in text
    assert "rows come from 2 calls" in text


def test_one_video_processes_have_no_warm_figure_and_the_second_process_uses_a_real_warm_video(bench):
    def one(run, first):
        r = _row(run, first, first, 40.0)
        r["videos"] = r["videos"][:1]
        r["call"] = 2
        return r

    ref, cold = _row("ref", 62.0, 60.0, 55.0), _row("cold", 80.0, 45.0, 40.0)
    ref["call"] = cold["call"] = 1
    table = bench.cli_table([ref, cold, one("cold", 70.0), one("second", 48.0)], "NVIDIA H200", calls=2)
    row = next(line for line in table.splitlines() if "| second (call 2) |" in line)
    assert "| 48.0 s | - |" in row and row.rstrip().endswith("| - |")  # no warm video, no ratio
    # the second process is compared with the warm video of call 1, not with call 2's one-video cold run
    assert "first video (call 2) 48.0 s vs a warm video (call 1) 45.0 s (+7%" in table


@pytest.mark.slow
def test_one_tiny_run_through_infer_py(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "tools/bench_generate.py", "--through-cli", "--tiny", "--cli-shapes", "32x48x5",
         "--cli-runs", "cold", "--cli-videos", "1", "--cli-dir", str(tmp_path / "work"), "--json", str(out),
         "--doc", str(tmp_path / "perf.md")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["run"] == "cold" and len(row["videos"]) == 1 and row["videos"][0]["generate_s"] > 0
    assert row["levers"]["fuse_lora"] == {"on": False, "why": "not on CUDA: the plain path"}
    assert "| 32x48x5 |" in (tmp_path / "perf.md").read_text()
