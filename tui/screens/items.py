"""Items: the rows of a cell or filter with the dense → run transition, gold answer and the run's answer."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from engine.safe_text import inert
from tui.model import SORT_KEYS, Filter, discordant, select, sort_order, transition_label
from tui.screens.base import DataScreen, Export
from tui.widgets.item_table import ItemTable


class ItemsScreen(DataScreen):
    """The item list (virtual: only visible rows are rendered)."""

    SCREEN_NAME = "2 Items"
    BINDINGS = [
        Binding("s", "sort", "sort column", id="items.sort"),
        Binding("r", "reverse", "reverse sort", id="items.reverse"),
        Binding(
            "right_square_bracket", "discordant(1)", "next discordant", key_display="]", id="items.next_discordant"
        ),
        Binding(
            "left_square_bracket", "discordant(-1)", "prev discordant", key_display="[", id="items.prev_discordant"
        ),
    ]

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="filterbar", classes="message")
        yield Static(id="message", classes="message")
        app = self.papp
        yield ItemTable(app.row_cells, app.is_discordant, id="table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ItemTable).focus()

    def refresh_data(self) -> None:
        app = self.papp
        self.set_title()
        msg = self.query_one("#message", Static)
        if app.study is None:
            msg.update(Text("Loading …", style="bold"))
            return
        msg.update(app.problem_text())
        self._select()

    @work(exclusive=True, group="select", thread=True)
    def _select(self) -> None:
        app = self.papp
        study, state = app.study, app.items_state
        if study is None:
            return
        try:
            flt = Filter.parse(state.query)
        except ValueError as exc:
            self.app.call_from_thread(self._show, np.zeros(0, dtype=np.int64), f"filter error: {exc}")
            return
        idx = select(study, flt, app.flags.flagged)
        if state.sort_key:
            idx = sort_order(study, idx, state.sort_key, state.reverse, app.flags.flagged)
        self.app.call_from_thread(self._show, idx, "")

    def _show(self, idx: np.ndarray, error: str) -> None:
        if not self.is_attached:  # the screen was closed while the selection ran
            return
        app = self.papp
        state = app.items_state
        table = self.query_one(ItemTable)
        table.sort_key, table.sort_reverse = state.sort_key, state.reverse
        cursor = 0
        if state.current is not None and len(idx):
            hit = np.flatnonzero(idx == state.current)
            cursor = int(hit[0]) if len(hit) else 0
        table.set_rows(idx, cursor)
        state.rows = idx
        total = len(app.study.pairs) if app.study else 0
        bar = Text.assemble(
            ("filter: ", "bold"),
            inert(state.query or "(none)", 200),
            f"   {len(idx)} of {total} rows",
            "   sort: ",
            f"{state.sort_key or 'file order'}{' ▼' if state.reverse else ''}",
            "   / filter  s sort  r reverse  ] [ discordant  enter open",
        )
        if error:
            bar.append("   " + inert(error, 300), style="bold red")
        self.query_one("#filterbar", Static).update(bar)
        if not total and app.study is not None:
            self.query_one("#message", Static).update(
                Text.assemble(("No item rows. ", "bold"), app.problem_text() or "The runs hold no outcome lines yet.")
            )

    def on_item_table_opened(self, event: ItemTable.Opened) -> None:
        self.papp.open_item(event.index)

    def on_item_table_cursor_moved(self, event: ItemTable.CursorMoved) -> None:
        self.papp.items_state.current = event.index

    def action_sort(self) -> None:
        state = self.papp.items_state
        keys = ("",) + SORT_KEYS
        state.sort_key = keys[(keys.index(state.sort_key) + 1) % len(keys)]
        self._select()

    def action_reverse(self) -> None:
        self.papp.items_state.reverse = not self.papp.items_state.reverse
        self._select()

    def action_discordant(self, step: int) -> None:
        table = self.query_one(ItemTable)
        n = self.papp.next_discordant(table.rows, table.cursor, step)
        if n is None:
            self.notify("no further discordant item in this list", timeout=2)
        else:
            table.move_to(n)

    def export_view(self) -> Export | None:
        study = self.papp.study
        if study is None:
            return None
        table = self.query_one(ItemTable)
        p = study.pairs
        disc = discordant(p)
        rows = []
        for i in table.rows.tolist():
            run = study.runs[p.run[i]]
            uid = run.uids[p.row[i]]
            item = study.items.get(uid, {})
            rows.append(
                [
                    run.name,
                    run.languages[p.row[i]],
                    uid,
                    transition_label(p.transition[i]),
                    bool(disc[i]),
                    item.get("answer", ""),
                    run.open_text[p.row[i]],
                    run.shown_correct(p.row[i]),  # empty in the CSV when there is none
                    uid in self.papp.flags.flagged,
                ]
            )
        return Export(
            "items",
            ["run", "language", "item_uid", "transition", "discordant", "gold", "answer", "shown_correct", "flagged"],
            rows,
        )
