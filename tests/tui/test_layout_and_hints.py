"""Findings of a user audit: prose wraps to the window, the key bar keeps help and quit and offers only
keys that work, filters that can match nothing say why, Significance says when nothing pairs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.cells import cell_len

from engine.contract.reader import read_manifest
from engine.runfolder import write_json_atomic
from tests.tui.conftest import SIZE, items_list, loaded
from tests.tui.svgtext import svg_text
from tui.app import PrunescopeApp
from tui.model import load_study
from tui.screens.base import key_hints
from tui.screens.dialogs import FlagScreen
from tui.screens.item import ItemScreen
from tui.screens.items import ItemsScreen
from tui.view import Filter, filter_hints, select
from tui.widgets.lines import LinesView

BOX = set("│┃━─┏┓┗┛└┘┡┩╇┳┻┬┴┼╈")


def body_lines(app: PrunescopeApp) -> tuple[list[str], int]:
    """The text of every line of the screen's body, and the cells it shows across."""
    body = app.screen.query_one(LinesView)
    return [body._source(i).text.rstrip() for i in range(body.count)], body.scrollable_content_region.width


def key_bar(app: PrunescopeApp) -> str:
    return svg_text(app.export_screenshot()).splitlines()[-1]


@pytest.mark.asyncio
@pytest.mark.parametrize("screen", ["4", "6"], ids=["significance", "paper"])
async def test_table_notes_wrap_to_the_window_and_rewrap_on_resize(study: Path, screen: str) -> None:
    app = PrunescopeApp([study], stats_glmm=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await loaded(pilot)
        await pilot.press(screen)
        await loaded(pilot)
        for width in (100, 84):
            await pilot.resize_terminal(width, 40)
            await loaded(pilot)
            lines, shown = body_lines(app)
            prose = [line for line in lines if not BOX.intersection(line)]
            assert any(line.startswith("  ") and len(line) > 40 for line in prose), lines  # notes are there
            assert max(cell_len(line) for line in lines) > shown  # a table wider than the window: it scrolls
            too_wide = [line for line in prose if cell_len(line) > shown]
            assert not too_wide, (shown, too_wide)


@pytest.mark.asyncio
async def test_run_info_wraps_long_values_to_the_window(study: Path) -> None:
    run_dir = study / "tiny-llama__wanda-s50"
    manifest = read_manifest(run_dir)
    manifest["remark"] = "a long remark " * 20 + "THE-END"
    write_json_atomic(run_dir / "manifest.json", manifest)
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("5")
        await loaded(pilot)
        for width in (100, 72):
            await pilot.resize_terminal(width, 40)
            await loaded(pilot)
            lines, shown = body_lines(app)
            assert max(cell_len(line) for line in lines) <= shown, shown
            remark = [line for line in lines if "long remark" in line or "THE-END" in line]
            assert len(remark) > 2 and remark[-1].endswith("THE-END")
            assert remark[0].startswith("remark ") and "a long remark" in remark[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("width", [130, 80, 50])
async def test_key_bar_keeps_help_and_quit_and_whole_hints(study: Path, width: int) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await items_list(pilot)
        await pilot.resize_terminal(width, 40)
        await pilot.pause()
        bar = key_bar(app)
        assert cell_len(bar) <= width
        assert bar.split()[:4] == ["?", "help", "q", "quit"], bar
        assert bar.endswith(("export", "…")), bar  # whole hints, then … where some had no room
        wide = key_hints(app.screen, 0).plain  # every hint, at any width
        assert "next/prev discordant" in wide and "flag" in wide and "export" in wide


@pytest.mark.asyncio
async def test_flag_is_offered_only_where_an_item_can_be_flagged(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False, keymap={"app.flag": "F"})
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for key in ("1", "4", "5", "6"):
            await pilot.press(key)
            await loaded(pilot)
            assert "flag" not in key_hints(app.screen).plain, key
            await pilot.press("F")
            await pilot.pause()
            assert not isinstance(app.screen, FlagScreen) and not app._notifications, key
        for key, screen in (("2", ItemsScreen), ("enter", ItemScreen)):
            await pilot.press(key)
            await loaded(pilot)
            assert isinstance(app.screen, screen)
            assert " F  flag" in key_hints(app.screen).plain, key  # remapped by its id
            await pilot.press("F")
            await pilot.pause()
            assert isinstance(app.screen, FlagScreen), key
            await pilot.press("escape")
            await pilot.pause()


def test_filter_hints_name_what_the_study_has(study: Path) -> None:
    s = load_study([study])
    assert filter_hints(s, Filter.parse("lang:de run:wanda-s70 cat:RO trans:BC>RO")) == []
    assert len(select(s, Filter.parse("lang:DE"), set())) == len(select(s, Filter.parse("lang:de"), set())) == 16
    assert filter_hints(s, Filter.parse("lang:DE,xx")) == ["no language 'xx' in this study (languages: de, en, sw)"]
    (hint,) = filter_hints(s, Filter.parse("run:nope"))
    assert hint == "no run 'nope' in this study (runs: wanda-s50, wanda-s70)"
    (hint,) = filter_hints(s, Filter.parse("run:dense"))
    assert hint.startswith("run:dense is the dense run: it has no rows of its own")
    (hint,) = filter_hints(s, Filter.parse("trans:XY"))
    assert hint.startswith("no transition 'XY'")


@pytest.mark.asyncio
async def test_filter_bar_says_why_a_filter_matches_nothing(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("slash", *"lang:xx run:dense", "enter")
        await loaded(pilot)
        text = svg_text(app.export_screenshot())
        assert "0 of 48 rows" in text
        assert "no language 'xx' in this study (languages: de, en, sw)" in text
        assert "run:dense is the dense run" in text


@pytest.mark.asyncio
@pytest.mark.parametrize("keep", ["study", "run"])
async def test_significance_says_there_is_no_dense_run_to_pair_with(study: Path, keep: str) -> None:
    shutil.rmtree(study / "tiny-llama__dense")
    if keep == "run":
        shutil.rmtree(study / "tiny-llama__wanda-s70")
    source = study if keep == "study" else study / "tiny-llama__wanda-s50"
    app = PrunescopeApp([source], stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("4")
        await loaded(pilot)
        text = " ".join(svg_text(app.export_screenshot()).split())
        assert "No dense run to pair with: the tests of pruned vs dense have no rows." in text
        assert "wanda-s50" in text.split("The study holds")[1]


@pytest.mark.parametrize("width", [60, 80, 130])
def test_item_list_keeps_the_answer_readable_and_marks_every_cut(width: int) -> None:
    """At 80 columns the fixed columns used to take the whole width (the answer got 2 cells, the flag
    column fell off); cells in scripts with combining marks were cut without '…'."""
    from rich.cells import cell_len
    from rich.style import Style

    from tui.widgets.item_table import COLUMNS, ItemTable

    table = ItemTable(lambda i: [], lambda i: False)
    table.label_width = 24
    widths = table._widths(width)
    answer = widths[[c[1] for c in COLUMNS].index("answer")]
    assert answer >= max(12, width // 4) and sum(w + 1 for w in widths) <= width
    thai = "กรุงเทพมหานครอมรรัตนโกสินทร์มหินทรายุธยามหาดิลกภพ"  # combining marks: fewer cells than code points
    hindi = "महाराष्ट्र के वर्धा जिले में सेवाग्राम आश्रम " * 4
    texts = ["demo__wanda-s50", "th", "x/th/1", "BC→RO", thai, hindi, ""]
    segments = list(table._line(texts, width, Style()))
    assert sum(cell_len(seg.text) for seg in segments) == width
    for text, seg, w in zip(texts, segments, widths):
        shown = seg.text[:-1]  # each cell ends in a space
        assert cell_len(shown) == w
        assert shown.endswith("…") == (cell_len(text) > w), (text, shown)


@pytest.mark.asyncio
async def test_help_is_laid_out_again_when_the_terminal_is_resized(study: Path) -> None:
    """The keys table was laid out once, at the size the terminal had when `?` was pressed."""
    from tui.widgets.lines import LinesView

    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=(130, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("2", "question_mark")
        await pilot.pause()

        def widest() -> int:
            view = app.screen.query_one("#help-lines", LinesView)
            return max(view._source(n).cell_length for n in range(view.virtual_size.height))

        wide = widest()
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert widest() <= int(60 * 0.9) - 6 < wide


def test_long_generations_are_shown_whole_on_the_item_screen() -> None:
    """An imported harness output of 1,500 characters was cut at 600 (the candidate-shown one at 400)."""
    from tui import render
    from tui.widgets.lines import render_strips

    text = " ".join(f"w{i:04d}" for i in range(250))  # 1,499 characters
    rec = {"open": {"text": text, "correct": False}, "shown": {"text": text[::-1], "correct": True}, "mc": {}}
    lines = "".join(s.text for s in render_strips([render.outputs_table([("dense", rec)])], 130))
    assert "w0249" in lines and "0000w" in lines and "chars]" not in lines
