"""The format ladder: open generation → candidate-shown generation → multiple choice, per run cell,
with paired tests within each run (open vs shown, shown vs MC) and across conditions (each format,
pruned vs the dense run of the same model, on the same items).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from stats.cells import adjust_rows, iter_cells, key_columns, wilson_fields
from stats.mcnemar import METHOD_NAMES, mcnemar
from stats.report import Column, ReportTable
from stats.tables import PairedTable

FORMATS = {"open": "open_correct", "shown": "shown_correct", "mc": "mc_correct"}
WITHIN = (("open", "shown"), ("shown", "mc"))


def _acc(values: pd.Series, level: float, prefix: str) -> dict[str, Any]:
    v = values.astype("boolean").dropna().to_numpy(bool)
    return {f"{prefix}_n": len(v), **wilson_fields(int(v.sum()), len(v), level, prefix)}


def _paired(a: pd.Series, b: pd.Series, method: str, level: float, labels: tuple[str, str]) -> Any:
    x, y = a.astype("boolean"), b.astype("boolean")
    ok = (x.notna() & y.notna()).to_numpy(bool)
    return mcnemar(
        PairedTable.from_pairs(x.to_numpy(bool, na_value=False)[ok], y.to_numpy(bool, na_value=False)[ok], labels),
        method,
        level=level,
    )


def ladder_report(
    df: pd.DataFrame, tr: pd.DataFrame, method: str = "midp", adjust_method: str = "holm", level: float = 0.95
) -> ReportTable:
    """Per run cell: accuracy in each format with Wilson CIs and the within-run and dense-vs-pruned tests."""
    records = []
    meta = df[["model", "condition", "method", "sparsity", "pattern", "n_params"]].drop_duplicates(
        ["model", "condition"]
    )
    info = {(str(r.model), str(r.condition)): r for r in meta.itertuples()}
    pairs_of = {tuple(keys.items()): sub for keys, sub in iter_cells(tr)}
    for keys, sub in iter_cells(df):
        run = info[(keys["model"], keys["condition"])]
        rec: dict[str, Any] = {
            **keys,
            "method": str(run.method),
            "sparsity": float(run.sparsity),
            "pattern": str(run.pattern),
            "n_params": int(run.n_params),
            "n": len(sub),
        }
        for fmt, col in FORMATS.items():
            rec.update(_acc(sub[col], level, fmt))
        for a, b in WITHIN:
            res = _paired(sub[FORMATS[a]], sub[FORMATS[b]], method, level, (a, b))
            rec[f"p_{a}_{b}"] = res.pvalue
            rec[f"n_{a}_{b}"] = res.n
            rec[f"delta_{a}_{b}"] = res.difference.estimate
        pairs = pairs_of.get(tuple(keys.items()), tr.iloc[:0])
        for fmt, col in FORMATS.items():
            if len(pairs):
                res = _paired(pairs[f"{col}_pruned"], pairs[f"{col}_dense"], method, level, ("pruned", "dense"))
                rec[f"delta_{fmt}_vs_dense"], rec[f"p_{fmt}_vs_dense"] = res.difference.estimate, res.pvalue
            else:
                rec[f"delta_{fmt}_vs_dense"], rec[f"p_{fmt}_vs_dense"] = math.nan, math.nan
        records.append(rec)
    for key in ("p_open_shown", "p_shown_mc", *(f"p_{f}_vs_dense" for f in FORMATS)):
        adjust_rows(records, key, adjust_method, f"{key[2:].replace('_', ' ')} tests")
    pct = f"{100 * level:g}%"
    cols = [
        *key_columns(records),
        Column("n", "n", "int"),
        Column(f"open [{pct} CI]", "open", "ci"),
        Column(f"shown [{pct} CI]", "shown", "ci"),
        Column(f"MC [{pct} CI]", "mc", "ci"),
        Column("p open vs shown", "p_open_shown_adjusted", "p"),
        Column("p shown vs MC", "p_shown_mc_adjusted", "p"),
        Column("p open vs dense", "p_open_vs_dense_adjusted", "p"),
        Column("p shown vs dense", "p_shown_vs_dense_adjusted", "p"),
        Column("p MC vs dense", "p_mc_vs_dense_adjusted", "p"),
    ]
    notes = [
        "Accuracy per format: open = open generation, shown = generation with the options listed, MC = multiple "
        f"choice by option log-likelihood; {pct} Wilson CIs (shown over the items where it was run).",
        f"Within each run: {METHOD_NAMES[method]} on the same items, open vs shown and shown vs MC. Across "
        "conditions: each format, pruned vs the dense run of the same model on the same items (Δ in CSV/JSON).",
        f"All p-values shown are {adjust_method}-adjusted, each column its own family over the table's rows "
        "(raw p in CSV/JSON).",
    ]
    return ReportTable("ladder", "Format ladder: open → shown → MC", cols, records, notes)
