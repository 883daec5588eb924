"""Gold-rank shift dense → pruned: the gold answer's first-token rank and sequence log-probability
after the open prompt, as paired statistics on the items recognition-only after pruning and on all
items: Hodges–Lehmann shift with its CI and the Wilcoxon signed-rank test (`stats.signed_rank`, as
R computes them), medians, and the share of items whose gold first token stays in the top 1 / 5 / 10.

With few non-zero differences the requested CI level cannot be reached; the HL cell then names the level
its CI does reach, as R's wilcox.test reports it ('… (75% CI)' for 3 differences; 0%: a point), and
CSV/JSON carry the achieved levels as rank_hl_level and logprob_hl_level.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stats.cells import adjust_rows, iter_cells, key_columns
from stats.report import Column, ReportTable
from stats.signed_rank import signed_rank

TOP = (1, 5, 10)
SUBSETS = {"RO": "recognition-only after pruning", "all": "all items"}


def _shift(dense: np.ndarray, pruned: np.ndarray, level: float, prefix: str) -> dict[str, float | str]:
    ok = ~(np.isnan(dense) | np.isnan(pruned))
    res = signed_rank(dense[ok], pruned[ok], level)
    return {
        f"{prefix}_n": int(ok.sum()),
        f"{prefix}_dense_median": float(np.median(dense[ok])) if ok.any() else math.nan,
        f"{prefix}_pruned_median": float(np.median(pruned[ok])) if ok.any() else math.nan,
        f"{prefix}_hl": res.estimate,
        f"{prefix}_hl_low": res.lower,
        f"{prefix}_hl_high": res.upper,
        f"{prefix}_V": res.statistic,
        f"{prefix}_p": res.pvalue,
        f"{prefix}_test": res.method,
        f"{prefix}_hl_level": res.conf_level,  # achieved; below `level` with few non-zero differences (R's)
    }


def rank_shift_report(tr: pd.DataFrame, level: float = 0.95, adjust_method: str = "holm") -> ReportTable:
    """Per cell and subset (RO after pruning, all): rank and log-prob shift, top-k shares."""
    records = []
    for keys, sub in iter_cells(tr):
        for subset in SUBSETS:
            part = sub[sub["recognition_only_pruned"].to_numpy(bool)] if subset == "RO" else sub
            rd = part["first_token_rank_dense"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            rp = part["first_token_rank_pruned"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            rec = {**keys, "subset": subset, "n": len(part)}
            rec.update(_shift(rd, rp, level, "rank"))
            ld = part["seq_logprob_dense"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            lp = part["seq_logprob_pruned"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            rec.update(_shift(ld, lp, level, "logprob"))
            ok = ~(np.isnan(rd) | np.isnan(rp))
            for k in TOP:
                rec[f"top{k}_dense"] = float((rd[ok] <= k).mean()) if ok.any() else math.nan
                rec[f"top{k}_pruned"] = float((rp[ok] <= k).mean()) if ok.any() else math.nan
            rec["top"] = (
                " · ".join(f"{_pct(rec[f'top{k}_dense'])}→{_pct(rec[f'top{k}_pruned'])}" for k in TOP)
                if ok.any()
                else "–"
            )
            records.append(rec)
    fam = adjust_rows(
        records, "rank_p", adjust_method, "rank-shift signed-rank tests, every row of this table", ("subset",)
    )
    cols = [
        *key_columns(records),
        Column("subset", "subset", "text", "left"),
        Column("n", "rank_n", "int"),
        Column("median rank dense", "rank_dense_median", "num"),
        Column("pruned", "rank_pruned_median", "num"),
        Column(f"rank shift HL [{100 * level:g}% CI]", "rank_hl", "ci", level=level),
        Column("p (Wilcoxon)", "rank_p", "p"),
        Column(f"p adj. ({adjust_method})", "rank_p_adjusted", "p"),
        Column(f"log-prob shift HL [{100 * level:g}% CI]", "logprob_hl", "ci", level=level),
        Column("p (log-prob)", "logprob_p", "p"),
        Column("top 1 · 5 · 10, dense→pruned", "top", "text", "left"),
    ]
    notes = [
        "Subsets: RO = items recognition-only after pruning; all = every paired item. Rank: the gold answer's "
        "first-token rank after the open prompt (1 = the greedy choice); log-prob: the gold answer's sequence "
        "log-probability (teacher-forced). Shifts are pruned − dense, per item.",
        f"HL: Hodges–Lehmann estimate (pseudo-median of the paired differences) with its {100 * level:g}% CI; "
        "p: two-sided Wilcoxon signed-rank test. Exact when n < 50 without ties or zero differences, else the "
        "normal approximation with tie and continuity correction, zero differences dropped; the estimate and "
        "CI then invert the test statistic (as R's wilcox.test(..., paired = TRUE, conf.int = TRUE)).",
        "top 1 · 5 · 10: share of items whose gold first token ranks ≤ 1, ≤ 5, ≤ 10, dense → pruned.",
        "Multiple comparisons (rank): " + fam.describe() + "; log-prob p-values not adjusted.",
    ]
    return ReportTable("rank-shift", "Gold-rank shift, dense → pruned", cols, records, notes)


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.0f}%"
