"""The TUI on runs imported from lm-evaluation-harness logs: two models compared with a baseline,
stepping through their discordant items; what imports do not record is shown as absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from tests.engine.importers.test_lm_eval import DENSE, FIXTURES, PRUNED
from tests.tui.conftest import SIZE, loaded
from tests.tui.svgtext import svg_text
from tui.app import PrunescopeApp
from tui.model import NO_REF
from tui.screens.item import ItemScreen
from tui.screens.items import ItemsScreen

pytestmark = pytest.mark.asyncio


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    out = tmp_path / "study"
    assert main(["import", "lm-eval", str(FIXTURES), "--out", str(out)]) == 0
    return out


async def test_steps_through_discordant_items_of_two_imported_models(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, baseline=DENSE)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.study is not None and app.study.baseline
        text = svg_text(app.export_screenshot())
        assert "dense · baseline" in text and PRUNED in text and "vs the baseline" in text
        await pilot.press("2")
        await loaded(pilot)
        assert isinstance(app.screen, ItemsScreen)
        assert len(app.study.pairs) == 16  # every item of the pruned model, against the baseline
        assert "base→run" in svg_text(app.export_screenshot())  # the transition column says what it pairs
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        seen = set()
        for _ in range(6):
            await pilot.press("right_square_bracket")
            await pilot.pause()
            assert app.is_discordant(screen.pair_index)
            seen.add(app.current_uid()[0])
        assert len(seen) > 1
        text = svg_text(app.export_screenshot())
        assert DENSE in text and PRUNED in text
        assert "No gold trace recorded for this item" in text and "psqa_gen exact_match" in text


async def test_without_a_baseline_the_two_models_are_listed_unpaired(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.study is not None and all(r == NO_REF for r in app.study.reference)
        assert len(app.study.pairs) == 32  # each run's items listed on their own, without transitions
        assert any("--baseline RUN" in p for p in app.study.all_problems)
