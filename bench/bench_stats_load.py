"""Benchmark: load a synthetic study of N outcome lines into the tidy table (stats.load).

Generates the study with tests.synthetic.make_synthetic_study (5 languages × 5 conditions), then
times `load_study`, `transitions` and the matching rules' robustness table and prints what it measured. Usage:

    .venv/bin/python bench/bench_stats_load.py [--lines 1000000] [--dir PATH] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.runfolder import discover_runs
from stats.load import load_study, transitions
from stats.robustness import matching_report
from tests.synthetic import DEFAULT_CONDITIONS, make_synthetic_study

LANGUAGES = ("en", "de", "es", "ru", "zh")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="outcome lines in the study (default 1M)")
    ap.add_argument("--dir", type=Path, default=None, help="where to build the study (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated study")
    ap.add_argument("--study", type=Path, default=None, help="time an existing study instead of generating one")
    args = ap.parse_args()
    per_language = max(1, args.lines // (len(LANGUAGES) * len(DEFAULT_CONDITIONS)))
    root = Path(tempfile.mkdtemp(prefix="bench_stats_load_", dir=args.dir))
    study = args.study or root / "study"
    try:
        t0 = time.perf_counter()
        if args.study is None:
            make_synthetic_study(study, n_per_language=per_language, languages=LANGUAGES, seed=0)
            print(f"generated {study} (make_synthetic_study): {time.perf_counter() - t0:.1f} s")
        runs = discover_runs(study)
        size = sum((r / "outcomes.jsonl").stat().st_size for r in runs)
        t0, c0 = time.perf_counter(), time.process_time()
        df = load_study(study)
        load, load_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        tr = transitions(df)
        trans = time.perf_counter() - t0
        print(f"outcome lines: {len(df):,} in {len(runs)} runs ({size / 1e9:.2f} GB of JSONL)")
        print(
            f"load_study: {load:.2f} s wall, {load_cpu:.2f} s CPU ({len(df) / load:,.0f} lines/s, "
            f"{size / 1e6 / load:.0f} MB/s; os.getloadavg() at the end: {os.getloadavg()[0]:.1f})"
        )
        print(f"transitions: {trans:.2f} s ({len(tr):,} dense→pruned pairs)")
        t0, c0 = time.perf_counter(), time.process_time()
        matching_report(df)
        print(
            f"matching_report (open outputs graded under 4 rules): {time.perf_counter() - t0:.2f} s wall, "
            f"{time.process_time() - c0:.2f} s CPU"
        )
        print(f"tidy table memory: {df.memory_usage(deep=True).sum() / 1e6:.0f} MB")
    finally:
        if args.keep:
            print(f"kept {study}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
