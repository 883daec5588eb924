"""Run folders → one tidy table (one row per item × run) and dense → pruned transitions.

Runs are opened through `engine.contract.runs.open_runs`: the columns come from each run's index
(memory-mapped; built once from outcomes.jsonl when a run has none), the pairing from
`engine.contract.pairing`. Two or more study folders are pooled: run ids become `study/run_id`,
pairing stays within a study, and `dataset` tells the studies' item sources apart. What the reader finds wrong with a run raises `UserError` here (a
missing manifest, an outcome for an unknown item, a duplicate line); corrupt lines are skipped and
reported in `df.attrs["problems"]`, or raise with `strict`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.contract import pairing
from engine.contract.index import OUTCOME_COLUMNS
from engine.contract.labels import CATEGORIES, category_codes, transition_code
from engine.contract.runs import RunSource, open_runs
from engine.errors import UserError

FORMATS = ("open_correct", "shown_correct", "mc_correct", "recognition_only")
COLUMNS = (
    "run_id",
    "study",
    "dataset",
    "model",
    "n_params",
    "log_params",
    "method",
    "sparsity",
    "pattern",
    "condition",
    "status",
    "item_uid",
    "content_key",  # 64-bit key of the item's content hash (engine.contract.index.hash64)
    "parallel_id",
    "language",
    "open_correct",
    "shown_correct",
    "mc_correct",
    "recognition_only",
    "category",
    "open_text",
    "first_token_rank",
    "seq_logprob",
    "margin",
    "demotion",
    "beam_top",
    "beam_any",
    "sample_hits",
    "one_shot",
    "n_options",
    "layer_ranks",  # per item: the gold rank at every logit-lens entry (an int array), None without a layer trace
)
_INDEXED = tuple(c for c in COLUMNS if c in dict(OUTCOME_COLUMNS))  # taken as they are from the run index
_CATEGORICAL = (
    "run_id",
    "study",
    "dataset",
    "model",
    "method",
    "pattern",
    "condition",
    "status",
    "language",
    "demotion",
    "item_uid",
)
_NULLABLE = {
    "shown_correct": "boolean",
    "beam_top": "boolean",
    "beam_any": "boolean",
    "one_shot": "boolean",
    "first_token_rank": "Int64",
    "sample_hits": "Int64",
    "n_options": "Int64",
}


def _run_table(run: RunSource) -> pa.Table:
    """The run's rows as Arrow columns: index fields, item fields, and the run's constants."""
    assert run.outcomes is not None and run.items is not None and run.meta is not None
    n = len(run)
    cols = {name: run.column(name) for name in _INDEXED}
    cols["content_key"] = run.column("hash64")
    take = pa.array(run.item_row)
    cols["parallel_id"] = run.items.table.column("parallel_id").take(take)
    cols["n_options"] = run.items.table.column("n_options").take(take)
    cols["dataset"] = pc.fill_null(run.items.table.column("dataset").take(take), "unknown")
    meta = run.meta
    n_params = int(meta.model.n_params or 0)
    const = {
        "run_id": run.name,
        "study": run.study,
        "model": meta.model.id,
        "n_params": n_params,
        "log_params": math.log10(n_params) if n_params > 0 else math.nan,
        "method": meta.condition.method,
        "sparsity": float(meta.condition.sparsity),
        "pattern": meta.condition.pattern,
        "condition": meta.label,
        "status": run.status,
    }
    for name, value in const.items():
        if isinstance(value, str):  # one dictionary entry, n codes
            cols[name] = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))
        else:
            cols[name] = pa.array(np.full(n, value))
    return pa.table(cols)


def _get(rec: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(rec, dict):
            return None
        rec = rec.get(key)
    return rec


def _runs_info(run: RunSource) -> dict[str, Any]:
    assert run.meta is not None
    manifest = run.manifest or {}
    return {
        "run_id": run.name,
        "study": run.study,
        "key": run.key,  # what the pairing rule needs (engine.contract.pairing.RunKey)
        "path": str(run.path),
        "status": run.status,
        "model": run.model,
        "method": run.meta.condition.method,
        "condition": run.label,
        "items_hash": run.meta.items.hash,
        "baseline": run.meta.baseline,
        "n_items": len(run.items) if run.items is not None else 0,
        "n_outcomes": len(run),
        "torn_tail": bool(run.outcomes and run.outcomes.torn_tail),
        "corrupt_lines": len(run.outcomes.problems) if run.outcomes else 0,
        "matching": manifest.get("matching"),
        "open_correct": _get(manifest, "imported", "open_correct"),  # who graded an imported run's open answers
        "demotion_max_rank": _get(manifest, "demotion_rule", "max_rank"),
        "probes_mode": _get(manifest, "probes", "mode"),
        "sampling_n": _get(manifest, "probes", "sampling", "n") or _get(manifest, "probes", "n_samples"),
    }


def load_study(source: Path | str | Iterable[Path | str], strict: bool = False) -> pd.DataFrame:
    """A study folder, a run folder, or any list of them → tidy table, one row per item × run.

    Two or more study folders are pooled (see the module docstring); their models and conditions
    must match. `df.attrs`: "runs" (per-run info: status, counts, torn tail), "problems" (corrupt lines, one string
    each). With `strict`, a corrupt line raises instead.
    """
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    if not sources:
        raise UserError("no run folders given")
    opened = open_runs(sources)
    if opened.errors:
        raise UserError(opened.errors[0])
    tables, infos, problems = [], [], []
    for run in opened.runs:
        if run.fatal:
            more = len(run.fatal) - 1
            raise UserError(run.fatal[0] + (f" (and {more} more problem(s) in this run)" if more else ""))
        corrupt = run.outcomes.problems if run.outcomes else []
        if corrupt and strict:
            more = len(corrupt) - 1
            raise UserError(corrupt[0] + (f" (and {more} more corrupt lines)" if more else ""))
        problems += run.warnings
        _check_complete(run, corrupt)
        infos.append(_runs_info(run))
        if run.outcomes is not None:
            tables.append(_run_table(run))
    if not tables or not sum(t.num_rows for t in tables):
        raise UserError(f"{', '.join(str(s) for s in sources)}: the runs hold no outcomes yet")
    df = _frame(pa.concat_tables(tables, promote_options="permissive"))
    if any(run.pooled for run in opened.runs):
        df["dataset"] = _dataset_factor(df).astype("category")
        _check_pooled(df)
    df.attrs["runs"] = infos
    df.attrs["problems"] = problems
    df.attrs["direct"] = opened.direct  # paired with each other, as in the TUI
    return df


def _check_complete(run: RunSource, corrupt: list[str]) -> None:
    """A run whose manifest says complete holds a line for every item; else name what is missing (and
    the first corrupt line, when skipping corrupt lines is why)."""
    if run.status != "complete" or run.items is None or run.outcomes is None or len(run) >= len(run.items):
        return
    missing = len(run.items) - len(run)
    have = np.zeros(len(run.items), dtype=bool)
    have[run.item_row[run.item_row >= 0]] = True
    absent = np.flatnonzero(~have)
    example = f" (e.g. {run.items.table.column('item_uid')[int(absent[0])].as_py()!r})" if len(absent) else ""
    why = ""
    if corrupt:
        why = f"; skipped as corrupt: {corrupt[0]}" + (f" (and {len(corrupt) - 1} more)" if len(corrupt) > 1 else "")
    raise UserError(
        f"{run.outcomes.path}: the run is complete but {missing} of its {len(run.items)} items "
        f"{'has' if missing == 1 else 'have'} no outcome line{example}{why} (`prunescope validate {run.path}` lists "
        "every problem)"
    )


def _frame(table: pa.Table) -> pd.DataFrame:
    """The tidy pandas table (categoricals for labels and uids, nullable dtypes where values may be missing)."""
    for name in _CATEGORICAL:
        if not pa.types.is_dictionary(table.schema.field(name).type):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table.column(name).dictionary_encode())
    df = table.to_pandas()
    for name in _CATEGORICAL:  # categories in sorted order, as `astype("category")` makes them
        cats = df[name].cat.categories
        df[name] = df[name].cat.reorder_categories(cats.sort_values())
    o, m = df["open_correct"].to_numpy(bool), df["mc_correct"].to_numpy(bool)
    df["recognition_only"] = m & ~o
    df["category"] = pd.Categorical.from_codes(category_codes(o, m), categories=list(CATEGORIES))
    for name, dtype in _NULLABLE.items():
        df[name] = df[name].astype(dtype)
    for name in ("n_params", "content_key"):
        df[name] = df[name].astype(np.int64 if name == "n_params" else np.uint64)
    return df[list(COLUMNS)]


def _dataset_factor(df: pd.DataFrame) -> pd.Series:
    """Each pooled study's item-source dataset; the study name where two studies share one."""
    per_study = df.groupby("study", observed=True)["dataset"].agg(lambda s: "+".join(sorted(set(s.astype(str)))))
    if per_study.nunique() == len(per_study):
        return df["study"].astype(str).map(per_study)
    return df["study"].astype(str)


