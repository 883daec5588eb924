"""Cells of the paper's analyses: (dataset,) model, condition and language, with languages pooled as "all".

Every analysis in `stats` that reports per cell takes its rows from here, so the keys, their order
and the pooled-language rows are the same in every table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from stats.intervals import wilson
from stats.multiple import FamilyAdjustment, adjust
from stats.report import Column, ReportTable

ALL = "all"


def cell_keys(frame: pd.DataFrame) -> list[str]:
    """`dataset` (only when there are several), `model`, `condition`."""
    keys = ["model", "condition"]
    if "dataset" in frame.columns and frame["dataset"].nunique() > 1:
        keys.insert(0, "dataset")
    return keys


def iter_cells(frame: pd.DataFrame, languages: bool = True) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """(keys, rows) per cell, sorted; each cell pooled over languages ("all") first, then per language."""
    keys = cell_keys(frame)
    if frame.empty:
        return
    for values, sub in frame.groupby(keys, observed=True, sort=True):
        base = {k: str(v) for k, v in zip(keys, values if isinstance(values, tuple) else (values,))}
        yield {**base, "language": ALL}, sub
        if languages and sub["language"].nunique() > 1:
            for lang, lsub in sub.groupby("language", observed=True, sort=True):
                yield {**base, "language": str(lang)}, lsub


def key_columns(records: list[dict[str, Any]]) -> list[Column]:
    """The leading text columns naming a cell."""
    names = ["dataset", "model", "condition", "language"]
    present = [k for k in names if any(k in r for r in records)] or ["model", "condition", "language"]
    return [Column(k, k, "text", "left") for k in present]


def by_language_as_detail(table: ReportTable) -> ReportTable:
    """The rows pooled over languages shown; the per-language rows kept as detail (CSV/JSON, TUI filter)."""
    shown = [r for r in table.records if r.get("language", ALL) == ALL]
    rest = [r for r in table.records if r.get("language", ALL) != ALL]
    return replace(table, records=shown, detail=[*rest, *table.detail])


def row_label(record: dict[str, Any], extra: Sequence[str] = ()) -> str:
    """'model/condition/language[/…]' naming a row in a multiplicity family (`extra`: more keys)."""
    keys = [k for k in ("dataset", "model", "condition", "language") if k in record]
    return "/".join(str(record[k]) for k in [*keys, *extra])


def adjust_rows(
    records: list[dict[str, Any]], key: str, method: str, family: str, extra: Sequence[str] = ()
) -> FamilyAdjustment:
    """Adjust the p-values `key` of every row as one family; each row gets `<key>_adjusted`."""
    fam = adjust(
        [r[key] for r in records],
        [row_label(r, extra) for r in records],
        method,
        family=f"{family} ({len(records)})",
    )
    for r, padj in zip(records, fam.adjusted):
        r[f"{key}_adjusted"] = padj
    return fam


def wilson_fields(k: int, n: int, level: float, prefix: str) -> dict[str, float]:
    """`prefix`, `prefix_low`, `prefix_high`: the rate k/n with its Wilson CI (NaN for n = 0)."""
    ci = wilson(k, n, level)
    return {prefix: ci.estimate, f"{prefix}_low": ci.lower, f"{prefix}_high": ci.upper}
