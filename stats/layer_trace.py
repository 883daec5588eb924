"""The layer trace by layer: where in the network a pruned model stops promoting the gold answer.

Input: per run and item, the gold first token's rank at every entry of the logit lens (entry 0 the
embeddings, entry L the model's own prediction; `engine/protocol/lens.py`). Per model × condition ×
language and per entry, the median rank (the mean of the two middle ranks when their number is
even) with a percentile bootstrap CI over item clusters (parallel items: an item and its
translations are one cluster; each draw resamples clusters with replacement and keeps all their
items). A pruned curve *leaves* the dense curve at the first entry where its median lies outside the
dense curve's CI; the dense run is the pruned run's reference run (same model, same study).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.errors import UserError
from stats.cells import key_columns
from stats.report import Column, ReportTable

BOOT_CHUNK = 500  # bootstrap draws at a time (memory: chunk × items × entries)
BY_LAYER = "layer-trace-by-layer"  # the by-layer table's key (its records draw the figure)


@dataclass(frozen=True)
class TraceRun:
    """One run's layer traces: per item its language, cluster and gold ranks at every lens entry."""

    run_id: str
    model: str
    condition: str
    reference: str | None  # the dense run a pruned run is compared with (None: it is dense, or has none)
    languages: np.ndarray  # [items] str
    clusters: np.ndarray  # [items] str (parallel id, else item uid)
    ranks: np.ndarray  # [items, entries] int >= 1


def _medians(sorted_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Medians of multisets: item j (values sorted ascending) taken weights[b, j] times in draw b."""
    total = weights.sum(axis=1)
    cum = weights.cumsum(axis=1)
    lo = (cum > ((total - 1) // 2)[:, None]).argmax(axis=1)  # 0-based middle positions in the multiset
    hi = (cum > (total // 2)[:, None]).argmax(axis=1)
    return (sorted_values[lo] + sorted_values[hi]) / 2


def rank_curve(
    ranks: np.ndarray, clusters: np.ndarray, n_boot: int, seed: int, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, CI low, CI high) per entry of `ranks` [items, entries]: percentile bootstrap over the
    clusters, `n_boot` draws from `numpy.random.default_rng(seed)`."""
    ranks = np.asarray(ranks, dtype=float)
    if ranks.ndim != 2 or ranks.shape[0] == 0:
        raise UserError(f"layer trace: a curve needs items × entries ranks, got shape {ranks.shape}")
    median = np.median(ranks, axis=0)
    codes, inverse = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    k = codes.size
    if k < 2 or n_boot < 1:
        nan = np.full(ranks.shape[1], np.nan)
        return median, nan, nan.copy()
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, ranks.shape[1]))
    order = np.argsort(ranks, axis=0, kind="stable")
    for start in range(0, n_boot, BOOT_CHUNK):
        r = min(BOOT_CHUNK, n_boot - start)
        per_item = rng.multinomial(k, np.full(k, 1.0 / k), size=r)[:, inverse]  # [r, items]
        for e in range(ranks.shape[1]):
            boot[start : start + r, e] = _medians(ranks[order[:, e], e], per_item[:, order[:, e]])
    alpha = 1 - level
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return median, lo, hi


