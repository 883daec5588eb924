"""The one pairing rule: which run is each run's reference, and which lines pair.

A run's reference is the dense run of the same model on the same item set (the manifest's
`items.hash`). Two such dense runs make the reference ambiguous: that is reported, and the
model's runs are left unpaired. Opening exactly two run folders on purpose pairs the second with
the first whatever their conditions (`direct=True`), unless that rule pairs them already (a pruned
run and its dense run, in either order).

A baseline replaces that rule: when a run is chosen by name (`prunescope stats --baseline RUN`,
the TUI's `--baseline`) or its manifest says `"baseline": true`, every other run on the same item
set is paired with it, whatever its model or condition (two unrelated models, imported runs). Two
baselines on one item set are ambiguous, as two dense runs are.

Lines pair by item uid, and a pair counts only when both lines carry the same item content hash.

`stats` raises the problems found here as errors; the TUI shows them and lists the runs unpaired.
A new kind of baseline (another model size, a different dataset's dense run) is a new branch in
`references`: give it a key that names what must match, and keep the ambiguity check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NONE = -1  # no reference run / no reference row


@dataclass(frozen=True)
class RunKey:
    """What pairing needs to know of a run (from its manifest)."""

    name: str
    model: str
    dense: bool
    items_hash: str  # '' when the manifest does not say
    running: bool = False
    known: bool = True  # False when the manifest is missing or unreadable: never paired
    baseline: bool = False  # the manifest marks it as the baseline of its item set


@dataclass
class References:
    """Index of each run's reference run (NONE: it is a reference, unpaired, or has none)."""

    of: list[int]
    problems: list[str] = field(default_factory=list)  # ambiguous references
    no_reference: list[str] = field(default_factory=list)  # models whose pruned runs have no dense run
    unpaired: list[str] = field(default_factory=list)  # per run left without a reference: why
    baseline: bool = False  # paired with a baseline run, not dense with pruned


def _short(items_hash: str) -> str:
    return (items_hash[:19] + "…") if items_hash else "none recorded"


def _why(run: RunKey, what: str, others: Sequence[RunKey]) -> str:
    """Why `run` has no reference: no `what` at all, or only on another item set (`others`)."""
    if not others:
        return f"{run.name}: no {what}"
    names = ", ".join(o.name for o in others)
    hashes = ", ".join(sorted({_short(o.items_hash) for o in others}))
    return (
        f"{run.name}: the {what} ({names}) ran another item set (items.hash {hashes}; this run's "
        f"{_short(run.items_hash)}; `prunescope validate` checks each against its items.jsonl)"
    )


def references(runs: Sequence[RunKey], direct: bool = False, baseline: str | None = None) -> References:
    """The reference of every run under the rules above (`baseline`: the run chosen by name)."""
    if baseline is not None or any(r.known and r.baseline for r in runs):
        return _baseline_references(runs, baseline)
    if direct and len(runs) == 2:
        ruled = references(runs)
        return ruled if any(r != NONE for r in ruled.of) else References([NONE, 0])
    dense: dict[tuple[str, str], list[int]] = {}
    for i, run in enumerate(runs):
        if run.known and run.dense:
            dense.setdefault((run.model, run.items_hash), []).append(i)
    out = References([NONE] * len(runs))
    for (model, _), found in dense.items():
        if len(found) > 1:
            names = ", ".join(runs[i].name for i in found)
            out.problems.append(
                f"model {model!r} has {len(found)} dense runs on the same items ({names}): the reference is "
                "ambiguous; keep one dense run per model and item set (or open a pruned run with its dense run "
                "as two run folders)"
            )
    for i, run in enumerate(runs):
        if not run.known or run.dense:
            continue
        found = dense.get((run.model, run.items_hash), [])
        if len(found) == 1:
            out.of[i] = found[0]
        elif not found:
            if run.model not in out.no_reference:
                out.no_reference.append(run.model)
            others = [runs[j] for (m, _), js in dense.items() if m == run.model for j in js]
            out.unpaired.append(_why(run, f"dense run of {run.model}", others))
    return out


