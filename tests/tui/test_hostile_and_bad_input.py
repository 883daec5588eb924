"""Untrusted text renders inert; damaged or odd studies open and say what is wrong where the data would be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runfolder import dumps_line, sha256_text
from tests.tui.conftest import SIZE, loaded
from tests.tui.svgtext import svg_text
from tui.app import PrunescopeApp
from tui.screens.item import ItemScreen
from tui.screens.items import ItemsScreen
from tui.widgets.item_table import ItemTable

pytestmark = pytest.mark.asyncio

MARKUP = "[link=http://evil.example]x[/link]"
HOSTILE = (
    MARKUP + " [bold red]loud[/] \x1b[31mRED\x1b[0m \x1b]52;c;ZXZpbA==\x07 \x1b]8;;http://evil\x1b\\a\x1b]8;;\x1b\\ "
    "\u202eevil\u202c \x9b31m \x00\x08 " + "A" * 100_000
)
BAD_CHARS = ("\x1b", "\x07", "\x9b", "\u202e", "\x00", "\x08")
UID = "synthetic/default/test/q000002/de"


def _rewrite(path: Path, fn) -> None:
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(dumps_line(fn(r)) for r in recs), encoding="utf-8")


def make_hostile(study: Path) -> None:
    """Hostile strings in one item's question and gold aliases, in every run's outputs and probes, and a manifest."""
    new_hash = {}

    def item(rec):
        if rec["item_uid"] == UID:
            rec["question"] = HOSTILE
            rec["context"] = HOSTILE
            rec["aliases"] = [HOSTILE[:200]]
            body = {k: v for k, v in rec.items() if k != "content_hash"}
            rec["content_hash"] = new_hash[UID] = sha256_text(dumps_line(body))
        return rec

    def outcome(rec):
        if rec["item_uid"] == UID:
            rec["content_hash"] = new_hash[UID]
            rec["open"]["text"] = HOSTILE
            rec["shown"]["text"] = HOSTILE
            rec["open"]["correct"] = False
            rec["category"] = "recognition_only" if rec["mc"]["correct"] else "both_wrong"
            rec["gold_trace"]["tokens"] = [HOSTILE[:300], "\x1b]52;c;QUJD\x07"]
            rec["probes"] = {
                "beam": {
                    "k": 2,
                    "beams": [{"text": HOSTILE, "score": -1.0, "correct": False}],
                    "hit_top": False,
                    "hit_any": False,
                },
                "sampling": {
                    "n": 1,
                    "temperature": 0.7,
                    "top_p": 1.0,
                    "seed": 0,
                    "samples": [{"text": HOSTILE, "correct": False}],
                    "hits": 0,
                },
                "one_shot": {"example_uid": HOSTILE[:100], "text": HOSTILE, "correct": False},
            }
        return rec

    for run in sorted(study.glob("tiny-llama__*")):
        _rewrite(run / "items.jsonl", item)
        _rewrite(run / "outcomes.jsonl", outcome)
    manifest = json.loads((study / "tiny-llama__wanda-s70" / "manifest.json").read_text(encoding="utf-8"))
    manifest["prompts"]["templates"]["open"] = HOSTILE
    (study / "tiny-llama__wanda-s70" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def assert_inert(svg: str, escapes_shown: bool = True) -> str:
    for ch in BAD_CHARS:
        assert ch not in svg, repr(ch)
    assert 'href="http://evil' not in svg
    text = svg_text(svg)
    if escapes_shown:
        assert "\\x1b" in text  # the escape is shown, visibly
    return text


async def test_hostile_strings_render_inert(study: Path) -> None:
    make_hostile(study)
    app = PrunescopeApp([study], stats_glmm=False, run_stats=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.study.all_problems == []
        await pilot.press("slash", *"q000002/de", "enter")
        await loaded(pilot)
        assert isinstance(app.screen, ItemsScreen) and len(app.screen.query_one(ItemTable).rows) == 2
        text = assert_inert(app.export_screenshot(), escapes_shown=False)
        assert MARKUP in text  # markup shown literally, not interpreted
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ItemScreen)
        for _ in range(8):  # every part of the item screen, top to bottom
            assert_inert(app.export_screenshot(), escapes_shown=False)
            await pilot.press("pagedown")
        assert "chars]" in svg_text(app.export_screenshot()) or "…" in svg_text(app.export_screenshot())
        await pilot.press("g")
        assert MARKUP in assert_inert(app.export_screenshot())
        await pilot.press("5", "G")
        await pilot.pause()
        assert_inert(app.export_screenshot(), escapes_shown=False)


async def _open(paths: list[Path]) -> tuple[PrunescopeApp, list[str]]:
    """Open the app, visit every screen, return the screen text of each."""
    app = PrunescopeApp(paths, stats_glmm=False)
    texts = []
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for key in ("1", "2", "4", "5"):
            await pilot.press(key)
            await loaded(pilot)
            texts.append(await _settled_text(pilot))
    return app, texts


async def _settled_text(pilot, looks: int = 3) -> str:
    """The screen's text once `looks` looks in a row agree, each after the app went idle (a table
    filled from a worker's result lands on the event loop after the worker ends, and a DataTable
    sizes its new rows when it is next idle; a busy machine can take a few frames for either)."""
    text, same = "", 0
    for _ in range(100):
        await pilot.pause()
        await pilot.pause(0.02)
        again = svg_text(pilot.app.export_screenshot())
        same = same + 1 if again == text else 1
        text = again
        if same >= looks:
            break
    return text


async def test_empty_study(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _, (overview, items, sig, runs) = await _open([tmp_path / "empty"])
    assert "no run folders here" in overview
    assert "No item rows" in items
    assert "Significance tests unavailable: no runs to test" in sig
    assert "No run folders" in runs


async def test_torn_and_corrupt_lines(study: Path) -> None:
    path = study / "tiny-llama__wanda-s50" / "outcomes.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(
        "".join(lines[:4]) + "\x1b]52;c;bad\x07{oops\n" + "".join(lines[4:]) + lines[0][:50], encoding="utf-8"
    )
    _app, (overview, items, sig, runs) = await _open([study])
    assert "corrupt line" in overview and "outcomes.jsonl:5" in overview
    assert "torn last line" in overview
    assert "24 lines" in overview  # every good line is still shown
    assert "48 of 48 rows" in items
    assert "Recognition-only errors" in sig  # stats skip the bad line too and still test
    assert "\x1b" not in "".join((overview, items, sig, runs))


async def test_missing_manifest(study: Path) -> None:
    (study / "tiny-llama__wanda-s50" / "manifest.json").unlink()
    _, (overview, _items, sig, runs) = await _open([study])
    assert "manifest.json: missing" in overview and "(no manifest)" in overview, overview
    assert "Significance tests unavailable" in sig and "manifest.json" in sig
    assert "missing or unreadable" in runs or "manifest.json: missing" in runs


async def test_runs_that_do_not_pair(study: Path) -> None:
    def other_items(rec):
        rec["item_uid"] = rec["item_uid"].replace("synthetic/", "other/")
        return rec

    for name in ("items.jsonl", "outcomes.jsonl"):
        _rewrite(study / "tiny-llama__wanda-s50" / name, other_items)
    _, (overview, items, sig, _runs) = await _open([study / "tiny-llama__dense", study / "tiny-llama__wanda-s50"])
    assert "tiny-llama__wanda-s50 and tiny-llama__dense are not paired: items 24 only in" in overview
    assert "No item rows" in items and "not paired" in items
    assert "Significance tests unavailable" in sig and "not paired" in sig
