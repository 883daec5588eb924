"""The base of the data screens: a title bar, a message line, a refresh hook and an export hook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from engine.safe_text import inert
from tui.widgets.lines import LinesView

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
        keys = self.query("#keys")
        if keys:
            keys.first(Static).update(key_hints(self))

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
        """Cells the body's lines are drawn for: the screen's width (the app's before its first layout)."""
        return max(40, (self.size.width or self.app.size.width) - 2)


def key_hints(screen: Screen) -> Text:
    """'/ filter  e export  …': the shown bindings active on the screen (its own, the focused widget's,
    the app's), with their keys as remapped."""
    text = Text()
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        b = active.binding
        if not b.show or b.description in seen:
            continue
        seen.add(b.description)
        text.append(f" {screen.app.get_key_display(b)} ", style="reverse")
        text.append(f" {b.description} ")
    return text
