"""Result tables in the paper's layout (markdown and LaTeX), our rows next to the paper's numbers.

Inputs are the ``results.json`` dicts that ``python evaluate.py`` writes (``ex4d.runners.evaluate``): a
``metrics`` mapping from metric name to either a :class:`~ex4d.metrics.stats.ScoreWithCI` dict (``value``,
``n``, ``ci_low``, ``ci_high``, ...), a KID dict (``value``, ``std``, ``n``) or a skip
(``{"skipped": true, "reason": ...}``). Every number of ours is printed with its N and bootstrap interval;
the paper published neither intervals nor its protocol (N = 150 web videos), so its rows are bare numbers.

Paper numbers: EX-4D (arXiv 2506.05554) Table 1 and the FID-by-range table, as quoted in
``shared/docs/ex4d-method.md`` section 7.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Table 1 of the paper: extreme view (0 -> 90 degrees), 150 videos.
PAPER_N_VIDEOS = 150
PAPER_TABLE1: list[dict] = [
    {"method": "ReCamMaster", "fid": 64.68, "fvd": 943.45, "vbench": 0.434},
    {"method": "TrajectoryCrafter", "fid": 65.33, "fvd": 893.80, "vbench": 0.447},
    {"method": "TrajectoryAttention", "fid": 62.49, "fvd": 912.14, "vbench": 0.389},
    {"method": "EX-4D", "fid": 55.42, "fvd": 823.61, "vbench": 0.450},
]
# EX-4D's FID by view range (paper); our benchmarks of the same ranges.
PAPER_FID_BY_RANGE: dict[str, float] = {"small_30": 44.19, "large_60": 50.30, "extreme_90": 55.42}
RANGE_LABELS: dict[str, str] = {"small_30": "0-30", "large_60": "0-60", "extreme_90": "0-90", "full_180": "-90..90"}

# Table 1's columns -> the metric of ours that fills each (the VBench column is most likely aesthetic
# quality: ex4d-method.md section 7), with digits and direction.
TABLE1_COLUMNS: dict[str, str] = {"fid": "fid", "fvd": "fvd_first16", "vbench": "vbench_aq"}
COLUMN_TITLES = {"fid": ("FID", "down", 2), "fvd": ("FVD", "down", 2), "vbench": ("VBench", "up", 3)}


def paper_rows(benchmark: str) -> list[dict]:
    """The paper's rows for a benchmark in Table 1's columns (missing numbers are None)."""
    if benchmark == "extreme_90":
        return [dict(r) for r in PAPER_TABLE1]
    if benchmark in PAPER_FID_BY_RANGE:
        return [{"method": "EX-4D", "fid": PAPER_FID_BY_RANGE[benchmark], "fvd": None, "vbench": None}]
    return []


def _is_skip(entry) -> bool:
    """A metric that did not run (missing weights: ``skipped``) or ran without a number (``failed``)."""
    return isinstance(entry, Mapping) and bool(entry.get("skipped") or entry.get("failed"))


def _skip_word(entry: Mapping) -> str:
    return "failed" if entry.get("failed") else "skipped"


def _num(x) -> float:
    return math.nan if x is None else float(x)


def format_entry(entry, digits: int = 2, fmt: str = "md") -> str:
    """One table cell: a paper number, a result of ours (value [CI] (N=n)), a skip or a gap.

    Args:
        entry: None (no number), a float (paper), a ScoreWithCI / KID dict, or a skip dict.
        fmt: ``md`` or ``latex``.
    """
    gap = "—" if fmt == "md" else "--"
    if entry is None:
        return gap
    if isinstance(entry, (int, float)):
        return gap if math.isnan(float(entry)) else f"{float(entry):.{digits}f}"
    if _is_skip(entry):
        return _skip_word(entry) if fmt == "md" else "n/a"
    v, n = _num(entry.get("value")), entry.get("n")
    if math.isnan(v):
        return gap
    lo, hi, sd = _num(entry.get("ci_low")), _num(entry.get("ci_high")), _num(entry.get("std"))
    if fmt == "md":
        if not (math.isnan(lo) or math.isnan(hi)):
            return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}] (N={n})"
        if not math.isnan(sd):
            return f"{v:.{digits}f} ± {sd:.{digits}f} (N={n})"
        return f"{v:.{digits}f} (N={n})"
    if not (math.isnan(lo) or math.isnan(hi)):
        return f"{v:.{digits}f}\\,{{\\scriptsize [{lo:.{digits}f}, {hi:.{digits}f}], N={n}}}"
    if not math.isnan(sd):
        return f"{v:.{digits}f}\\,{{\\scriptsize $\\pm$ {sd:.{digits}f}, N={n}}}"
    return f"{v:.{digits}f}\\,{{\\scriptsize N={n}}}"


def latex_escape(text: str) -> str:
    out = str(text)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
        out = out.replace(a, b)
    return out


@dataclass
class Table:
    """A table whose cells render to markdown and LaTeX (cells: see :func:`format_entry`).

    Attributes:
        columns: (title, direction "up" / "down" / "", digits) per numeric column, after the row label.
        rows: (label, cells, is_ours) per row.
    """

    title: str
    label_header: str
    columns: list[tuple[str, str, int]]
    rows: list[tuple[str, list, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    latex_label: str = "tab:results"

    def markdown(self) -> str:
        arrows = {"up": " ↑", "down": " ↓", "": ""}
        head = [self.label_header] + [t + arrows[d] for t, d, _ in self.columns]
        lines = [f"### {self.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, cells, ours in self.rows:
            name = f"**{label}**" if ours else label
            vals = [format_entry(c, dg, "md").replace("|", "/") for c, (_, _, dg) in zip(cells, self.columns)]
            lines.append("| " + " | ".join([name, *vals]) + " |")
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        arrows = {"up": r" $\uparrow$", "down": r" $\downarrow$", "": ""}
        head = [latex_escape(self.label_header)] + [latex_escape(t) + arrows[d] for t, d, _ in self.columns]
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(self.title)}. {' '.join(latex_escape(n) for n in self.notes)}}}",
            rf"\label{{{self.latex_label}}}",
            r"\begin{tabular}{l" + "c" * len(self.columns) + "}",
            r"\toprule",
            " & ".join(head) + r" \\",
            r"\midrule",
        ]
        prev_ours = False
        for label, cells, ours in self.rows:
            if ours and not prev_ours and len(lines) > 8:
                lines.append(r"\midrule")
            prev_ours = ours
            vals = [format_entry(c, dg, "latex") for c, (_, _, dg) in zip(cells, self.columns)]
            lines.append(" & ".join([latex_escape(label), *vals]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"


def our_label(result: Mapping) -> str:
    return str(result.get("method") or "ours")


def table1(results: Sequence[Mapping], benchmark: str = "extreme_90", columns: Mapping[str, str] | None = None,
           title: str | None = None) -> Table:
    """Table 1's layout for one benchmark: the paper's rows, then one row per result of ours.

    Args:
        results: ``results.json`` dicts of this benchmark (ours, or other methods evaluated with our protocol).
        columns: Table 1 column -> metric name in ``results[i]["metrics"]`` (default :data:`TABLE1_COLUMNS`).
    """
    columns = dict(TABLE1_COLUMNS if columns is None else columns)
    rng = RANGE_LABELS.get(benchmark, benchmark)
    t = Table(title or f"{benchmark} (view range {rng} deg): FID / FVD / VBench", "method",
              [COLUMN_TITLES[c] for c in ("fid", "fvd", "vbench")], latex_label=f"tab:{benchmark}")
    for row in paper_rows(benchmark):
        t.rows.append((f"{row['method']} (paper)", [row["fid"], row["fvd"], row["vbench"]], False))
    for res in results:
        m = res.get("metrics", {})
        t.rows.append((our_label(res), [m.get(columns[c]) for c in ("fid", "fvd", "vbench")], True))
    if paper_rows(benchmark):
        t.notes.append(f"Paper rows: N={PAPER_N_VIDEOS} web videos, protocol and intervals unpublished.")
    else:
        t.notes.append("The paper reports no numbers for this range.")
    t.notes.append(
        f"Ours: 95% bootstrap intervals over videos, N = videos. FID: {columns['fid']}; FVD: {columns['fvd']}; "
        f"VBench: {columns['vbench']} (aesthetic quality, the likely paper-comparable score)."
    )
    t.notes.append("FID/FVD compare generated frames with the source videos: camera-following guards against "
                   "a model that does not move the camera.")
    return t


def _as_list(x) -> list[Mapping]:
    if x is None:
        return []
    return [x] if isinstance(x, Mapping) else list(x)


def range_table(by_benchmark: Mapping[str, Mapping | Sequence[Mapping] | None], metric: str = "fid") -> Table:
    """FID (or ``metric``) by view range: the paper's EX-4D row, then one row per method of ours.

    Args:
        by_benchmark: benchmark name -> its ``results.json`` dict(s) (one per method; None when not run).
    """
    names = [b for b in ("small_30", "large_60", "extreme_90", "full_180") if b in by_benchmark]
    names += [b for b in by_benchmark if b not in names]
    t = Table(f"{'FID' if metric == 'fid' else metric} by view range", "method",
              [(RANGE_LABELS.get(b, b) + " deg", "down", 2) for b in names], latex_label="tab:view_range")
    t.rows.append(("EX-4D (paper)", [PAPER_FID_BY_RANGE.get(b) if metric == "fid" else None for b in names], False))
    labels: list[str] = []
    for b in names:
        labels += [our_label(r) for r in _as_list(by_benchmark[b]) if our_label(r) not in labels]
    for label in labels:
        cells = []
        for b in names:
            match = [r for r in _as_list(by_benchmark[b]) if our_label(r) == label]
            cells.append(match[0].get("metrics", {}).get(metric) if match else None)
        t.rows.append((label, cells, True))
    t.notes.append(f"Paper: N={PAPER_N_VIDEOS} videos, no intervals. Ours: value [95% bootstrap CI] (N=videos).")
    if "full_180" in names:
        t.notes.append("-90..90 deg is a true yaw sweep; the paper reports no number for it.")
    return t


def metrics_table(result: Mapping, digits: int = 4) -> str:
    """Markdown list of every metric of one result: value [CI] (N) or the skip reason (naming the file)."""
    lines = ["| metric | value [95% CI] (N) | note |", "|---|---|---|"]
    for name, entry in result.get("metrics", {}).items():
        if _is_skip(entry):
            cell, note = _skip_word(entry), str(entry.get("reason", "")).replace("|", "/").replace("\n", " ")
        else:
            cell, note = format_entry(entry, digits, "md"), str(entry.get("note", "")) if isinstance(entry, Mapping) else ""
        lines.append(f"| {name} | {cell} | {note} |")
    return "\n".join(lines) + "\n"
