"""The paper's tables from our benchmark runs: Table 1 (extreme view, FID / FVD / VBench) and FID by view range.

Runs ``evaluate.py`` for the four benchmarks (or reuses their ``results.json``), then writes markdown and
LaTeX with our rows next to the paper's numbers (see README.md here for the commands).

    python experiments/paper_tables/make_tables.py --run                       # generate + score all four
    python experiments/paper_tables/make_tables.py --run -- paths.weights_dir=/data/weights trainer.devices=8
    python experiments/paper_tables/make_tables.py --results outputs/evaluate  # tables from existing results
    python experiments/paper_tables/make_tables.py --results outputs/evaluate /data/recammaster_eval/results.json

Every ``results.json`` found (``--results``: files, or folders searched recursively) becomes a row of its
benchmark's tables, labelled with its ``method`` (another method scored with ``evaluate.py
generated_dir=... method=ReCamMaster`` gets its own row).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from ex4d.metrics.report import range_table, table1  # noqa: E402

BENCHMARKS = ("small_30", "large_60", "extreme_90", "full_180")


def find_results(paths: list[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(p.rglob("results.json"))
        else:
            raise SystemExit(f"--results {p}: no such file or folder")
    return out


def collect(files: list[Path]) -> dict[str, list[dict]]:
    """results.json dicts by benchmark; for one (benchmark, method) the newest file wins."""
    by: dict[tuple[str, str], tuple[float, dict]] = {}
    for f in files:
        try:
            res = json.loads(Path(f).read_text())
        except json.JSONDecodeError as e:
            raise SystemExit(f"{f}: not a results.json ({e})") from e
        if "benchmark" not in res or "metrics" not in res:
            raise SystemExit(f"{f}: not a results.json of evaluate.py (needs 'benchmark' and 'metrics')")
        key = (res["benchmark"], str(res.get("method") or "ours"))
        mtime = Path(f).stat().st_mtime
        if key not in by or mtime >= by[key][0]:
            by[key] = (mtime, res)
    out: dict[str, list[dict]] = {}
    for (bench, _), (_, res) in sorted(by.items()):
        out.setdefault(bench, []).append(res)
    return out


def run_benchmarks(out_dir: Path, benchmarks: list[str], overrides: list[str], force: bool = False) -> list[Path]:
    """``python evaluate.py benchmark=<b> output_dir=<out>/runs/<b> <overrides>`` for each benchmark.

    An existing results.json is reused unless ``force``; generated videos are reused by evaluate.py itself.
    """
    files = []
    for b in benchmarks:
        run = out_dir / "runs" / b
        res = run / "results.json"
        if res.is_file() and not force:
            print(f"{b}: reusing {res}")
        else:
            cmd = [sys.executable, str(ROOT / "evaluate.py"), f"benchmark={b}", f"output_dir={run}", *overrides]
            print("running:", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)
        files.append(res)
    return files


def write_tables(by_bench: dict[str, list[dict]], out_dir: Path) -> dict[str, Path]:
    """table1.{md,tex} (extreme_90) and view_range.{md,tex}; tables.md holds both. Returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    parts = []
    test_only = any(r.get("test_only") for rs in by_bench.values() for r in rs)
    if test_only:
        parts.append("> **TEST ONLY** rows (random-weight model or metric stand-ins) are not results.\n")
    if "extreme_90" in by_bench:
        ref = by_bench["extreme_90"][0]
        t1 = table1(by_bench["extreme_90"], "extreme_90", ref.get("table_columns"),
                    title="Table 1: extreme view (0-90 deg)")
        for ext, text in (("md", t1.markdown()), ("tex", t1.latex())):
            written[f"table1.{ext}"] = out_dir / f"table1.{ext}"
            written[f"table1.{ext}"].write_text(text)
        parts.append(t1.markdown())
    ranges = {b: by_bench[b] for b in BENCHMARKS if b in by_bench}
    if ranges:
        rt = range_table(ranges, "fid")
        for ext, text in (("md", rt.markdown()), ("tex", rt.latex())):
            written[f"view_range.{ext}"] = out_dir / f"view_range.{ext}"
            written[f"view_range.{ext}"].write_text(text)
        parts.append(rt.markdown())
    if not written:
        raise SystemExit(f"no results of the benchmarks {BENCHMARKS} found (got {sorted(by_bench)})")
    written["tables.md"] = out_dir / "tables.md"
    written["tables.md"].write_text("\n".join(parts))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--run", action="store_true", help="run evaluate.py for the benchmarks first (reuses finished runs)")
    p.add_argument("--results", nargs="*", default=[], help="results.json files or folders searched for them")
    p.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma-separated (with --run)")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "paper_tables", help="output folder")
    p.add_argument("--force", action="store_true", help="with --run: rescore even where results.json exists")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for evaluate.py (after --)")
    args = p.parse_args(argv)

    files = find_results(args.results)
    if args.run:
        benches = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
        files += run_benchmarks(args.out, benches, args.overrides, args.force)
    elif args.overrides:
        p.error("Hydra overrides are for --run")
    if not files:
        p.error("nothing to tabulate: pass --run and/or --results")
    written = write_tables(collect(files), args.out)
    print(written["tables.md"].read_text())
    for name, path in written.items():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
