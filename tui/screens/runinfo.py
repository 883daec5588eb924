"""Run info: each run's manifest (model, condition, calibration, seeds, versions, prompts) and problems.

Manifests can hold thousands of fields (per-layer pruning reports): their lines are made in the
loading worker (`render.run_info_lines`) and drawn through the Line API, only the visible ones.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from tui.screens.base import Export, LinesScreen
from tui.widgets.lines import LinesView, text_line


class RunInfoScreen(LinesScreen):
    SCREEN_NAME = "5 Run info"

    def refresh_data(self) -> None:
        app = self.papp
        self.set_title()
        msg = self.query_one("#message", Static)
        body = self.query_one(LinesView)
        if app.study is None:
            msg.update(Text("Loading …", style="bold"))
            return
        msg.update(app.problem_text())
        lines, width = app.run_info if app.study.runs else ([text_line([("No run folders.", Style(italic=True))])], 16)
        if body.count != len(lines) or body.virtual_size.width != width:
            body.set_source(lines.__getitem__, len(lines), width)

    def export_view(self) -> Export | None:
        study = self.papp.study
        if study is None:
            return None
        return Export(
            "runs",
            records=[
                {"path": str(r.path), "manifest": r.manifest, "problems": r.problems, "outcome_lines": len(r)}
                for r in study.runs
            ],
        )
