"""The item list's query logic, without Textual: the `/` filter, sorting, row cells, discordant steps.

Everything works on the arrays of `tui.model.Study`; a selection over a million rows is a few numpy
and Arrow calls. The text filter is a regular expression run by Arrow (RE2) over item text, uids and
answers, with Python's `re` as the fallback for patterns RE2 does not take.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.contract.labels import (
    CATEGORIES,
    CATEGORY_SHORT,
    DEMOTIONS,
    N_TRANSITIONS,
    TRANSITION_LABELS,
    category_from_short,
    discordant,
    transition_label,
)
from engine.contract.runs import RunSource
from tui.model import NO_REF, Study

SORT_KEYS = ("run", "language", "item", "transition", "gold", "answer", "flag")
FILTER_HELP = (
    f"lang:de,fr (any case)  cat:RO ({' '.join(CATEGORY_SHORT)} or full names)  trans:BC→RO (or BC>RO)  run:wanda-s70  "
    "demotion:demoted|erased|not_probed  recovered:yes|no  flag  disc   · other words: a regex over uid, question, gold and the run's answer"
)


FILTER_KEYS = {  # each key of the filter with an example value
    "lang": "de",
    "language": "de",
    "cat": "RO",
    "category": "RO",
    "trans": "BC>RO",
    "transition": "BC>RO",
    "run": "wanda-s70",
    "cond": "wanda-s70",
    "condition": "wanda-s70",
    "demotion": "demoted",
    "recovered": "yes",
}


@dataclass
class Filter:
    """Parsed `/` query: `lang:de cat:recognition_only trans:BC→RO run:wanda demotion:demoted recovered:yes flag`
    and a regex on text."""

    languages: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    transitions: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    flagged: bool = False
    discordant: bool = False
    demotion: list[str] = field(default_factory=list)  # the engine's labels: demoted, erased, not_probed
    recovered: bool | None = None  # a probe brought the gold answer back (None: either)
    regex: re.Pattern[str] | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Filter:
        """Raises ValueError with a readable message for an unknown key or a bad regex."""
        f = cls(text=text.strip())
        words = []
        for tok in text.split():
            key, sep, val = tok.partition(":")
            if sep and not val and key in FILTER_KEYS:  # `lang: es` would filter on nothing and search 'es'
                raise ValueError(f"{tok} needs its value right after the colon, e.g. {key}:{FILTER_KEYS[key]}")
            if sep and key in ("lang", "language"):
                f.languages += [v for v in val.split(",") if v]
            elif sep and key in ("cat", "category"):
                for v in val.split(","):
                    try:
                        f.categories.append(category_from_short(v))
                    except ValueError as exc:
                        raise ValueError(f"cat:{v}: {exc}") from None
            elif sep and key in ("trans", "transition"):
                f.transitions.append(val.replace(">", "→").upper())
            elif sep and key in ("run", "cond", "condition"):
                f.runs.append(val)
            elif sep and key == "demotion":
                for v in val.replace("|", ",").split(","):
                    if v not in DEMOTIONS:
                        raise ValueError(f"demotion:{v}: one of {', '.join(DEMOTIONS)} (e.g. demotion:demoted)")
                    f.demotion.append(v)
            elif sep and key == "recovered":
                if val not in ("yes", "no"):
                    raise ValueError(f"recovered:{val}: yes or no (a probe brought the gold answer back)")
                f.recovered = val == "yes"
            elif tok in ("flag", "flagged"):
                f.flagged = True
            elif tok in ("disc", "discordant"):
                f.discordant = True
            else:
                words.append(tok)
        if words:
            try:
                f.regex = re.compile(" ".join(words), re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"bad regex {' '.join(words)!r}: {exc}") from None
        return f


def runs_named(runs: Sequence[RunSource], term: str) -> list[int]:
    """`run:TERM` picks the run whose folder name is TERM (what the Overview writes) or, where none is,
    the runs whose folder name contains TERM or whose condition label is TERM."""
    exact = [r for r, run in enumerate(runs) if run.name == term]
    return exact or [r for r, run in enumerate(runs) if term in run.name or term == run.label]


def _some(values: list[str], n: int = 10) -> str:
    return ", ".join(values[:n]) + (", …" if len(values) > n else "") if values else "none"


def filter_hints(study: Study, flt: Filter) -> list[str]:
    """Why terms of `flt` can match no row: a language, run, category or transition the study does not
    have (each named with what it has), or a run that has no rows of its own (a reference run)."""
    p = study.pairs
    hints = []
    known = {lang.casefold() for lang in study.languages}
    for v in flt.languages:
        if v.casefold() not in known:
            hints.append(f"no language {v!r} in this study (languages: {_some(study.languages)})")
    with_rows = set(np.unique(p.run).tolist())
    for v in flt.runs:
        named = runs_named(study.runs, v)
        if not named:
            labels = [study.run_label(r) for r in sorted(with_rows)]
            hints.append(f"no run {v!r} in this study (runs: {_some(labels)})")
        elif not with_rows.intersection(named):
            what = "baseline" if study.baseline else "dense"
            refs = {study.reference[r] for r in with_rows}
            if refs.intersection(named):
                hints.append(
                    f"run:{v} is the {what} run: it has no rows of its own, each row pairs another run with it"
                    f" (its category is the left of the {what}→run transition)"
                )
            else:
                hints.append(f"run:{v}: no rows (the run has no outcome lines yet)")
    codes = np.unique(p.transition).tolist()
    for c in flt.categories:
        if not any(t % 4 == CATEGORIES.index(c) for t in codes):
            hints.append(f"no row has category {c}")
    for t in flt.transitions:
        matching = [c for c in range(N_TRANSITIONS) if t in TRANSITION_LABELS[c]]
        if not matching:
            hints.append(f"no transition {t!r} (e.g. BC→RO, RO→BW; categories {' '.join(CATEGORY_SHORT)})")
        elif not set(matching).intersection(codes):
            hints.append(f"no row has transition {t}")
    hints += _probe_hints(study, flt, sorted(with_rows))
    return hints


def _probe_hints(study: Study, flt: Filter, runs: list[int]) -> list[str]:
    """Why `demotion:` or `recovered:` match nothing: no run with rows has demotion verdicts or probes
    (imported runs have neither), or none has the verdict asked for."""
    if not (flt.demotion or flt.recovered is not None):
        return []
    hints = []
    why = " (imported runs have none)" if runs and all(_is_imported(study, r) for r in runs) else ""
    if flt.demotion:
        verdicts = {v for r in runs for v in pc.unique(study.column(r, "demotion")).to_pylist() if v is not None}
        if not verdicts:
            hints.append(f"no row has a demotion verdict{why}")
        elif not verdicts.intersection(flt.demotion):
            hints.append(f"no row has demotion {'|'.join(flt.demotion)} (verdicts here: {', '.join(sorted(verdicts))})")
    if flt.recovered is not None:
        codes = {int(c) for r in runs for c in np.unique(recovered_codes(study, r)).tolist()}
        if not codes - {-1}:
            hints.append(f"no row has recovery probes{why}")
        elif int(flt.recovered) not in codes:
            hints.append(
                "no probed row brought the gold answer back" if flt.recovered else "every probed row was recovered"
            )
    return hints


def _is_imported(study: Study, r: int) -> bool:
    return isinstance((study.runs[r].manifest or {}).get("imported"), dict)


def select(study: Study, flt: Filter, flagged: set[str]) -> np.ndarray:
    """Indices into study.pairs that pass the filter."""
    p = study.pairs
    if not len(p):
        return np.zeros(0, dtype=np.int64)
    mask = np.ones(len(p), dtype=bool)
    if flt.runs:
        ok_runs = [r for term in flt.runs for r in runs_named(study.runs, term)]
        mask &= np.isin(p.run, ok_runs)
    if flt.categories:
        mask &= np.isin(p.transition % 4, [CATEGORIES.index(c) for c in flt.categories])
    if flt.transitions:
        ok = [c for c in range(N_TRANSITIONS) if any(t in TRANSITION_LABELS[c] for t in flt.transitions)]
        mask &= np.isin(p.transition, ok)
    if flt.discordant:
        mask &= discordant(p.transition)
    if flt.languages:
        wanted = {v.casefold() for v in flt.languages}  # language codes (BCP 47) are case-insensitive
        mask &= np.isin(p.lang, [i for i, lang in enumerate(study.languages) if lang.casefold() in wanted])
    if flt.demotion:
        mask &= _per_run(study, lambda r: _is_in(study.column(r, "demotion"), set(flt.demotion)))
    if flt.recovered is not None:
        want = int(flt.recovered)
        mask &= _per_run(study, lambda r: recovered_codes(study, r) == want)
    if flt.flagged:
        mask &= _per_run(study, lambda r: _is_in(study.column(r, "item_uid"), flagged))
    if flt.regex is not None:
        mask &= _text_match(study, flt.regex)
    return np.flatnonzero(mask).astype(np.int64)


def recovered_codes(study: Study, r: int) -> np.ndarray:
    """Per kept line of run r: 1 when a probe (beam, sampling, one-shot) produced the gold answer, 0 when
    probes ran and none did, -1 when none ran."""
    beam, hits, one = (study.column(r, c) for c in ("beam_any", "sample_hits", "one_shot"))
    ran = pc.or_(pc.or_(pc.is_valid(beam), pc.is_valid(hits)), pc.is_valid(one))
    hit = pc.or_(pc.or_(pc.fill_null(beam, False), pc.greater(pc.fill_null(hits, 0), 0)), pc.fill_null(one, False))
    ran_np = ran.to_numpy(zero_copy_only=False).astype(bool)
    return np.where(ran_np, hit.to_numpy(zero_copy_only=False).astype(np.int8), -1).astype(np.int8)


def _is_in(col: pa.ChunkedArray, values: set[str]) -> np.ndarray:
    if not values:
        return np.zeros(len(col), dtype=bool)
    return pc.is_in(col, value_set=pa.array(sorted(values))).to_numpy(zero_copy_only=False).astype(bool)


def _per_run(study: Study, per_line: Any) -> np.ndarray:
    """A per-pair mask from `per_line(r)`, a boolean array over the kept lines of run r."""
    p = study.pairs
    out = np.zeros(len(p), dtype=bool)
    for r in np.unique(p.run).tolist():
        sel = p.run == r
        out[sel] = per_line(r)[p.row[sel]]
    return out


BACKTRACKING_BUDGET_S = 10.0
"""How long a filter's regex may take where RE2 refuses it (backreferences, lookarounds) and a
backtracking engine runs it: `(\\w+\\s?)*\\1X` would otherwise never end."""


def _regex_mask(col: pa.ChunkedArray | pa.Array, regex: re.Pattern[str], deadline: float) -> np.ndarray:
    """Rows of a string column where `regex` matches: RE2 in Arrow (linear time), or where RE2 refuses
    the pattern, the `regex` module, which leaves the other threads running and stops at `deadline`
    (time.monotonic) with a ValueError saying so."""
    try:
        hit = pc.match_substring_regex(col, regex.pattern, ignore_case=True)
        return pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    import regex as backtracking

    pattern = backtracking.compile(regex.pattern, backtracking.IGNORECASE | backtracking.VERSION0)
    out = np.zeros(len(col), dtype=bool)
    for i, value in enumerate(col.to_pylist()):
        if not value:
            continue
        try:
            left = max(deadline - time.monotonic(), 1e-3)
            out[i] = pattern.search(value, timeout=left, concurrent=True) is not None
        except TimeoutError:
            raise ValueError(
                f"the regex took over {BACKTRACKING_BUDGET_S:g} s and was stopped (backreferences and lookarounds "
                "are matched by backtracking; without them the filter runs in linear time)"
            ) from None
    return out


def _text_match(study: Study, regex: re.Pattern[str]) -> np.ndarray:
    """Pairs whose uid, item text (question, gold, aliases) or run's answer matches."""
    item_hits: dict[int, np.ndarray] = {}
    deadline = time.monotonic() + BACKTRACKING_BUDGET_S

    def per_line(r: int) -> np.ndarray:
        run = study.runs[r]
        hit = _regex_mask(study.column(r, "item_uid"), regex, deadline)
        hit |= _regex_mask(study.column(r, "open_text"), regex, deadline)
        if run.items is not None:
            key = id(run.items)
            if key not in item_hits:
                item_hits[key] = _regex_mask(run.items.table.column("search_text"), regex, deadline)
            rows = run.item_row
            hit |= np.where(rows >= 0, item_hits[key][np.maximum(rows, 0)], False)
        return hit

    return _per_run(study, per_line)