def _check_pooled(df: pd.DataFrame) -> None:
    """Pooled studies must hold the same models and conditions (a clear error names what differs)."""
    cells = {
        str(study): set(zip(sub["model"].astype(str), sub["condition"].astype(str)))
        for study, sub in df.groupby("study", observed=True, sort=True)
    }
    (first, ref), *rest = cells.items()
    for study, have in rest:
        if have != ref:
            extra = sorted(have - ref)[:3]
            missing = sorted(ref - have)[:3]
            detail = "; ".join(
                part
                for part in (
                    f"{study} has {', '.join(' / '.join(c) for c in extra)} that {first} lacks" if extra else "",
                    f"{study} lacks {', '.join(' / '.join(c) for c in missing)}" if missing else "",
                )
                if part
            )
            raise UserError(
                f"pooled studies must run the same models and conditions: {detail} "
                "(give `prunescope stats` studies that ran the same [[models]] and [pruning])"
            )


_PAIRED_TRACES = ("first_token_rank", "seq_logprob", "demotion", "beam_top", "beam_any", "sample_hits", "one_shot")
_PAIRED = (*FORMATS, "category", *_PAIRED_TRACES)  # a `_pruned` and a `_dense` column each
_LEAD = (  # one column each, in this order, before the paired ones; all but reference_run from the run's rows
    *("study", "model", "n_params", "log_params", "run_id", "reference_run", "method", "sparsity", "pattern"),
    *("condition", "item_uid", "content_key", "parallel_id", "language", "dataset"),
)


