"""Plain-language findings of a study, generated from its numbers: the summary at the top of REPORT.md.

It says what the tables below it say, whichever way the result goes: accuracies of the dense and the
pruned runs, where multiple choice stands against chance, which recognition-only differences
survive the multiplicity correction, and whether failures after pruning are demoted or erased.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from stats.analysis import cell_label
from stats.intervals import Interval, wilson
from stats.report import ReportTable, baseline_wording


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _span(values: Sequence[float]) -> str:
    """'12%–40%' over the values that exist ('–' when none does: a NaN is a cell without a verdict)."""
    known = [v for v in values if not _missing(v)]
    if not known:
        return "–"
    lo, hi = min(known), max(known)
    return _pct(lo) if lo == hi else f"{_pct(lo)}–{_pct(hi)}"


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _option_counts(sub: pd.DataFrame) -> pd.Series:
    k = sub["n_options"].dropna()
    return k[k > 0].astype(float)


def _chance(sub: pd.DataFrame) -> float | None:
    k = _option_counts(sub)
    return float((1.0 / k).mean()) if len(k) else None


def _options(sub: pd.DataFrame) -> str:
    ks = sorted({int(k) for k in _option_counts(sub)})
    return str(ks[0]) if len(ks) == 1 else f"{ks[0]}–{ks[-1]}"


class _RunAccuracy(NamedTuple):
    run: str
    dense: bool
    open: float
    mc: Interval
    at_chance: bool


def accuracy_findings(df: pd.DataFrame, level: float) -> list[str]:
    """Per model: dense open / MC accuracy against chance, then the range over its pruned runs."""
    lines = []
    for model, sub in df.groupby("model", observed=True, sort=True):
        chance = _chance(sub)
        runs = []
        for run_id, r in sub.groupby("run_id", observed=True, sort=True):
            mc = wilson(int(r["mc_correct"].sum()), len(r), level)
            runs.append(
                _RunAccuracy(
                    run=str(run_id),
                    dense=str(r["method"].iloc[0]) == "dense",
                    open=float(r["open_correct"].mean()),
                    mc=mc,
                    at_chance=chance is not None and mc.lower <= chance <= mc.upper,
                )
            )
        ref = "" if chance is None else f"; chance with {_options(sub)} options: {_pct(chance)}"
        for run in runs:
            if run.dense:
                lines.append(
                    f"{model}, {run.run} (dense): open generation {_pct(run.open)}, multiple choice "
                    f"{_pct(run.mc.estimate)} ({100 * level:g}% Wilson CI {_pct(run.mc.lower)}–"
                    f"{_pct(run.mc.upper)}{ref})."
                )
        pruned = [run for run in runs if not run.dense]
        if pruned:
            text = (
                f"{model}, {len(pruned)} pruned run{'s' if len(pruned) > 1 else ''}: open generation "
                f"{_span([run.open for run in pruned])}, "
                f"multiple choice {_span([run.mc.estimate for run in pruned])}"
            )
            if chance is not None:
                n_at = sum(run.at_chance for run in pruned)
                text += f"; the MC accuracy's {100 * level:g}% CI contains the chance rate in {n_at} of {len(pruned)}"
            lines.append(text + ".")
    return lines


CORRECTIONS = {"holm": "Holm's correction", "bh": "Benjamini–Hochberg correction", "none": "no correction"}


def recognition_findings(table: ReportTable, by: Sequence[str], level: float, adjust: str) -> list[str]:
    """Δ range of the recognition-only test's cells and the cells significant after correction."""
    recs = [r for r in table.records if r.get("n")]
    if not recs:
        return []
    alpha = 1 - level
    sig = [r for r in recs if r.get("p_adjusted") is not None and r["p_adjusted"] < alpha]
    deltas = [100 * r["delta"] for r in recs]
    correction = CORRECTIONS.get(adjust, adjust)
    compared = "pruned vs dense"
    if "baseline" in table.title:  # the table is worded for runs paired with a baseline (analysis.test_labels)
        compared = baseline_wording(compared)

    lo, hi = f"{min(deltas):+.1f}", f"{max(deltas):+.1f}"
    text = (
        f"Recognition-only rate, {compared}, over {len(recs)} cell{'s' if len(recs) > 1 else ''} by "
        f"{', '.join(by) or 'nothing'}: Δ {lo if lo == hi else f'from {lo} to {hi}'} pp; "
    )
    if not sig:
        text += f"no cell is significant at α = {alpha:g} with {correction}."
    else:
        text += (
            f"{len(sig)} significant at α = {alpha:g} with {correction}: "
            + "; ".join(f"{cell_label(r, by)} ({100 * r['delta']:+.1f} pp)" for r in sig)
            + "."
        )
    return [text]


def demotion_findings(table: ReportTable, level: float) -> list[str]:
    """Per model: the demoted share of pruned failures and of RO items against the dense run's (the
    baseline run's where the table is worded for one)."""
    lines = []
    alpha = 1 - level
    runs, reference = ("runs'", "baseline run's") if "baseline" in table.title else ("pruned runs'", "dense run's")
    for model in dict.fromkeys(str(r["model"]) for r in table.records):
        recs = [r for r in table.records if r["model"] == model and r["failed"]]
        if not recs:
            continue
        below = [r for r in recs if r["ro"] and r["p_ro_majority"] < alpha and r["ro_demoted_share"] < 0.5]
        above = [r for r in recs if r["ro"] and r["p_ro_majority"] < alpha and r["ro_demoted_share"] > 0.5]
        dense = [r["dense_demoted_share"] for r in recs if r["dense_failed"]]
        unknown = any(r.get("not_probed") or r.get("dense_not_probed") for r in recs)
        without = sum(_missing(r["demoted_share"]) for r in recs)
        lines.append(
            f"{model}, demoted vs erased ({recs[0]['rule']}): "
            f"{_span([r['demoted_share'] for r in recs])} of the {runs} open-generation failures "
            + ("with a verdict (some were not probed) " if unknown else "")
            + f"are demoted ({_span(dense)} of the {reference})"
            + (f", {without} condition(s) with no verdict at all" if without else "")
            + "; among recognition-only items "
            f"the demoted share is significantly above one half in {len(above)} and below it in {len(below)} of "
            f"{len(recs) - without} conditions (exact binomial test, α = {alpha:g}, unadjusted)."
        )
    return lines


def findings(
    df: pd.DataFrame, tables: Sequence[ReportTable], by: Sequence[str], level: float, adjust: str = "holm"
) -> list[str]:
    """The summary lines: accuracy findings, the recognition-only test's (if it was run), the matching
    rules', demotion."""
    from stats.robustness import matching_findings

    lines = accuracy_findings(df, level)
    rec = next((t for t in tables if t.key == "mcnemar-recognition"), None)
    if rec is not None:
        lines += recognition_findings(rec, by, level, adjust)
    rob = next((t for t in tables if t.key == "robustness-matching"), None)
    if rob is not None:
        lines += matching_findings(rob)
    demotion = next((t for t in tables if t.key == "demotion"), None)
    if demotion is not None:
        lines += demotion_findings(demotion, level)
    return lines
