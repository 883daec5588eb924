"""Benchmark: the default GLMM (mixedlm, Laplace ML) on a simulated study, with lme4 alongside.

    .venv/bin/python bench/bench_glmm.py [--items 2000 --languages 10 --conditions 5] [--no-lme4]

Simulates items × languages × conditions binary recognition_only outcomes (item SD 1.0,
item:language SD 0.5, condition and language effects), fits `--formula` with each backend and
prints wall time, peak memory and the estimates' agreement. lme4 runs only when Rscript is present;
its time includes writing the CSV, starting R and loading lme4 (reported separately).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stats.glmm import fit_glmm


def simulate(n_items: int, n_langs: int, n_conds: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(n_items), n_langs * n_conds)
    lang = np.tile(np.repeat(np.arange(n_langs), n_conds), n_items)
    cond = np.tile(np.arange(n_conds), n_items * n_langs)
    eta = (
        -1.5
        + np.linspace(0, 1.2, n_conds)[cond]
        + rng.normal(0, 0.3, n_langs)[lang]
        + rng.normal(0, 1.0, n_items)[item]
        + rng.normal(0, 0.5, n_items * n_langs)[item * n_langs + lang]
    )
    return pd.DataFrame(
        {
            "item": [f"q{i:05d}" for i in item],
            "language": [f"l{j:02d}" for j in lang],
            "condition": [f"c{k}" for k in cond],
            "recognition_only": (rng.random(item.size) < 1 / (1 + np.exp(-eta))).astype(int),
        }
    )


def peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports KiB


def timed(df: pd.DataFrame, formula: str, backend: str, **opts):
    start, cpu = time.perf_counter(), time.process_time()
    result = fit_glmm(df, formula, backend=backend, **opts)
    return result, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--languages", type=int, default=10)
    ap.add_argument("--conditions", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--formula", default="recognition_only ~ condition + language + (1|item)")
    ap.add_argument("--no-lme4", action="store_true")
    ap.add_argument("--gee", action="store_true", help="also time the GEE backend")
    a = ap.parse_args()

    df = simulate(a.items, a.languages, a.conditions, a.seed)
    print(
        f"data: {len(df)} rows = {a.items} items x {a.languages} languages x {a.conditions} conditions; "
        f"recognition_only rate {df.recognition_only.mean():.3f}; cpu cores visible {os.cpu_count()}"
    )
    print(f"formula: {a.formula}")
    rss0 = peak_rss_mib(resource.RUSAGE_SELF)
    m, t, c = timed(df, a.formula, "mixedlm")
    print(
        f"mixedlm {m.backend_version}: {t:.2f} s wall, {c:.2f} s CPU (this process), peak RSS {peak_rss_mib(resource.RUSAGE_SELF):.0f} MiB "
        f"(before fit {rss0:.0f} MiB); converged={m.converged} singular={m.singular} logLik {m.loglik:.3f} "
        f"SD(item) {m.variance_components[0].sd[0]:.4f}"
    )
    if a.gee:
        g, t, c = timed(df, a.formula, "gee")
        print(f"gee ({g.backend_version}): {t:.2f} s wall, {c:.2f} s CPU; marginal effects")
    if a.no_lme4 or shutil.which("Rscript") is None:
        print("lme4: not run (" + ("--no-lme4" if a.no_lme4 else "Rscript not found") + ")")
        return
    start = time.perf_counter()
    subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages(library(lme4))"], check=True)
    r_start = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    r, t, _ = timed(df, a.formula, "lme4")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    diff = np.max(np.abs(r.estimates - m.estimates) / (1 + np.abs(r.estimates)))
    print(
        f"lme4 {r.backend_version}: {t:.2f} s wall, {r_cpu:.2f} s CPU in R "
        f"(R start + library(lme4) alone: {r_start:.1f} s wall), "
        f"peak RSS of R {peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB; converged={r.converged} "
        f"logLik {r.loglik:.3f}; max |Δβ|/(1+|β|) vs mixedlm {diff:.2e}; "
        f"SD(item) {r.variance_components[0].sd[0]:.4f}"
    )


if __name__ == "__main__":
    main()
