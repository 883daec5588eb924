"""Run folders → one tidy table (one row per item × run) and dense → pruned transitions.

Outcome lines are parsed with pyarrow's JSON reader against a schema of only the fields used here
(fast enough for millions of lines). A torn last line (a run in progress) is never parsed. When a
file has a corrupt line the run falls back to `engine.runfolder.scan_jsonl`, which reports each bad
line by file and line number; those reports land in `df.attrs["problems"]` (or raise, if strict).
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import UserError
from engine.runfolder import ITEMS, OUTCOMES, RunFolderError, discover_runs, read_items, read_manifest, scan_jsonl

FORMATS = ("open_correct", "shown_correct", "mc_correct", "recognition_only")
COLUMNS = (
    "run_id",
    "model",
    "n_params",
    "log_params",
    "method",
    "sparsity",
    "pattern",
    "condition",
    "status",
    "item_uid",
    "content_hash",
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
    "beam_any",
    "sample_hits",
    "one_shot",
    "n_options",
)
_CATEGORICAL = ("run_id", "model", "method", "pattern", "condition", "status", "language", "category", "demotion")


def condition_label(method: str, sparsity: float, pattern: str) -> str:
    """'dense', 'wanda-s50' or 'wanda-2of4' (sorts dense first among the usual methods)."""
    if method == "dense":
        return "dense"
    if pattern != "unstructured":
        return f"{method}-{pattern.replace(':', 'of')}"
    return f"{method}-s{round(sparsity * 100):02d}"


def _outcome_schema():
    import pyarrow as pa

    gen = pa.struct([("correct", pa.bool_())])
    return pa.schema(
        [
            ("item_uid", pa.string()),
            ("content_hash", pa.string()),
            ("language", pa.string()),
            ("category", pa.string()),
            ("open", pa.struct([("correct", pa.bool_()), ("text", pa.string())])),
            ("shown", gen),
            ("mc", gen),
            ("demotion", pa.string()),
            (
                "gold_trace",
                pa.struct([("first_token_rank", pa.int64()), ("seq_logprob", pa.float64()), ("margin", pa.float64())]),
            ),
            (
                "probes",
                pa.struct(
                    [
                        ("beam", pa.struct([("hit_any", pa.bool_())])),
                        ("sampling", pa.struct([("hits", pa.int64())])),
                        ("one_shot", gen),
                    ]
                ),
            ),
        ]
    )


_FLAT = {  # flattened arrow column -> our column
    "item_uid": "item_uid",
    "content_hash": "content_hash",
    "language": "language",
    "category": "category",
    "open.correct": "open_correct",
    "open.text": "open_text",
    "shown.correct": "shown_correct",
    "mc.correct": "mc_correct",
    "demotion": "demotion",
    "gold_trace.first_token_rank": "first_token_rank",
    "gold_trace.seq_logprob": "seq_logprob",
    "gold_trace.margin": "margin",
    "probes.beam.hit_any": "beam_any",
    "probes.sampling.hits": "sample_hits",
    "probes.one_shot.correct": "one_shot",
}


def _get(rec: dict[str, Any], *path: str) -> Any:
    cur: Any = rec
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def _records_to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    cols: dict[str, list[Any]] = {v: [] for v in _FLAT.values()}
    for rec in records:
        for flat, col in _FLAT.items():
            cols[col].append(_get(rec, *flat.split(".")))
    return pd.DataFrame(cols)


def _read_outcomes(path: Path) -> tuple[pd.DataFrame, bool, list[str]]:
    """(frame of the needed fields, torn tail?, corrupt-line reports)."""
    import pyarrow as pa
    import pyarrow.json as pj

    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    torn = cut < len(data)
    body = data[:cut]
    if not body.strip():
        return _records_to_frame([]), torn, []
    try:
        table = pj.read_json(
            io.BytesIO(body),
            read_options=pj.ReadOptions(block_size=1 << 24),
            parse_options=pj.ParseOptions(explicit_schema=_outcome_schema(), unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        scan = scan_jsonl(path)  # tolerant per-line reading; names every corrupt line
        frame = _records_to_frame(scan.records)
        return frame, scan.torn_tail, scan.errors
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    frame = table.to_pandas().rename(columns=_FLAT)
    return frame[list(_FLAT.values())], torn, []


def _read_items(run: Path, cache: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """uid, content hash and parallel id of every item (pyarrow; `read_items` names any bad line)."""
    import pyarrow as pa
    import pyarrow.json as pj

    path = run / ITEMS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: missing (every run folder needs its items.jsonl)") from None
    key = hashlib.sha256(data).hexdigest()
    if key in cache:
        return cache[key]
    import pyarrow.compute as pc

    schema = pa.schema(
        [
            ("item_uid", pa.string()),
            ("content_hash", pa.string()),
            ("parallel_id", pa.string()),
            ("options", pa.list_(pa.string())),
        ]
    )
    frame = None
    if data.strip() and data.endswith(b"\n"):
        try:
            table = pj.read_json(
                io.BytesIO(data),
                read_options=pj.ReadOptions(block_size=1 << 24),
                parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
            table = table.append_column("n_options", pc.list_value_length(table["options"])).drop(["options"])
            frame = table.to_pandas().rename(columns={"content_hash": "item_hash"})
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            frame = None
    if frame is None:  # torn, empty or malformed: the strict reader says where
        try:
            items = read_items(run)
        except RunFolderError as exc:
            raise UserError(str(exc)) from None
        frame = pd.DataFrame(
            {
                "item_uid": [it.get("item_uid") for it in items],
                "item_hash": [it.get("content_hash") for it in items],
                "parallel_id": [it.get("parallel_id") for it in items],
                "n_options": [len(it.get("options") or []) for it in items],
            }
        )
    if frame["item_uid"].isna().any() or frame["item_uid"].duplicated().any():
        raise UserError(f"{path}: every item needs a unique item_uid")
    cache[key] = frame
    return frame


def _run_frame(run: Path, cache: dict[str, pd.DataFrame], strict: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    try:
        manifest = read_manifest(run)
    except RunFolderError as exc:
        raise UserError(str(exc)) from None
    try:
        model = manifest["model"]
        cond = manifest["condition"]
        run_id = str(manifest.get("run_id") or run.name)
        method, sparsity, pattern = (
            str(cond["method"]),
            float(cond["sparsity"]),
            str(cond.get("pattern", "unstructured")),
        )
        n_params = int(model.get("n_params") or 0)
        model_id = str(model["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{run / 'manifest.json'}: missing or bad field {exc}") from None
    items = _read_items(run, cache)
    path = run / OUTCOMES
    if path.exists():
        frame, torn, errors = _read_outcomes(path)
    else:
        frame, torn, errors = _records_to_frame([]), False, []
    if errors and strict:
        raise UserError(errors[0] + (f" (and {len(errors) - 1} more corrupt lines)" if len(errors) > 1 else ""))
    if frame["item_uid"].isna().any():
        line = int(np.flatnonzero(frame["item_uid"].isna().to_numpy())[0]) + 1
        raise UserError(f"{path}: outcome {line} has no item_uid")
    for col, field in (
        ("content_hash", "content_hash"),
        ("open_correct", "open.correct"),
        ("mc_correct", "mc.correct"),
    ):
        missing = frame["item_uid"][frame[col].isna()]
        if len(missing):
            raise UserError(f"{path}: {len(missing)} outcome line(s) lack {field}, e.g. item {missing.iloc[0]!r}")
    dup = frame["item_uid"][frame["item_uid"].duplicated()]
    if len(dup):
        raise UserError(
            f"{path}: item {dup.iloc[0]!r} has more than one outcome line ({len(dup)} duplicates); "
            "`prunescope validate --repair` removes exact duplicates"
        )
    merged = frame.merge(items, on="item_uid", how="left", validate="one_to_one")
    unknown = merged["item_uid"][merged["item_hash"].isna()]
    if len(unknown):
        raise UserError(
            f"{path}: {len(unknown)} outcome(s) for items not in {ITEMS}, e.g. "
            + ", ".join(repr(u) for u in unknown.iloc[:3])
        )
    bad = merged["item_uid"][merged["item_hash"] != merged["content_hash"]]
    if len(bad):
        raise UserError(
            f"{path}: content hash differs from {ITEMS} for {len(bad)} item(s), e.g. "
            + ", ".join(repr(u) for u in bad.iloc[:3])
        )
    merged = merged.drop(columns="item_hash")
    status = str(manifest.get("status", "unknown"))
    n = len(merged)
    merged["run_id"] = run_id
    merged["model"] = model_id
    merged["n_params"] = n_params
    merged["log_params"] = math.log10(n_params) if n_params > 0 else math.nan
    merged["method"] = method
    merged["sparsity"] = sparsity
    merged["pattern"] = pattern
    merged["condition"] = condition_label(method, sparsity, pattern)
    merged["status"] = status
    info = {
        "run_id": run_id,
        "path": str(run),
        "status": status,
        "model": model_id,
        "condition": condition_label(method, sparsity, pattern),
        "n_items": len(items),
        "n_outcomes": n,
        "torn_tail": torn,
        "corrupt_lines": len(errors),
    }
    return merged, {**info, "errors": errors}


def load_study(source: Path | str | Iterable[Path | str], strict: bool = False) -> pd.DataFrame:
    """A study folder, a run folder, or any list of them → tidy table, one row per item × run.

    `df.attrs`: "runs" (per-run info: status, counts, torn tail), "problems" (corrupt lines, one string
    each). With `strict`, a corrupt line raises instead.
    """
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    runs: list[Path] = []
    for src in sources:
        if not src.exists():
            raise UserError(f"{src}: no such study or run folder")
        found = discover_runs(src)
        if not found:
            raise UserError(f"{src}: no run folders (a run folder holds manifest.json and outcomes.jsonl)")
        runs += found
    if not runs:
        raise UserError("no run folders given")
    cache: dict[str, pd.DataFrame] = {}
    frames, infos, problems = [], [], []
    seen: dict[str, Path] = {}
    for run in runs:
        frame, info = _run_frame(run, cache, strict)
        if info["run_id"] in seen:
            raise UserError(f"run id {info['run_id']!r} appears twice: {seen[info['run_id']]} and {run}")
        seen[info["run_id"]] = run
        problems += info.pop("errors")
        frames.append(frame)
        infos.append(info)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    if df.empty:
        raise UserError(f"{', '.join(str(s) for s in sources)}: the runs hold no outcomes yet")
    df["open_correct"] = df["open_correct"].astype(bool)
    df["mc_correct"] = df["mc_correct"].astype(bool)
    df["shown_correct"] = df["shown_correct"].astype("boolean")
    df["recognition_only"] = df["mc_correct"] & ~df["open_correct"]
    df["first_token_rank"] = df["first_token_rank"].astype("Int64")
    df["sample_hits"] = df["sample_hits"].astype("Int64")
    df["beam_any"] = df["beam_any"].astype("boolean")
    df["one_shot"] = df["one_shot"].astype("boolean")
    df["n_options"] = df["n_options"].astype("Int64")
    df["parallel_id"] = df["parallel_id"].where(df["parallel_id"].notna(), df["item_uid"])
    for col in _CATEGORICAL:
        df[col] = df[col].astype("category")
    df = df[list(COLUMNS)]
    df.attrs["runs"] = infos
    df.attrs["problems"] = problems
    return df


def transitions(df: pd.DataFrame) -> pd.DataFrame:
    """Dense → pruned pairs: one row per (pruned run, item), the dense run of the same model as reference.

    Columns `<format>_dense` / `<format>_pruned` for each format, `category_dense/_pruned`, `transition`.
    Pairing is verified by item content hash: a mismatch raises UserError naming the runs and items;
    items missing on one side raise too unless one of the two runs is still running (then they are
    left out and counted in `attrs["unfinished"]`). Models without a dense run are listed in
    `attrs["no_reference"]`.
    """
    keys = ["item_uid"]
    carry = ["content_hash", "parallel_id", "language", *FORMATS, "category", "first_token_rank", "demotion"]
    out, unfinished, no_ref = [], {}, []
    for model, sub in df.groupby("model", observed=True, sort=True):
        dense_runs = sorted(sub.loc[sub["method"] == "dense", "run_id"].astype(str).unique())
        pruned_runs = sorted(sub.loc[sub["method"] != "dense", "run_id"].astype(str).unique())
        if not pruned_runs:
            continue
        if not dense_runs:
            no_ref.append(str(model))
            continue
        if len(dense_runs) > 1:
            raise UserError(
                f"model {model!r} has {len(dense_runs)} dense runs ({', '.join(dense_runs)}); "
                "give one dense reference per model"
            )
        ref_id = dense_runs[0]
        ref = sub[sub["run_id"] == ref_id][keys + carry]
        ref_status = str(sub.loc[sub["run_id"] == ref_id, "status"].iloc[0])
        for run_id in pruned_runs:
            pr = sub[sub["run_id"] == run_id]
            status = str(pr["status"].iloc[0])
            meta = pr[["model", "n_params", "log_params", "run_id", "method", "sparsity", "pattern", "condition"]].iloc[
                :1
            ]
            m = pr[keys + carry].merge(ref, on=keys, how="outer", suffixes=("_pruned", "_dense"), indicator=True)
            only_p = m.loc[m["_merge"] == "left_only", "item_uid"].tolist()
            only_d = m.loc[m["_merge"] == "right_only", "item_uid"].tolist()
            if only_p or only_d:
                if status == "running" or ref_status == "running":
                    unfinished[run_id] = len(only_p) + len(only_d)
                else:
                    parts = []
                    if only_p:
                        parts.append(f"{len(only_p)} only in {run_id} (e.g. {', '.join(map(repr, only_p[:3]))})")
                    if only_d:
                        parts.append(f"{len(only_d)} only in {ref_id} (e.g. {', '.join(map(repr, only_d[:3]))})")
                    raise UserError(f"runs {run_id} and {ref_id} are not paired: items " + "; ".join(parts))
            m = m[m["_merge"] == "both"].drop(columns="_merge")
            mism = m.loc[m["content_hash_pruned"] != m["content_hash_dense"], "item_uid"].tolist()
            if mism:
                raise UserError(
                    f"runs {run_id} and {ref_id}: {len(mism)} item(s) have different content "
                    f"(content hash), e.g. {', '.join(map(repr, mism[:3]))}"
                )
            m = m.rename(columns={"parallel_id_pruned": "parallel_id", "language_pruned": "language"})
            m = m.drop(columns=["parallel_id_dense", "language_dense", "content_hash_dense"]).rename(
                columns={"content_hash_pruned": "content_hash"}
            )
            for col in meta.columns:
                m[col] = meta[col].iloc[0]
            m["reference_run"] = ref_id
            out.append(m)
    cols = [
        "model",
        "n_params",
        "log_params",
        "run_id",
        "reference_run",
        "method",
        "sparsity",
        "pattern",
        "condition",
        "item_uid",
        "content_hash",
        "parallel_id",
        "language",
    ]
    if out:
        res = pd.concat(out, ignore_index=True)
        for col in ("category_dense", "category_pruned"):
            res[col] = res[col].astype(str)
        res["transition"] = res["category_dense"] + "→" + res["category_pruned"]
        rest = [c for c in res.columns if c not in cols]
        res = res[cols + rest]
        for col in ("model", "run_id", "reference_run", "method", "pattern", "condition", "language", "transition"):
            res[col] = res[col].astype("category")
    else:
        res = pd.DataFrame(columns=cols)
    res.attrs["unfinished"] = unfinished
    res.attrs["no_reference"] = no_ref
    return res


def runs_summary(df: pd.DataFrame) -> Sequence[dict[str, Any]]:
    """Per-run info recorded by `load_study` (status, counts, torn tail, corrupt lines)."""
    return list(df.attrs.get("runs", []))
