"""McNemar tests for paired binary outcomes: mid-p (default), exact conditional, asymptotic ± CC.

Implemented directly on the binomial and χ² distributions (docs/statistics.md §3): statsmodels'
`mcnemar` returns p = 0 with no discordant pairs and p < 1 for b = c under the correction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import binom, chi2, norm

from engine.errors import UserError
from stats.binomial import logaddexp, logcdf_half, logpmf_half
from stats.intervals import Interval, paired_difference_ci, paired_odds_ratio_ci
from stats.report import p_clause
from stats.tables import PairedTable

_LN2 = math.log(2.0)
METHODS = ("midp", "exact", "asymptotic", "asymptotic_cc")
ALTERNATIVES = ("two-sided", "greater", "less")
METHOD_NAMES = {
    "midp": "McNemar mid-p test",
    "exact": "McNemar exact conditional test",
    "asymptotic": "asymptotic McNemar test (no continuity correction)",
    "asymptotic_cc": "asymptotic McNemar test with continuity correction",
}


def _check(method: str, alternative: str) -> None:
    if method not in METHODS:
        raise UserError(f"unknown McNemar method {method!r}; choose from {', '.join(METHODS)}")
    if alternative not in ALTERNATIVES:
        raise UserError(f"unknown alternative {alternative!r}; choose from {', '.join(ALTERNATIVES)}")


def mcnemar_pvalue(b: int, c: int, method: str = "midp", alternative: str = "two-sided") -> float:
    """p-value from the discordant counts b and c alone (m = b + c; m = 0 gives 1, no discordant pairs).

    Under H0 each discordant pair goes either way with probability ½: B ~ Binomial(m, ½), with
    F(k) = P(B ≤ k) and f(k) = P(B = k). 'greater' tests p1 > p2 (b > c), 'less' tests p1 < p2.

    - exact (conditional binomial): two-sided min(1, 2F(min(b, c))), 1 when b = c; 'less' F(b);
      'greater' P(B ≥ b) = F(c).
    - midp (Lancaster's mid-p: the exact p less half the probability of the observed table):
      two-sided 2F(min(b, c) − 1) + f(b) when b ≠ c, and 1 − f(b)/2 when b = c (Fagerland, Lydersen
      & Laake 2013); 'less' F(b − 1) + f(b)/2; 'greater' F(c − 1) + f(c)/2.
    - asymptotic: χ² = (b − c)²/m on 1 df (two-sided), z = (b − c)/√m one-sided.
    - asymptotic_cc: R's continuity correction, χ² = max(|b − c| − 1, 0)²/m; one-sided
      z = (b − 1 − c)/√m for 'greater', (b + 1 − c)/√m for 'less' (each against its alternative;
      no shift when b = c).

    The binomial tails come from `stats.binomial` (log space, relative accuracy into the far tail),
    so every p is in [0, 1] and keeps its digits down to the smallest normal double.
    """
    _check(method, alternative)
    m = b + c
    if m == 0:
        return 1.0
    if method in ("exact", "midp"):
        return _binomial_pvalue(b, c, method == "midp", alternative)
    cc = method == "asymptotic_cc"
    if alternative == "two-sided":
        d = max(abs(b - c) - 1, 0) if cc else abs(b - c)
        return float(chi2.sf(d * d / m, 1))
    shift = (1 if alternative == "greater" else -1) if (cc and b != c) else 0
    z = (b - c - shift) / math.sqrt(m)
    return float(norm.sf(z) if alternative == "greater" else norm.cdf(z))


def _binomial_pvalue(b: int, c: int, mid: bool, alternative: str) -> float:
    """The exact or mid-p value of `mcnemar_pvalue`, summed in log space (all terms positive)."""
    m = b + c
    if alternative != "two-sided":
        k = b if alternative == "less" else c  # 'greater': P(B ≥ b) = P(B ≤ c) by symmetry
        if not mid:
            return min(1.0, math.exp(logcdf_half(k, m)))
        return min(1.0, math.exp(logaddexp(logcdf_half(k - 1, m), logpmf_half(k, m) - _LN2)))
    if b == c:
        return 1.0 - 0.5 * math.exp(logpmf_half(b, m)) if mid else 1.0
    k = min(b, c)
    if not mid:
        return min(1.0, math.exp(_LN2 + logcdf_half(k, m)))
    return min(1.0, math.exp(logaddexp(_LN2 + logcdf_half(k - 1, m), logpmf_half(k, m))))


def mcnemar_statistic(b: int, c: int, correction: bool = False) -> float:
    """χ² statistic (b − c)²/(b + c) (R's CC: max(|b − c| − 1, 0)²); NaN when b + c = 0."""
    m = b + c
    if m == 0:
        return math.nan
    d = max(abs(b - c) - 1, 0) if correction else abs(b - c)
    return d * d / m


@dataclass(frozen=True)
class Adjustment:
    """The multiple-comparison adjustment a result went through."""

    pvalue: float
    method: str
    family: str
    m: int


@dataclass(frozen=True)
class McNemarResult:
    """One paired comparison: counts, the chosen p-value with the asymptotic one beside it, effects."""

    labels: tuple[str, str]
    outcome: str
    n: int
    n11: int
    b: int
    c: int
    n22: int
    method: str
    alternative: str
    statistic: float  # χ² of the asymptotic test (corrected only for method asymptotic_cc)
    pvalue: float  # p-value of `method`
    p_asymptotic: float  # asymptotic, no continuity correction (always shown alongside)
    difference: Interval  # Δ = p1 − p2 = (b − c)/n
    odds_ratio: Interval  # ψ = b/c
    note: str = ""
    adjustment: Adjustment | None = None

    @property
    def p1(self) -> float:
        return (self.n11 + self.b) / self.n if self.n else math.nan

    @property
    def p2(self) -> float:
        return (self.n11 + self.c) / self.n if self.n else math.nan

    def adjusted(self, pvalue: float, method: str, family: str, m: int) -> McNemarResult:
        return replace(self, adjustment=Adjustment(pvalue, method, family, m))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["test"] = METHOD_NAMES[self.method]
        d["p1"], d["p2"] = self.p1, self.p2
        return d

    def report(self) -> str:
        """The sentence a paper needs: test, n, b, c, both rates, effect with CI, exact p, correction."""
        side = "two-sided" if self.alternative == "two-sided" else f"one-sided ({self.alternative})"
        l1, l2 = self.labels
        if self.n == 0:
            return f"{side} {METHOD_NAMES[self.method]}: no items ({l1} vs {l2}, {self.outcome}); no test."
        d = self.difference
        text = (
            f"{side} {METHOD_NAMES[self.method]}, {l1} vs {l2} ({self.outcome}), n = {self.n} items: "
            f"{100 * self.p1:.1f}% vs {100 * self.p2:.1f}%, b = {self.b}, c = {self.c}; "
            f"difference {100 * d.estimate:+.1f} pp ({100 * d.level:g}% CI {100 * d.lower:+.1f} to "
            f"{100 * d.upper:+.1f}, {d.method})"
        )
        o = self.odds_ratio
        if not math.isnan(o.estimate):
            text += f", conditional OR b/c = {o.format(2)} ({o.method})"
        text += f"; {p_clause(self.pvalue)}"
        if self.method != "asymptotic":
            text += f" (asymptotic {p_clause(self.p_asymptotic)})"
        if self.note:
            text += f" [{self.note}]"
        if self.adjustment is None:
            text += "; no multiplicity correction."
        else:
            a = self.adjustment
            text += f"; {a.method} over '{a.family}' (m = {a.m}): adjusted {p_clause(a.pvalue)}."
        return text


def mcnemar(
    table: PairedTable,
    method: str = "midp",
    alternative: str = "two-sided",
    level: float = 0.95,
    diff_ci: str = "tango",
    or_ci: str | None = None,
    outcome: str = "correct",
) -> McNemarResult:
    """A McNemar test of a paired table with its effect sizes.

    The odds-ratio CI defaults to the one that pairs with the test: Clopper–Pearson mid-p for mid-p,
    exact for exact, transformed Wilson for the asymptotic tests.
    """
    _check(method, alternative)
    if or_ci is None:
        or_ci = {"midp": "cp_midp", "exact": "cp_exact"}.get(method, "wilson")
    b, c = table.b, table.c
    empty = table.n == 0
    note = "empty cell (n = 0)" if empty else ("no discordant pairs" if b + c == 0 else "")
    return McNemarResult(
        labels=table.labels,
        outcome=outcome,
        n=table.n,
        n11=table.n11,
        b=b,
        c=c,
        n22=table.n22,
        method=method,
        alternative=alternative,
        statistic=mcnemar_statistic(b, c, correction=method == "asymptotic_cc"),
        pvalue=math.nan if empty else mcnemar_pvalue(b, c, method, alternative),
        p_asymptotic=math.nan if empty else mcnemar_pvalue(b, c, "asymptotic", alternative),
        difference=paired_difference_ci(table, diff_ci, level),
        odds_ratio=paired_odds_ratio_ci(table, or_ci, level),
        note=note,
    )


def mcnemar_exact_unconditional(table: PairedTable, gamma: float = 1e-4, n_grid: int = 1000) -> float:
    """Suissa–Shuster exact unconditional McNemar p-value (two-sided), as Fagerland et al. compute it.

    Maximises P(T ≥ T_obs | π) over the discordance probability π on `n_grid` equally spaced values;
    with gamma > 0 (Berger–Boos) π ranges over the 1 − gamma Clopper–Pearson interval of (b + c)/n and
    gamma is added to the maximum. Unlike the other variants it depends on n, not only on b and c.
    """
    from scipy.stats import beta as beta_dist

    b, c, n = table.b, table.c, table.n
    if b + c == 0 or n == 0:
        return 1.0
    m = np.arange(n + 1)
    # R(m) = P(T ≥ T_obs | m discordant pairs); T = (x − (m − x))²/m, compared in exact integers
    reach = np.zeros(n + 1)
    d2, s = (b - c) ** 2, b + c
    for mm in range(1, n + 1):
        if d2 == 0:
            reach[mm] = 1.0
            continue
        k = int((mm - math.sqrt(d2 * mm / s)) // 2) + 1
        while k >= 0 and (mm - 2 * k) ** 2 * s < d2 * mm:
            k -= 1
        reach[mm] = min(1.0, math.exp(_LN2 + logcdf_half(k, mm))) if k >= 0 else 0.0
    if gamma > 0:
        x = b + c
        lo = 0.0 if x == 0 else float(beta_dist.ppf(gamma / 2, x, n - x + 1))
        hi = 1.0 if x == n else float(beta_dist.ppf(1 - gamma / 2, x + 1, n - x))
    else:
        lo, hi = 0.0, 1.0
    pis = np.linspace(lo, hi, n_grid)
    best = float(np.max(binom.pmf(m[None, :], n, pis[:, None]) @ reach))
    return min(best + gamma, 1.0)
