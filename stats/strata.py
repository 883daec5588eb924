"""Paired tests over strata (languages): pooled McNemar, homogeneity across strata, and
cluster-adjusted McNemar tests for items that recur across strata (docs/statistics.md §6).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import chi2

from engine.errors import UserError
from stats.mcnemar import McNemarResult, mcnemar
from stats.report import p_clause
from stats.tables import PairedTable

CLUSTER_METHODS = ("auto", "obuchowski", "durkalski")


@dataclass(frozen=True)
class HomogeneityResult:
    """K×2 Pearson χ² on the discordant counts (b_k, c_k): is the conditional OR common to all strata?"""

    statistic: float
    df: int
    pvalue: float
    strata_used: tuple[str, ...]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"test": "homogeneity χ² on discordant pairs", **self.__dict__, "strata_used": list(self.strata_used)}


@dataclass(frozen=True)
class StratifiedResult:
    """Per-stratum McNemar results, the pooled test (Σb, Σc) and the homogeneity test."""

    strata: tuple[str, ...]
    per_stratum: tuple[McNemarResult, ...]
    pooled: McNemarResult
    homogeneity: HomogeneityResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "strata": list(self.strata),
            "per_stratum": [r.to_dict() for r in self.per_stratum],
            "pooled": self.pooled.to_dict(),
            "homogeneity": self.homogeneity.to_dict(),
        }


def homogeneity_test(b: Sequence[int], c: Sequence[int], strata: Sequence[str]) -> HomogeneityResult:
    """Pearson χ² on the K×2 table of (b_k, c_k); strata without discordant pairs carry no information."""
    used = [(s, bk, ck) for s, bk, ck in zip(strata, b, c) if bk + ck > 0]
    if len(used) < 2:
        return HomogeneityResult(
            math.nan, 0, math.nan, tuple(s for s, _, _ in used), "fewer than two strata with discordant pairs"
        )
    bb = np.array([u[1] for u in used], dtype=float)
    cc = np.array([u[2] for u in used], dtype=float)
    m = bb + cc
    theta = bb.sum() / m.sum()
    if theta in (0.0, 1.0):
        return HomogeneityResult(0.0, len(used) - 1, 1.0, tuple(u[0] for u in used), "all discordant pairs go one way")
    x2 = float(np.sum((bb - m * theta) ** 2 / (m * theta * (1 - theta))))
    df = len(used) - 1
    small = np.minimum(m * theta, m * (1 - theta)).min() < 5
    return HomogeneityResult(
        x2,
        df,
        float(chi2.sf(x2, df)),
        tuple(u[0] for u in used),
        "some expected counts < 5: χ² approximation rough" if small else "",
    )


def stratified_mcnemar(tables: Mapping[str, PairedTable], method: str = "midp") -> StratifiedResult:
    """Per-stratum tests, the pooled (Mantel–Haenszel) McNemar test, and the homogeneity test.

    The pooled test assumes items are independent across strata; when the same items recur
    (parallel datasets) use `clustered_mcnemar` for the pooled question.
    """
    if not tables:
        raise UserError("stratified McNemar: no strata")
    strata = tuple(tables)
    per = tuple(mcnemar(tables[s], method) for s in strata)
    first = next(iter(tables.values()))
    pooled_t = PairedTable(
        sum(t.n11 for t in tables.values()),
        sum(t.n12 for t in tables.values()),
        sum(t.n21 for t in tables.values()),
        sum(t.n22 for t in tables.values()),
        first.labels,
    )
    hom = homogeneity_test([t.b for t in tables.values()], [t.c for t in tables.values()], strata)
    return StratifiedResult(strata, per, mcnemar(pooled_t, method), hom)


@dataclass(frozen=True)
class ClusteredResult:
    """Cluster-adjusted McNemar test (pairs clustered by item)."""

    method: str
    statistic: float
    pvalue: float
    n_pairs: int
    n_clusters: int
    b: int
    c: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"test": f"cluster-adjusted McNemar ({self.method})", **self.__dict__}

    def report(self) -> str:
        text = (
            f"cluster-adjusted McNemar test ({self.method}), {self.n_pairs} pairs in {self.n_clusters} item "
            f"clusters, b = {self.b}, c = {self.c}: "
        )
        if math.isnan(self.statistic):
            text += "no χ²" + ("" if math.isnan(self.pvalue) else f", {p_clause(self.pvalue)}")
        else:
            text += f"χ² = {self.statistic:.3f}, df = 1, {p_clause(self.pvalue)}"
        return text + (f" [{self.note}]" if self.note else "") + "."


def clustered_mcnemar(b: Sequence[int], c: Sequence[int], n: Sequence[int], method: str = "auto") -> ClusteredResult:
    """McNemar test for pairs clustered by item: per cluster i, b_i, c_i discordant pairs among n_i pairs.

    Obuchowski (1998): χ² = (B − C)² / [K/(K−1) Σ (d_i − n_i·(B − C)/N)²], d_i = b_i − c_i.
    Durkalski et al. (2003): χ² = (B − C)² / Σ d_i².
    'auto' follows Yang, Sun & Hardin (2010): Obuchowski for equal cluster sizes or K ≥ 50 clusters,
    Durkalski for fewer clusters of varying size.

    B = C gives χ² = 0, p = 1 even where every d_i = 0 makes the variance 0 (0/0). B ≠ C with zero
    variance (every cluster discordant in the same proportion, e.g. each one way only) and Obuchowski
    with fewer than two clusters give no statistic (NaN) with a note saying why.
    """
    if method not in CLUSTER_METHODS:
        raise UserError(f"unknown clustered McNemar method {method!r}; choose from {', '.join(CLUSTER_METHODS)}")
    bi, ci, ni = (np.asarray(v, dtype=float) for v in (b, c, n))
    if not (bi.shape == ci.shape == ni.shape) or bi.ndim != 1:
        raise UserError("clustered McNemar: b, c and n must be aligned 1-D sequences (one entry per cluster)")
    if np.any(bi + ci > ni) or np.any(np.minimum(np.minimum(bi, ci), ni) < 0):
        raise UserError("clustered McNemar: need 0 ≤ b_i, c_i and b_i + c_i ≤ n_i in every cluster")
    k = int(bi.size)
    if method == "auto":
        method = "obuchowski" if (k >= 50 or (k > 0 and np.all(ni == ni[0]))) else "durkalski"
    big_b, big_c, big_n = int(bi.sum()), int(ci.sum()), int(ni.sum())
    d = bi - ci
    if big_b + big_c == 0:
        return ClusteredResult(
            method,
            math.nan,
            1.0 if big_n else math.nan,
            big_n,
            k,
            big_b,
            big_c,
            "no discordant pairs" if big_n else "empty cell (n = 0)",
        )
    if method == "obuchowski":
        if k < 2:
            return ClusteredResult(method, math.nan, math.nan, big_n, k, big_b, big_c, "needs at least two clusters")
        var = k / (k - 1) * np.sum((d - ni * (big_b - big_c) / big_n) ** 2)
    else:
        var = float(np.sum(d**2))
    if big_b == big_c:  # no imbalance: χ² = 0 and p = 1, as the unclustered test gives for b = c (also when 0/0)
        return ClusteredResult(method, 0.0, 1.0, big_n, k, big_b, big_c)
    if var <= 0:  # B ≠ C, yet every cluster has d_i = n_i·(B − C)/N (Durkalski: impossible, Σ d_i² > 0)
        return ClusteredResult(
            method,
            math.nan,
            math.nan,
            big_n,
            k,
            big_b,
            big_c,
            "zero between-cluster variance (every cluster discordant in the same proportion)",
        )
    x2 = float((big_b - big_c) ** 2 / var)
    return ClusteredResult(method, x2, float(chi2.sf(x2, 1)), big_n, k, big_b, big_c)
