"""Cells of the paper's analyses: (dataset,) model, condition and language, with languages pooled as "all".

Every analysis in `stats` that reports per cell takes its rows from here, so the keys, their order
and the pooled-language rows are the same in every table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pandas as pd

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
