"""The base of the screens that show `prunescope stats` tables (Significance, Paper analyses).

The tables are drawn into lines in a worker when `stats` delivers them (and again when what the
screen picks from them changes), and shown through the Line API.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import App
from textual.strip import Strip
from textual.widgets import Static

from engine.safe_text import inert
from tui import render
from tui.model import NO_REF
from tui.screens.base import LinesScreen
from tui.widgets.lines import LinesView, render_strips, text_line

COMPUTING = "Computing the tables …"


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

    def unpaired(self) -> Text | None:
        """Why the tables of pruned vs dense have no rows, when no run has a run to pair with (None: some has)."""
        study = self.papp.study
        if study is None or not study.runs or any(ref != NO_REF for ref in study.reference):
            return None
        labels = ", ".join(inert(study.run_label(r), 60) for r in range(min(len(study.runs), 6)))
        more = ", …" if len(study.runs) > 6 else ""
        if any(run.meta and run.meta.condition.method == "dense" for run in study.runs):
            head, add = "No run paired with a dense run: ", "add a pruned run of the same model and items"
        else:
            head, add = "No dense run to pair with: ", "add the dense run of the same model and items"
        return Text.assemble(
            (head, "bold red"),
            f"the tests of pruned vs dense have no rows. The study holds {labels}{more}; {add}, "
            "or pair with one of its runs (--baseline RUN).",
        )

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
            text = Text(self.LEAD + command + self.TAIL, style="dim")
            unpaired = self.unpaired()
            if unpaired is not None:
                text.append("\n").append_text(unpaired)
            msg.update(text)
        tables = self.tables() if app.run_stats else []
        note = self.note()
        width = self._width()
        drawn = (id(stats), self.choice(), len(tables), note.plain if note is not None else "", width)
        if drawn != self._drawn:
            if tables and (self._drawn is None or drawn[:-1] != self._drawn[:-1]):  # not only resized
                # the tables on show are of another choice: say so until the new ones replace them
                self.query_one(LinesView).set_lines([text_line([(COMPUTING, Style(bold=True, italic=True))])])
            self._drawn = drawn
            self._draw(self.app, tables, note, width, drawn)

    @work(thread=True, exclusive=True, group="stats-tables", description="stats-tables")
    def _draw(self, app: App[None], tables: list[Any], note: Text | None, width: int, drawn: Hashable) -> None:
        # tables at their own width (the view scrolls sideways), notes wrapped to the window's width
        made = [part for t in tables for part in render.report_table(t)]
        parts: list[RenderableType] = [r for r, _ in made] + ([note] if note is not None else [])
        lines = render_strips(parts, width, [w for _, w in made])
        app.call_from_thread(self._show, lines, drawn)

    def _show(self, lines: list[Strip], drawn: Hashable) -> None:
        if drawn == self._drawn:  # not a drawing overtaken by a newer one (a key pressed meanwhile)
            self.query_one(LinesView).set_lines(lines)

    def on_resize(self) -> None:
        if self.is_current:
            self.refresh_data()
