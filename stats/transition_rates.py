"""Dense → pruned transitions of the paired categories, and the recognition-only rate under two
denominators: all items, and the items the dense model answered correctly in open generation.

Input: the pair table of `stats.load.transitions` (one row per pruned run × item).
"""

from __future__ import annotations

import pandas as pd

from stats.cells import iter_cells, key_columns, wilson_fields
from stats.report import Column, ReportTable

CATEGORIES = ("both_correct", "recognition_only", "generation_only", "both_wrong")
SHORT = {"both_correct": "BC", "recognition_only": "RO", "generation_only": "GO", "both_wrong": "BW"}


def transition_matrix(tr: pd.DataFrame) -> ReportTable:
    """Counts dense category (rows) → pruned category (columns) per cell, with row shares."""
    records = []
    for keys, sub in iter_cells(tr):
        counts = pd.crosstab(sub["category_dense"].astype(str), sub["category_pruned"].astype(str))
        for cat in CATEGORIES:
            row = {**keys, "dense": SHORT[cat]}
            total = int(counts.loc[cat].sum()) if cat in counts.index else 0
            row["n"] = total
            for to in CATEGORIES:
                k = int(counts.loc[cat, to]) if cat in counts.index and to in counts.columns else 0
                row[f"to_{SHORT[to]}"] = k
                row[f"share_{SHORT[to]}"] = k / total if total else float("nan")
            records.append(row)
    cols = [
        *key_columns(records),
        Column("dense", "dense", "text", "left"),
        Column("n", "n", "int"),
        *(Column(f"→ {SHORT[c]}", f"to_{SHORT[c]}", "int") for c in CATEGORIES),
    ]
    notes = [
        "Rows: the dense model's category of an item; columns: the same item's category after pruning "
        "(BC both correct, RO recognition-only = MC right and open generation wrong, GO generation-only, "
        "BW both wrong). n = items in the row; CSV/JSON also carry each row's shares.",
        "Unit: item × language, paired by item uid and content hash with the dense run of the same model.",
    ]
    return ReportTable("transitions", "Transitions dense → pruned", cols, records, notes)


def ro_denominators(tr: pd.DataFrame, level: float = 0.95) -> ReportTable:
    """Recognition-only after pruning, over all items and over the items dense answered in open generation."""
    records = []
    for keys, sub in iter_cells(tr):
        ro = sub["recognition_only_pruned"].to_numpy(bool)
        dense_open = sub["open_correct_dense"].to_numpy(bool)
        n, k = len(sub), int(ro.sum())
        n_d, k_d = int(dense_open.sum()), int((ro & dense_open).sum())
        records.append(
            {
                **keys,
                "n": n,
                "ro": k,
                **wilson_fields(k, n, level, "rate_all"),
                "n_dense_open": n_d,
                "ro_of_dense_open": k_d,
                **wilson_fields(k_d, n_d, level, "rate_dense_open"),
                "ro_dense": int(sub["recognition_only_dense"].to_numpy(bool).sum()),
            }
        )
    cols = [
        *key_columns(records),
        Column("n", "n", "int"),
        Column("RO", "ro", "int"),
        Column(f"RO / all [{100 * level:g}% CI]", "rate_all", "ci"),
        Column("dense open ✓", "n_dense_open", "int"),
        Column("RO of those", "ro_of_dense_open", "int"),
        Column(f"RO / dense open ✓ [{100 * level:g}% CI]", "rate_dense_open", "ci"),
        Column("RO dense", "ro_dense", "int"),
    ]
    notes = [
        "RO / all: recognition-only items after pruning over every paired item. RO / dense open ✓: of the "
        "items the dense model answered correctly in open generation, the share that became recognition-only "
        '("of what the dense model could say, how much became recognition-only").',
        f"{100 * level:g}% Wilson score intervals. RO dense: recognition-only items of the dense run (the baseline).",
    ]
    return ReportTable("ro-denominators", "Recognition-only rate under two denominators", cols, records, notes)