def pair_values(study: Study, idx: np.ndarray, name: str, items: bool = False) -> pa.Array:
    """Column `name` of the outcome index (or of the item index, `items`) for pairs `idx`, in order."""
    p = study.pairs
    runs = p.run[idx]
    parts, where = [], []
    for r in np.unique(runs).tolist():
        at = np.flatnonzero(runs == r)
        rows = p.row[idx[at]]
        run = study.runs[r]
        if items:
            item_rows = run.item_row[rows] if len(run.item_row) else np.full(len(rows), -1)
            if run.items is None:
                values = pa.nulls(len(rows), pa.string())
            else:
                take = pa.array(np.maximum(item_rows, 0))
                values = pc.if_else(pa.array(item_rows >= 0), run.items.table.column(name).take(take), None)
        else:
            values = study.column(r, name).take(pa.array(rows))
        parts.append(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)
        where.append(at)
    if not parts:
        return pa.array([], pa.string())
    order = np.concatenate(where)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pa.concat_arrays(parts).take(pa.array(inverse))


def sort_order(study: Study, idx: np.ndarray, key: str, reverse: bool, flagged: set[str]) -> np.ndarray:
    """`idx` sorted stably by column `key`."""
    p = study.pairs
    if not len(idx):
        return idx
    if key in ("run", "transition", "language"):  # language codes follow the sorted language names
        codes = {"run": p.run, "transition": p.transition, "language": p.lang}[key]
        order = np.argsort(codes[idx], kind="stable")
    else:
        if key == "item":
            arr = pair_values(study, idx, "item_uid")
        elif key == "gold":
            arr = pc.fill_null(pair_values(study, idx, "answer", items=True), "")
        elif key == "answer":
            arr = pc.fill_null(pair_values(study, idx, "open_text"), "")
        else:  # flag: flagged first
            arr = pa.array(~_is_in(pair_values(study, idx, "item_uid"), flagged))
        order = pc.sort_indices(arr, sort_keys=[("", "ascending")]).to_numpy()
    return idx[order[::-1] if reverse else order]


