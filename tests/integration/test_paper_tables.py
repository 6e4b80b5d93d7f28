"""experiments/paper_tables/make_tables.py on synthetic results.json files (no generation)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from ex4d.metrics.stats import ScoreWithCI
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def mt():
    spec = importlib.util.spec_from_file_location("make_tables", ROOT / "experiments" / "paper_tables" / "make_tables.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def write_result(path, bench, fid, method="ours (ex4d.ckpt)", vbench=None):
    path.mkdir(parents=True, exist_ok=True)
    metrics = {"fid": ScoreWithCI(fid, 150, fid - 1, fid + 1).to_dict(),
               "fvd_first16": ScoreWithCI(10 * fid, 150, 10 * fid - 5, 10 * fid + 5).to_dict(),
               "vbench_aq": ScoreWithCI(vbench, 150, vbench - 0.01, vbench + 0.01).to_dict() if vbench else
               {"skipped": True, "reason": "missing weights file: x"}}
    res = {"benchmark": bench, "method": method, "metrics": metrics, "n_videos": 150,
           "table_columns": {"fid": "fid", "fvd": "fvd_first16", "vbench": "vbench_aq"}}
    (path / "results.json").write_text(json.dumps(res))
    return path / "results.json"


def test_tables_from_results_files(mt, tmp_path, capsys):
    runs = tmp_path / "runs"
    for bench, fid in (("small_30", 40.0), ("large_60", 47.5), ("extreme_90", 52.25), ("full_180", 70.0)):
        write_result(runs / bench, bench, fid, vbench=0.46 if bench == "extreme_90" else None)
    write_result(runs / "recammaster", "extreme_90", 66.0, method="ReCamMaster (our protocol)", vbench=0.43)
    out = tmp_path / "tables"
    assert mt.main(["--results", str(runs), "--out", str(out)]) == 0
    t1 = (out / "table1.md").read_text()
    assert "| EX-4D (paper) | 55.42 | 823.61 | 0.450 |" in t1
    assert "| **ours (ex4d.ckpt)** | 52.25 [51.25, 53.25] (N=150) | 522.50 [517.50, 527.50] (N=150) | 0.460 [0.450, 0.470] (N=150) |" in t1
    assert "| **ReCamMaster (our protocol)** | 66.00" in t1
    vr = (out / "view_range.md").read_text()
    assert "| EX-4D (paper) | 44.19 | 50.30 | 55.42 | — |" in vr
    assert "| **ours (ex4d.ckpt)** | 40.00 [39.00, 41.00] (N=150) | 47.50 [46.50, 48.50] (N=150) | 52.25" in vr
    assert "70.00 [69.00, 71.00] (N=150) |" in vr
    tex = (out / "table1.tex").read_text() + (out / "view_range.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 2 and r"52.25\,{\scriptsize [51.25, 53.25], N=150}" in tex
    assert "Table 1" in capsys.readouterr().out and (out / "tables.md").is_file()


def test_run_reuses_finished_benchmarks_and_rejects_junk(mt, tmp_path):
    out = tmp_path / "pt"
    for bench in mt.BENCHMARKS:
        write_result(out / "runs" / bench, bench, 50.0)
    files = mt.run_benchmarks(out, list(mt.BENCHMARKS), ["model=wan_tiny"])  # nothing runs: all reused
    assert [f.parent.name for f in files] == list(mt.BENCHMARKS)
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a results.json"):
        mt.collect([tmp_path / "junk.json"])
    with pytest.raises(SystemExit):
        mt.main(["--out", str(tmp_path / "x")])  # nothing to tabulate
