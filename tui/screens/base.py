"""The base of the data screens: a title bar, a message line, a refresh hook and an export hook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from rich.console import Group
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from engine.safe_text import inert
from tui import render

if TYPE_CHECKING:
    from stats.report import ReportTable
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


def stats_pending(app: PrunescopeApp, what: str) -> Text | None:
    """The message line while `prunescope stats` tables are not there (off, failed, running); None once they are."""
    stats = app.stats
    if not app.run_stats:
        return Text(f"{what} are switched off (--no-stats).", style="italic")
    if stats.error:
        return Text.assemble((f"{what} unavailable: ", "bold red"), inert(stats.error, 1000))
    if stats.tables is None:
        return Text("Running the tests of `prunescope stats` …", style="bold")
    return None


def show_stats_tables(
    app: PrunescopeApp,
    msg: Static,
    body: Static,
    what: str,
    lead: str,
    tail: str,
    tables: Callable[[], Sequence[ReportTable]],
) -> bool:
    """Fill a screen of `prunescope stats` tables: the pending message while they are not there, else the
    command they reproduce (between `lead` and `tail`) and the tables. True once the tables are shown."""
    pending = stats_pending(app, what)
    if pending is not None:
        msg.update(pending)
        body.update("")
        return False
    command = "`prunescope stats " + inert(app.stats_args_text(), 300) + "`"
    msg.update(Text(lead + command + tail, style="dim"))
    parts = [render.report_table(t) for t in tables()]
    body.update(Group(*(r for r, _ in parts)))
    body.styles.width = max((w for _, w in parts), default=80)
    return True


class BodyScreen(DataScreen):
    """A data screen whose content scrolls in `#body` (item, significance, run info)."""

    BINDINGS = [
        Binding("j,down", "scroll(1)", "down", show=False, id="body.down"),
        Binding("k,up", "scroll(-1)", "up", show=False, id="body.up"),
        Binding("g,home", "edge(0)", "top", show=False, id="body.top"),
        Binding("G,end", "edge(1)", "bottom", show=False, id="body.bottom"),
        Binding("h,left", "scroll_x(-4)", "left", show=False, id="body.left"),
        Binding("l,right", "scroll_x(4)", "right", show=False, id="body.right"),
        Binding("pagedown,ctrl+d", "page(1)", "page down", show=False, id="body.page_down"),
        Binding("pageup,ctrl+u", "page(-1)", "page up", show=False, id="body.page_up"),
    ]

    def on_mount(self) -> None:
        self.query_one("#body").focus()

    def action_scroll(self, lines: int) -> None:
        self.query_one("#body", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_scroll_x(self, cells: int) -> None:
        self.query_one("#body", VerticalScroll).scroll_relative(x=cells, animate=False)

    def action_page(self, direction: int) -> None:
        body = self.query_one("#body", VerticalScroll)
        body.scroll_relative(y=direction * max(1, body.size.height - 1), animate=False)

    def action_edge(self, end: int) -> None:
        body = self.query_one("#body", VerticalScroll)
        body.scroll_end(animate=False) if end else body.scroll_home(animate=False)