def _baseline_references(runs: Sequence[RunKey], name: str | None) -> References:
    """Every run paired with the baseline of its item set (the run named, else those marked in manifests)."""
    out = References([NONE] * len(runs), baseline=True)
    if name is not None:
        chosen = [i for i, r in enumerate(runs) if r.name == name]
        if not chosen:
            out.problems.append(f"baseline {name!r}: no such run (the runs: {', '.join(r.name for r in runs)})")
            return out
    else:
        chosen = [i for i, r in enumerate(runs) if r.known and r.baseline]
    by_items: dict[str, list[int]] = {}
    for i in chosen:
        by_items.setdefault(runs[i].items_hash, []).append(i)
    for found in by_items.values():
        if len(found) > 1:
            names = ", ".join(runs[i].name for i in found)
            out.problems.append(
                f"{len(found)} runs on the same items are marked as the baseline ({names}): the reference is "
                "ambiguous; choose one with --baseline RUN"
            )
    for i, run in enumerate(runs):
        if i in chosen or not run.known:
            continue
        found = by_items.get(run.items_hash, [])
        if len(found) == 1:
            out.of[i] = found[0]
        elif not found:
            if run.model not in out.no_reference:
                out.no_reference.append(run.model)
            out.unpaired.append(_why(run, "baseline run", [runs[j] for j in chosen]))
    return out


@dataclass
class RowMatch:
    """Rows of a run matched to rows of its reference run by item uid."""

    ref_row: np.ndarray  # per run row: the reference row, or NONE
    only_run: np.ndarray  # run rows with no reference line
    only_ref: np.ndarray  # reference rows with no line in the run
    differ: np.ndarray  # run rows whose item content hash differs from the reference's

    @property
    def paired(self) -> np.ndarray:
        """Run rows that pair (same item, same content)."""
        ok = self.ref_row != NONE
        ok[self.differ] = False
        return np.flatnonzero(ok)

    def problems(self, run: str, ref: str, run_uids: pa.Array, ref_uids: pa.Array, unfinished: bool) -> list[str]:
        """What keeps the two runs from pairing in full, named with example items.

        Items missing on one side are expected while either run is still running (`unfinished`).
        """
        out = []
        if len(self.differ):
            out.append(
                f"runs {run} and {ref} do not pair: {len(self.differ)} item(s) have different content "
                f"(content hash), e.g. {_examples(run_uids, self.differ)}"
            )
        if not unfinished and (len(self.only_run) or len(self.only_ref)):
            parts = []
            if len(self.only_run):
                parts.append(f"{len(self.only_run)} only in {run} (e.g. {_examples(run_uids, self.only_run)})")
            if len(self.only_ref):
                parts.append(f"{len(self.only_ref)} only in {ref} (e.g. {_examples(ref_uids, self.only_ref)})")
            out.append(f"runs {run} and {ref} are not paired: items " + "; ".join(parts))
        return out


def _examples(uids: pa.Array, rows: np.ndarray) -> str:
    return ", ".join(repr(u) for u in uids.take(pa.array(rows[:3])).to_pylist())


def match_rows(run_uids: pa.Array, run_hash: np.ndarray, ref_uids: pa.Array, ref_hash: np.ndarray) -> RowMatch:
    """Pair the rows of a run with its reference's by uid (strings or integer codes) and check content."""
    ref_row = pc.fill_null(pc.index_in(run_uids, value_set=ref_uids), NONE).to_numpy().astype(np.int64)
    have = ref_row != NONE
    differ = np.flatnonzero(have & (run_hash != ref_hash[np.where(have, ref_row, 0)]))
    seen = np.zeros(len(ref_uids), dtype=bool)
    seen[ref_row[have]] = True
    return RowMatch(ref_row, np.flatnonzero(~have), np.flatnonzero(~seen), differ)


def first_rows(uids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(rows to keep: the first line of each item, rows of later duplicate lines)."""
    codes = pc.index_in(uids, value_set=pc.unique(uids)).to_numpy(zero_copy_only=False)
    _, first = np.unique(codes, return_index=True)
    keep = np.zeros(len(codes), dtype=bool)
    keep[first] = True
    return np.flatnonzero(keep), np.flatnonzero(~keep)
