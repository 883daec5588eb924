"""The base of the data screens: a title bar, a message line, a refresh hook and an export hook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from engine.safe_text import inert
from tui.widgets.lines import LinesView, text_width

if TYPE_CHECKING:
    from tui.app import PrunescopeApp


class Export:
    """What `e` writes for a screen: CSV rows with a header, or JSONL records."""

    def __init__(
        self,
        view: str,
        header: list[str] | None = None,
        rows: list[list[Any]] | None = None,
        records: list[dict[str, Any]] | None = None,
    ) -> None:
        self.view, self.header, self.rows, self.records = view, header or [], rows or [], records


# `f` on the screens that have an item to flag (the list's cursor, the item on show); same id everywhere.
# `F` clears the item's flags (listed by `?`, not in the key bar).
FLAG = Binding("f", "app.flag", "flag", id="app.flag")
UNFLAG = Binding("F", "app.unflag", "unflag", show=False, id="app.unflag")


class DataScreen(Screen):
    """A screen that shows part of the study and re-renders when the data changes."""

    SCREEN_NAME = ""

    @property
    def papp(self) -> PrunescopeApp:
        return cast("PrunescopeApp", self.app)

    def title_bar(self) -> Static:
        return Static(id="title", classes="title")

    def key_bar(self) -> Static:
        """One line of the screen's keys, made once (a Footer restyles itself on every screen switch)."""
        return Static(id="keys", classes="keys")

    def on_mount(self) -> None:
        self.update_keys()

    def on_resize(self) -> None:
        self.update_keys()

    def update_keys(self) -> None:
        """Fill the key bar for the screen's width."""
        keys = self.query("#keys")
        if keys:
            keys.first(Static).update(key_hints(self, self.size.width or self.app.size.width))

    def set_title(self, extra: str = "") -> None:
        label = self.papp.study.label if self.papp.study else inert(", ".join(str(s) for s in self.papp.sources), 200)
        text = Text.assemble(("prunescope", "bold"), " · ", inert(label, 120), " · ", (self.SCREEN_NAME, "bold"))
        if extra:
            text.append("  " + extra)
        self.query_one("#title", Static).update(text)

    def on_screen_resume(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        """Re-render from `self.papp.study` (called on mount, on resume and when the data changes)."""

    def export_view(self) -> Export | None:
        """The current view as rows/records for `e` (None: nothing to export)."""
        return None


class LinesScreen(DataScreen):
    """A data screen whose body is prepared lines (`LinesView`): title, message line, body, key bar."""

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="message", classes="message")
        yield LinesView(id="body")
        yield self.key_bar()

    def on_mount(self) -> None:
        self.query_one(LinesView).focus()

    def _width(self) -> int:
        """Cells the body's lines are drawn for: the screen's width (the app's before its first layout),
        less the body's padding and scroll bar, so that wrapped text is seen whole."""
        return text_width(self.size.width or self.app.size.width)


PRIORITY = ("app.help", "app.quit")  # first in the key bar, so that a narrow window still shows them
MORE = " …"  # ends a key bar that had no room for every key (`?` lists them all)


def key_hints(screen: Screen, width: int = 0) -> Text:
    """'? help  q quit  / filter  …': the shown bindings active on the screen (its own, the focused
    widget's, the app's), with their keys as remapped; help and quit first, 'next X' and 'prev X' as
    one hint. Made to fit `width` cells (0: any): compact (keys unpadded) when the whole bar does not
    fit, then as many whole hints as fit, and '…'."""
    first: dict[str, tuple[str, str]] = {}
    hints: list[tuple[str, str]] = []
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        b = active.binding
        if not b.show or b.description in seen:
            continue
        seen.add(b.description)
        hint = (screen.app.get_key_display(b), b.description)
        if b.id in PRIORITY:
            first[b.id] = hint
        elif hints and hints[-1][1].startswith("next ") and hint[1] == "prev " + hints[-1][1][5:]:
            hints[-1] = (f"{hints[-1][0]} {hint[0]}", "next/prev " + hint[1][5:])
        else:
            hints.append(hint)
    hints = [first[i] for i in PRIORITY if i in first] + hints
    bar = _key_bar(hints, pad=" ")
    if not width or bar.cell_len <= width:
        return bar
    for n in range(len(hints), 0, -1):  # compact, and as many hints as fit
        bar = _key_bar(hints[:n], pad="")
        if n < len(hints):
            bar.append(MORE)
        if bar.cell_len <= width or n == 1:
            return bar
    return bar


def _key_bar(hints: list[tuple[str, str]], pad: str) -> Text:
    text = Text()
    for key, description in hints:
        text.append(f"{pad}{key}{pad}", style="reverse")
        text.append(f" {description} ")
    return text
