"""The TUI's data layer: the runs of a study (through `engine.contract`), their pairs, and cell counts.

Torch-free and Textual-free. Runs are opened with `engine.contract.runs.open_runs` (the same reader
`stats` uses) and paired with `engine.contract.pairing` (the same rule): per-line fields come from
each run's memory-mapped index, and only the item on screen is read back from the JSONL files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.contract import pairing
from engine.contract.labels import NO_REFERENCE, category_codes, transition_code
from engine.contract.reader import MANIFEST, OUTCOMES
from engine.contract.runs import RunSource, open_runs

NO_REF = pairing.NONE


@dataclass
class RunArrays:
    """Per kept line of one run: category code, language code, open and MC correctness."""

    category: np.ndarray  # int8
    lang: np.ndarray  # int16 index into Study.languages
    open_ok: np.ndarray
    mc_ok: np.ndarray
    shown: np.ndarray  # int8: 1 right, 0 wrong, -1 no candidate-shown generation

    @classmethod
    def of(cls, run: RunSource, languages: Sequence[str]) -> RunArrays:
        if not len(run):
            z = np.zeros(0, dtype=bool)
            return cls(z.astype(np.int8), z.astype(np.int16), z, z, z.astype(np.int8))
        o = run.numpy("open_correct", False).astype(bool)
        m = run.numpy("mc_correct", False).astype(bool)
        s = pc.fill_null(pc.cast(run.column("shown_correct"), pa.int8()), -1).to_numpy().astype(np.int8)
        lang = pc.fill_null(pc.index_in(run.column("language"), value_set=pa.array(list(languages))), -1)
        return cls(category_codes(o, m), lang.to_numpy().astype(np.int16), o, m, s)


@dataclass
class Pairs:
    """Rows of the item list: one per (run, line); `ref` the paired line of the reference run, or NO_REF."""

    run: np.ndarray  # int16 index into Study.runs
    row: np.ndarray  # int32 kept-line index in that run
    ref: np.ndarray  # int32 kept-line index in the run's reference run, or NO_REF
    transition: np.ndarray  # int8 transition code (engine.contract.labels)
    lang: np.ndarray  # int16 index into Study.languages

    @classmethod
    def empty(cls) -> Pairs:
        z = np.zeros(0, dtype=np.int32)
        return cls(z.astype(np.int16), z, z, z.astype(np.int8), z.astype(np.int16))

    def __len__(self) -> int:
        return len(self.run)


@dataclass
class Study:
    """Everything the app shows, built by `load_study` (in a worker thread)."""

    sources: list[Path]
    runs: list[RunSource]
    reference: list[int]  # per run: index of its reference run, or NO_REF
    problems: list[str]  # about the sources and the references
    baseline: bool = False  # runs are paired with a baseline run (`--baseline`), not dense with pruned
    pairs: Pairs = field(default_factory=Pairs.empty)
    languages: list[str] = field(default_factory=list)
    arrays: list[RunArrays] = field(default_factory=list)
    pair_problems: list[str] = field(default_factory=list)  # runs that do not pair (redone with the pairs)
    counts: dict[tuple[int, str | None], dict[str, float]] = field(default_factory=dict)
    generation: int = 0  # bumped by every rebuild: what was drawn from older data is stale
    labels: list[str] = field(default_factory=list)  # per run: `run_labels` (made by `rebuild`)
    _columns: dict[tuple[int, str], pa.ChunkedArray] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """Folder for the sidecar (flags, exports): the study folder, or the runs' parent."""
        src = self.sources[0]
        is_run = (src / OUTCOMES).exists() or (src / MANIFEST).exists()
        return src.parent if len(self.sources) > 1 or is_run else src

    @property
    def label(self) -> str:
        return " + ".join(s.name for s in self.sources)

    def run_label(self, r: int) -> str:
        """How lists and the item screen name run `r` (`run_labels`)."""
        return self.labels[r] if r < len(self.labels) else self.runs[r].label

    @property
    def all_problems(self) -> list[str]:
        seen = dict.fromkeys(self.problems + [p for r in self.runs for p in r.problems] + self.pair_problems)
        return list(seen)

    # ------------------------------------------------------------ per-line values

    def column(self, r: int, name: str) -> pa.ChunkedArray:
        """Outcome-index column `name` of run `r` over its kept lines (cached until the run grows)."""
        key = (r, name)
        if key not in self._columns:
            self._columns[key] = self.runs[r].column(name)
        return self._columns[key]

    def uid(self, r: int, row: int) -> str:
        return str(self.column(r, "item_uid")[int(row)].as_py())

    def language(self, r: int, row: int) -> str:
        code = int(self.arrays[r].lang[int(row)])
        return self.languages[code] if code >= 0 else "?"

    def open_text(self, r: int, row: int) -> str:
        return str(self.column(r, "open_text")[int(row)].as_py() or "")

    def item_value(self, r: int, row: int, name: str) -> str | None:
        """Item-index column `name` of the item of run `r`'s line `row` (None when the item is unknown)."""
        run = self.runs[r]
        item = int(run.item_row[int(row)]) if len(run.item_row) > row else -1
        if item < 0 or run.items is None:
            return None
        return run.items.table.column(name)[item].as_py()

    def row_of(self, r: int, uid: str) -> int | None:
        """The kept line of run `r` for item `uid`."""
        hits = pc.index(self.column(r, "item_uid"), uid).as_py()
        return None if hits < 0 else int(hits)

    def item(self, uid: str) -> dict[str, Any] | None:
        """The whole item (read back from the first items.jsonl that has it)."""
        for run in self.runs:
            if run.items is None:
                continue
            hit = pc.index(run.items.table.column("item_uid"), uid).as_py()
            if hit >= 0:
                return run.items.fetch(hit)
        return None

    # ------------------------------------------------------------ pairs and counts

    def rebuild(self) -> None:
        """Recompute arrays, pairs and counts after runs grew (live following)."""
        self._columns = {}
        self.generation += 1
        langs: set[str] = set()
        for run in self.runs:
            if len(run):
                langs.update(x for x in pc.unique(run.column("language")).to_pylist() if x is not None)
        self.languages = sorted(langs)
        self.labels = run_labels(self.runs)
        self.arrays = [RunArrays.of(run, self.languages) for run in self.runs]
        self.pair_problems = []
        self.pairs = self._pairs()
        self.counts = self._count()

    def _pairs(self) -> Pairs:
        parts: list[tuple[np.ndarray, ...]] = []
        is_ref = {ref for ref in self.reference if ref != NO_REF}
        for r, run in enumerate(self.runs):
            ref_i = self.reference[r]
            if not len(run) or (r in is_ref and ref_i == NO_REF):
                continue
            arr = self.arrays[r]
            rows = np.arange(len(run), dtype=np.int32)
            if ref_i == NO_REF:
                refrows = np.full(len(run), NO_REF, dtype=np.int32)
                tr = transition_code(NO_REFERENCE, arr.category)
            else:
                ref = self.runs[ref_i]
                uids = self.column(r, "item_uid").combine_chunks()
                ref_uids = self.column(ref_i, "item_uid").combine_chunks()
                m = pairing.match_rows(uids, run.numpy("hash64"), ref_uids, ref.numpy("hash64"))
                self.pair_problems += m.problems(run.name, ref.name, uids, ref_uids, run.running or ref.running)
                rows = m.paired.astype(np.int32)
                refrows = m.ref_row[rows].astype(np.int32)
                tr = transition_code(self.arrays[ref_i].category[refrows], arr.category[rows])
            parts.append((np.full(len(rows), r, dtype=np.int16), rows, refrows, tr, arr.lang[rows]))
        if not parts:
            return Pairs.empty()
        return Pairs(*(np.concatenate(cols) for cols in zip(*parts)))

    def cell_counts(self) -> dict[tuple[int, str | None], dict[str, float]]:
        """Per (run, language) and per (run, None) for all languages: n, open, candidate-shown and MC
        accuracy, recognition-only rate (computed by `rebuild`, in the loading thread). Shown accuracy is
        over the items that have a candidate-shown generation (NaN when none has)."""
        return self.counts

    def _count(self) -> dict[tuple[int, str | None], dict[str, float]]:
        out: dict[tuple[int, str | None], dict[str, float]] = {}
        k = len(self.languages)
        for r, arr in enumerate(self.arrays):
            if not len(arr.lang):
                continue
            langs = np.where(arr.lang < 0, k, arr.lang).astype(np.int64)
            n = np.bincount(langs, minlength=k + 1)
            o, m, s = arr.open_ok, arr.mc_ok, arr.shown
            sums = {
                "open": np.bincount(langs, o, k + 1),
                "shown": np.bincount(langs, s == 1, k + 1),
                "mc": np.bincount(langs, m, k + 1),
                "recog": np.bincount(langs, m & ~o, k + 1),
            }
            over = dict.fromkeys(sums, n) | {"shown": np.bincount(langs, s >= 0, k + 1)}
            for i, lang in enumerate(self.languages):
                if n[i]:
                    out[(r, lang)] = {"n": int(n[i]), **{key: _rate(v[i], over[key][i]) for key, v in sums.items()}}
            out[(r, None)] = {"n": len(arr.lang), **{key: _rate(v.sum(), over[key].sum()) for key, v in sums.items()}}
        return out


