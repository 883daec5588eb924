"""Every Textual worker of the app names itself: without a description Textual repr()s the worker's
arguments on the event loop at each start, and the study's arrays made that ~13 ms per item opened."""

from __future__ import annotations

import re
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
