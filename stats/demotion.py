"""Demoted vs erased: where the gold answer went when open generation failed.

An item whose open generation failed is *demoted* when the gold answer's first token is still near
the top (rank ≤ the threshold) or a probe recovered the gold answer, and *erased* otherwise. The
rule is a stats option (`--demotion-rank`, `--demotion-probes`), so the analysis is redone from the
stored ranks and probe results without re-running models. By default the rule counts the probes the
runs ran: all three, or none (rank alone) when no run ran probes.

A failure that the rank does not demote and on which none of the rule's probes ran (a run with
`probes = "none"` under a rule with probes, or an answer that fails only after `prunescope rescore`)
is `not_probed`, as the engine labels it: its recovery is unknown, so it is counted apart and left
out of the shares and the paired tests rather than counted as erased.

Runs imported from another harness may lack gold traces. A correct answer needs none and is counted
as it is; a failure with neither a gold rank nor a probe result is `not_probed` (recovery unknown).
A cell whose pruned or dense run recorded no rank and no probe result on any item has nothing to
tell demoted from erased: it is left out of the demotion table and figure, and named in a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from engine.errors import UserError
from stats.cells import adjust_rows, iter_cells, key_columns, wilson_fields
from stats.intervals import DIFF_NAMES
from stats.mcnemar import METHOD_NAMES, mcnemar
from stats.report import Column, ReportTable
from stats.tables import PairedTable

PROBES = ("beam", "sampling", "one_shot")
PROBE_NAMES = {"beam": "beam (gold in any beam)", "sampling": "sampling (≥ 1 hit)", "one_shot": "one-shot"}


@dataclass(frozen=True)
class DemotionRule:
    """Open generation failed and (gold first-token rank ≤ max_rank or one of `probes` recovered it)."""

    max_rank: int = 10
    probes: tuple[str, ...] = PROBES

    def __post_init__(self) -> None:
        if self.max_rank < 1:
            raise UserError(f"--demotion-rank must be ≥ 1, got {self.max_rank}")
        for p in self.probes:
            if p not in PROBES:
                raise UserError(f"--demotion-probes: unknown probe {p!r}; choose from {', '.join(PROBES)} or none")

    def describe(self) -> str:
        probes = " or ".join(PROBE_NAMES[p] for p in self.probes)
        return (
            f"demoted = open generation failed and (gold first-token rank ≤ {self.max_rank}"
            + (f" or recovered by {probes}" if probes else "")
            + "); erased = failed otherwise"
        )


def parse_probes(text: str) -> tuple[str, ...] | None:
    """'beam,sampling' → ('beam', 'sampling'); 'none' → (); 'auto' → None (the probes the runs ran)."""
    if text.strip() == "auto":
        return None
    if text.strip() == "none":
        return ()
    return tuple(p.strip() for p in text.split(",") if p.strip())


def default_rule(
    runs: Sequence[dict], max_rank: int | None = None, probes: Sequence[str] | None = None
) -> DemotionRule:
    """The threshold given, else the one the runs recorded (all alike), else 10; the probes given, else
    the ones the runs ran: none when every run that records its probe mode ran none, else all three."""
    if max_rank is None:
        recorded = {int(r["demotion_max_rank"]) for r in runs if r.get("demotion_max_rank") is not None}
        max_rank = recorded.pop() if len(recorded) == 1 else 10
    if probes is None:
        modes = {r.get("probes_mode") for r in runs} - {None}
        probes = () if modes == {"none"} else PROBES
    return DemotionRule(int(max_rank), tuple(probes))


_PROBE_COLUMNS = {"beam": "beam_any", "sampling": "sample_hits", "one_shot": "one_shot"}


def probed(frame: pd.DataFrame, suffix: str, probes: Sequence[str]) -> np.ndarray:
    """Did at least one of `probes` run on the row?"""
    out = np.zeros(len(frame), dtype=bool)
    for p in probes:
        out |= frame[f"{_PROBE_COLUMNS[p]}{suffix}"].notna().to_numpy(bool)
    return out


def recovered(frame: pd.DataFrame, suffix: str, probes: Sequence[str]) -> np.ndarray:
    """Did any of `probes` produce the gold answer (False where it was not run)?"""
    out = np.zeros(len(frame), dtype=bool)
    if "beam" in probes:
        out |= frame[f"beam_any{suffix}"].fillna(False).to_numpy(bool)
    if "sampling" in probes:
        out |= frame[f"sample_hits{suffix}"].fillna(0).to_numpy(float) > 0
    if "one_shot" in probes:
        out |= frame[f"one_shot{suffix}"].fillna(False).to_numpy(bool)
    return out


def traced(frame: pd.DataFrame, suffix: str = "") -> np.ndarray:
    """Rows with a gold first-token rank or a probe result (False for runs imported without either)."""
    cols = [f"first_token_rank{suffix}"] + [f"{c}{suffix}" for c in _PROBE_COLUMNS.values()]
    return frame[[c for c in cols if c in frame]].notna().any(axis=1).to_numpy(bool)


def both_traced(pairs: pd.DataFrame) -> bool:
    """Whether the pruned and the dense side of `pairs` each have a rank or a probe result somewhere."""
    return bool(traced(pairs, "_pruned").any() and traced(pairs, "_dense").any())


def label(frame: pd.DataFrame, rule: DemotionRule, suffix: str = "") -> np.ndarray:
    """'demoted' / 'erased' / 'not_probed' (neither demoted by the rank nor probed by any of the rule's
    probes, or without a rank under the rank alone: recovery unknown) for failed open generations, ''
    for correct ones (object array)."""
    failed = ~frame[f"open_correct{suffix}"].to_numpy(bool)
    rank = frame[f"first_token_rank{suffix}"].astype("Float64").to_numpy(dtype=float, na_value=np.inf)
    demoted = (rank <= rule.max_rank) | recovered(frame, suffix, rule.probes)
    known = probed(frame, suffix, rule.probes) if rule.probes else np.isfinite(rank)
    verdict = np.where(demoted, "demoted", np.where(known, "erased", "not_probed"))
    return np.where(failed, verdict, "")


def demotion_report(
    tr: pd.DataFrame,
    rule: DemotionRule,
    method: str = "midp",
    adjust_method: str = "holm",
    level: float = 0.95,
    diff_ci: str = "tango",
) -> ReportTable:
    """Per cell: demoted / erased among pruned failures and RO items, dense vs pruned paired tests."""
    records = []
    untraced: list[str] = []
    unknown = 0  # items left out of the paired tests: not probed on either side
    bare = 0  # failures with neither a rank nor a probe result, both sides, all-language rows
    for keys, sub in iter_cells(tr):
        if not both_traced(sub):  # nothing to tell demoted from erased (imported runs): absent, not erased
            if keys.get("language") == "all":
                untraced.append(f"{keys.get('model')} / {keys.get('condition')}")
            continue
        lp, ld = label(sub, rule, "_pruned"), label(sub, rule, "_dense")
        ro = sub["recognition_only_pruned"].to_numpy(bool)
        n_dem, n_era = int((lp == "demoted").sum()), int((lp == "erased").sum())
        nd_dem, nd_era = int((ld == "demoted").sum()), int((ld == "erased").sum())
        n_ro_dem, n_ro_era = int((ro & (lp == "demoted")).sum()), int((ro & (lp == "erased")).sum())
        known = (lp != "not_probed") & (ld != "not_probed")
        if keys.get("language") == "all":
            unknown += int((~known).sum())
            bare += int(((lp != "") & ~traced(sub, "_pruned")).sum() + ((ld != "") & ~traced(sub, "_dense")).sum())
        rec = {
            **keys,
            "n": len(sub),
            "failed": int((lp != "").sum()),
            "demoted": n_dem,
            "erased": n_era,
            "not_probed": int((lp == "not_probed").sum()),
            **wilson_fields(n_dem, n_dem + n_era, level, "demoted_share"),
            "dense_failed": int((ld != "").sum()),
            "dense_demoted": nd_dem,
            "dense_not_probed": int((ld == "not_probed").sum()),
            **wilson_fields(nd_dem, nd_dem + nd_era, level, "dense_demoted_share"),
            "ro": int(ro.sum()),
            "ro_demoted": n_ro_dem,
            "ro_erased": n_ro_era,
            **wilson_fields(n_ro_dem, n_ro_dem + n_ro_era, level, "ro_demoted_share"),
            "p_ro_majority": binomtest(n_ro_dem, n_ro_dem + n_ro_era, 0.5).pvalue if n_ro_dem + n_ro_era else math.nan,
            "rule": rule.describe(),
        }
        for what in ("erased", "demoted"):
            res = mcnemar(
                PairedTable.from_pairs(lp[known] == what, ld[known] == what, ("pruned", "dense")),
                method,
                level=level,
                diff_ci=diff_ci,
                outcome=what,
            )
            rec[f"{what}_rate"] = res.p1
            rec[f"{what}_rate_dense"] = res.p2
            rec[f"delta_{what}"] = res.difference.estimate
            rec[f"delta_{what}_low"] = res.difference.lower
            rec[f"delta_{what}_high"] = res.difference.upper
            rec[f"b_{what}"], rec[f"c_{what}"] = res.b, res.c
            rec[f"p_{what}"] = res.pvalue
        records.append(rec)
    fams = {
        what: adjust_rows(records, f"p_{what}", adjust_method, f"{what}-rate tests, every row of this table")
        for what in ("erased", "demoted")
    }
    some_unknown = any(r["not_probed"] or r["dense_not_probed"] for r in records)
    cols = [
        *key_columns(records),
        Column("n", "n", "int"),
        Column("failed", "failed", "int"),
        Column("demoted", "demoted", "int"),
        Column("erased", "erased", "int"),
        *([Column("not probed", "not_probed", "int")] if some_unknown else []),
        Column(f"demoted share [{100 * level:g}% CI]", "demoted_share", "ci"),
        Column("dense: demoted share", "dense_demoted_share", "rate"),
        Column("RO", "ro", "int"),
        Column(f"RO demoted share [{100 * level:g}% CI]", "ro_demoted_share", "ci"),
        Column("p (RO share = ½)", "p_ro_majority", "p"),
        Column(f"Δ erased [{100 * level:g}% CI]", "delta_erased", "ci"),
        Column(f"p erased adj. ({adjust_method})", "p_erased_adjusted", "p"),
        Column(f"Δ demoted [{100 * level:g}% CI]", "delta_demoted", "ci"),
        Column(f"p demoted adj. ({adjust_method})", "p_demoted_adjusted", "p"),
    ]
    notes = [
        f"Rule: {rule.describe()} (set with --demotion-rank and --demotion-probes; by default the probes the "
        "runs ran).",
        "failed / demoted / erased: pruned run, items whose open generation failed; demoted share (of the "
        f"demoted and erased) with a {100 * level:g}% Wilson CI; dense: the same share among the dense run's "
        "failures on the same items.",
        "RO: items recognition-only after pruning; p (RO share = ½): exact two-sided binomial test of "
        "'most recognition-only errors are demoted' against an even split.",
        f"Δ erased / Δ demoted: paired difference of the share of all items erased (demoted), pruned − dense, "
        f"{DIFF_NAMES[diff_ci]} CI; p: {METHOD_NAMES[method]}.",
        "Multiple comparisons: " + fams["erased"].describe() + "; the same for the demoted tests.",
    ]
    if some_unknown:
        notes.append(
            "not probed: failures the rank does not demote and on which none of the rule's probes ran (the "
            "engine's `not_probed`): recovery unknown, so they are left out of the shares, and items not probed "
            f"in either run out of the paired tests ({unknown} item pairs in the all-language rows)."
        )
    if bare:
        notes.append(
            "Gold traces missing (runs imported from another harness): correct answers need none and are "
            f"counted; {bare} failures in the all-language rows (pruned and dense) have neither a gold rank nor a "
            "probe result, so they are not probed."
        )
    if untraced:
        notes.append(
            "Left out, with neither gold ranks nor probe results recorded (runs imported from another harness): "
            + ", ".join(untraced)
            + "."
        )
    return ReportTable("demotion", "Demoted vs erased, dense vs pruned", cols, records, notes)
