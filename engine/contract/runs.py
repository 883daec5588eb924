"""Run folders opened for reading, the same way for `stats` and the TUI.

`open_runs` finds the run folders of a study (or of run folders given directly), reads each
manifest into a `RunMeta`, opens the indexes of outcomes.jsonl and items.jsonl (one item index per
distinct item set), keeps the first line of each item, and maps each outcome to its item. Nothing
here raises for bad data: what is wrong is collected, as `errors` (a run that cannot be analysed as
it is: `stats` stops on them) and `warnings` (corrupt lines skipped, a torn tail in a finished run).

Two or more study folders given together are pooled: each run keeps its study's name (`study`),
its name becomes `study/run_id` (run ids are unique within a study only) and pairing stays within a
study. Run folders given one by one form one study, whatever folders they sit in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.contract.index import (
    ITEM_LAYOUT,
    OUTCOME_LAYOUT,
    OUTCOMES_INDEX,
    LineIndex,
    build_in_parallel,
    open_items,
    open_outcomes,
)
from engine.contract.pairing import RunKey, first_rows
from engine.contract.reader import ITEMS, MANIFEST, OUTCOMES, RunFolderError, discover_runs, is_run_dir, read_manifest
from engine.contract.records import RunMeta, run_meta

Progress = Callable[[str], None]


@dataclass
class RunSource:
    """One run folder: its manifest, its outcome and item indexes, and what is wrong with it."""

    path: Path
    manifest: dict[str, Any] | None = None
    meta: RunMeta | None = None
    outcomes: LineIndex | None = None
    items: LineIndex | None = None
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # kept outcome rows
    item_row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # per kept row, or -1
    errors: list[str] = field(default_factory=list)  # the run cannot be analysed as it is
    study: str = ""  # the study folder's name
    pooled: bool = False  # opened with runs of other studies: names are qualified by the study
    row_errors: list[str] = field(default_factory=list)  # the same, found in its lines (redone on refresh)

    @property
    def name(self) -> str:
        run_id = (self.meta.run_id if self.meta else "") or self.path.name
        return f"{self.study}/{run_id}" if self.pooled else run_id

    @property
    def status(self) -> str:
        return self.meta.status if self.meta else "unknown"

    @property
    def model(self) -> str:
        return self.meta.model.id if self.meta else "?"

    @property
    def label(self) -> str:
        """The condition label, or the folder name when the manifest is missing."""
        return self.meta.label if self.meta else f"{self.path.name} (no manifest)"

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def key(self) -> RunKey:
        m = self.meta
        return RunKey(
            self.name,
            f"{self.study}/{self.model}" if self.pooled else self.model,
            bool(m and m.is_dense),
            m.items.hash if m else "",
            self.running,
            m is not None,
            bool(m and m.baseline),
        )

    @property
    def warnings(self) -> list[str]:
        """Lines skipped: corrupt ones, and a torn tail where no writer is at work."""
        if self.outcomes is None:
            return []
        torn = self.outcomes.torn_tail and not self.running
        return self.outcomes.problems + ([f"{self.outcomes.path}: torn last line (cut write) ignored"] if torn else [])

    @property
    def fatal(self) -> list[str]:
        return self.errors + self.row_errors

    @property
    def problems(self) -> list[str]:
        return self.errors + self.row_errors + self.warnings

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> pa.ChunkedArray:
        """An outcome-index column over the kept rows."""
        assert self.outcomes is not None
        col = self.outcomes.table.column(name)
        return col if len(self.rows) == col.length() else col.take(pa.array(self.rows))

    def numpy(self, name: str, fill: Any = None) -> np.ndarray:
        """A column over the kept rows as numpy (nulls filled with `fill` when given)."""
        col = self.column(name)
        if fill is not None:
            col = pc.fill_null(col, fill)
        return col.to_numpy()

    def refresh(self) -> int:
        """Read outcome lines appended since the last read (live following); returns rows added."""
        if self.outcomes is None:
            return 0
        added = self.outcomes.extend()
        if added:
            _keep_rows(self)
        return added

    def reread_manifest(self) -> bool:
        """Read the manifest again (a live run finishing); True when its status changed."""
        before = self.status
        try:
            manifest = read_manifest(self.path)
            meta = run_meta(manifest, str(self.path / MANIFEST))
        except (RunFolderError, ValueError):
            return False
        self.manifest, self.meta = manifest, meta
        return self.status != before

    def fetch(self, row: int) -> dict[str, Any]:
        """The whole outcome record of kept row `row` (read back by offset)."""
        assert self.outcomes is not None
        return self.outcomes.fetch(int(self.rows[row]))


@dataclass
class OpenedRuns:
    """Runs found under the sources, in order, and what is wrong with the sources themselves."""

    sources: list[Path]
    runs: list[RunSource]
    errors: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.errors + [p for r in self.runs for p in r.problems]

    @property
    def direct(self) -> bool:
        """Two run folders given on their own: paired with each other (`engine.contract.pairing`)."""
        return len(self.sources) == 2 and len(self.runs) == 2


def study_label(source: Path) -> str:
    """The study a source belongs to: its own name for a study folder, its parent's for a run folder."""
    path = Path(source).resolve()
    return (path.parent if is_run_dir(path) else path).name


def find_runs(sources: Sequence[Path]) -> tuple[list[Path], list[str], list[str]]:
    """Run folders under each source (a study folder or a run folder), each one's study, and the
    sources that hold none."""
    paths: list[Path] = []
    studies: list[str] = []
    errors: list[str] = []
    for src in sources:
        if not src.exists():
            errors.append(f"{src}: no such study or run folder")
            continue
        found = discover_runs(src)
        if not found:
            errors.append(f"{src}: no run folders here (a run folder holds manifest.json and outcomes.jsonl)")
        paths += found
        studies += [study_label(src)] * len(found)
    return paths, studies, errors


