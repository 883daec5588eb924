"""Paper analyses: transitions, demoted vs erased, recovery, rank shift and the format ladder (the
tables `prunescope stats` writes), with the cells of one language and one model picked by keys."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import replace
from typing import Any

from textual.binding import Binding

from engine.safe_text import inert
from tui.screens.base import Export
from tui.screens.stats_tables import StatsTablesScreen

ALL = "all"


class PaperScreen(StatsTablesScreen):
    """The paper's tables from `app.stats.paper_tables`; `L` cycles the language, `M` the model."""

    SCREEN_NAME = "6 Paper analyses"
    WHAT = "The paper's analyses"
    LEAD = "L: language (all = pooled)  M: model · same tables and numbers as "
    BINDINGS = [
        Binding("L", "cycle('language')", "language", id="paper.language"),
        Binding("M", "cycle('model')", "model", id="paper.model"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.language = ALL
        self.model = ALL

    def _tables(self) -> list[Any]:
        return self.papp.stats.paper_tables

    def _choices(self, key: str) -> list[str]:
        seen = sorted({str(r[key]) for t in self._tables() for r in t.all_records() if r.get(key) not in (None, ALL)})
        return [ALL, *seen]

    def action_cycle(self, key: str) -> None:
        choices = self._choices(key)
        current = getattr(self, key)
        nxt = choices[(choices.index(current) + 1) % len(choices)] if current in choices else ALL
        setattr(self, key, nxt)
        self.refresh_data()

    def choice(self) -> Hashable:
        return (self.language, self.model)

    def tables(self) -> list[Any]:
        return self.filtered()

    def filtered(self) -> list[Any]:
        """The tables with the rows of the chosen language (pooled rows for 'all') and model."""
        out = []
        for t in self._tables():
            per_language = any(r.get("language", ALL) != ALL for r in t.all_records())
            language = self.language if per_language else ALL  # a table pooled over languages only
            rows = [
                r
                for r in t.all_records()
                if r.get("language", ALL) == language and (self.model == ALL or r.get("model") == self.model)
            ]
            title = t.title if per_language or self.language == ALL else f"{t.title} (languages pooled)"
            notes = list(t.notes)
            if self.model != ALL and not rows and t.all_records():  # say why the chosen model has none here
                models = sorted({str(r["model"]) for r in t.all_records() if r.get("model") is not None})
                notes.insert(0, f"No rows for model {self.model} here; this table's rows are of {', '.join(models)}.")
            out.append(replace(t, title=title, records=rows, detail=[], notes=notes))
        return out

    def refresh_data(self) -> None:
        self.set_title(f"language: {inert(self.language, 20)} · model: {inert(self.model, 60)}")
        super().refresh_data()

    def export_view(self) -> Export | None:
        tables = self.filtered()
        if not tables:
            return None
        return Export("paper", records=[{"table": t.key, **r} for t in tables for r in t.to_dict()["records"]])
