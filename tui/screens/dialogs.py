"""Modal dialogs: help (generated from the active bindings), the `/` filter, the flag note.

Help's table is rendered into lines once, when the dialog opens, and drawn through the Line API: as
an auto-sized widget, Textual measured and rendered the table a dozen times per open and close
(0.1–0.2 s of the event loop on this machine kind).
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static

from engine.safe_text import inert
from tui.view import FILTER_HELP, Filter
from tui.widgets.lines import LinesView, render_strips


def bindings_table(screen: Screen) -> Table:
    """Every binding active on `screen` (its own, its focused widget's and the app's), with its id."""
    table = Table(title="Keys (remap any of them by id with --keymap)", title_justify="left", expand=True)
    table.add_column("key", no_wrap=True)
    table.add_column("action")
    table.add_column("id", no_wrap=True, style="dim")
    seen: set[tuple[str, str]] = set()
    rows: list[list[str]] = []
    for active in screen.active_bindings.values():
        b = active.binding
        if b.system or b.action in ("", "noop"):
            continue
        desc = b.description or b.action
        if (desc, b.id or "") in seen:
            for row in rows:
                if row[1] == desc and row[2] == (b.id or ""):
                    row[0] += ", " + screen.app.get_key_display(b)
            continue
        seen.add((desc, b.id or ""))
        rows.append([screen.app.get_key_display(b), desc, b.id or ""])
    for row in rows:
        table.add_row(*row)
    return table


class HelpScreen(ModalScreen[None]):
    """`?`: the keys of the screen below, generated from its bindings."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close", id="help.close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield LinesView(id="help-lines")

    def on_mount(self) -> None:
        self._lay_out()

    def on_resize(self) -> None:
        self._lay_out()

    def _lay_out(self) -> None:
        """The keys table at the terminal's width: the dialog is 90% of the screen wide, less its border,
        padding (.dialog in prunescope.tcss) and a vertical scroll bar; laid out again on a resize."""
        width = max(20, int(self.app.size.width * 0.9) - 6)
        lines = render_strips([bindings_table(self.under), Text("Filter syntax: " + FILTER_HELP, style="dim")], width)
        view = self.query_one(LinesView)
        view.styles.height = min(len(lines), max(1, int(self.app.size.height * 0.9) - 2))
        view.set_lines(lines)


class FilterScreen(ModalScreen["str | None"]):
    """`/`: edit the item filter; enter applies, escape cancels; a bad query says why and stays open."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="filter.cancel")]

    def __init__(self, query: str) -> None:
        super().__init__()
        self.query_text = query

    def compose(self) -> ComposeResult:
        with Vertical(id="filter", classes="dialog"):
            yield Static(Text("Filter items", style="bold"))
            yield Input(value=self.query_text, placeholder="lang:de cat:RO regex…", id="query")
            yield Static(Text(FILTER_HELP, style="dim"))
            yield Static(id="error")

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = False
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            Filter.parse(event.value)
        except ValueError as exc:
            self.query_one("#error", Static).update(Text(inert(str(exc), 300), style="bold red"))
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class FlagScreen(ModalScreen["str | None"]):
    """`f`: a note for the flag (may be empty); enter saves, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="flag.cancel")]

    def __init__(self, uid: str) -> None:
        super().__init__()
        self.uid = uid

    def compose(self) -> ComposeResult:
        with Vertical(id="flag", classes="dialog"):
            yield Static(Text.assemble(("Flag ", "bold"), inert(self.uid, 200)))
            yield Input(placeholder="note (enter saves to <study>/.prunescope/flags.jsonl)", id="note")

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = False
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
