"""Significance: the tables `prunescope stats` prints (McNemar, languages, Cochran's Q, GLMM).

The tables are drawn into lines in a worker when `stats` delivers them, and shown through the Line API.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import Static

from engine.safe_text import inert
from tui import render
from tui.screens.base import DataScreen, Export
from tui.widgets.lines import LinesView, render_strips


class SignificanceScreen(DataScreen):
    """Renders `app.stats` (computed by stats in a worker) and the GLMM when it is fitted."""

    SCREEN_NAME = "4 Significance"
    _drawn: tuple[int, int, str, int] | None = None  # (stats state, tables, note, width) on screen

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="message", classes="message")
        yield LinesView(id="body")
        yield self.key_bar()

    def on_mount(self) -> None:
        self.query_one(LinesView).focus()

    def refresh_data(self) -> None:
        app = self.papp
        self.set_title()
        stats = app.stats
        msg = self.query_one("#message", Static)
        if not app.run_stats:
            msg.update(Text("Significance tests are switched off (--no-stats).", style="italic"))
        elif stats.error:
            msg.update(Text.assemble(("Significance tests unavailable: ", "bold red"), inert(stats.error, 1000)))
        elif stats.tables is None:
            msg.update(Text("Running the tests of `prunescope stats` …", style="bold"))
        else:
            msg.update(
                Text(
                    "Same tables and numbers as `prunescope stats "
                    + inert(app.stats_args_text(), 300)
                    + "` (mid-p McNemar, Holm).",
                    style="dim",
                )
            )
        tables = [*(stats.tables or []), *([stats.glmm] if stats.glmm is not None else [])] if app.run_stats else []
        note = None
        if stats.glmm is None and stats.glmm_error:
            note = Text.assemble(("GLMM not fitted: ", "bold"), inert(stats.glmm_error, 600))
        elif stats.glmm is None and stats.tables is not None and app.run_stats:
            note = Text("Fitting the mixed-effects model …" if app.stats_glmm else "GLMM not fitted (--no-glmm).")
        width = max(40, (self.size.width or app.size.width) - 2)
        drawn = (id(stats), len(tables), note.plain if note is not None else "", width)
        if drawn != self._drawn:
            self._drawn = drawn
            self._draw(self.app, tables, note, width)

    @work(thread=True, exclusive=True, group="significance")
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

    def export_view(self) -> Export | None:
        tables = list(self.papp.stats.tables or []) + ([self.papp.stats.glmm] if self.papp.stats.glmm else [])
        if not tables:
            return None
        return Export("significance", records=[{"table": t.key, **r} for t in tables for r in t.to_dict()["records"]])