def several_models(runs: Sequence[RunSource]) -> bool:
    """The runs are of more than one model (their labels name the model)."""
    return len({run.model for run in runs if run.meta}) > 1


def run_labels(runs: Sequence[RunSource]) -> list[str]:
    """Short distinct names of `runs`: the condition, with the model's name ('wanda-s50 · Llama-3-8B')
    when the runs are of more than one model, only the model's name when those runs all have one
    condition (imported runs are all 'dense': 'dense · ' would open every label), and the run id for
    runs that still share a name (two imported runs of one condition, or the same run in two pooled
    studies)."""
    multi_model = several_models(runs)
    one_condition = len({run.label for run in runs if run.meta}) == 1

    def label(run: RunSource) -> str:
        if not (multi_model and run.meta):
            return run.label
        model = run.model.split("/")[-1]
        return model if one_condition else f"{run.label} · {model}"

    labels = [label(run) for run in runs]
    counts = Counter(labels)
    return [run.name if counts[label] > 1 else label for run, label in zip(runs, labels)]


def _rate(count: float, n: float) -> float:
    return float(count / n) if n else float("nan")


def load_study(
    sources: Sequence[Path | str], progress: Callable[[str], None] | None = None, baseline: str | None = None
) -> Study:
    """Open a study folder (or run folders); never raises for bad data: problems are collected.

    Two run folders given on their own are paired directly (the second against the first, unless the
    dense rule pairs them); `baseline` names a run every other run is paired with (`engine.contract.pairing`).
    `progress(message)` is called before each step (the app shows it while loading)."""
    opened = open_runs(sources, progress)
    if progress:
        progress("pairing runs")
    refs = pairing.references([r.key for r in opened.runs], direct=opened.direct, baseline=baseline)
    problems = opened.errors + refs.problems
    if opened.runs and all(r == NO_REF for r in refs.of) and len(opened.runs) > 1:
        problems.append(
            "no reference run (a dense run, or a baseline: --baseline RUN): items are listed per run, without transitions"
        )
    study = Study(opened.sources, opened.runs, refs.of, problems, refs.baseline)
    study.rebuild()
    return study
