"""The prunescope Textual app: a screen stack over one study, loaded and tested in worker threads.

Screens: 1 Overview → (enter) 2 Items → (enter) 3 Item; 4 Significance; 5 Run info; 6 Paper analyses.
Escape goes back.
Data never touches the event loop: loading, filtering, statistics and live following run in threads.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer

from engine.safe_text import inert
from stats.api import StatsOptions
from tui import render, view
from tui.model import NO_REF, Study, load_study
from tui.screens.base import DataScreen
from tui.screens.dialogs import FilterScreen, FlagScreen, HelpScreen
from tui.screens.item import ItemScreen
from tui.screens.items import ItemsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.paper import PaperScreen
from tui.screens.runinfo import RunInfoScreen
from tui.screens.significance import SignificanceScreen
from tui.sidecar import FlagStore, export_path, write_csv, write_jsonl
from tui.widgets.lines import text_width

POLL_SECONDS = 1.0


@dataclass
class ItemsState:
    """The item list's filter, sort and cursor, kept across screens."""

    query: str = ""
    sort_key: str = ""
    reverse: bool = False
    current: int | None = None
    rows: np.ndarray | None = None


@dataclass
class StatsState:
    """What `stats` computed for the study (None while running)."""

    tables: list[Any] | None = None
    error: str = ""
    glmm: Any = None
    glmm_error: str = ""
    cell_p: dict[tuple[str, str, str], float] = field(default_factory=dict)
    run_p: dict[tuple[str, str], float] = field(default_factory=dict)
    # keys of the paper's analyses (`stats.paper.KEYS`), set by the worker: importing `stats` takes
    # seconds the first time, which the screens must not spend on the event loop
    paper_keys: frozenset[str] = frozenset()

    @property
    def paper_tables(self) -> list[Any]:
        """The paper's analyses among `tables` (screen 6)."""
        return [t for t in self.tables or [] if t.key in self.paper_keys]

    @property
    def test_tables(self) -> list[Any]:
        """The significance tests among `tables` (screen 4)."""
        return [t for t in self.tables or [] if t.key not in self.paper_keys]


