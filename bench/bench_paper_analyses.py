"""Benchmark: the paper's analyses (`stats.paper.paper_tables`) on synthetic studies of N outcome lines.

Generates each study with tests.synthetic.make_synthetic_study (5 languages × 5 conditions, three
model sizes), loads and pairs it, then times the seven tables (transitions, both RO denominators,
demoted vs erased, recovery and its paired comparison, rank shift, format ladder). Usage:

    .venv/bin/python bench/bench_paper_analyses.py [--lines 20000 100000] [--dir PATH]
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

from stats.demotion import default_rule
from stats.load import load_study, transitions
from stats.paper import paper_tables
from tests.synthetic import DEFAULT_CONDITIONS, make_synthetic_study

LANGUAGES = ("en", "de", "es", "ru", "zh")
MODELS = (("org/small", 135_000_000), ("org/mid", 360_000_000), ("org/large", 1_700_000_000))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="+", default=[20_000, 100_000], help="outcome lines per study")
    ap.add_argument("--dir", type=Path, default=None, help="where to build the studies (default: a temp folder)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_paper_", dir=args.dir))
    try:
        for lines in args.lines:
            per_language = max(1, lines // (len(LANGUAGES) * len(DEFAULT_CONDITIONS) * len(MODELS)))
            study = root / f"study-{lines}"
            make_synthetic_study(study, n_per_language=per_language, languages=LANGUAGES, models=MODELS, seed=0)
            df = load_study(study)
            tr = transitions(df)
            t0, c0 = time.perf_counter(), time.process_time()
            tables = paper_tables(df, tr, default_rule(df.attrs["runs"]))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows = sum(len(t.all_records()) for t in tables)
            print(
                f"{len(df):,} outcome lines ({len(tr):,} dense→pruned pairs): paper tables {wall:.1f} s wall, "
                f"{cpu:.1f} s CPU, {rows:,} table rows (os.getloadavg() at the end: {os.getloadavg()[0]:.1f})"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
