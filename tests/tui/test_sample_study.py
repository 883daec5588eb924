"""The app on the committed sample study (a real study the engine made: sample_runs/smollm2-illusion)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.contract.reader import discover_runs
from tests.tui.conftest import SIZE, loaded
from tests.tui.svgtext import svg_text
from tui.app import PrunescopeApp
from tui.screens.item import ItemScreen
from tui.screens.items import ItemsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.significance import SignificanceScreen
from tui.widgets.item_table import ItemTable

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion"

pytestmark = pytest.mark.asyncio


@pytest.fixture()
def sample(tmp_path: Path) -> Path:
    """A copy (flags and exports write into the study's sidecar folder)."""
    dst = tmp_path / "smollm2-illusion"
    shutil.copytree(SAMPLE, dst, ignore=shutil.ignore_patterns(".prunescope"))
    return dst


async def test_sample_overview_and_discordant_item_in_a_few_keys(sample: Path) -> None:
    runs = discover_runs(sample)
    n_items = sum(1 for _ in (runs[0] / "items.jsonl").open(encoding="utf-8"))
    app = PrunescopeApp([sample], stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert isinstance(app.screen, OverviewScreen)
        assert app.study.problems == [] and len(app.study.runs) == len(runs) == 10
        assert app.screen.query_one("#grid").row_count == len(runs)
        assert len(app.study.pairs) == (len(runs) - 1) * n_items  # each pruned run against dense
        # The first recognition-only item that flipped in Spanish: filter, next discordant, open.
        await pilot.press("slash", *"lang:es cat:RO", "enter")
        await loaded(pilot)
        assert isinstance(app.screen, ItemsScreen)
        table = app.screen.query_one(ItemTable)
        study = app.study
        assert len(table.rows) > 0
        await pilot.press("right_square_bracket", "enter")
        await loaded(pilot)
        assert isinstance(app.screen, ItemScreen)
        i = int(table.rows[table.cursor])
        run = study.runs[study.pairs.run[i]]
        rec = run.fetch(int(study.pairs.row[i]))
        assert rec["language"] == "es" and rec["category"] == "recognition_only" and app.is_discordant(i)
        text = svg_text(app.export_screenshot())
        words = study.item(rec["item_uid"])["question"].split()[:3]
        assert all(w in text for w in words) and run.label in text, (words, run.label)
        await pilot.press("4")
        await loaded(pilot)
        assert isinstance(app.screen, SignificanceScreen)
        assert "Recognition-only" in svg_text(app.export_screenshot())
