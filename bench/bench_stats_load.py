"""Benchmark: load a synthetic study of N outcome lines into the tidy table (stats.load).

Generates the study with tests.synthetic.make_synthetic_study (5 languages × 5 conditions), or
takes `--study`, then times `load_study` and `transitions` twice: first with an empty index cache
(the run indexes are built from the JSONL files, in worker processes for a large study), then with
the indexes that pass cached; then the matching rules' robustness table. Prints wall seconds and CPU
seconds (this process and the workers it started), the load average, and the machine's starvation
(`tui.headless.MachineShare`: wall seconds per CPU second of a busy loop in another process, 1.0 on
an idle machine). Usage:

    .venv/bin/python bench/bench_stats_load.py [--lines 1000000] [--dir PATH] [--keep] [--study PATH]
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

from engine.contract.reader import discover_runs
from stats.load import load_study, transitions
from stats.robustness import matching_report
from tests.synthetic import DEFAULT_CONDITIONS, make_synthetic_study
from tui.headless import MachineShare, cpu_seconds

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
    cache = Path(tempfile.mkdtemp(prefix="index_cache_", dir=args.dir))
    os.environ["PRUNESCOPE_CACHE"] = str(cache)  # read by engine.config.cache_root at each call
    try:
        t0 = time.perf_counter()
        if args.study is None:
            make_synthetic_study(study, n_per_language=per_language, languages=LANGUAGES, seed=0)
            print(f"generated {study} (make_synthetic_study): {time.perf_counter() - t0:.1f} s")
        runs = discover_runs(study)
        size = sum((r / "outcomes.jsonl").stat().st_size for r in runs)
        print(f"{len(runs)} runs, {size / 1e9:.2f} GB of JSONL")
        for label in ("first time (no index: built from the JSONL)", "with the index"):
            with MachineShare() as share:
                t0, c0 = time.perf_counter(), cpu_seconds()
                df = load_study(study)
                load, load_cpu = time.perf_counter() - t0, cpu_seconds() - c0
                t0, c0 = time.perf_counter(), cpu_seconds()
                tr = transitions(df)
                trans, trans_cpu = time.perf_counter() - t0, cpu_seconds() - c0
            print(f"{label}:")
            print(
                f"  load_study: {load:.2f} s wall, {load_cpu:.2f} s CPU, {len(df):,} outcome lines "
                f"({len(df) / load:,.0f} lines/s; load average {os.getloadavg()[0]:.1f}, "
                f"starvation {share.starvation:.1f})"
            )
            print(f"  transitions: {trans:.2f} s wall, {trans_cpu:.2f} s CPU ({len(tr):,} dense→pruned pairs)")
            print(f"  tidy table memory: {df.memory_usage(deep=True).sum() / 1e6:.0f} MB")
        t0, c0 = time.perf_counter(), cpu_seconds()
        matching_report(df)
        print(
            f"matching_report (open outputs graded under 4 rules): {time.perf_counter() - t0:.2f} s wall, "
            f"{cpu_seconds() - c0:.2f} s CPU"
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if args.keep:
            print(f"kept {study}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
