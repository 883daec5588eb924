"""The layer trace in the TUI: the item screen's per-run sparkline of the gold rank by lens entry, and
the by-layer tables on the Significance screen (the same as `prunescope stats`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import add_layer_traces, make_synthetic_study
from tests.tui.conftest import CONDITIONS, LANGS, SIZE, loaded
from tui.app import PrunescopeApp
from tui.render import rank_sparkline
from tui.screens.item import ItemScreen
from tui.widgets.lines import LinesView


def _body(app: PrunescopeApp) -> str:
    """The whole body of the current screen, not only what is on screen."""
    body = app.screen.query_one(LinesView)
    return "\n".join(body._source(y).text for y in range(body.count))


def test_sparkline_is_taller_for_better_ranks() -> None:
    assert rank_sparkline([10_000, 100, 1], 10_000) == "▁▅█"
    assert rank_sparkline([50_000], 10_000) == "▁"  # worse than the scale's end: the lowest cell


@pytest.mark.asyncio
async def test_item_and_significance_screens_show_the_layer_trace(tmp_path: Path) -> None:
    study = tmp_path / "study"
    add_layer_traces(make_synthetic_study(study, n_per_language=6, languages=LANGS, conditions=CONDITIONS, seed=3))
    app = PrunescopeApp([study], stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        await loaded(pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ItemScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = _body(app)
        assert "Layer trace: gold first-token rank by lens entry" in text
        assert "wanda-s50" in text and "wanda-s70" in text
        await pilot.press("4")
        await loaded(pilot)
        keys = [t.key for t in app.stats.tables]
        assert "layer-trace" in keys and "layer-trace-by-layer" in keys
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = _body(app)
        assert "Layer trace: where the pruned model leaves the dense curve" in text
        assert "Layer trace by layer: median gold rank, dense vs pruned" in text
