"""Every Textual worker of the app names itself: without a description Textual repr()s the worker's
arguments on the event loop at each start, and the study's arrays made that ~13 ms per item opened."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

TUI = Path(__file__).resolve().parents[2] / "tui"


def test_every_work_decorator_has_a_description() -> None:
    found = []
    for path in sorted(TUI.rglob("*.py")):
        for m in re.finditer(r"@work\(([^)]*)\)", path.read_text(encoding="utf-8")):
            found.append((path.name, "description=" in m.group(1)))
    assert len(found) >= 8
    assert [name for name, ok in found if not ok] == []


@pytest.mark.asyncio
async def test_a_late_prefetch_timer_does_nothing_once_the_screens_are_gone(study: Path) -> None:
    """The resting-cursor timer can fire while the app closes (seen in CI: KeyError 'item')."""
    from tui.app import PrunescopeApp

    app = PrunescopeApp([study], run_stats=False, stats_glmm=False)
    async with app.run_test(size=(100, 30)):
        app.uninstall_screen("item")  # what closing the app does before a pending timer fires
        app.prefetch_item(0)


@pytest.mark.asyncio
async def test_loading_progress_that_arrives_while_the_app_closes_does_nothing(study: Path) -> None:
    """The load worker's progress can reach the app after closing took the screen's widgets down (seen in
    CI: NoMatches '#title' on OverviewScreen); a screen that still has them raises as before."""
    from tests.tui.conftest import loaded
    from tui.app import PrunescopeApp

    app = PrunescopeApp([study], run_stats=False, stats_glmm=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        screen = app.screen
        await screen.query("*").remove()  # what closing does to a screen before its queue is closed
        app._loading("late progress")


@pytest.mark.asyncio
async def test_an_item_drawing_stops_once_cancelled_and_the_screen_left_cancels_it(study: Path) -> None:
    """A drawing nobody will see (a newer item asked for, the screen left) stops at its next part
    instead of holding the GIL against the keys of the screen now shown."""
    from tests.tui.conftest import SIZE, loaded
    from tui.app import PrunescopeApp
    from tui.screens.item import ItemScreen, _render

    app = PrunescopeApp([study], run_stats=False, stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.study is not None
        whole = _render(app.study, 0, 100)
        assert whole is not None and whole.lines
        asked: list[int] = []

        def third_time() -> bool:
            asked.append(1)
            return len(asked) == 3

        assert _render(app.study, 0, 100, third_time) is None
        assert len(asked) == 3  # stopped before its third part
        await pilot.press("2")
        await loaded(pilot)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        release = threading.Event()  # a drawing still running when the user leaves
        drawing = screen.run_worker(lambda: release.wait(10), group="item", thread=True, description="item")
        await pilot.press("escape")
        cancelled = drawing.is_cancelled
        release.set()
        assert cancelled
