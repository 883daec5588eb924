"""Model size and dataset tables (stats.axes): rates against hand counts, and what each note says."""

from __future__ import annotations

import pandas as pd
import pytest

from stats.axes import dataset_report, size_report
from stats.intervals import wilson


def _frame(rows: list[tuple[str, int, str, str, bool, bool]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["model", "n_params", "condition", "dataset", "open_correct", "mc_correct"])
    df["recognition_only"] = df["mc_correct"] & ~df["open_correct"]
    for c in ("model", "condition", "dataset"):
        df[c] = df[c].astype("category")
    return df


ROWS = [
    # model, params, condition, dataset, open, mc
    ("big", 1_700_000_000, "dense", "xquad", True, True),
    ("big", 1_700_000_000, "dense", "xquad", False, True),
    ("big", 1_700_000_000, "dense", "tydiqa", False, False),
    ("big", 1_700_000_000, "wanda-s50", "xquad", False, True),
    ("big", 1_700_000_000, "wanda-s50", "xquad", False, True),
    ("big", 1_700_000_000, "wanda-s50", "tydiqa", False, False),
    ("small", 135_000_000, "dense", "xquad", True, True),
    ("small", 135_000_000, "dense", "xquad", True, False),
    ("small", 135_000_000, "dense", "tydiqa", False, True),
    ("small", 135_000_000, "wanda-s50", "xquad", False, False),
    ("small", 135_000_000, "wanda-s50", "xquad", False, True),
    ("small", 135_000_000, "wanda-s50", "tydiqa", False, True),
]


def test_size_table_orders_models_by_size_and_counts_each_cell() -> None:
    t = size_report(_frame(ROWS))
    assert [(r["model"], r["params"], r["condition"]) for r in t.records] == [
        ("small", "135M", "dense"),
        ("small", "135M", "wanda-s50"),
        ("big", "1.7B", "dense"),
        ("big", "1.7B", "wanda-s50"),
    ]
    small_pruned = t.records[1]  # open 0/3, MC 2/3, RO 2/3
    assert small_pruned["n"] == 3 and small_pruned["open"] == 0.0
    ci = wilson(2, 3, 0.95)
    assert (small_pruned["ro"], small_pruned["ro_low"], small_pruned["ro_high"]) == pytest.approx(
        (ci.estimate, ci.lower, ci.upper)
    )
    assert "2 model sizes (135M, 1.7B)" in t.notes[0] and "sparsity:log_params" in t.notes[0]


def test_dataset_table_splits_cells_by_dataset() -> None:
    t = dataset_report(_frame(ROWS))
    cell = {(r["dataset"], r["model"], r["condition"]): r for r in t.records}
    assert len(cell) == 8
    r = cell[("xquad", "big", "wanda-s50")]  # open 0/2, MC 2/2
    assert (r["n"], r["open"], r["mc"], r["ro"]) == (2, 0.0, 1.0, 1.0)
    assert "2 datasets (tydiqa, xquad)" in t.notes[0]


def test_one_size_and_one_dataset_say_why_nothing_is_estimated() -> None:
    one = _frame([r for r in ROWS if r[0] == "small" and r[3] == "xquad"])
    size, data = size_report(one), dataset_report(one)
    assert size.notes[0].startswith("One model size (135M): nothing is estimated")
    assert data.notes[0].startswith("One dataset (xquad): nothing is estimated")
    assert [r["n"] for r in size.records] == [2, 2]
