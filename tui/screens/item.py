"""Item: one item across every run — question, options with scores, outputs, gold trace, probes."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from engine.safe_text import inert
from tui import render
from tui.screens.base import BodyScreen, Export


class ItemScreen(BodyScreen):
    """Shows the item of pair `index`; `]` / `[` step through the discordant items of the list."""

    SCREEN_NAME = "3 Item"
    BINDINGS = [
        Binding("right_square_bracket", "discordant(1)", "next discordant", key_display="]", id="item.next_discordant"),
        Binding("left_square_bracket", "discordant(-1)", "prev discordant", key_display="[", id="item.prev_discordant"),
    ]

    def __init__(self, index: int) -> None:
        super().__init__()
        self.pair_index = index
        self.records: list[tuple[str, float, dict[str, Any]]] = []

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="message", classes="message")
        with VerticalScroll(id="body"):
            for part in ("question", "options", "outputs", "trace", "probes"):
                yield Static(id=part, classes="part")
        yield Footer()

    def refresh_data(self) -> None:
        app = self.papp
        study = app.study
        if study is None or self.pair_index >= len(study.pairs):
            self.set_title()
            self.query_one("#message", Static).update("No such item (the study is loading or changed).")
            return
        p = study.pairs
        uid = study.uid(int(p.run[self.pair_index]), int(p.row[self.pair_index]))
        flag = app.flags.notes.get(uid)
        self.set_title(inert(uid, 120))
        self.query_one("#message", Static).update(
            Text.assemble(("⚑ flagged: ", "bold"), inert(" | ".join(flag), 400)) if flag else ""
        )
        self.records, problems = app.item_records(uid)
        named = [(name, rec) for name, _, rec in self.records]
        item = study.item(uid)
        self.query_one("#question", Static).update(render.item_block(uid, item))
        if problems:
            self.query_one("#message", Static).update(Text(inert("; ".join(problems), 600), style="bold red"))
        if not named:
            for part in ("options", "outputs", "trace", "probes"):
                self.query_one(f"#{part}", Static).update("")
            return
        self.query_one("#options", Static).update(render.options_table(item, named))
        self.query_one("#outputs", Static).update(render.outputs_table(named))
        self.query_one("#trace", Static).update(render.trace_block(self.records))
        self.query_one("#probes", Static).update(render.probes_block(named))

    def action_discordant(self, step: int) -> None:
        app = self.papp
        rows = app.items_state.rows
        if rows is None or not len(rows):
            self.notify("no item list to step through (open one from the Items screen)", timeout=2)
            return
        here = np.flatnonzero(rows == self.pair_index)
        n = app.next_discordant(rows, int(here[0]) if len(here) else -1 if step > 0 else len(rows), step)
        if n is None:
            self.notify("no further discordant item in this list", timeout=2)
            return
        self.pair_index = int(rows[n])
        app.items_state.current = self.pair_index
        self.query_one("#body", VerticalScroll).scroll_home(animate=False)
        self.refresh_data()

    def export_view(self) -> Export | None:
        if not self.records:
            return None
        return Export("item", records=[{"run": name, **rec} for name, _, rec in self.records])
