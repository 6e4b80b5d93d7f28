"""Result tables in the paper's layout (ex4d.metrics.report)."""

from ex4d.metrics.report import PAPER_TABLE1, format_entry, latex_escape, metrics_table, range_table, table1
from ex4d.metrics.stats import ScoreWithCI


def ours(bench="extreme_90", method="ours (ex4d.ckpt)", fid=50.0):
    return {
        "benchmark": bench,
        "method": method,
        "metrics": {
            "fid": ScoreWithCI(fid, 150, fid - 2, fid + 3, n_boot=200).to_dict(),
            "kid": {"value": 0.012, "std": 0.001, "n": 150},
            "fvd_first16": ScoreWithCI(800.0, 150, 780.0, 830.0).to_dict(),
            "vbench_aq": {"skipped": True, "reason": "missing weights file: /w/metrics/sa_0_4_vit_l_14_linear.pth"},
            "camera_following_ratio": {"failed": True, "reason": "no estimate"},
        },
    }


def test_cells_carry_n_and_interval():
    e = ours()["metrics"]
    assert format_entry(e["fid"]) == "50.00 [48.00, 53.00] (N=150)"
    assert format_entry(e["kid"], 4) == "0.0120 ± 0.0010 (N=150)"
    assert format_entry(ScoreWithCI(1.5, 1).to_dict()) == "1.50 (N=1)"
    assert format_entry(e["vbench_aq"]) == "skipped" and format_entry(e["camera_following_ratio"]) == "failed"
    assert format_entry(None) == "—" and format_entry(55.42) == "55.42"
    assert format_entry(e["fid"], 2, "latex") == r"50.00\,{\scriptsize [48.00, 53.00], N=150}"
    assert latex_escape("a_b & 5%") == r"a\_b \& 5\%"


def test_table1_has_the_paper_rows_then_ours():
    md = table1([ours()], "extreme_90").markdown()
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| method | FID ↓ | FVD ↓ | VBench ↑")
    assert len(lines) == 1 + len(PAPER_TABLE1) + 1
    assert "| EX-4D (paper) | 55.42 | 823.61 | 0.450 |" in md
    assert "| **ours (ex4d.ckpt)** | 50.00 [48.00, 53.00] (N=150) | 800.00 [780.00, 830.00] (N=150) | skipped |" in md
    tex = table1([ours()], "extreme_90").latex()
    assert r"\toprule" in tex and "ReCamMaster (paper) & 64.68 & 943.45 & 0.434" in tex and r"\midrule" in tex
    # Other ranges: only EX-4D's FID was published; full_180 has no paper row.
    assert "| EX-4D (paper) | 44.19 | — | — |" in table1([ours("small_30")], "small_30").markdown()
    assert "reports no numbers" in table1([ours("full_180")], "full_180").markdown()


def test_range_table_puts_each_method_on_its_own_row():
    by = {"small_30": [ours("small_30", fid=40.0)], "large_60": [ours("large_60", fid=45.0)],
          "extreme_90": [ours(fid=50.0), ours(method="ReCamMaster", fid=60.0)], "full_180": None}
    md = range_table(by).markdown()
    assert "| method | 0-30 deg ↓ | 0-60 deg ↓ | 0-90 deg ↓ | -90..90 deg ↓ |" in md
    assert "| EX-4D (paper) | 44.19 | 50.30 | 55.42 | — |" in md
    assert "| **ours (ex4d.ckpt)** | 40.00 [38.00, 43.00] (N=150) | 45.00 [43.00, 48.00] (N=150) | 50.00" in md
    assert "| **ReCamMaster** | — | — | 60.00 [58.00, 63.00] (N=150) | — |" in md


def test_metrics_table_names_the_missing_file():
    md = metrics_table(ours())
    assert "| vbench_aq | skipped | missing weights file: /w/metrics/sa_0_4_vit_l_14_linear.pth |" in md
    assert "| camera_following_ratio | failed | no estimate |" in md
