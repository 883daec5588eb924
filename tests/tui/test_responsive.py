"""The TUI never blocks: keys on every screen of a 100k-line study, while it loads and after, each
handled within 200 ms (time from the key to the app and the screen having processed it).

The 200 ms hold on a machine that gives each of this process's threads a core: on an idle machine
the bound is 200 ms. On a shared, oversubscribed machine a process gets a fraction of a core, so the
bound is scaled by that fraction, measured meanwhile by a separate process (`MachineShare`: the median
wall seconds per CPU second of a short busy loop; 1 on an idle machine, whatever its CPU). Being
measured outside this process, it does not excuse waits the app causes itself (a thread of its own
holding the GIL, a collector pause).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import DEFAULT_CONDITIONS, make_synthetic_study
from tui.app import PrunescopeApp
from tui.headless import MachineShare, press, until
from tui.screens.item import ItemScreen
from tui.screens.items import ItemsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.paper import PaperScreen
from tui.screens.runinfo import RunInfoScreen
from tui.screens.significance import SignificanceScreen

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

LIMIT_S = 0.2


@pytest.fixture(scope="module")
def big_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "study"
    make_synthetic_study(root, n_per_language=5_000, languages=("en", "de", "sw", "zh"), conditions=DEFAULT_CONDITIONS)
    return root


async def test_keys_on_every_screen_while_a_100k_line_study_loads(
    big_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))  # no index yet: loading builds it
    timings: list[tuple[str, str, float, bool]] = []  # (screen, key, seconds, still loading)
    app = PrunescopeApp([big_study], run_stats=False, stats_glmm=False)

    async def keys(*ks: str) -> None:
        for k in ks:
            loading = app.study is None
            screen = type(app.screen).__name__
            timings.append((screen, k, await press(pilot, k), loading))

    with MachineShare() as share:
        async with app.run_test(size=(130, 40)) as pilot:
            # While the study loads: every screen, moving and switching.
            await keys("j", "k", "2", "j", "G", "g", "slash", "escape", "3", "4", "j", "G", "5", "j", "k")
            await keys("6", "L", "M", "j", "1", "question_mark", "escape", "2", "pagedown", "1")
            assert any(loading for *_, loading in timings), "the study loaded before the first keys"
            await until(lambda: app.study is not None)
            assert sum(len(r) for r in app.study.runs) == 100_000
            # Loaded: the same screens with their data.
            await keys("j", "l", "k", "h", "2")
            await until(lambda: isinstance(app.screen, ItemsScreen) and app.items_state.rows is not None)
            await keys("j", "j", "G", "g", "pagedown", "right_square_bracket", "s", "r", "enter")
            await until(lambda: isinstance(app.screen, ItemScreen))  # pushed once the key is handled
            await keys("j", "G", "g", "right_square_bracket", "left_square_bracket", "escape")
            await until(lambda: isinstance(app.screen, ItemsScreen))
            await keys("slash", *"lang:de", "enter")
            await until(lambda: app.items_state.query == "lang:de")
            await keys("j", "4", "j", "5", "G", "g", "j", "6", "L", "M", "G", "1", "question_mark", "escape", "j")
            await until(lambda: isinstance(app.screen, OverviewScreen))
    limit = LIMIT_S * share.starvation
    visited = {screen for screen, *_ in timings}
    for screen in (OverviewScreen, ItemsScreen, ItemScreen, SignificanceScreen, RunInfoScreen, PaperScreen):
        assert screen.__name__ in visited
    slow = [(screen, key, round(s, 3), loading) for screen, key, s, loading in timings if s > limit]
    worst = sorted(timings, key=lambda t: -t[2])[:5]
    print(f"bound {limit:.3f} s (starvation {share.starvation:.1f}); slowest keys: {worst}")  # shown with -s
    assert not slow, (
        f"keys handled in more than {limit:.3f} s ({LIMIT_S} s x starvation {share.starvation:.1f}): {slow}; slowest: {worst}"
    )
