"""Model size and dataset as axes of the study: the rates along each, and what the default GLMM does
with them (a numeric log-size term with its sparsity interaction from two sizes on, a dataset factor
from two datasets on). A study with one size or one dataset gets the table and the reason nothing is
estimated along that axis.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from stats.cells import wilson_fields
from stats.report import Column, ReportTable

_RATES = (("open", "open_correct"), ("mc", "mc_correct"), ("ro", "recognition_only"))


def _rate_columns(level: float) -> list[Column]:
    pct = f"{100 * level:g}%"
    return [
        Column("n", "n", "int"),
        Column(f"open [{pct} CI]", "open", "ci"),
        Column(f"MC [{pct} CI]", "mc", "ci"),
        Column(f"RO [{pct} CI]", "ro", "ci"),
    ]


def _rates(sub: pd.DataFrame, level: float) -> dict[str, Any]:
    rec: dict[str, Any] = {"n": len(sub)}
    for prefix, col in _RATES:
        v = sub[col].to_numpy(bool)
        rec.update(wilson_fields(int(v.sum()), len(v), level, prefix))
    return rec


def _params(n: int) -> str:
    """134515008 → '135M'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n) if n else "unknown"


def size_report(df: pd.DataFrame, level: float = 0.95) -> ReportTable:
    """Open, MC and recognition-only rates per model (in order of size) × condition."""
    records = []
    order = df.groupby("model", observed=True)["n_params"].max().sort_values(kind="stable")
    for model in order.index:
        sub_model = df[df["model"] == model]
        for cond, sub in sub_model.groupby("condition", observed=True, sort=True):
            n_params = int(order[model])
            records.append(
                {"model": str(model), "params": _params(n_params), "n_params": n_params, "condition": str(cond)}
                | _rates(sub, level)
            )
    sizes = sorted({int(n) for n in order if n > 0})
    if len(sizes) > 1:
        note = (
            f"{len(sizes)} model sizes ({', '.join(_params(n) for n in sizes)}): the default GLMM has "
            "log_params = log10(parameters) and the size × sparsity interaction sparsity:log_params "
            "(see its table) in place of a model factor."
        )
    else:
        note = (
            f"One model size ({', '.join(_params(n) for n in sizes) or 'unknown'}): nothing is estimated along "
            "size; the default GLMM gets log_params and sparsity:log_params from two sizes on (a study with "
            "several [[models]])."
        )
    cols = [
        Column("model", "model", "text", "left"),
        Column("params", "params"),
        Column("condition", "condition", "text", "left"),
        *_rate_columns(level),
    ]
    return ReportTable("model-size", "Model size as an axis", cols, records, [note, _wilson_note(level)])


def dataset_report(df: pd.DataFrame, level: float = 0.95) -> ReportTable:
    """Open, MC and recognition-only rates per dataset × model × condition."""
    records = []
    for (dataset, model, cond), sub in df.groupby(["dataset", "model", "condition"], observed=True, sort=True):
        records.append({"dataset": str(dataset), "model": str(model), "condition": str(cond)} | _rates(sub, level))
    datasets = sorted({str(d) for d in df["dataset"].unique()})
    if len(datasets) > 1:
        note = (
            f"{len(datasets)} datasets ({', '.join(datasets)}): the default GLMM has dataset as a factor; "
            "pairing stays within each study."
        )
    else:
        note = (
            f"One dataset ({datasets[0] if datasets else 'unknown'}): nothing is estimated along datasets; "
            "`prunescope stats STUDY_A STUDY_B` pools studies that ran the same models and conditions on "
            "other items, with dataset as a factor."
        )
    cols = [
        Column("dataset", "dataset", "text", "left"),
        Column("model", "model", "text", "left"),
        Column("condition", "condition", "text", "left"),
        *_rate_columns(level),
    ]
    return ReportTable("datasets", "Datasets", cols, records, [note, _wilson_note(level)])


def _wilson_note(level: float) -> str:
    return (
        f"Rates over every item × run of the cell with Wilson {100 * level:g}% intervals; RO = recognition-only "
        "(MC right, open generation wrong) over all items."
    )
