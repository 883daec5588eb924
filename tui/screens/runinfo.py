"""Run info: each run's manifest (model, condition, calibration, seeds, versions, prompts) and problems.

Manifests can hold thousands of fields (per-layer pruning reports): their lines are made in the
loading worker (`render.run_info_lines`), again in a worker when the window's width changes (long
values wrap to it), and drawn through the Line API, only the visible ones.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import work
from textual.strip import Strip
from textual.widgets import Static

from tui import render
from tui.model import Study
from tui.screens.base import Export, LinesScreen
from tui.widgets.lines import LinesView, text_line


class RunInfoScreen(LinesScreen):
    SCREEN_NAME = "5 Run info"
    _shown: list[Strip] | None = None  # the lines on show

    def refresh_data(self) -> None:
        app = self.papp
        self.set_title()
        msg = self.query_one("#message", Static)
        body = self.query_one(LinesView)
        if app.study is None:
            msg.update(Text("Loading …", style="bold"))
            return
        msg.update(app.problem_text())
        if not app.study.runs:
            lines, width = [text_line([("No run folders.", Style(italic=True))])], 16
        else:
            lines, width, wrap = app.run_info
            if wrap != self._width():  # made for another window width: wrap again (shown meanwhile)
                self._rewrap(app.study, self._width())
        if lines is not self._shown:
            self._shown = lines
            body.set_source(lines.__getitem__, len(lines), width)

    @work(thread=True, exclusive=True, group="run-info", description="run-info")
    def _rewrap(self, study: Study, width: int) -> None:
        info = render.run_info_lines(study.runs, study.root, width)
        self.app.call_from_thread(self._rewrapped, study, info)

    def _rewrapped(self, study: Study, info: render.RunInfo) -> None:
        app = self.papp
        if app.study is study and info.wrap == self._width():  # not overtaken by another width or study
            app.run_info = info
            if self.is_current:
                self.refresh_data()

    def on_resize(self) -> None:
        if self.is_current:
            self.refresh_data()

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
