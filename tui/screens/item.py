"""Item: one item across every run — question, options with scores, outputs, gold trace, probes.

Installed once and updated in place: the records are read and drawn into lines in a worker, and the
body shows them through the Line API (only the visible lines are drawn).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.strip import Strip
from textual.widgets import Footer, Static

from engine.safe_text import inert
from tui import render
from tui.screens.base import DataScreen, Export
from tui.widgets.lines import LinesView, render_strips


class ItemScreen(DataScreen):
    """Shows the item of pair `pair_index`; `]` / `[` step through the discordant items of the list."""

    SCREEN_NAME = "3 Item"
    BINDINGS = [
        Binding("right_square_bracket", "discordant(1)", "next discordant", key_display="]", id="item.next_discordant"),
        Binding("left_square_bracket", "discordant(-1)", "prev discordant", key_display="[", id="item.prev_discordant"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pair_index: int | None = None
        self.records: list[tuple[str, float, dict[str, Any]]] = []
        self._shown: tuple[int, int] | None = None  # (pair index, width) on screen

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="message", classes="message")
        yield LinesView(id="body")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(LinesView).focus()

    def show(self, index: int) -> None:
        """Show pair `index` (now if the screen is on display, else when it is)."""
        self.pair_index = index
        if self.is_current:
            self.refresh_data()

    def refresh_data(self) -> None:
        app = self.papp
        study = app.study
        msg = self.query_one("#message", Static)
        if study is None or self.pair_index is None or self.pair_index >= len(study.pairs):
            self.set_title()
            msg.update("No such item (the study is loading or changed).")
            return
        p = study.pairs
        uid = study.uid(int(p.run[self.pair_index]), int(p.row[self.pair_index]))
        flag = app.flags.notes.get(uid)
        self.set_title(inert(uid, 120))
        msg.update(Text.assemble(("⚑ flagged: ", "bold"), inert(" | ".join(flag), 400)) if flag else "")
        width = max(40, self.size.width - 2)
        if self._shown != (self.pair_index, width):
            self._draw(self.pair_index, uid, width)

    @work(thread=True, exclusive=True, group="item")
    def _draw(self, index: int, uid: str, width: int) -> None:
        app = self.papp
        assert app.study is not None
        records, problems = app.item_records(uid)
        item = app.study.item(uid)
        parts: list[RenderableType] = [render.item_block(uid, item)]
        if records:
            named = [(name, rec) for name, _, rec in records]
            parts += [
                render.options_table(item, named),
                render.outputs_table(named),
                render.trace_block(records),
                render.probes_block(named),
            ]
        spaced: list[RenderableType] = []
        for part in parts:
            spaced += [part, Text("")]
        lines = render_strips(spaced, width)
        app.call_from_thread(self._drawn, index, width, records, problems, lines)

    def _drawn(
        self,
        index: int,
        width: int,
        records: list[tuple[str, float, dict[str, Any]]],
        problems: list[str],
        lines: list[Strip],
    ) -> None:
        if index != self.pair_index:  # another item was asked for meanwhile
            return
        self.records, self._shown = records, (index, width)
        body = self.query_one(LinesView)
        body.set_lines(lines)
        body.scroll_home(animate=False)
        if problems:
            self.query_one("#message", Static).update(Text(inert("; ".join(problems), 600), style="bold red"))

    def on_resize(self) -> None:
        if self.is_current:
            self.refresh_data()

    def action_discordant(self, step: int) -> None:
        app = self.papp
        rows = app.items_state.rows
        if rows is None or not len(rows) or self.pair_index is None:
            self.notify("no item list to step through (open one from the Items screen)", timeout=2)
            return
        here = np.flatnonzero(rows == self.pair_index)
        n = app.next_discordant(rows, int(here[0]) if len(here) else -1 if step > 0 else len(rows), step)
        if n is None:
            self.notify("no further discordant item in this list", timeout=2)
            return
        app.items_state.current = int(rows[n])
        self.show(int(rows[n]))

    def export_view(self) -> Export | None:
        if not self.records:
            return None
        return Export("item", records=[{"run": name, **rec} for name, _, rec in self.records])
