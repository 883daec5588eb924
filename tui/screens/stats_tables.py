"""The base of the screens that show `prunescope stats` tables (Significance, Paper analyses).

The tables are drawn into lines in a worker when `stats` delivers them (and again when what the
screen picks from them changes), and shown through the Line API.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import App
from textual.strip import Strip
from textual.widgets import Static

from engine.safe_text import inert
from tui import render
from tui.screens.base import LinesScreen
from tui.widgets.lines import LinesView, render_strips


class StatsTablesScreen(LinesScreen):
    """A message line (the command the tables reproduce, or why they are not there) over the tables."""

    WHAT = "Tables"  # 'Significance tests': the message line's subject
    LEAD = "Same tables and numbers as "  # before the `prunescope stats …` command
    TAIL = ""  # after it
    _drawn: tuple[Hashable, ...] | None = None  # what is on screen (stats state, choice, tables, width)

    def tables(self) -> list[Any]:
        """The report tables this screen shows (from `self.papp.stats`)."""
        return []

    def note(self) -> Text | None:
        """A line under the tables (None: none)."""
        return None

    def choice(self) -> Hashable:
        """What the screen picks from the tables (its filters): a change redraws them."""
        return None

    def refresh_data(self) -> None:
        app = self.papp
        stats = app.stats
        msg = self.query_one("#message", Static)
        if not app.run_stats:
            msg.update(Text(f"{self.WHAT} are switched off (--no-stats).", style="italic"))
        elif stats.error:
            msg.update(Text.assemble((f"{self.WHAT} unavailable: ", "bold red"), inert(stats.error, 1000)))
        elif stats.tables is None:
            msg.update(Text("Running the tests of `prunescope stats` …", style="bold"))
        else:
            command = "`prunescope stats " + inert(app.stats_args_text(), 300) + "`"
            msg.update(Text(self.LEAD + command + self.TAIL, style="dim"))
        tables = self.tables() if app.run_stats else []
        note = self.note()
        width = self._width()
        drawn = (id(stats), self.choice(), len(tables), note.plain if note is not None else "", width)
        if drawn != self._drawn:
            self._drawn = drawn
            self._draw(self.app, tables, note, width)

    @work(thread=True, exclusive=True, group="stats-tables", description="stats-tables")
    def _draw(self, app: App[None], tables: list[Any], note: Text | None, width: int) -> None:
        drawn = [render.report_table(t) for t in tables]
        parts: list[RenderableType] = [r for r, _ in drawn] + ([note] if note is not None else [])
        lines = render_strips(parts, width, [w for _, w in drawn])
        app.call_from_thread(self._show, lines)

    def _show(self, lines: list[Strip]) -> None:
        self.query_one(LinesView).set_lines(lines)

    def on_resize(self) -> None:
        if self.is_current:
            self.refresh_data()
