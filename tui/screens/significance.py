"""Significance: the tables `prunescope stats` prints (McNemar, languages, Cochran's Q, GLMM)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from engine.safe_text import inert
from tui import render
from tui.screens.base import BodyScreen, Export, show_stats_tables


class SignificanceScreen(BodyScreen):
    """Renders `app.stats_tables` (computed by stats in a worker) and the GLMM when it is fitted."""

    SCREEN_NAME = "4 Significance"

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="message", classes="message")
        with VerticalScroll(id="body"):
            yield Static(id="tables")
            yield Static(id="glmm")
        yield Footer()

    def refresh_data(self) -> None:
        app = self.papp
        self.set_title()
        stats = app.stats
        from stats.paper import KEYS

        show_stats_tables(
            app,
            self.query_one("#message", Static),
            self.query_one("#tables", Static),
            "Significance tests",
            "Same tables and numbers as ",
            " (mid-p McNemar, Holm); the paper's analyses are on screen 6.",
            lambda: [t for t in stats.tables or [] if t.key not in KEYS],
        )
        glmm = self.query_one("#glmm", Static)
        if stats.glmm is not None:
            renderable, width = render.report_table(stats.glmm)
            glmm.update(renderable)
            glmm.styles.width = width
        elif stats.glmm_error:
            glmm.update(Text.assemble(("GLMM not fitted: ", "bold"), inert(stats.glmm_error, 600)))
        elif stats.tables is not None and not app.stats_glmm:
            glmm.update(Text("GLMM not fitted (--no-glmm).", style="italic"))
        elif stats.tables is not None:
            glmm.update(Text("Fitting the mixed-effects model …", style="italic"))
        else:
            glmm.update("")

    def export_view(self) -> Export | None:
        tables = list(self.papp.stats.tables or []) + ([self.papp.stats.glmm] if self.papp.stats.glmm else [])
        if not tables:
            return None
        return Export("significance", records=[{"table": t.key, **r} for t in tables for r in t.to_dict()["records"]])
