"""Pilot tests: every screen and key path of the app on a small synthetic study."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from unittest.mock import ANY

import pytest

from engine.contract.reader import read_manifest
from engine.runfolder import write_json_atomic
from tests.tui.conftest import SIZE, items_list, loaded, open_screen
from tests.tui.svgtext import svg_text
from tui.app import PrunescopeApp
from tui.screens.dialogs import FilterScreen, FlagScreen, HelpScreen
from tui.screens.item import ItemScreen
from tui.screens.items import ItemsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.paper import PaperScreen
from tui.screens.runinfo import RunInfoScreen
from tui.screens.significance import SignificanceScreen
from tui.sidecar import FlagStore
from tui.widgets.item_table import ItemTable

pytestmark = pytest.mark.asyncio


def screen_text(app: PrunescopeApp) -> str:
    return svg_text(app.export_screenshot())


async def test_overview_grid_and_drill_in(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert isinstance(app.screen, OverviewScreen)
        grid = app.screen.query_one("#grid")
        assert grid.row_count == 3 and len(grid.columns) == 2 + 3 + 1
        text = screen_text(app)
        assert "wanda-s70" in text and "O 0." in text and "R 0." in text and "…" not in text.split("Holm")[0]
        await pilot.press("j", "j", "l", "l", "l")  # wanda-s70 row, language column "en" (run, status, de, en)
        await pilot.press("enter")
        await loaded(pilot)
        assert isinstance(app.screen, ItemsScreen)
        assert app.items_state.query == "run:tiny-llama__wanda-s70 lang:en"
        table = app.screen.query_one(ItemTable)
        assert len(table.rows) == 8
        await pilot.press("escape")
        await pilot.press("g", "h", "h", "h", "enter")  # dense row, first column: every pruned run against dense
        await loaded(pilot)
        assert app.items_state.query == "" and len(app.screen.query_one(ItemTable).rows) == 48


async def test_overview_drawn_before_the_grid_is_idle_has_full_columns(study: Path) -> None:
    """A refill drawn at once (a busy machine renders before the table's idle pass measures its new
    rows) shows whole labels, and keeps showing them: a cell drawn narrow would stay cached."""
    app = PrunescopeApp([study], stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        screen._drawn = None
        screen.refresh_data()
        first = screen_text(app)  # before any idle
        await pilot.pause()
        for text in (first, screen_text(app)):
            assert "wanda-s70" in text and "complete" in text and "R 0." in text, text


async def test_items_keys_sort_discordant_and_item(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = await items_list(pilot)
        assert len(table.rows) == 48 and table.cursor == 0
        await pilot.press("j", "j", "down", "k")
        assert table.cursor == 2
        await pilot.press("G")
        assert table.cursor == 47
        await pilot.press("g")
        assert table.cursor == 0
        await pilot.press("right_square_bracket")
        first = table.cursor
        assert app.is_discordant(int(table.rows[first]))
        assert not any(app.is_discordant(int(i)) for i in table.rows[:first])
        await pilot.press("right_square_bracket", "left_square_bracket")
        assert table.cursor == first
        await pilot.press("s")  # sort: run
        await loaded(pilot)
        await pilot.press("s", "r")  # sort: language, reversed
        await loaded(pilot)
        study_ = app.study
        langs = [study_.language(study_.pairs.run[i], study_.pairs.row[i]) for i in table.rows]
        assert langs == sorted(langs, reverse=True) and "language ▼" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ItemScreen)
        uid = app.current_uid()[0]
        text = screen_text(app)
        assert uid in text and "Gold: answer" in text and "Options" in text and "Gold trace" in text
        await pilot.press("j", "G", "g", "escape")
        assert isinstance(app.screen, ItemsScreen)
        assert app.items_state.current == int(table.rows[table.cursor])


async def test_item_screen_steps_discordant_and_flags(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await items_list(pilot)
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        start = screen.pair_index
        await pilot.press("right_square_bracket")
        assert screen.pair_index != start and app.is_discordant(screen.pair_index)
        uid = app.current_uid()[0]
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FlagScreen)
        await pilot.press(*"odd one", "enter")
        await pilot.pause()
        assert app.screen is screen
        lines = (study / ".prunescope" / "flags.jsonl").read_text(encoding="utf-8").splitlines()
        assert json.loads(lines[-1])["item_uid"] == uid and json.loads(lines[-1])["note"] == "odd one"
        assert "flagged: odd one" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("slash", *"flag", "enter")
        await loaded(pilot)
        table = app.screen.query_one(ItemTable)
        assert len(table.rows) == 2  # the item in both pruned runs
        assert "⚑" in screen_text(app)
        await pilot.press("F")  # unflag the item under the cursor: recorded, not rewritten
        await pilot.pause()
        lines = (study / ".prunescope" / "flags.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 2 and json.loads(lines[-1]) == {"item_uid": uid, "removed": True, "run": ANY}
        assert uid not in app.flags.notes and len(app.screen.query_one(ItemTable).rows) == 0  # the filter: flag
        assert FlagStore(study).notes == {}  # read back: the removal holds
        await pilot.press("F")
        await pilot.pause()
        assert len((study / ".prunescope" / "flags.jsonl").read_text(encoding="utf-8").splitlines()) == 2


async def test_a_flag_after_its_removal_starts_afresh(tmp_path: Path) -> None:
    store = FlagStore(tmp_path)
    store.add("u1", "first")
    store.add("u2", "other")
    store.remove("u1")
    store.add("u1", "second")
    assert FlagStore(tmp_path).notes == {"u1": ["second"], "u2": ["other"]}


async def test_back_on_the_list_the_cursor_is_on_the_item_left_open(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        table = await items_list(pilot)
        rows = table.rows
        await pilot.press("enter")
        await pilot.pause()
        item = app.screen
        assert isinstance(item, ItemScreen)
        await pilot.press("right_square_bracket", "right_square_bracket")
        stepped = item.pair_index
        await pilot.press("escape")
        await loaded(pilot)
        assert isinstance(app.screen, ItemsScreen)
        assert table.rows is rows  # the same list: nothing changed, so nothing was selected again
        assert table.current == stepped != rows[0]


async def test_filter_dialog(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, FilterScreen)
        await pilot.press(*"answer(", "enter")
        await pilot.pause()
        assert isinstance(app.screen, FilterScreen) and "bad regex" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("slash", *"lang:sw cat:BW", "enter")
        await loaded(pilot)
        assert isinstance(app.screen, ItemsScreen)
        s = app.study
        rows = app.screen.query_one(ItemTable).rows
        assert len(rows) > 0
        assert all(s.language(s.pairs.run[i], s.pairs.row[i]) == "sw" and s.pairs.transition[i] % 4 == 3 for i in rows)
        assert "lang:sw cat:BW" in screen_text(app)


async def test_number_keys_help_and_palette(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await pilot.pause()
        assert isinstance(app.screen, OverviewScreen)  # no item chosen yet: stays, says so
        for key, cls in (
            ("4", SignificanceScreen),
            ("5", RunInfoScreen),
            ("2", ItemsScreen),
            ("3", ItemScreen),
            ("1", OverviewScreen),
        ):
            await pilot.press(key)
            await loaded(pilot)
            assert isinstance(app.screen, cls), key
            assert len(app.screen_stack) <= 3
        await pilot.press("2")
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for binding_id in ("app.quit", "app.filter", "items.next_discordant", "items.sort", "app.flag", "app.export"):
            assert binding_id in text
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Run info")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await loaded(pilot)
        assert isinstance(app.screen, RunInfoScreen)


async def test_significance_same_numbers_as_stats(study: Path) -> None:
    import argparse

    from stats import api
    from stats.commands import options_from_args, register

    app = PrunescopeApp([study], stats_glmm=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("4")
        await pilot.pause()
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers(dest="command"))
        cli = options_from_args(parser.parse_args(["stats", str(study)]))  # what `prunescope stats STUDY` runs
        assert app.stats_options() == cli
        expected, _ = api.report_tables(*api.load([study], cli), cli)
        assert [t.display_rows() for t in app.stats.tables] == [t.display_rows() for t in expected]
        assert app.stats.glmm is not None or app.stats.glmm_error
        text = screen_text(app)
        assert "Recognition-only errors, pruned vs dense (McNemar)" in text
        first = expected[0].display_rows()[0]
        shown = text.replace(" ", "")
        assert all(cell.replace(" ", "") in shown for cell in first[4:8])
        await pilot.press("j", "l", "G", "g")


async def test_paper_screen_filters_by_language_and_model(study: Path) -> None:
    from stats.paper import KEYS

    app = PrunescopeApp([study], stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert isinstance(await open_screen(pilot, "6"), PaperScreen)
        expected = {t.key: t for t in app.stats.tables if t.key in KEYS}
        assert set(expected) == set(KEYS)
        shown = {t.key: t for t in app.screen.filtered()}
        assert shown["demotion"].display_rows() == expected["demotion"].display_rows()  # pooled rows = stats
        assert "Transitions dense → pruned" in screen_text(app)
        await pilot.press("L")  # first language: de
        langs = {t.key: {r.get("language") for r in t.records} for t in app.screen.filtered()}
        assert langs["demotion"] == {"de"} and langs["ladder"] == {"de"} and langs["recovery-paired"] == {"all"}
        de_rows = [r for r in expected["ladder"].detail if r["language"] == "de"]
        assert next(t for t in app.screen.filtered() if t.key == "ladder").records == de_rows
        assert "language: de" in screen_text(app)
        await pilot.press("L", "L", "L")  # en, sw, back to all
        assert app.screen.language == "all"
        await pilot.press("M")
        assert app.screen.model == "synthetic/tiny-llama"
        await pilot.press("e")
        await loaded(pilot)
        lines = app.last_export.read_text(encoding="utf-8").splitlines()
        assert {json.loads(x)["table"] for x in lines} == {t.key for t in app.screen.filtered() if t.records}
        assert len(lines) == sum(len(t.records) for t in app.screen.filtered())


async def test_run_info_and_exports(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("e")
        await loaded(pilot)
        overview = app.last_export
        rows = list(csv.reader(overview.open(encoding="utf-8")))
        assert rows[0][:4] == ["run", "model", "condition", "language"] and len(rows) == 1 + 9
        counts = app.study.cell_counts()
        shown = {(row[0], row[3]): float(row[rows[0].index("shown_acc")]) for row in rows[1:]}
        for r, run in enumerate(app.study.runs):
            for lang in app.study.languages:
                assert shown[(run.name, lang)] == pytest.approx(counts[(r, lang)]["shown"])
        await pilot.press("5")
        await pilot.pause()
        text = screen_text(app)
        assert "tiny-llama__dense" in text and "model.id" in text
        await pilot.press("G")
        assert "tiny-llama__wanda-s70" in screen_text(app)
        await pilot.press("e")
        await loaded(pilot)
        runs = [json.loads(x) for x in app.last_export.read_text(encoding="utf-8").splitlines()]
        assert [r["manifest"]["run_id"] for r in runs] == [m.name for m in sorted(study.glob("tiny-llama__*"))]
        await pilot.press("slash", *"lang:de", "enter")
        await loaded(pilot)
        await pilot.press("e")
        await loaded(pilot)
        items = list(csv.reader(app.last_export.open(encoding="utf-8")))
        assert items[0][0] == "run" and len(items) == 1 + 16 and {r[1] for r in items[1:]} == {"de"}
        col = items[0].index("shown_correct")
        for row in items[1:]:
            lines = (study / row[0] / "outcomes.jsonl").read_text(encoding="utf-8").splitlines()
            rec = next(r for r in map(json.loads, lines) if r["item_uid"] == row[2])
            assert row[col] == str(rec["shown"]["correct"])
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("e")
        await loaded(pilot)
        recs = [json.loads(x) for x in app.last_export.read_text(encoding="utf-8").splitlines()]
        assert len(recs) == 3 and len({r["item_uid"] for r in recs}) == 1
        assert app.last_export.parent == study / ".prunescope" / "exports"


async def test_keymap_remaps_by_id(study: Path) -> None:
    app = PrunescopeApp(
        [study],
        stats_glmm=False,
        run_stats=False,
        keymap={"app.screen_runinfo": "r,5", "app.quit": "x", "items.sort": "o", "items.reverse": "v"},
    )
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        await loaded(pilot)
        assert "/ filter  o sort  v reverse  ] [ discordant" in screen_text(app)  # the filter bar follows the keymap
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, RunInfoScreen)
        await pilot.press("x")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running


async def test_live_run_shows_new_lines(study: Path) -> None:
    run_dir = study / "tiny-llama__wanda-s70"
    path = run_dir / "outcomes.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:6]), encoding="utf-8")
    manifest = read_manifest(run_dir)
    manifest["status"] = "running"
    write_json_atomic(run_dir / "manifest.json", manifest)
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False, poll_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert "running" in screen_text(app) and "6 lines" in screen_text(app)
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(lines[6:20]) + lines[20][:30])
        for _ in range(100):
            await pilot.pause(0.05)
            if len(app.study.runs[2]) == 20:
                break
        await loaded(pilot)
        assert "20 lines" in screen_text(app)
        manifest["status"] = "complete"
        with open(path, "a", encoding="utf-8") as f:
            f.write(lines[20][30:] + "".join(lines[21:]))
        write_json_atomic(run_dir / "manifest.json", manifest)
        for _ in range(100):
            await pilot.pause(0.05)
            if app.study.runs[2].status == "complete":
                break
        await loaded(pilot)
        text = screen_text(app)
        assert "24 lines" in text and "running" not in text
        assert len(app.study.pairs) == 48


async def test_no_color_is_monochrome_and_still_readable(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    monkeypatch.setenv("NO_COLOR", "1")
    app = PrunescopeApp([study], stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        svg = app.export_screenshot()
        # the SVG frame's window buttons and Rich's default terminal foreground are not the app's colours
        fills = set(re.findall(r'fill="#([0-9a-f]{6})"', svg)) - {"ff5f57", "febc2e", "28c840", "c5c8c6"}
        assert fills and all(f[0:2] == f[2:4] == f[4:6] for f in fills), fills  # greys only
        text = svg_text(svg)
        assert "R 0.62 ***" in text  # the heat map's meaning survives as text: rates and marks