def row_text(study: Study, i: int) -> str:
    """The text a regex filter searches: uid, question, gold answer and aliases, the run's answer."""
    p = study.pairs
    r, row = int(p.run[i]), int(p.row[i])
    return "\n".join([study.uid(r, row), study.item_value(r, row, "search_text") or "", study.open_text(r, row)])


# ------------------------------------------------------------------ rows and steps


def row_cells(study: Study, i: int, flagged: Collection[str]) -> list[str]:
    """The item list's cells of pair `i`: run, language, item, transition, gold, answer, flag."""
    p = study.pairs
    r, row = int(p.run[i]), int(p.row[i])
    uid = study.uid(r, row)
    return [
        study.run_label(r),
        study.language(r, row),
        uid.split("/", 3)[-1],
        transition_label(int(p.transition[i])),
        study.item_value(r, row, "answer") or "?",
        study.open_text(r, row),
        "⚑" if uid in flagged else "",
    ]


def is_discordant(study: Study, i: int) -> bool:
    return bool(discordant(int(study.pairs.transition[i])))


def position(rows: np.ndarray, index: int | None) -> int | None:
    """Where pair `index` first stands in `rows`, or None (not there, or no index)."""
    if index is None:
        return None
    hit = np.flatnonzero(rows == index)
    return int(hit[0]) if len(hit) else None


