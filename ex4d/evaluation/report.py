"""The evaluation's outputs: ``results.json``'s dict, ``table.md`` / ``table.tex`` (the paper's Table 1 layout,
ours next to the paper's rows, then every metric), ``per_video.csv``, and the numbers for a logger.

Table layouts live in :mod:`ex4d.metrics.report`; this module puts one run's results into them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ex4d.evaluation.evaluator import EvaluationResult
from ex4d.metrics.report import Table, format_entry, metrics_table, table1

log = logging.getLogger("ex4d.evaluation")

TEST_ONLY_BANNER = "> **TEST ONLY**: random-weight model or metric stand-ins; these numbers are not results.\n\n"


def results_dict(benchmark: Mapping, dataset: Mapping, ids: Sequence[str], method: str, generation: dict,
                 evaluation: EvaluationResult, test_only: bool, allow_skip: bool, weights: dict) -> dict:
    """``results.json`` of one run.

    Args:
        benchmark: ``name``, ``title``, ``range_deg``, ``table`` (Table 1 column -> metric key).
        dataset: the benchmark set's ``name`` and ``source``.
        ids: the videos' ids. method: the row label. generation: where the videos came from.
        test_only: a TEST-ONLY model or metric stand-in took part (the evaluation's own flag is added).
        weights: every metric weights file used (:func:`ex4d.metrics.weights.resolved_weights`).
    """
    return {
        "benchmark": str(benchmark["name"]),
        "title": str(benchmark.get("title", benchmark["name"])),
        "range_deg": list(benchmark.get("range_deg", [])),
        "dataset": {"name": str(dataset["name"]), "source": str(dataset["source"]), "n_videos": len(ids), "ids": list(ids)},
        "method": str(method),
        "test_only": bool(test_only or evaluation.test_only),
        "n_videos": len(ids),
        "generation": generation,
        "metrics": evaluation.metrics,
        "allow_skip": allow_skip,
        "skipped": list(evaluation.skipped),
        "weights": weights,  # every metric file used: its sha256 and what it was checked against
        "table_columns": dict(benchmark["table"]),
    }


def tables(results: Mapping) -> tuple[Table, str]:
    """(Table 1 of this run, the markdown of ``table.md``: Table 1 then every metric)."""
    bench = results["benchmark"]
    table = table1([results], bench, results["table_columns"], title=results["title"])
    md = table.markdown()
    if results["test_only"]:
        md = TEST_ONLY_BANNER + md
    md += (f"\n#### All metrics: {results['method']}, {bench}, set {results['dataset']['name']} "
           f"(N={results['n_videos']})\n\n" + metrics_table(results))
    return table, md


def write_per_video_csv(path: Path, rows: Sequence[Mapping]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def write_tables(folder: Path, results: Mapping, rows: Sequence[Mapping]) -> tuple[Table, str]:
    """``table.md``, ``table.tex`` and ``per_video.csv`` into ``folder``; returns (Table 1, markdown)."""
    table, md = tables(results)
    (folder / "table.md").write_text(md)
    (folder / "table.tex").write_text(table.latex())
    write_per_video_csv(folder / "per_video.csv", rows)
    return table, md


def log_results(logger, results: Mapping, table: Table) -> str | None:
    """The numbers (with their intervals) and the Table 1 rows to a Lightning logger (W&B: a table; CSV:
    metrics.csv), then close it. Returns the logger's class name (None without a logger)."""
    if logger is None:
        return None
    bench = results["benchmark"]
    flat = {}
    for k, e in results["metrics"].items():
        if isinstance(e, dict) and isinstance(e.get("value"), (int, float)) and math.isfinite(e["value"]):
            flat[f"{bench}/{k}"] = float(e["value"])
            if e.get("ci_low") is not None:
                flat[f"{bench}/{k}_ci_low"], flat[f"{bench}/{k}_ci_high"] = float(e["ci_low"]), float(e["ci_high"])
    if flat:
        logger.log_metrics(flat)
    if hasattr(logger, "log_table"):
        columns = ["method", *[c[0] for c in table.columns]]
        data = [[label, *[format_entry(c, d) for c, (_, _, d) in zip(cells, table.columns)]] for label, cells, _ in table.rows]
        logger.log_table(key=f"{bench}/table1", columns=columns, data=data)
    logger.save()
    logger.finalize("success")
    experiment = getattr(logger, "_experiment", None)
    if experiment is not None and hasattr(experiment, "finish"):
        experiment.finish()
    return type(logger).__name__


FILES = {"results": "results.json", "table": "table.md", "latex": "table.tex", "per_video": "per_video.csv",
         "summary": "summary.json"}


def write_outputs(folder: Path, results: dict, rows: Sequence[Mapping], logger=None, record: Mapping | None = None) -> str:
    """Every output of a run into ``folder``: the tables and ``per_video.csv`` (:func:`write_tables`), the numbers
    to ``logger`` (:func:`log_results`; ``results["logger"]`` names it), ``results.json`` and ``summary.json``
    (benchmark, method, input and generation provenance, plus ``record``: the run's commit, config hash and
    stage times). Sets ``results["files"]``; returns the markdown table."""
    table, md = write_tables(folder, results, rows)
    results["files"] = dict(FILES)
    results["logger"] = log_results(logger, results, table)
    src = str(results["dataset"]["source"])
    summary = {"benchmark": results["benchmark"], "method": results["method"], "n_videos": results["n_videos"],
               "input": {"given": src, "kind": "benchmark",
                         "resolved": src if src.startswith("builtin:") else str(Path(src).expanduser().resolve())},
               "generation": results["generation"], **(record or {})}
    for name, obj in (("results", results), ("summary", summary)):
        (folder / FILES[name]).write_text(json.dumps(obj, indent=2, default=str))
    return md
