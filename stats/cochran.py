"""Cochran's Q for k ≥ 2 related binary conditions, with Holm-adjusted pairwise McNemar follow-ups."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import chi2

from engine.errors import UserError
from stats.mcnemar import McNemarResult, mcnemar
from stats.multiple import FamilyAdjustment, adjust
from stats.report import format_p
from stats.tables import PairedTable


@dataclass(frozen=True)
class CochranResult:
    """Cochran's Q over k conditions on the same n items, with pairwise follow-ups."""

    labels: tuple[str, ...]
    n: int
    k: int
    statistic: float
    df: int
    pvalue: float
    rates: tuple[float, ...]
    note: str = ""
    pairwise: tuple[McNemarResult, ...] = field(default=())
    family: FamilyAdjustment | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": "Cochran's Q",
            "labels": list(self.labels),
            "n": self.n,
            "k": self.k,
            "statistic": self.statistic,
            "df": self.df,
            "pvalue": self.pvalue,
            "rates": list(self.rates),
            "note": self.note,
            "pairwise": [r.to_dict() for r in self.pairwise],
            "family": self.family.to_dict() if self.family else None,
        }

    def report(self) -> str:
        rates = ", ".join(f"{lab} {100 * r:.1f}%" for lab, r in zip(self.labels, self.rates))
        text = (
            f"Cochran's Q test over k = {self.k} related conditions, n = {self.n} items ({rates}): "
            f"Q = {self.statistic:.3f}, df = {self.df}, p = {format_p(self.pvalue)}"
        )
        if self.note:
            text += f" [{self.note}]"
        if self.family is not None:
            text += f"; pairwise follow-ups: {self.family.describe()}"
        return text + "."


def cochran_q(
    x: np.ndarray | Sequence[Sequence[int]],
    labels: Sequence[str] | None = None,
    pairwise: bool = True,
    method: str = "midp",
    adjust_method: str = "holm",
) -> CochranResult:
    """Cochran's Q for an (items × k) 0/1 matrix; pairwise McNemar follow-ups adjusted over their family.

    With column totals C_j, row totals R_i and T = Σ C_j: Q = (k − 1)(k Σ C_j² − T²)/(k T − Σ R_i²),
    referred to χ² with k − 1 df (upper tail); Q = 0 and p = 1 when no item differs across conditions
    (denominator 0). The follow-ups are `mcnemar(method)` on every pair, adjusted by `adjust_method`.
    """
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise UserError(f"Cochran's Q needs an (items × k) matrix with k ≥ 2, got shape {arr.shape}")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise UserError("Cochran's Q: every entry must be 0 or 1")
    n, k = arr.shape
    labels = tuple(str(s) for s in (labels if labels is not None else range(1, k + 1)))
    if len(labels) != k:
        raise UserError(f"Cochran's Q: {len(labels)} labels for {k} conditions")
    cols, rows = arr.sum(axis=0), arr.sum(axis=1)
    total = cols.sum()
    denom = k * total - np.sum(rows**2)
    note = ""
    if n == 0:
        q, p, note = math.nan, math.nan, "empty cell (n = 0)"
    elif denom == 0:
        q, p, note = 0.0, 1.0, "no item differs across conditions"
    else:
        q = float((k - 1) * (k * np.sum(cols**2) - total**2) / denom)
        p = float(chi2.sf(q, k - 1))
    rates = tuple(float(v) for v in (cols / n if n else np.full(k, math.nan)))
    results: list[McNemarResult] = []
    fam = None
    if pairwise and k > 2:
        for i, j in combinations(range(k), 2):
            t = PairedTable.from_pairs(arr[:, i].astype(bool), arr[:, j].astype(bool), (labels[i], labels[j]))
            results.append(mcnemar(t, method))
        names = [f"{r.labels[0]} vs {r.labels[1]}" for r in results]
        fam = adjust([r.pvalue for r in results], names, adjust_method, family="pairwise follow-ups of Cochran's Q")
        results = [r.adjusted(fam.adjusted[i], fam.method, fam.family, fam.m) for i, r in enumerate(results)]
    return CochranResult(labels, n, k, q, k - 1, p, rates, note, tuple(results), fam)