def transitions(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Dense → pruned pairs: one row per (pruned run, item), the run's reference run (the pairing rule of
    `engine.contract.pairing`; `baseline` names a run every other run is paired with; two run folders
    loaded on their own pair directly, the second with the first) on the other side.
    With a baseline the `_dense` side is the baseline run and the `_pruned` side the run compared with it.

    Columns `<format>_dense` / `<format>_pruned` for each format, `category_dense/_pruned`, `transition`.
    Pairing is verified by item content: a mismatch raises UserError naming the runs and items; items
    missing on one side raise too unless one of the two runs is still running (then they are left out
    and counted in `attrs["unfinished"]`). Models without a dense run are listed in `attrs["no_reference"]`;
    an ambiguous reference (two dense runs of a model on the same items) raises.
    """
    present = {str(r) for r in df["run_id"].unique()}
    infos = [i for i in df.attrs.get("runs", []) if i["run_id"] in present]
    keys = [i["key"] for i in infos]
    refs = pairing.references(keys, direct=bool(df.attrs.get("direct")), baseline=baseline)
    if refs.problems:
        raise UserError(refs.problems[0])
    if len(keys) > 1 and all(r == pairing.NONE for r in refs.of) and not refs.unpaired:
        refs.unpaired.append(
            f"{'both runs' if len(keys) == 2 else f'all {len(keys)} runs'}: each is a dense run of its own model "
            "(imported runs, or different models), so none has a reference run; name one with --baseline RUN"
        )
    rows_of = df.groupby("run_id", observed=True, sort=False).indices
    codes = df["item_uid"].cat.codes.to_numpy()
    content = df["content_key"].to_numpy()
    parts: list[tuple[np.ndarray, np.ndarray, str]] = []  # (run rows, reference rows, reference run)
    unfinished = {}
    for i, ref in enumerate(refs.of):
        if ref == pairing.NONE:
            continue
        run, base = keys[i], keys[ref]
        run_rows, ref_rows = rows_of[run.name], rows_of[base.name]
        m = pairing.match_rows(
            pa.array(codes[run_rows]), content[run_rows], pa.array(codes[ref_rows]), content[ref_rows]
        )
        unfinished_pair = run.running or base.running
        if len(m.differ) or len(m.only_run) or len(m.only_ref):
            uids = df["item_uid"]
            problems = m.problems(
                run.name,
                base.name,
                pa.array(uids.iloc[run_rows].astype(str).to_numpy()),
                pa.array(uids.iloc[ref_rows].astype(str).to_numpy()),
                unfinished_pair,
            )
            if problems:
                raise UserError(problems[0])
            unfinished[run.name] = len(m.only_run) + len(m.only_ref)
        paired = m.paired
        parts.append((run_rows[paired], ref_rows[m.ref_row[paired]], base.name))
    if parts:
        pr = np.concatenate([p for p, _, _ in parts])
        dn = np.concatenate([d for _, d, _ in parts])
        names = [name for _, _, name in parts]
        refs_named = sorted(set(names))
        ref_codes = np.repeat([refs_named.index(n) for n in names], [len(p) for p, _, _ in parts])
        ref_run = pd.Categorical.from_codes(ref_codes, categories=refs_named)
        cols: dict[str, Any] = {c: ref_run if c == "reference_run" else df[c].array.take(pr) for c in _LEAD}
        for c in _PAIRED:
            cols[f"{c}_pruned"] = df[c].array.take(pr)
            cols[f"{c}_dense"] = df[c].array.take(dn)
        res = pd.DataFrame(cols)
        cat = [pd.Series(res[f"category_{side}"]).cat.codes.to_numpy() for side in ("dense", "pruned")]
        labels = [f"{a}→{b}" for a in CATEGORIES for b in CATEGORIES]
        res["transition"] = pd.Categorical.from_codes(transition_code(cat[0], cat[1]), categories=labels)
    else:
        res = pd.DataFrame(columns=list(_LEAD))
    res.attrs["unfinished"] = unfinished
    res.attrs["no_reference"] = refs.no_reference
    res.attrs["unpaired"] = refs.unpaired
    res.attrs["baseline"] = refs.baseline
    return res


def runs_summary(df: pd.DataFrame) -> Sequence[dict[str, Any]]:
    """Per-run info recorded by `load_study` (status, counts, torn tail, corrupt lines)."""
    return list(df.attrs.get("runs", []))
