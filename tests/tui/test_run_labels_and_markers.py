"""What tells runs and rows apart: run labels (with --baseline, with several models), the run of the
item on show, the sort markers, and the Paper screen while its tables are redrawn."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.synthetic import make_synthetic_study
from tests.tui.conftest import CONDITIONS, SIZE, items_list, loaded, open_screen
from tests.tui.svgtext import svg_rows, svg_text
from tui import render
from tui.app import PrunescopeApp
from tui.model import load_study
from tui.screens.item import ItemScreen
from tui.screens.paper import PaperScreen
from tui.screens.stats_tables import COMPUTING

pytestmark = pytest.mark.asyncio


def table_rows(app: PrunescopeApp) -> list[str]:
    """The item list's lines on screen: its header and rows."""
    rows = svg_rows(app.export_screenshot())
    start = next(k for k, line in enumerate(rows) if line.startswith("run "))
    return [line for line in rows[start:] if line.strip()][:-1]  # less the key bar


def run_column(app: PrunescopeApp) -> set[str]:
    """The run labels shown in the item list (the run column: up to the language column)."""
    header, *rows = table_rows(app)
    return {line[: header.index("lang")].strip() for line in rows}


@pytest.fixture()
def two_models(tmp_path: Path) -> Path:
    study = tmp_path / "two-models"
    models = (("synthetic/tiny-llama", 135_000_000), ("other/Other-Model-1B", 1_000_000_000))
    make_synthetic_study(study, n_per_language=4, languages=("en", "de"), conditions=CONDITIONS[:2], models=models)
    return study


async def test_with_a_baseline_the_run_column_tells_the_runs_apart(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False, baseline="tiny-llama__dense")
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("slash", *"lang:en", "enter")  # 8 rows of each pruned run, all on screen
        await loaded(pilot)
        assert app.study is not None and app.study.baseline
        assert run_column(app) == {"wanda-s50", "wanda-s70"}


async def test_several_models_name_the_model_in_the_list_and_the_item(two_models: Path) -> None:
    assert load_study([two_models]).labels == [
        "dense · Other-Model-1B",
        "wanda-s50 · Other-Model-1B",
        "dense · tiny-llama",
        "wanda-s50 · tiny-llama",
    ]
    app = PrunescopeApp([two_models], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await items_list(pilot)
        assert run_column(app) == {"wanda-s50 · Other-Model-1B", "wanda-s50 · tiny-llama"}
        await pilot.press("enter")
        await loaded(pilot)
        assert isinstance(app.screen, ItemScreen)
        rows = svg_rows(app.export_screenshot())
        options = next(line for line in rows if "option" in line)  # the options table's header: one run a column
        outputs = rows[rows.index(next(line for line in rows if "open generation" in line)) + 2 :][:4]
        for label in app.study.labels:
            assert label in options
            assert any(label in line for line in outputs), (label, outputs)


async def test_reverse_in_file_order_reverses_the_rows(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = await items_list(pilot)
        rows = table.rows.copy()
        await pilot.press("r")
        await loaded(pilot)
        assert app.items_state.sort_key == "" and "file order ▼" in svg_text(app.export_screenshot())
        assert np.array_equal(table.rows, rows[::-1])
        await pilot.press("r")
        await loaded(pilot)
        assert np.array_equal(table.rows, rows)


async def test_the_item_screen_names_the_run_of_the_row_it_shows(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2", "s", "s", "s")  # sorted by item: its rows of both pruned runs one after the other
        await loaded(pilot)
        await pilot.press("enter")
        await loaded(pilot)
        screen = app.screen
        study = app.study
        assert isinstance(screen, ItemScreen) and study is not None
        shown: dict[tuple[str, int], str] = {}
        for _ in range(16):  # the discordant rows of the list
            assert screen.pair_index is not None
            r = int(study.pairs.run[screen.pair_index])
            row = svg_rows(app.export_screenshot())[1].strip()
            assert row.startswith(f"row of {study.run_label(r)} ") and "dense→run" in row, row
            shown[(app.current_uid()[0], r)] = row
            await pilot.press("right_square_bracket")
            await loaded(pilot)
        both = [uid for uid, r in shown if r == 1 and (uid, 2) in shown]
        assert both  # the same item in both runs: told apart
        assert shown[(both[0], 1)] != shown[(both[0], 2)]


async def test_every_sort_column_shows_its_arrow(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = await items_list(pilot)
        for header in ("run", "lang", "item", "dense→run", "gold", "run's answer", "⚑"):
            await pilot.press("s")
            await loaded(pilot)
            assert f"{header} ▲" in table_rows(app)[0], (header, table.sort_key)
            await pilot.press("r")
            await loaded(pilot)
            assert f"{header} ▼" in table_rows(app)[0], (header, table.sort_key)
            await pilot.press("r")
            await loaded(pilot)


async def test_paper_screen_says_tables_are_computing_until_they_are_replaced(
    study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = PrunescopeApp([study], stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert isinstance(await open_screen(pilot, "6"), PaperScreen)
        assert COMPUTING not in svg_text(app.export_screenshot())
        gate = threading.Event()
        report_table = render.report_table

        def slow(table: Any) -> Any:  # a big study: the drawing takes seconds
            gate.wait(10)
            return report_table(table)

        monkeypatch.setattr(render, "report_table", slow)
        await pilot.press("L")
        await pilot.pause(0.1)
        text = svg_text(app.export_screenshot())
        assert "language: de" in text and COMPUTING in text and "Transitions dense → pruned" not in text
        gate.set()
        await loaded(pilot)
        text = svg_text(app.export_screenshot())
        assert COMPUTING not in text and "Transitions dense → pruned" in text
