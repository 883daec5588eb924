"""Run info: each run's manifest (model, condition, calibration, seeds, versions, prompts) and problems."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from tui import render
from tui.screens.base import BodyScreen, Export


class RunInfoScreen(BodyScreen):
    SCREEN_NAME = "5 Run info"

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="message", classes="message")
        with VerticalScroll(id="body"):
            yield Static(id="manifests")
        yield Footer()

    def refresh_data(self) -> None:
        app = self.papp
        self.set_title()
        study = app.study
        body = self.query_one("#manifests", Static)
        if study is None:
            body.update(Text("Loading …", style="bold"))
            return
        self.query_one("#message", Static).update(app.problem_text())
        if not study.runs:
            body.update(Text("No run folders.", style="italic"))
            return
        body.update(
            Group(
                *(
                    render.manifest_table(r.name, _relative(r.path, study.root), r.manifest, r.problems, len(r))
                    for r in study.runs
                )
            )
        )

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


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
