"""Recovery probes: how often beam search, sampling or one in-context example brings the gold answer
back, on items whose open generation failed and on recognition-only items, per run and cell; and
dense vs pruned on the items that failed (and were probed) in both runs.

A probe that was not run on an item (probe mode, or an older run) is missing, not a failure: it
leaves the denominator.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stats.cells import adjust_rows, iter_cells, key_columns, wilson_fields
from stats.intervals import DIFF_NAMES
from stats.mcnemar import METHOD_NAMES, mcnemar
from stats.report import Column, ReportTable
from stats.tables import PairedTable

PROBES = ("beam_top", "beam_any", "sampling", "one_shot")
PROBE_LABELS = {
    "beam_top": "beam, top",
    "beam_any": "beam, any",
    "sampling": "sampling ≥ 1",
    "one_shot": "one-shot",
}
SUBSETS = {"failed": "open generation failed", "RO": "recognition-only"}


def probe_hits(frame: pd.DataFrame, probe: str, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(ran, recovered) per row for one probe."""
    if probe == "sampling":
        hits = frame[f"sample_hits{suffix}"].astype("Float64")
        ran = hits.notna().to_numpy(bool)
        return ran, hits.fillna(0).to_numpy(float) > 0
    col = {"beam_top": "beam_top", "beam_any": "beam_any", "one_shot": "one_shot"}[probe] + suffix
    values = frame[col].astype("boolean")
    return values.notna().to_numpy(bool), values.fillna(False).to_numpy(bool)


def recovery_report(df: pd.DataFrame, level: float = 0.95, sampling_n: int | None = None) -> ReportTable:
    """Per run cell × subset: recovery rate of each probe with a Wilson CI (n = items probed)."""
    records = []
    for keys, sub in iter_cells(df):
        for subset in SUBSETS:
            mask = ~sub["open_correct"].to_numpy(bool) if subset == "failed" else sub["recognition_only"].to_numpy(bool)
            part = sub[mask]
            rec = {**keys, "subset": subset, "n": len(part)}
            for probe in PROBES:
                ran, hit = probe_hits(part, probe)
                k, n = int((hit & ran).sum()), int(ran.sum())
                rec.update({f"n_{probe}": n, f"k_{probe}": k, **wilson_fields(k, n, level, probe)})
            records.append(rec)
    samp = f"sampling ≥ 1 of {sampling_n}" if sampling_n else "sampling ≥ 1 of n"
    cols = [
        *key_columns(records),
        Column("subset", "subset", "text", "left"),
        Column("n", "n", "int"),
        Column("probed", "n_beam_any", "int"),
        *(Column(f"{samp if p == 'sampling' else PROBE_LABELS[p]} [{100 * level:g}% CI]", p, "ci") for p in PROBES),
    ]
    notes = [
        "Recovery rate: share of the items in the subset (failed = open generation wrong in this run; RO = "
        "recognition-only in this run) on which the probe produced the gold answer. beam, top: the best "
        "beam matches; beam, any: any beam matches; sampling: at least one sample matches; one-shot: greedy "
        "answer with one in-context example from the same language.",
        f"Denominator: items on which the probe ran (probed = beam's; CSV carries each probe's n); "
        f"{100 * level:g}% Wilson CIs; '–' where a probe was not run.",
    ]
    return ReportTable("recovery", "Recovery by probe", cols, records, notes)


def recovery_paired_report(
    tr: pd.DataFrame, method: str = "midp", adjust_method: str = "holm", level: float = 0.95, diff_ci: str = "tango"
) -> ReportTable:
    """Dense vs pruned recovery on the items that failed in open generation in both runs and were probed
    in both (pooled over languages)."""
    records = []
    for keys, sub in iter_cells(tr, languages=False):
        both_failed = ~sub["open_correct_dense"].to_numpy(bool) & ~sub["open_correct_pruned"].to_numpy(bool)
        part = sub[both_failed]
        for probe in PROBES:
            ran_p, hit_p = probe_hits(part, probe, "_pruned")
            ran_d, hit_d = probe_hits(part, probe, "_dense")
            both = ran_p & ran_d
            res = mcnemar(
                PairedTable.from_pairs(hit_p[both], hit_d[both], ("pruned", "dense")),
                method,
                level=level,
                diff_ci=diff_ci,
                outcome=f"recovered by {probe}",
            )
            records.append(
                {
                    **keys,
                    "probe": PROBE_LABELS[probe],
                    "n": res.n,
                    "rate_pruned": res.p1,
                    "rate_dense": res.p2,
                    "delta": res.difference.estimate,
                    "delta_low": res.difference.lower,
                    "delta_high": res.difference.upper,
                    "b": res.b,
                    "c": res.c,
                    "p": res.pvalue,
                    "flag": res.note,
                }
            )
    fam = adjust_rows(records, "p", adjust_method, "dense-vs-pruned recovery tests", ("probe",))
    records = [r for r in records if r["n"] or not math.isnan(r["p"])]
    cols = [
        *key_columns(records),
        Column("probe", "probe", "text", "left"),
        Column("n", "n", "int"),
        Column("pruned", "rate_pruned", "rate"),
        Column("dense", "rate_dense", "rate"),
        Column(f"Δ [{100 * level:g}% CI]", "delta", "ci"),
        Column("b", "b", "int"),
        Column("c", "c", "int"),
        Column("p", "p", "p"),
        Column(f"p adj. ({adjust_method})", "p_adjusted", "p"),
        Column("flag", "flag", "text", "left"),
    ]
    notes = [
        "Items whose open generation failed in both the dense and the pruned run and that the probe ran on in "
        "both; b = recovered only after pruning, c = recovered only in the dense run; rows without such items "
        "are left out.",
        f"Δ = recovery rate pruned − dense, {DIFF_NAMES[diff_ci]} CI; p: {METHOD_NAMES[method]}.",
        "Multiple comparisons: " + fam.describe() + ".",
    ]
    return ReportTable("recovery-paired", "Recovery, dense vs pruned (paired)", cols, records, notes)