def next_discordant(study: Study, rows: np.ndarray, pos: int, step: int, include_current: bool = False) -> int | None:
    """Position in `rows` of the next (step 1) or previous (step -1) discordant row from `pos`.

    `include_current`: `pos` itself counts (a fresh list, where the cursor has not moved yet)."""
    if not len(rows):
        return None
    hits = np.flatnonzero(discordant(study.pairs.transition[rows]))
    if step > 0:
        after = hits[hits >= pos] if include_current else hits[hits > pos]
        return int(after[0]) if len(after) else None
    before = hits[hits <= pos] if include_current else hits[hits < pos]
    return int(before[-1]) if len(before) else None


def item_records(study: Study, uid: str) -> tuple[list[tuple[str, float, dict[str, Any]]], list[str]]:
    """(condition label, sparsity, whole outcome record) of every run that has `uid`, references first."""
    out, problems = [], []
    order = sorted(
        range(len(study.runs)),
        key=lambda r: (study.reference[r] != NO_REF, _sparsity(study, r), r),
    )
    for r in order:
        run = study.runs[r]
        if not len(run):
            continue
        row = study.row_of(r, uid)
        if row is None:
            continue
        try:
            out.append((study.run_label(r), _sparsity(study, r), run.fetch(row)))
        except (OSError, ValueError) as exc:
            problems.append(f"{run.name}: the line of {uid} could not be read back ({exc})")
    return out, problems


def imported_blocks(study: Study) -> dict[str, dict[str, Any]]:
    """Per run label (`Study.run_label`): the manifest's `imported` block of the runs `prunescope import`
    made (how their MC answers and open correctness were decided); engine-made runs are not in it."""
    out = {}
    for r, run in enumerate(study.runs):
        block = (run.manifest or {}).get("imported")
        if isinstance(block, dict):
            out[study.run_label(r)] = block
    return out


def _sparsity(study: Study, r: int) -> float:
    meta = study.runs[r].meta
    return float(meta.condition.sparsity) if meta else float("nan")
