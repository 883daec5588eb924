"""Items: the rows of a cell or filter with the dense → run transition, gold answer and the run's answer."""

from __future__ import annotations

import numpy as np
from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import Static

from engine.contract.labels import discordant, transition_label
from engine.safe_text import inert
from tui.model import several_models
from tui.screens.base import FLAG, UNFLAG, DataScreen, Export
from tui.view import SORT_KEYS, Filter, filter_hints, pair_values, position, select, sort_order
from tui.widgets.item_table import ItemTable

PREFETCH_AFTER_S = 0.2


class ItemsScreen(DataScreen):
    """The item list (virtual: only visible rows are rendered)."""

    _prefetch_timer: Timer | None = None
    _shown_for: tuple | None = None  # what the rows on show were selected from (`_inputs`)

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
        FLAG,
        UNFLAG,
    ]

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="filterbar", classes="message")
        yield Static(id="message", classes="message")
        app = self.papp
        yield ItemTable(app.row_cells, app.is_discordant, id="table")
        yield self.key_bar()

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
        table = self.query_one(ItemTable)
        reference = "base" if app.study.baseline else "dense"
        label_width = max((cell_len(inert(label, 200)) for label in app.study.labels), default=0)
        middle = several_models(app.study.runs)  # labels name models: cut them in the middle
        if (table.reference, table.label_width, table.cut_middle) != (reference, label_width, middle):
            table.reference, table.label_width, table.cut_middle = reference, label_width, middle
            table.refresh()
        if self._shown_for != self._inputs():
            self._select()
            return
        # Back on an unchanged list (from an item): no new selection, the cursor on the item left open.
        at = position(table.rows, app.items_state.current)
        if at is not None and at != table.cursor:
            table.move_to(at)

    def _inputs(self) -> tuple:
        """What the selection depends on: the study's state, the filter, the sort and the flagged items."""
        app = self.papp
        state, study = app.items_state, app.study
        return (
            id(study),
            study.generation if study else 0,
            state.query,
            state.sort_key,
            state.reverse,
            len(app.flags.notes),
        )

    def _select(self) -> None:
        """Select and sort the rows in a worker (a sort of 100k rows would hold up the keys)."""
        self._selection(self._inputs())

    @work(exclusive=True, group="select", thread=True, description="select")
    def _selection(self, inputs: tuple) -> None:
        app = self.papp
        study, state = app.study, app.items_state
        if study is None:
            return
        try:
            flt = Filter.parse(state.query)
        except ValueError as exc:
            self.app.call_from_thread(self._show, np.zeros(0, dtype=np.int64), [f"filter error: {exc}"], inputs)
            return
        try:
            idx = select(study, flt, app.flags.flagged)
        except ValueError as exc:  # a backtracking regex past its time
            self.app.call_from_thread(self._show, np.zeros(0, dtype=np.int64), [f"filter error: {exc}"], inputs)
            return
        hints = filter_hints(study, flt)
        if state.sort_key:
            idx = sort_order(study, idx, state.sort_key, state.reverse, app.flags.flagged)
        elif state.reverse:  # file order, last line first
            idx = idx[::-1].copy()
        self.app.call_from_thread(self._show, idx, hints, inputs)

    def _show(self, idx: np.ndarray, errors: list[str], inputs: tuple) -> None:
        """Show the rows `idx`; `errors`: what is wrong with the filter, or why terms of it match nothing."""
        if not self.is_attached:  # the screen was closed while the selection ran
            return
        self._shown_for = inputs
        app = self.papp
        state = app.items_state
        table = self.query_one(ItemTable)
        table.sort_key, table.sort_reverse = state.sort_key, state.reverse
        at = position(idx, state.current)
        table.set_rows(idx, 0 if at is None else at, fresh=at is None)
        state.rows = idx
        total = len(app.study.pairs) if app.study else 0
        bar = Text.assemble(
            ("filter: ", "bold"),
            inert(state.query or "(none)", 200),
            f"   {len(idx)} of {total} rows",
            "   sort: ",
            f"{state.sort_key or 'file order'}{' ▼' if state.reverse else ''}",
            self._key_hints(),
        )
        for error in errors:
            bar.append("\n" + inert(error, 400), style="bold red")
        self.query_one("#filterbar", Static).update(bar)
        if not total and app.study is not None:
            self.query_one("#message", Static).update(
                Text.assemble(("No item rows. ", "bold"), app.problem_text() or "The runs hold no outcome lines yet.")
            )

    def _key_hints(self) -> str:
        """The filter bar's keys as they are bound now (a --keymap remaps them)."""
        keys: dict[str, str] = {}
        for active in self.active_bindings.values():
            if active.binding.id:
                keys.setdefault(active.binding.id, self.app.get_key_display(active.binding))

        def k(binding_id: str) -> str:
            return keys.get(binding_id, "?")

        return (
            f"   {k('app.filter')} filter  {k('items.sort')} sort  {k('items.reverse')} reverse  "
            f"{k('items.next_discordant')} {k('items.prev_discordant')} discordant  {k('items.open')} open"
        )

    def on_item_table_opened(self, event: ItemTable.Opened) -> None:
        self.papp.open_item(event.index)

    def on_item_table_cursor_moved(self, event: ItemTable.CursorMoved) -> None:
        self.papp.items_state.current = event.index
        if self._prefetch_timer is not None:
            self._prefetch_timer.stop()
        if event.index is not None:  # the cursor resting on a row: draw its item ahead of enter
            index = event.index
            self._prefetch_timer = self.set_timer(PREFETCH_AFTER_S, lambda: self.papp.prefetch_item(index))

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
        # From a list just shown, `]` may land on the row under the cursor (the first row).
        n = self.papp.next_discordant(table.rows, table.cursor, step, include_current=table.fresh)
        if n is None:
            self.notify("no further discordant item in this list", timeout=2)
        else:
            table.move_to(n)

    def export_view(self) -> Export | None:
        study = self.papp.study
        if study is None:
            return None
        idx = self.query_one(ItemTable).rows
        p = study.pairs
        uids = pair_values(study, idx, "item_uid").to_pylist()
        gold = pair_values(study, idx, "answer", items=True).to_pylist()
        answers = pair_values(study, idx, "open_text").to_pylist()
        shown = pair_values(study, idx, "shown_correct").to_pylist()  # None (empty in the CSV): no such generation
        flagged = self.papp.flags.notes
        rows = [
            [
                study.runs[p.run[i]].name,
                study.languages[p.lang[i]] if p.lang[i] >= 0 else "?",
                uid,
                transition_label(int(p.transition[i])),
                bool(discordant(int(p.transition[i]))),
                g or "",
                a or "",
                s,
                uid in flagged,
            ]
            for i, uid, g, a, s in zip(idx.tolist(), uids, gold, answers, shown)
        ]
        return Export(
            "items",
            ["run", "language", "item_uid", "transition", "discordant", "gold", "answer", "shown_correct", "flagged"],
            rows,
        )
