"""Overview: conditions × languages, open / shown / MC accuracy and recognition-only rate as a heat map."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from engine.safe_text import inert
from tui.screens.base import DataScreen, Export

# Recognition-only rate → background: colours of the xterm 256 palette, so SSH sessions without
# true colour show the same map; the rate is printed too, so NO_COLOR loses nothing.
HEAT = (
    (0.05, ""),
    (0.10, "on color(22)"),
    (0.20, "on color(58)"),
    (0.30, "on color(94)"),
    (0.45, "on color(130)"),
    (2.0, "on color(124)"),
)


def _width(text: Text) -> int:
    """Cells the widest line of `text` takes."""
    return max(line.cell_len for line in text.split("\n", allow_blank=True))


def heat_style(rate: float) -> str:
    for upper, style in HEAT:
        if rate < upper:
            return style
    return HEAT[-1][1]


def sig_mark(p: float | None) -> str:
    """*** p<.001, ** p<.01, * p<.05 (adjusted p), '' otherwise, '…' while the tests run."""
    if p is None:
        return "…"
    if isinstance(p, float) and math.isnan(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


class OverviewScreen(DataScreen):
    """Rows: runs (conditions); columns: languages. Enter opens the items of a cell."""

    SCREEN_NAME = "1 Overview"
    _drawn: tuple[int, int, int] | None = None  # (study, its generation, stats) the grid shows
    BINDINGS = [
        Binding("j", "grid('down')", "down", show=False, id="overview.down"),
        Binding("k", "grid('up')", "up", show=False, id="overview.up"),
        Binding("h", "grid('left')", "left", show=False, id="overview.left"),
        Binding("l", "grid('right')", "right", show=False, id="overview.right"),
        Binding("g", "grid('top')", "top", show=False, id="overview.top"),
        Binding("G", "grid('bottom')", "bottom", show=False, id="overview.bottom"),
    ]

    def compose(self) -> ComposeResult:
        yield self.title_bar()
        yield Static(id="message", classes="message")
        table: DataTable = DataTable(id="grid", cursor_type="cell", zebra_stripes=False)
        table.fixed_columns = 1  # the run labels stay when the languages scroll sideways
        yield table
        yield Static(id="legend", classes="legend")
        yield self.key_bar()

    def action_grid(self, where: str) -> None:
        grid = self.query_one("#grid", DataTable)
        if where == "top":
            grid.move_cursor(row=0)
        elif where == "bottom":
            grid.move_cursor(row=grid.row_count - 1)
        else:
            getattr(grid, f"action_cursor_{where}")()

    def refresh_data(self) -> None:
        app = self.papp
        self.set_title()
        msg = self.query_one("#message", Static)
        grid = self.query_one("#grid", DataTable)
        legend = self.query_one("#legend", Static)
        study = app.study
        if study is None:
            msg.update(
                Text(
                    "Loading "
                    + inert(", ".join(str(s) for s in app.sources), 300)
                    + " … "
                    + inert(app.loading_message, 200),
                    style="bold",
                )
            )
            grid.display = False
            legend.update("")
            return
        msg.update(app.problem_text())
        if not study.runs:
            grid.display = False
            legend.update(Text("Nothing to show: no runs with outcomes.", style="italic"))
            return
        grid.display = True
        drawn = (id(study), study.generation, id(app.stats))
        if drawn == self._drawn:  # nothing changed since the grid was filled (a screen came back)
            return
        self._drawn = drawn
        cursor = grid.cursor_coordinate
        columns = [("run", "run"), ("status", "status")]
        columns += [(inert(lang, 12), f"lang:{lang}") for lang in study.languages] + [("all", "all")]
        counts = study.cell_counts()
        multi_model = len({r.model for r in study.runs}) > 1
        rows: list[list[Text]] = []
        for r, run in enumerate(study.runs):
            label = inert(run.label, 60) + (" · baseline" if study.baseline and r in study.reference else "")
            if multi_model:  # each part made inert on its own, so the line break stays one
                label += "\n" + inert(run.model.split("/")[-1], 60)
            cells: list[Text] = [Text(label, style="bold"), Text(f"{run.status}\n{len(run)} lines")]
            for lang in study.languages:
                cells.append(self._cell(counts.get((r, lang)), app.cell_p(r, lang)))
            cells.append(self._cell(counts.get((r, None)), app.cell_p(r, None)))
            rows.append(cells)
        grid.clear(columns=True)
        # Widths given, not measured: DataTable measures new rows when it is next idle, and a cell
        # drawn before that stays cached at the header's width (seen on a busy machine).
        for c, (header, key) in enumerate(columns):
            grid.add_column(header, key=key, width=max([_width(Text(header)), *(_width(row[c]) for row in rows)]))
        for r, cells in enumerate(rows):
            grid.add_row(*cells, height=4, key=str(r))
        grid.move_cursor(row=cursor.row, column=cursor.column)
        legend.update(
            Text(
                "O open accuracy · S candidate-shown accuracy · M multiple-choice accuracy · "
                "R recognition-only rate (MC right, open wrong), "
                "background = R · * ** *** Holm-adjusted mid-p McNemar of recognition-only vs "
                f"{'the baseline' if study.baseline else 'dense'} < .05 .01 .001 "
                "(… = tests in progress) · enter: items of the cell",
                style="dim",
            )
        )

    @staticmethod
    def _cell(c: dict[str, float] | None, p: float | None) -> Text:
        if not c:
            return Text("–")
        shown = "–" if math.isnan(c["shown"]) else f"{c['shown']:.2f}"
        return Text(
            f"O {c['open']:.2f}\nS {shown}\nM {c['mc']:.2f}\nR {c['recog']:.2f} {sig_mark(p)}",
            style=heat_style(c["recog"]),
        )

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        study = self.papp.study
        if study is None or event.cell_key.row_key.value is None:
            return
        r = int(event.cell_key.row_key.value)
        run = study.runs[r]
        col = str(event.cell_key.column_key.value)
        # A reference (dense) run's cell lists every pruned run against it, in that language.
        parts = [] if r in study.reference else [f"run:{run.name}"]
        if col.startswith("lang:"):
            parts.append(f"lang:{col[5:]}")
        query = " ".join(parts)
        self.papp.open_items(query)

    def export_view(self) -> Export | None:
        study = self.papp.study
        if study is None:
            return None
        counts = study.cell_counts()
        rows = []
        for r, run in enumerate(study.runs):
            for lang in study.languages:
                c = counts.get((r, lang))
                if c:
                    p = self.papp.cell_p(r, lang)
                    rows.append(
                        [
                            run.name,
                            run.model,
                            run.label,
                            lang,
                            c["n"],
                            c["open"],
                            "" if math.isnan(c["shown"]) else c["shown"],
                            c["mc"],
                            c["recog"],
                            "" if p is None or math.isnan(p) else p,
                        ]
                    )
        return Export(
            "overview",
            [
                "run",
                "model",
                "condition",
                "language",
                "n",
                "open_acc",
                "shown_acc",
                "mc_acc",
                "recognition_only_rate",
                "p_adjusted_holm",
            ],
            rows,
        )
