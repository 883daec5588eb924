"""Significance: the tables `prunescope stats` prints (McNemar, languages, Cochran's Q, GLMM); the
paper's analyses are on screen 6."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from engine.safe_text import inert
from tui.screens.base import Export
from tui.screens.stats_tables import StatsTablesScreen


class SignificanceScreen(StatsTablesScreen):
    """Renders `app.stats` (computed by stats in a worker) and the GLMM when it is fitted."""

    SCREEN_NAME = "4 Significance"
    WHAT = "Significance tests"
    TAIL = " (mid-p McNemar, Holm); the paper's analyses are on screen 6."

    def refresh_data(self) -> None:
        self.set_title()
        super().refresh_data()

    def tables(self) -> list[Any]:
        stats = self.papp.stats
        return stats.test_tables + ([stats.glmm] if stats.glmm is not None else [])

    def note(self) -> Text | None:
        app, stats = self.papp, self.papp.stats
        if stats.glmm is None and stats.glmm_error:
            return Text.assemble(("GLMM not fitted: ", "bold"), inert(stats.glmm_error, 600))
        if stats.glmm is None and stats.tables is not None and app.run_stats:
            return Text("Fitting the mixed-effects model …" if app.stats_glmm else "GLMM not fitted (--no-glmm).")
        return None

    def export_view(self) -> Export | None:
        tables = self.tables()
        if not tables:
            return None
        return Export("significance", records=[{"table": t.key, **r} for t in tables for r in t.to_dict()["records"]])
