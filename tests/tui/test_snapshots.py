"""SVG snapshots of every screen (Textual pinned in pyproject; fixed size; deterministic synthetic study).

Update deliberately: `.venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update`.
The significance screen is left out on purpose: it shows `prunescope stats` tables verbatim, so its
wording belongs to `stats`; test_pilot.py checks it against the stats functions instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.conftest import SIZE, loaded
from tui.app import PrunescopeApp

pytestmark = pytest.mark.xdist_group("tui-snapshots")


def _app(study: Path, stats: bool = False) -> PrunescopeApp:
    return PrunescopeApp([study], stats_glmm=False, run_stats=stats)


def _keys(*keys: str):
    async def run_before(pilot) -> None:
        await loaded(pilot)
        for key in keys:
            await pilot.press(key)
            await loaded(pilot)

    return run_before


def test_overview(snap_compare, study: Path) -> None:
    assert snap_compare(_app(study, stats=True), terminal_size=SIZE, run_before=_keys("j", "l", "l"))


def test_items(snap_compare, study: Path) -> None:
    assert snap_compare(_app(study), terminal_size=SIZE, run_before=_keys("2", "j", "right_square_bracket"))


def test_items_filtered_sorted(snap_compare, study: Path) -> None:
    keys = ("slash", *"lang:de disc", "enter", "s", "s", "r")
    assert snap_compare(_app(study), terminal_size=SIZE, run_before=_keys(*keys))


def test_filter_dialog(snap_compare, study: Path) -> None:
    assert snap_compare(_app(study), terminal_size=SIZE, run_before=_keys("2", "slash", *"lang:sw cat:RO"))


def test_item(snap_compare, study: Path) -> None:
    assert snap_compare(_app(study), terminal_size=SIZE, run_before=_keys("2", "right_square_bracket", "enter"))


def test_item_probes(snap_compare, study: Path) -> None:
    assert snap_compare(_app(study), terminal_size=SIZE, run_before=_keys("2", "right_square_bracket", "enter", "G"))


def test_run_info(snap_compare, study: Path) -> None:
    assert snap_compare(_app(study), terminal_size=SIZE, run_before=_keys("5"))


def test_help(snap_compare, study: Path) -> None:
    assert snap_compare(_app(study), terminal_size=SIZE, run_before=_keys("2", "question_mark"))
