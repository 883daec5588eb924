"""Item: one item across every run — question, options with scores, outputs, gold trace, probes.

Installed once and updated in place: the records are read and drawn into lines in a worker, and the
body shows them through the Line API (only the visible lines are drawn). Long outputs are cut here
(`render.OUTPUT_CHARS`, `render.PROBE_CHARS`); `t` shows them whole (`tui.screens.fulltext`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.strip import Strip
from textual.widgets import Static
from textual.worker import get_current_worker

from engine.contract.labels import discordant, transition_label
from engine.safe_text import inert
from tui import render, view
from tui.model import NO_REF, Study
from tui.screens.base import FLAG, UNFLAG, Export, LinesScreen
from tui.screens.fulltext import FullTextScreen, full_texts
from tui.widgets.lines import WIDE, LinesView, render_strips


@dataclass
class Drawn:
    """An item drawn for the screen: its records (for export), problems reading them, its lines."""

    records: list[tuple[str, float, dict[str, Any]]]
    problems: list[str]
    lines: list[Strip]


class ItemScreen(LinesScreen):
    """Shows the item of pair `pair_index`; `]` / `[` step through the discordant items of the list, `t`
    opens its outputs uncut."""

    SCREEN_NAME = "3 Item"
    BINDINGS = [
        Binding("right_square_bracket", "discordant(1)", "next discordant", key_display="]", id="item.next_discordant"),
        Binding("left_square_bracket", "discordant(-1)", "prev discordant", key_display="[", id="item.prev_discordant"),
        Binding("t", "full_text", "full texts", id="item.full_text"),
        FLAG,
        UNFLAG,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pair_index: int | None = None
        self.records: list[tuple[str, float, dict[str, Any]]] = []
        self._shown: tuple[int, int] | None = None  # (pair index, width) on screen
        self._drawn_items: OrderedDict[tuple[int, int, int], Drawn] = OrderedDict()  # recent and prefetched

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="row", classes="message")  # which run's row is open (`]` may step to another run)
        yield Static(id="message", classes="message")
        yield LinesView(id="body")
        yield self.key_bar()

    def show(self, index: int) -> None:
        """Show pair `index` (now if the screen is on display, else when it is)."""
        self.pair_index = index
        if self.is_current:
            self.refresh_data()

    def _key(self, index: int, width: int) -> tuple[int, int, int]:
        study = self.papp.study
        return (index, width, study.generation if study else 0)

    def refresh_data(self) -> None:
        app = self.papp
        study = app.study
        msg = self.query_one("#message", Static)
        row = self.query_one("#row", Static)
        if study is None or self.pair_index is None or self.pair_index >= len(study.pairs):
            self.set_title()
            row.update("")
            msg.update("No such item (the study is loading or changed).")
            return
        row.update(row_text(study, self.pair_index))
        uid = _uid(study, self.pair_index)
        flag = app.flags.notes.get(uid)
        self.set_title(inert(uid, 120))
        msg.update(Text.assemble(("⚑ flagged: ", "bold"), inert(" | ".join(flag), 400)) if flag else "")
        width = self._width()
        if self._shown == (self.pair_index, width):
            return
        cached = self._drawn_items.get(self._key(self.pair_index, width))
        if cached is not None:
            self._drawn(self.pair_index, width, cached)
        else:
            self._draw(self.app, study, self.pair_index, width)

    def prefetch(self, index: int) -> None:
        """Draw pair `index` in the background, so that opening it later shows it at once."""
        study, width = self.papp.study, self._width()
        if study is not None and index < len(study.pairs) and self._key(index, width) not in self._drawn_items:
            self._prefetch(self.app, study, index, width)

    def on_screen_suspend(self) -> None:
        """Left (or covered by a dialog): a drawing in progress stops at its next part, as nobody would
        see it; its thread would only hold up the keys of the screen now shown."""
        self.workers.cancel_group(self, "item")

    # Workers get the app from the caller: the app context is not set in their threads. A worker
    # replaced by a newer one of its group (exclusive) is cancelled, and stops at its next part.
    @work(thread=True, exclusive=True, group="item", description="item")
    def _draw(self, app: App[None], study: Study, index: int, width: int) -> None:
        drawn = _render_in_worker(study, index, width)
        if drawn is not None:
            app.call_from_thread(self._drawn, index, width, drawn)

    @work(thread=True, exclusive=True, group="item-prefetch", description="item-prefetch")
    def _prefetch(self, app: App[None], study: Study, index: int, width: int) -> None:
        drawn = _render_in_worker(study, index, width)
        if drawn is not None:
            app.call_from_thread(self._keep, index, width, drawn)

    def _keep(self, index: int, width: int, drawn: Drawn) -> None:
        self._drawn_items[self._key(index, width)] = drawn
        while len(self._drawn_items) > 16:
            self._drawn_items.popitem(last=False)

    def _drawn(self, index: int, width: int, drawn: Drawn) -> None:
        if index != self.pair_index:  # another item was asked for meanwhile
            return
        self._keep(index, width, drawn)
        self.records, self._shown = drawn.records, (index, width)
        body = self.query_one(LinesView)
        body.set_lines(drawn.lines)
        body.scroll_home(animate=False)
        if drawn.problems:
            self.query_one("#message", Static).update(Text(inert("; ".join(drawn.problems), 600), style="bold red"))
        rows = self.papp.items_state.rows
        if rows is not None and self.is_current:  # the next discordant item, ready for ] (not once the user left)
            here = view.position(rows, index)
            n = self.papp.next_discordant(rows, -1 if here is None else here, 1)
            if n is not None:
                self.prefetch(int(rows[n]))

    def on_resize(self) -> None:
        if self.is_current:
            self.refresh_data()

    def action_discordant(self, step: int) -> None:
        app = self.papp
        rows = app.items_state.rows
        if rows is None or not len(rows) or self.pair_index is None:
            self.notify("no item list to step through (open one from the Items screen)", timeout=2)
            return
        here = view.position(rows, self.pair_index)
        if here is None:  # not in the list: step from its start or end
            here = -1 if step > 0 else len(rows)
        n = app.next_discordant(rows, here, step)
        if n is None:
            self.notify("no further discordant item in this list", timeout=2)
            return
        app.items_state.current = int(rows[n])
        self.show(int(rows[n]))

    def action_full_text(self) -> None:
        texts = full_texts(self.records)
        if not texts:
            self.notify("no outputs to show (the item is not drawn yet, or has none)", timeout=2)
            return
        self.app.push_screen(FullTextScreen(str(self.records[0][2].get("item_uid")), texts))

    def export_view(self) -> Export | None:
        if not self.records:
            return None
        return Export("item", records=[{"run": name, **rec} for name, _, rec in self.records])


def row_text(study: Study, index: int) -> Text:
    """'row of wanda-s50   dense→run BC→RO (discordant)': the run whose row of the list is open."""
    r, transition = int(study.pairs.run[index]), int(study.pairs.transition[index])
    paired = "no reference run:" if study.reference[r] == NO_REF else ("base" if study.baseline else "dense") + "→run"
    return Text.assemble(
        "row of ",
        (inert(study.run_label(r), 200), "bold reverse"),
        f"   {paired} ",
        (transition_label(transition), "bold"),
        " (discordant)" if discordant(transition) else "",
    )


def _uid(study: Study, index: int) -> str:
    return study.uid(int(study.pairs.run[index]), int(study.pairs.row[index]))


def _render_in_worker(study: Study, index: int, width: int) -> Drawn | None:
    """`_render` in a worker thread, given up once the worker is cancelled."""
    worker = get_current_worker()
    return _render(study, index, width, lambda: worker.is_cancelled)


def _render(study: Study, index: int, width: int, cancelled: Callable[[], bool] = lambda: False) -> Drawn | None:
    """The item of pair `index`: its records and its body as lines (in a worker thread); None once
    `cancelled()`, which is asked before each part is drawn."""
    uid = _uid(study, index)
    records, problems = view.item_records(study, uid)
    item = study.item(uid)
    parts: list[RenderableType] = [render.item_block(uid, item), Text("")]
    if records:
        named = [(name, rec) for name, _, rec in records]
        imported = view.imported_blocks(study)
        parts.append(render.options_table(item, named))
        notes = render.options_notes(named, imported)  # why a run's options column is empty, its score kind
        parts += [notes] if notes is not None else []
        for table in (render.outputs_table(named, imported), render.trace_block(records)):
            parts += [Text(""), table]
        parts.append(Text(""))
        layers = render.layer_trace_block(records)
        if layers is not None:
            parts += [layers, Text("")]
        parts.append(render.probes_block(named))
    lines: list[Strip] = []
    for part in parts:
        if cancelled():
            return None
        lines += render_strips([part], width, [WIDE if isinstance(part, Table) else None])
    return Drawn(records, problems, lines)