def layer_curves(runs: Sequence[TraceRun], n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """One row per run × language × entry: run_id, model, condition, reference, language, layer,
    items, clusters, median, low, high."""
    rows = []
    for run in runs:
        for lang in sorted(set(run.languages.astype(str))):
            sel = run.languages.astype(str) == lang
            med, lo, hi = rank_curve(run.ranks[sel], run.clusters[sel], n_boot, seed, level)
            n_clusters = np.unique(run.clusters[sel].astype(str)).size
            for e in range(med.size):
                rows.append(
                    {
                        "run_id": run.run_id,
                        "model": run.model,
                        "condition": run.condition,
                        "reference": run.reference,
                        "language": lang,
                        "layer": e,
                        "items": int(sel.sum()),
                        "clusters": int(n_clusters),
                        "median": float(med[e]),
                        "low": float(lo[e]),
                        "high": float(hi[e]),
                    }
                )
    return pd.DataFrame(rows)


def compared(curves: pd.DataFrame) -> pd.DataFrame:
    """Each pruned curve beside its reference's (same language and entry): the curve columns with
    `dense_` and `pruned_` prefixes and `outside` ('worse': a higher rank than the dense CI, 'better': a
    lower one, '': inside it)."""
    if curves.empty:
        return pd.DataFrame()
    keys = ["language", "layer"]
    dense = curves[curves["reference"].isna()]
    pruned = curves[curves["reference"].notna()]
    pairs = pruned.merge(
        dense[["run_id", *keys, "items", "clusters", "median", "low", "high"]],
        left_on=["reference", *keys],
        right_on=["run_id", *keys],
        suffixes=("", "_dense"),
    )
    out = pd.DataFrame(
        {
            "model": pairs["model"],
            "condition": pairs["condition"],
            "language": pairs["language"],
            "layer": pairs["layer"],
            "dense_items": pairs["items_dense"],
            "dense_median": pairs["median_dense"],
            "dense_low": pairs["low_dense"],
            "dense_high": pairs["high_dense"],
            "pruned_items": pairs["items"],
            "pruned_median": pairs["median"],
            "pruned_low": pairs["low"],
            "pruned_high": pairs["high"],
        }
    )
    above = out["pruned_median"] > out["dense_high"]
    below = out["pruned_median"] < out["dense_low"]
    out["outside"] = np.where(above, "worse", np.where(below, "better", ""))
    return out.sort_values(["model", "condition", "language", "layer"], kind="stable").reset_index(drop=True)


def departures(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per model × pruned condition × language: the first entry where the pruned median leaves the
    dense CI (and which way), how many entries lie outside, and the medians at the last entry."""
    rows = []
    for (model, cond, lang), g in pairs.groupby(["model", "condition", "language"], sort=True):
        g = g.sort_values("layer")
        out = g[g["outside"] != ""]
        last = g.iloc[-1]
        first = out.iloc[0] if len(out) else None
        rows.append(
            {
                "model": model,
                "condition": cond,
                "language": lang,
                "items": int(last["pruned_items"]),
                "entries": len(g),
                "first_outside": None if first is None else int(first["layer"]),
                "direction": "" if first is None else str(first["outside"]),
                "n_outside": len(out),
                "dense_last": float(last["dense_median"]),
                "dense_last_low": float(last["dense_low"]),
                "dense_last_high": float(last["dense_high"]),
                "pruned_last": float(last["pruned_median"]),
                "pruned_last_low": float(last["pruned_low"]),
                "pruned_last_high": float(last["pruned_high"]),
            }
        )
    return pd.DataFrame(rows)


def trace_runs(df: pd.DataFrame, tr: pd.DataFrame) -> list[TraceRun]:
    """The runs of the tidy table (`stats.load`) that carry layer traces; a pruned run's reference is
    its run in the dense → pruned pairs (`tr`, the pairing rule). UserError when a run's traces differ
    in length (the lens has one entry per layer of one model)."""
    if "layer_ranks" not in df or not df["layer_ranks"].notna().any():
        return []
    refs = {}
    if len(tr):
        refs = dict(zip(tr["run_id"].astype(str), tr["reference_run"].astype(str)))
    runs = []
    for run_id, sub in df[df["layer_ranks"].notna()].groupby("run_id", observed=True, sort=True):
        lengths = {len(r) for r in sub["layer_ranks"]}
        if len(lengths) > 1:
            raise UserError(f"run {run_id}: its layer traces have {sorted(lengths)} entries; one model has one length")
        runs.append(
            TraceRun(
                run_id=str(run_id),
                model=str(sub["model"].iloc[0]),
                condition=str(sub["condition"].iloc[0]),
                reference=refs.get(str(run_id)),
                languages=sub["language"].astype(str).to_numpy(),
                clusters=sub["parallel_id"].astype(str).to_numpy(),
                ranks=np.stack(sub["layer_ranks"].to_list()).astype(np.int64),
            )
        )
    return runs


def layer_report(df: pd.DataFrame, tr: pd.DataFrame, n_boot: int, seed: int, level: float) -> list[ReportTable]:
    """The layer-trace tables of the runs in `df` ([] when no run carries a layer trace). Runs with traces
    whose reference run has none are named in a note of the summary table (with no rows when no run is
    left to compare)."""
    runs = trace_runs(df, tr)
    if not runs:
        return []
    traced = {r.run_id for r in runs}
    orphans = [r for r in runs if r.reference is not None and r.reference not in traced]
    kept = [r for r in runs if r.reference is None or r.reference in traced]
    tables = layer_tables(layer_curves(kept, n_boot, seed, level), level, n_boot, seed)
    if orphans:
        note = (
            "Not compared: "
            + ", ".join(f"{r.run_id} (its reference run {r.reference} has no layer traces)" for r in orphans)
            + "."
        )
        if tables:
            tables[0].notes.append(note)
        else:
            tables = [_summary([], [note], level)]
    return tables


def _summary(records: list[dict], notes: list[str], level: float) -> ReportTable:
    """The summary table: where each pruned curve leaves the dense CI."""
    ci = f"{100 * level:g}% CI"
    return ReportTable(
        key="layer-trace",
        title="Layer trace: where the pruned model leaves the dense curve",
        columns=[
            *key_columns(records),
            Column("items", "items", "int"),
            Column("first entry outside", "first_outside", "int"),
            Column("direction", "direction", "text", "left"),
            Column("entries outside", "n_outside", "int"),
            Column("of", "entries", "int"),
            Column(f"dense last entry ({ci})", "dense_last", "rank_ci"),
            Column(f"pruned last entry ({ci})", "pruned_last", "rank_ci"),
        ],
        records=records,
        notes=notes,
    )


def layer_tables(curves: pd.DataFrame, level: float, n_boot: int, seed: int) -> list[ReportTable]:
    """The summary table (where each pruned curve leaves the dense CI) and the by-layer table."""
    pairs = compared(curves)
    if pairs.empty:
        return []
    ci = f"{100 * level:g}% CI"
    last = pairs.groupby(["model", "condition", "language"], sort=False)["layer"].transform("max")
    rows = [
        {**r, "dense_median_low": r["dense_low"], "dense_median_high": r["dense_high"]}
        | {"pruned_median_low": r["pruned_low"], "pruned_median_high": r["pruned_high"], "last": is_last}
        for r, is_last in zip(pairs.to_dict("records"), (pairs["layer"] == last).tolist())
    ]
    how = (
        f"Gold first-token rank through the logit lens (entry 0 = embeddings, last entry = the model's own "
        f"prediction): median over items, percentile bootstrap {ci} over parallel-item clusters "
        f"(B = {n_boot}, seed {seed}). A pruned curve leaves the dense one where its median lies outside "
        f"the dense {ci} (worse: a higher rank than the dense CI; better: a lower one)."
    )
    summary = _summary(departures(pairs).to_dict("records"), [how], level)
    by_layer = ReportTable(
        key=BY_LAYER,
        title="Layer trace by layer: median gold rank, dense vs pruned (entries outside the dense CI)",
        columns=[
            *key_columns(rows),
            Column("entry", "layer", "int"),
            Column(f"dense median ({ci})", "dense_median", "rank_ci"),
            Column(f"pruned median ({ci})", "pruned_median", "rank_ci"),
            Column("outside", "outside", "text", "left"),
        ],
        records=[r for r in rows if _shown(r)],
        notes=[
            how,
            "Shown: the entries where the pruned median is outside the dense CI, and each curve's last entry; "
            "the CSV and JSON files hold every entry.",
        ],
        detail=[r for r in rows if not _shown(r)],
    )
    return [summary, by_layer]


def _shown(row: dict) -> bool:
    """Whether a by-layer row is displayed (outside the dense CI, or the last entry) or CSV/JSON only."""
    return bool(row["outside"]) or bool(row["last"])
