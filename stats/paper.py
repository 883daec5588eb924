"""The paper's analyses as report tables, in the order of its argument: transitions and the two
recognition-only denominators, demoted vs erased, recovery, the gold-rank shift, the format ladder,
and model size and dataset as axes.

Each table shows the cells pooled over languages; the per-language rows travel as detail (CSV/JSON,
the TUI's language filter).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from stats import axes, demotion, ladder, rank_shift, recovery, transition_rates
from stats.cells import by_language_as_detail
from stats.report import ReportTable, for_baseline

KEYS = (
    "transitions",
    "ro-denominators",
    "demotion",
    "recovery",
    "recovery-paired",
    "rank-shift",
    "ladder",
    "model-size",
    "datasets",
)


def _bare(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy(deep=False)
    out.attrs = {}
    return out


def sampling_n(runs: list[dict[str, Any]]) -> int | None:
    """The number of samples of the sampling probe, when every run used the same."""
    ns = {int(r["sampling_n"]) for r in runs if r.get("sampling_n") is not None}
    return ns.pop() if len(ns) == 1 else None


def paper_tables(
    df: pd.DataFrame,
    tr: pd.DataFrame,
    rule: demotion.DemotionRule,
    method: str = "midp",
    adjust_method: str = "holm",
    level: float = 0.95,
    diff_ci: str = "tango",
) -> list[ReportTable]:
    """Every table of the paper's argument (pair tables are empty without a dense reference)."""
    n_samples = sampling_n(df.attrs.get("runs", []))
    baseline = bool(tr.attrs.get("baseline"))
    df, tr = _bare(df), _bare(tr)  # pandas deep-copies attrs into every slice: drop them here
    tables = [recovery.recovery_report(df, level, n_samples)]
    if len(tr):
        tables = [
            transition_rates.transition_matrix(tr),
            transition_rates.ro_denominators(tr, level),
            demotion.demotion_report(tr, rule, method, adjust_method, level, diff_ci),
            *tables,
            recovery.recovery_paired_report(tr, method, adjust_method, level, diff_ci),
            rank_shift.rank_shift_report(tr, level, adjust_method),
        ]
    tables.append(ladder.ladder_report(df, tr, method, adjust_method, level))
    tables = [by_language_as_detail(t) for t in tables]
    if baseline:  # runs paired with a baseline run, not pruned with dense
        tables = [for_baseline(t) for t in tables]
    return [*tables, axes.size_report(df, level), axes.dataset_report(df, level)]
