"""`t` on the Item screen: every output of the item whole (the screen cuts them), inert, in a scrollable dialog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.cells import cell_len

from engine.runfolder import dumps_line
from engine.safe_text import inert
from tests.tui.conftest import SIZE, loaded
from tests.tui.svgtext import svg_text
from tui.app import PrunescopeApp
from tui.screens.fulltext import FullTextScreen, as_strip, text_lines
from tui.screens.item import ItemScreen
from tui.widgets.lines import LinesView

UID = "synthetic/default/test/q000002/de"
LONG = "START " + "loop " * 200_000 + "THE END"  # a degenerate output of 1,000,013 characters
HOSTILE = "[bold red]x[/] \x1b[31mRED\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \u202eevil\u202c \u200bhid "
LONG_HOSTILE = HOSTILE + "y" * 3000 + " " + HOSTILE + "THE END"


def set_open_text(study: Path, run: str, text: str) -> None:
    """Item UID's open generation in run folder `run` becomes `text`."""
    path = study / run / "outcomes.jsonl"
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    for rec in recs:
        if rec["item_uid"] == UID:
            rec["open"]["text"] = text
    path.write_text("".join(map(dumps_line, recs)), encoding="utf-8")


async def open_item(pilot) -> ItemScreen:
    await loaded(pilot)
    await pilot.press("slash", *UID.split("/", 3)[-1], "enter")
    await loaded(pilot)
    await pilot.press("enter")
    await loaded(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ItemScreen)
    return screen


def dialog_lines(dialog: FullTextScreen) -> list[str]:
    view = dialog.query_one(LinesView)
    return [view._source(i).text for i in range(view.count)]


def text_of(dialog: FullTextScreen, heading: str) -> tuple[int, list[str]]:
    """The line of the heading of the text `heading`, and the lines of that text."""
    k = next(i for i, (h, _) in enumerate(dialog.texts) if h == heading)
    start, end = dialog.starts[k], dialog.starts[k + 1]
    return start, dialog_lines(dialog)[start + 1 : end - 1]  # under the heading, above the blank line


def shown_lines(dialog: FullTextScreen) -> str:
    """The dialog's lines in its window."""
    view = dialog.query_one(LinesView)
    top = round(view.scroll_offset.y)
    return "\n".join(dialog_lines(dialog)[top : top + view.scrollable_content_region.height])


def screen_text(app: PrunescopeApp) -> str:
    return svg_text(app.export_screenshot())


def test_text_lines_fold_to_the_width_and_keep_every_character() -> None:
    texts = [("dense · open generation", "日本語" * 30 + "\n\tx\r\ny"), ("dense · one-shot", "")]
    batches = list(text_lines(texts, 20))
    assert len(batches) == 1
    lines, starts = [as_strip(line).text for line in batches[0][0]], batches[0][1]
    assert starts == [0, 14] and lines[:2] == ["dense · open generat", "ion · 96 characters"]  # headings fold too
    assert lines[2:11] == ["日本語日本語日本語日", "本語日本語日本語日本", "語日本語日本語日本語"] * 3  # 2 cells each
    assert lines[11:14] == ["\\tx", "y", ""]  # a tab escaped as on the Item screen; a blank line after each text
    assert lines[14:] == ["dense · one-shot · 0", " characters", "(empty)", ""]
    assert all(cell_len(line) <= 20 for line in lines)
    more = [*texts, ("x", HOSTILE * 3), ("y", "ab\r\n日\tc\n" * 20)]
    in_pieces = list(text_lines(more, 20, chunk=7))  # made inert and folded 7 characters at a time
    assert len(in_pieces) == 6  # batches of 7, 14, 28, 56, 112 characters, then the rest
    whole = next(text_lines(more, 20))
    assert [x for b in in_pieces for x in b[0]] == whole[0] and [x for b in in_pieces for x in b[1]] == whole[1]


@pytest.mark.asyncio
async def test_a_million_character_output_is_shown_whole(study: Path) -> None:
    set_open_text(study, "tiny-llama__wanda-s50", LONG)
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        item = await open_item(pilot)
        body = item.query_one(LinesView)
        cut = "\n".join(body._source(i).text for i in range(body.count))
        assert "START loop" in cut and "THE END" not in cut  # the Item screen cuts it
        assert " t  full texts " in screen_text(app).splitlines()[-1]  # the key bar offers the key
        await pilot.press("t")
        await loaded(pilot)
        dialog = app.screen
        assert isinstance(dialog, FullTextScreen) and dialog.uid == UID
        start, lines = text_of(dialog, "wanda-s50 · open generation")
        assert dialog_lines(dialog)[start] == "wanda-s50 · open generation · 1,000,013 characters"
        assert "".join(lines) == LONG  # every character, in order
        view = dialog.query_one(LinesView)
        assert max(map(cell_len, dialog_lines(dialog))) <= view.scrollable_content_region.width  # nothing cut
        assert shown_lines(dialog).startswith("dense · open generation")  # the reference run's texts first
        for _ in range(dialog.starts.index(start)):  # ] from one heading to the next
            await pilot.press("right_square_bracket")
        assert round(view.scroll_offset.y) == start and "\nSTART loop loop" in shown_lines(dialog)
        await pilot.press("right_square_bracket", "k", "k")  # the next text's heading, then two lines up
        assert "loop THE END" in shown_lines(dialog) and "loop THE END" in screen_text(app)
        await pilot.press("left_square_bracket", "G", "g")
        assert round(view.scroll_offset.y) == 0
        await pilot.press("t")  # closes
        await pilot.pause()
        assert app.screen is item


@pytest.mark.asyncio
async def test_hostile_text_is_shown_inert_and_whole(study: Path) -> None:
    for run in ("tiny-llama__dense", "tiny-llama__wanda-s50"):
        set_open_text(study, run, LONG_HOSTILE)
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_item(pilot)
        await pilot.press("t")
        await loaded(pilot)
        dialog = app.screen
        assert isinstance(dialog, FullTextScreen)
        _, lines = text_of(dialog, "dense · open generation")
        whole = "".join(lines)
        assert whole == inert(LONG_HOSTILE, None) and whole.endswith("THE END")  # nothing cut
        assert whole.count("[bold red]x[/]") == 2 and whole.count("\\x1b]8;;http://x\\x1b\\link") == 2
        assert "\\u202eevil\\u202c \\u200bhid" in whole
        shown = []
        for keys in ((), ("pagedown",), ("right_square_bracket", "k", "k")):  # the text's top, middle and end
            await pilot.press(*keys)
            svg = app.export_screenshot()
            assert not any(ch in svg for ch in "\x1b\u202e\u202c\u200b") and 'href="http://x' not in svg
            shown.append(svg_text(svg))
        assert "[bold red]x[/] \\x1b[31mRED\\x1b[0m \\x1b]8;;http://x\\x1b\\link" in shown[0]
        assert "THE END" in shown[2]


@pytest.mark.asyncio
async def test_the_key_is_listed_by_help_and_remapped_by_id(study: Path) -> None:
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False, keymap={"item.full_text": "o"})
    async with app.run_test(size=SIZE) as pilot:
        item = await open_item(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = screen_text(app)
        assert "full texts" in help_text and "item.full_text" in help_text
        await pilot.press("escape", "t")
        await pilot.pause()
        assert app.screen is item  # t is no longer the key
        await pilot.press("o")
        await loaded(pilot)
        assert isinstance(app.screen, FullTextScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert "fulltext.close" in screen_text(app) and "fulltext.next" in screen_text(app)
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert app.screen is item