class PrunescopeApp(App[None]):
    """`PrunescopeApp(["runs/my-study"])` or two run folders to pair directly."""

    CSS_PATH = "prunescope.tcss"
    TITLE = "prunescope"
    BINDINGS = [
        Binding("q", "quit", "quit", id="app.quit"),
        Binding("escape", "back", "back", id="app.back"),
        Binding("question_mark", "help", "help", key_display="?", id="app.help"),
        Binding("slash", "filter", "filter", key_display="/", id="app.filter"),
        Binding("e", "export", "export", id="app.export"),
        Binding("1", "goto(1)", "overview", show=False, id="app.screen_overview"),
        Binding("2", "goto(2)", "items", show=False, id="app.screen_items"),
        Binding("3", "goto(3)", "item", show=False, id="app.screen_item"),
        Binding("4", "goto(4)", "significance", show=False, id="app.screen_significance"),
        Binding("5", "goto(5)", "run info", show=False, id="app.screen_runinfo"),
        Binding("6", "goto(6)", "paper analyses", show=False, id="app.screen_paper"),
    ]

    def __init__(
        self,
        sources: Sequence[Path | str],
        keymap: dict[str, str] | None = None,
        stats_glmm: bool = True,
        poll_seconds: float = POLL_SECONDS,
        run_stats: bool = True,
        baseline: str | None = None,
    ) -> None:
        super().__init__()
        self.sources = [Path(s) for s in sources]
        self.baseline = baseline  # a run every other run is paired with (`--baseline RUN`)
        self.study: Study | None = None
        self.flags = FlagStore(self._sidecar_root())
        self.items_state = ItemsState()
        self.stats = StatsState()
        self.stats_glmm = stats_glmm
        self.run_stats = run_stats
        self.poll_seconds = poll_seconds
        self._keymap = keymap or {}
        self._timer: Timer | None = None
        self.last_export: Path | None = None
        self.loading_message = ""
        self.run_info = render.RunInfo([], 0, 0)  # Run info's lines, made with the study
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            self.animation_level = "none"

    def _sidecar_root(self) -> Path:
        src = self.sources[0] if self.sources else Path(".")
        is_run = (src / "outcomes.jsonl").exists() or (src / "manifest.json").exists()
        return src.parent if len(self.sources) > 1 or is_run else src

    # ------------------------------------------------------------ life cycle

    def get_default_screen(self) -> Screen:
        return OverviewScreen()

    def on_mount(self) -> None:
        if self._keymap:
            self.set_keymap(self._keymap)
        for name, screen in (
            ("items", ItemsScreen()),
            ("item", ItemScreen()),
            ("significance", SignificanceScreen()),
            ("runinfo", RunInfoScreen()),
            ("paper", PaperScreen()),
        ):
            self.install_screen(screen, name)  # made once: each keeps its state between visits
        self._load()

    # Every worker is given a description: without one Textual repr()s its arguments (a study's arrays:
    # ~13 ms) on the event loop each time the worker starts.
    @work(thread=True, exclusive=True, group="load", description="load")
    def _load(self) -> None:
        freeze_long_lived()  # Textual, the screens
        study = load_study(
            self.sources, progress=lambda msg: self.call_from_thread(self._loading, msg), baseline=self.baseline
        )
        run_info = render.run_info_lines(study.runs, study.root, text_width(self.size.width))
        freeze_long_lived()  # the study
        self.call_from_thread(self._loaded, study, run_info)

    def _loading(self, message: str) -> None:
        self.loading_message = message
        self._refresh_screens()

    def _loaded(self, study: Study, run_info: render.RunInfo) -> None:
        self.study, self.run_info = study, run_info
        self.flags = FlagStore(study.root)
        self._refresh_screens()
        if not study.runs:
            self.stats = StatsState(error="no runs to test. " + " ".join(study.all_problems[:1]))
        elif self.run_stats:
            self._run_stats()
        if any(r.status == "running" for r in study.runs):
            self._timer = self.set_interval(self.poll_seconds, self._poll)

    def _refresh_screens(self) -> None:
        """Re-render the visible screen; the others re-render when they are shown again (on resume)."""
        screen = self.screen
        if isinstance(screen, DataScreen) and screen.is_attached and screen.is_mounted:
            try:
                screen.refresh_data()
            except NoMatches:
                if screen.query("#title"):  # the screen is whole: a real error
                    raise
                # else the app is closing and has taken the screen's widgets down: nothing to draw on

    # ------------------------------------------------------------ statistics (the `prunescope stats` functions)

    def stats_options(self) -> StatsOptions:
        """What the Significance screen computes: `prunescope stats`'s defaults (the GLMM after the tables)."""
        return StatsOptions(baseline=self.baseline)

    def stats_args_text(self) -> str:
        return " ".join(s.name for s in self.sources) + (f" --baseline {self.baseline}" if self.baseline else "")

    @work(thread=True, exclusive=True, group="stats", description="stats")
    def _run_stats(self) -> None:
        from engine.errors import UserError
        from stats import api
        from stats.paper import KEYS

        state = StatsState(paper_keys=frozenset(KEYS))
        options = self.stats_options()
        paths = [r.path for r in self.study.runs] if self.study else self.sources
        try:
            df, tr = api.load(paths, options)
            state.tables, _ = api.report_tables(df, tr, options)
            state.cell_p = api.recognition_cells(df, tr, options)
            main = next((t for t in state.tables if t.key == "mcnemar-recognition"), None)
            if main is not None:
                state.run_p = {(str(r["model"]), analysis_condition(r)): float(r["p_adjusted"]) for r in main.records}
        except (UserError, ValueError, KeyError) as exc:
            state.error = str(exc)
        self.call_from_thread(self._stats_done, state)
        if state.tables is None or not self.stats_glmm or not api.wants_glmm(options):
            return
        try:
            state.glmm, _, _, _ = api.fit_glmm(df, options)
        except Exception as exc:
            state.glmm_error = f"{exc.__class__.__name__}: {exc}"
        self.call_from_thread(self._stats_done, state)

    def _stats_done(self, state: StatsState) -> None:
        self.stats = state
        self._refresh_screens()

    def cell_p(self, run_index: int, language: str | None) -> float | None:
        """Adjusted p of the cell's recognition-only McNemar test; None while running, NaN if none."""
        if self.study is None:
            return math.nan
        run = self.study.runs[run_index]
        if self.study.reference[run_index] == NO_REF or self.stats.error or not self.run_stats:
            return math.nan
        if self.stats.tables is None:
            return None
        if language is None:
            return self.stats.run_p.get((run.model, run.label), math.nan)
        return self.stats.cell_p.get((run.model, run.label, language), math.nan)

    # ------------------------------------------------------------ live following

    def _poll(self) -> None:
        if not any(w.group == "follow" and w.is_running for w in self.workers):
            self._follow()

    @work(thread=True, exclusive=True, group="follow", description="follow")
    def _follow(self) -> None:
        study = self.study
        if study is None:
            return
        changed = False
        for run in study.runs:
            if run.running:
                changed |= bool(run.refresh())
                changed |= run.reread_manifest()
        if changed:
            study.rebuild()
            run_info = render.run_info_lines(study.runs, study.root, text_width(self.size.width))
            self.call_from_thread(self._followed, run_info)

    def _followed(self, run_info: render.RunInfo) -> None:
        self.run_info = run_info
        self._refresh_screens()
        if self.run_stats:
            self._run_stats()
        if self.study and not any(r.status == "running" for r in self.study.runs) and self._timer:
            self._timer.stop()
            self._timer = None

    # ------------------------------------------------------------ data for the screens

    def problem_text(self) -> Text | str:
        problems = (self.study.all_problems if self.study else []) + self.flags.problems
        if not problems:
            return ""
        if self.study is not None:  # paths relative to the study folder: shorter, and the folder is in the title
            prefix = str(self.study.root) + os.sep
            problems = [p.replace(prefix, "") for p in problems]
        text = Text(f"{len(problems)} problem(s): ", style="bold red")
        text.append(inert(" · ".join(problems[:4]), 1200))
        if len(problems) > 4:
            text.append(f" · … and {len(problems) - 4} more (5: run info)")
        return text

    def row_cells(self, i: int) -> list[str]:
        assert self.study is not None
        return view.row_cells(self.study, i, self.flags.notes.keys())

    def is_discordant(self, i: int) -> bool:
        return self.study is not None and view.is_discordant(self.study, i)

    def next_discordant(self, rows: np.ndarray, pos: int, step: int, include_current: bool = False) -> int | None:
        """Position in `rows` of the next (step 1) or previous (step -1) discordant row from `pos`."""
        if self.study is None:
            return None
        return view.next_discordant(self.study, rows, pos, step, include_current)

    def item_records(self, uid: str) -> tuple[list[tuple[str, float, dict[str, Any]]], list[str]]:
        """(condition, sparsity, whole outcome record) of every run that has `uid`, reference runs first."""
        assert self.study is not None
        return view.item_records(self.study, uid)

    def current_uid(self) -> tuple[str, str] | None:
        """(item uid, run name) of the item under the cursor or on screen."""
        study = self.study
        screen = self.screen
        idx = (
            screen.pair_index
            if isinstance(screen, ItemScreen)
            else (self.items_state.current if isinstance(screen, ItemsScreen) else None)
        )
        if study is None or idx is None or idx >= len(study.pairs):
            return None
        r = int(study.pairs.run[idx])
        return study.uid(r, int(study.pairs.row[idx])), study.runs[r].name

    # ------------------------------------------------------------ navigation

    def _to_base(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def open_items(self, query: str | None = None) -> None:
        if query is not None:
            self.items_state.query = query
            self.items_state.current = None
        self._to_base()
        self.push_screen("items")

    def open_item(self, index: int) -> None:
        self.items_state.current = index
        self._item_screen().show(index)
        self.push_screen("item")

    def prefetch_item(self, index: int) -> None:
        """Draw the item of pair `index` in the background (the cursor rests on it in the list); nothing
        once the app is closing (its screens are uninstalled then, and a resting-cursor timer may still fire)."""
        if self.is_screen_installed("item"):
            self._item_screen().prefetch(index)

    def _item_screen(self) -> ItemScreen:
        screen = self.get_screen("item")
        assert isinstance(screen, ItemScreen)
        return screen

    def action_goto(self, n: int) -> None:
        current = self.items_state.current
        if n == 3 and (current is None or self.study is None):
            self.notify("no item chosen yet: pick one in Items (2) and press enter", timeout=3)
            return
        self._to_base()
        if n in (2, 3):
            self.push_screen("items")
        if n == 3 and self.items_state.current is not None:
            self._item_screen().show(self.items_state.current)
            self.push_screen("item")
        elif n == 4:
            self.push_screen("significance")
        elif n == 5:
            self.push_screen("runinfo")
        elif n == 6:
            self.push_screen("paper")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))

    def ask_filter(self) -> None:
        def apply(query: str | None) -> None:
            if query is not None:
                self.open_items(query)

        self.push_screen(FilterScreen(self.items_state.query), apply)

    def action_filter(self) -> None:
        self.ask_filter()

    def _chosen_item(self, verb: str) -> tuple[str, str] | None:
        """`current_uid()`, or None with a note saying where `verb` works."""
        found = self.current_uid()
        if found is None:
            self.notify(f"{verb}: open the Items or Item screen and choose an item first", timeout=3)
        return found

    def action_flag(self) -> None:
        found = self._chosen_item("flag")
        if found is None:
            return
        uid, run = found

        def save(note: str | None) -> None:
            if note is None:
                return
            try:
                self.flags.add(uid, note, run)
            except OSError as exc:
                self.notify(f"flag not saved: {exc}", severity="error", timeout=5)
                return
            self.notify(f"flagged {inert(uid, 80)} in {self.flags.path}", timeout=3)
            self._refresh_screens()

        self.push_screen(FlagScreen(uid), save)

    def action_unflag(self) -> None:
        found = self._chosen_item("unflag")
        if found is None:
            return
        uid, run = found
        if uid not in self.flags.notes:
            self.notify(f"{inert(uid, 80)} has no flag", timeout=3)
            return
        try:
            self.flags.remove(uid, run)
        except OSError as exc:
            self.notify(f"flag not removed: {exc}", severity="error", timeout=5)
            return
        self.notify(f"flags of {inert(uid, 80)} removed (recorded in {self.flags.path})", timeout=3)
        self._refresh_screens()

    def action_export(self) -> None:
        screen = self.screen
        if not isinstance(screen, DataScreen):
            self.notify("nothing to export on this screen", timeout=3)
            return
        self._export(screen)

    @work(thread=True, exclusive=True, group="export", description="export")
    def _export(self, screen: DataScreen) -> None:
        """Write the screen's view under `<study>/.prunescope/exports/` (off the event loop: lists can be long)."""
        view = screen.export_view()
        if view is None:
            self.call_from_thread(self.notify, "nothing to export on this screen yet", timeout=3)
            return
        root = self.study.root if self.study else self._sidecar_root()
        try:
            if view.records is not None:
                path = export_path(root, view.view, "jsonl")
                n = write_jsonl(path, view.records)
            else:
                path = export_path(root, view.view, "csv")
                n = write_csv(path, view.header, view.rows)
        except OSError as exc:
            self.call_from_thread(self.notify, f"export failed: {exc}", severity="error", timeout=5)
            return
        self.last_export = path
        self.call_from_thread(self.notify, f"exported {n} rows to {path}", timeout=4)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for n, name, what in (
            (1, "Overview", "conditions × languages heat map"),
            (2, "Items", "the item list"),
            (3, "Item", "the current item across runs"),
            (4, "Significance", "McNemar tables and GLMM of `prunescope stats`"),
            (5, "Run info", "each run's manifest"),
            (6, "Paper analyses", "transitions, demoted vs erased, recovery, rank shift, format ladder"),
        ):
            yield SystemCommand(f"Screen {n}: {name}", what, lambda n=n: self.action_goto(n))
        yield SystemCommand("Filter items", "language, category, transition, flag, regex", self.ask_filter)
        yield SystemCommand("Clear filter", "show every item row", lambda: self.open_items(""))
        yield SystemCommand(
            "Discordant items only", "rows whose category changed from dense", lambda: self.open_items("disc")
        )
        yield SystemCommand("Flagged items only", "rows you flagged", lambda: self.open_items("flag"))
        yield SystemCommand("Export current view", "CSV or JSONL under <study>/.prunescope/exports", self.action_export)


def freeze_long_lived() -> None:
    """Collect garbage, then leave every object alive now out of the collector's later full passes.

    Called in the loading worker, for what lives as long as the app (Textual, the screens, the study):
    a full pass scans every tracked object, and scanning these paused the event loop (or, started by
    a worker thread, held the GIL) for 0.1-0.3 s at a time on a busy machine.
    """
    gc.collect()
    gc.freeze()


def analysis_condition(record: dict[str, Any]) -> str:
    """Condition label of a `prunescope stats` record keyed by method, sparsity and pattern."""
    from engine.contract.labels import condition_label

    return condition_label(str(record["method"]), float(record["sparsity"]), str(record["pattern"]))