def open_runs(sources: Sequence[Path | str], progress: Progress | None = None, cache: bool = True) -> OpenedRuns:
    """Open every run under `sources` (see the module docstring); never raises for bad data."""
    srcs = [Path(s) for s in sources]
    paths, studies, errors = find_runs(srcs)
    pooled = len({study_label(s) for s in srcs if s.exists() and not is_run_dir(s)}) > 1
    if cache:  # a study opened the first time: its indexes built in worker processes
        build_in_parallel(
            [(p / OUTCOMES, OUTCOME_LAYOUT, p / OUTCOMES_INDEX) for p in paths]
            + [(p / ITEMS, ITEM_LAYOUT, None) for p in _one_per_item_set(paths)],
            progress,
        )
    item_sets: dict[tuple[str, int], LineIndex | str] = {}
    runs = []
    for k, path in enumerate(paths, 1):
        if progress:
            progress(f"indexing run {k} of {len(paths)}: {path.name}")
        run = open_run(path, item_sets, cache)
        run.study, run.pooled = (studies[k - 1], True) if pooled else (studies[0], False)
        runs.append(run)
    seen: dict[str, Path] = {}
    for run in runs:
        if run.name in seen:
            errors.append(f"run id {run.name!r} appears twice: {seen[run.name]} and {run.path}")
        seen.setdefault(run.name, run.path)
    return OpenedRuns(srcs, runs, errors)


def _one_per_item_set(paths: Sequence[Path]) -> list[Path]:
    """One run folder per distinct items.jsonl (by size and first bytes: a cheap guess; `open_runs`
    still opens each item set properly)."""
    seen: dict[tuple[int, bytes], Path] = {}
    for p in paths:
        try:
            with open(p / ITEMS, "rb") as f:
                key = (os.fstat(f.fileno()).st_size, f.read(4096))
        except OSError:
            continue
        seen.setdefault(key, p)
    return list(seen.values())


def open_run(
    path: Path, item_sets: dict[tuple[str, int], LineIndex | str] | None = None, cache: bool = True
) -> RunSource:
    """One run folder (`item_sets` shares item indexes between runs on the same item set)."""
    run = RunSource(Path(path))
    try:
        run.manifest = read_manifest(run.path)
        run.meta = run_meta(run.manifest, str(run.path / MANIFEST))
    except (RunFolderError, ValueError) as exc:
        run.errors.append(str(exc))
    run.items = _items(run, {} if item_sets is None else item_sets, cache)
    out = run.path / OUTCOMES
    try:
        run.outcomes = open_outcomes(run.path, cache)
    except FileNotFoundError:
        run.errors.append(f"{out}: missing")
        return run
    _keep_rows(run)
    return run


def _items(run: RunSource, item_sets: dict[tuple[str, int], LineIndex | str], cache: bool) -> LineIndex | None:
    path = run.path / ITEMS
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        run.errors.append(f"{path}: missing (questions and gold answers unknown)")
        return None
    key = ((run.meta.items.hash if run.meta else "") or str(path), size)
    if key not in item_sets:
        item_sets[key] = _item_set(run.path, cache)
    found = item_sets[key]
    if isinstance(found, str):
        run.errors.append(found)
        return None
    return found


def _item_set(run_dir: Path, cache: bool) -> LineIndex | str:
    """The item index of a run folder, or what is wrong with its items.jsonl."""
    path = run_dir / ITEMS
    index = open_items(run_dir, cache)
    if index.problems:
        more = len(index.problems) - 1
        return index.problems[0] + (f" (and {more} more corrupt lines)" if more else "")
    if index.torn_tail:
        return f"{path}: last line is incomplete (items.jsonl is written whole; the file is damaged)"
    _, dup = first_rows(index.table.column("item_uid"))
    if len(dup):
        uid = index.table.column("item_uid")[int(dup[0])].as_py()
        return f"{path}: every item needs a unique item_uid ({uid!r} appears more than once)"
    return index


def _keep_rows(run: RunSource) -> None:
    """The first line of each item, and its row in the item index; duplicates and unknown items named."""
    assert run.outcomes is not None
    out = run.path / OUTCOMES
    uids = run.outcomes.table.column("item_uid")
    keep, dup = first_rows(uids)
    run.row_errors = []
    if len(dup):
        uid = uids[int(dup[0])].as_py()
        run.row_errors.append(
            f"{out}: item {uid!r} has more than one outcome line ({len(dup)} duplicate lines); "
            "`prunescope validate --repair` removes exact duplicates"
        )
    run.rows = keep
    if run.items is None:
        run.item_row = np.full(len(keep), -1, dtype=np.int64)
        return
    kept = uids.take(pa.array(keep)) if len(dup) else uids
    item_row = pc.fill_null(pc.index_in(kept, value_set=run.items.table.column("item_uid")), -1).to_numpy()
    run.item_row = item_row.astype(np.int64)
    unknown = np.flatnonzero(run.item_row < 0)
    if len(unknown):
        ex = ", ".join(repr(u) for u in kept.take(pa.array(unknown[:3])).to_pylist())
        run.row_errors.append(f"{out}: {len(unknown)} outcome(s) for items not in {ITEMS}, e.g. {ex}")
    known = np.flatnonzero(run.item_row >= 0)
    ours = run.numpy("hash64")[known]
    theirs = run.items.table.column("hash64").to_numpy()[run.item_row[known]]
    bad = known[ours != theirs]
    if len(bad):
        ex = ", ".join(repr(u) for u in kept.take(pa.array(bad[:3])).to_pylist())
        run.row_errors.append(f"{out}: content hash differs from {ITEMS} for {len(bad)} item(s), e.g. {ex}")
