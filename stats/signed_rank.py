"""Wilcoxon signed-rank test with the Hodges–Lehmann estimate and its CI, computed as R's
`wilcox.test(x, y, paired = TRUE, conf.int = TRUE)` does (R 4.2, two-sided, continuity correction).

- Without ties or zero differences and n < 50: the exact null distribution of V; the estimate is the
  median of the Walsh averages and the CI takes order statistics of the Walsh averages.
- Otherwise: the normal approximation with tie and continuity correction; zero differences are
  dropped (Wilcoxon's convention); the CI and the estimate invert the standardised statistic with
  R's root finder (Brent's zeroin, tolerance 1e-4), ported so the numbers match R's.

The requested confidence level cannot always be reached: with few non-zero differences the exact
interval's coverage is a multiple of 2^−n, and the normal branch widens α (doubling it) until the
limits fall inside the range of the differences. As R does, `conf_level` is then the level achieved
(attr(conf.int, "conf.level") with R's warning "requested conf.level not achievable"):

- exact: achieved α = 2 P(V ≤ q_u − 1); when it exceeds α by more than α/2 the level is
  1 − signif(achieved α, 2) (n = 3: 0.75, n = 1: 0, a point interval), else the requested level;
- normal: with α doubled to α', the level is 1 − min(1, α') when α' ≥ 1 or 1 − level < 0.75 α'
  (one doubling from 0.05: 0.90); no interval (every difference equal, or all zero): 0.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.stats import norm

_EPS = sys.float_info.epsilon


@dataclass(frozen=True)
class SignedRankResult:
    """Paired differences `second − first`: V, p, the pseudo-median (Hodges–Lehmann) and its CI."""

    n: int  # pairs
    n_nonzero: int
    statistic: float  # V = sum of ranks of the positive differences
    pvalue: float
    estimate: float
    lower: float
    upper: float
    method: str  # "exact" or "normal"
    level: float  # the requested confidence level
    conf_level: float  # the level the interval achieves (R's attr "conf.level"); 0 without an interval


@cache
def _signrank_counts(n: int) -> np.ndarray:
    """Number of sign assignments giving V = 0 … n(n+1)/2 (exact null distribution × 2^n)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        shifted = np.zeros_like(counts)
        shifted[k:] = counts[:-k]
        counts = counts + shifted
    return counts


def psignrank(q: float, n: int) -> float:
    """P(V ≤ q) under H0."""
    counts = _signrank_counts(n)
    q = math.floor(q)
    if q < 0:
        return 0.0
    return float(counts[: min(q, len(counts) - 1) + 1].sum() / 2.0**n)


def qsignrank(p: float, n: int) -> int:
    """Smallest q with P(V ≤ q) ≥ p, for p ≤ 0.5 (R's qsignrank)."""
    cdf = np.cumsum(_signrank_counts(n)) / 2.0**n
    return int(np.searchsorted(cdf, p - 10 * _EPS, side="left"))


def _zeroin(f, a: float, b: float, fa: float, fb: float, tol: float, maxit: int = 1000) -> float:
    """R's R_zeroin2 (Brent 1973): a root of f in [a, b] given f(a), f(b) of opposite signs."""
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPS * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def _ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based, ties share their mean rank) and the size of each tie group."""
    order = np.argsort(values, kind="mergesort")
    s = values[order]
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1
    counts = np.bincount(group)
    ends = np.cumsum(counts)
    ranks = np.empty(len(values))
    ranks[order] = ((ends - counts + 1 + ends) / 2.0)[group]
    return ranks, counts


def _standardised(x: np.ndarray, d: float, correct: bool) -> float:
    xd = x - d
    xd = xd[xd != 0]
    nx = len(xd)
    if nx == 0:
        return math.nan
    dr, ties = _ranks(np.abs(xd))
    zd = float(dr[xd > 0].sum()) - nx * (nx + 1) / 4
    sigma2 = nx * (nx + 1) * (2 * nx + 1) / 24 - float((ties**3 - ties).sum()) / 48
    if sigma2 <= 0:
        return math.nan
    corr = math.copysign(0.5, zd) if (correct and zd != 0) else 0.0
    return (zd - corr) / math.sqrt(sigma2)


def signed_rank(first: np.ndarray, second: np.ndarray, level: float = 0.95) -> SignedRankResult:
    """Two-sided test of H0: the differences `second − first` are symmetric about 0."""
    diff = np.asarray(second, dtype=float) - np.asarray(first, dtype=float)
    diff = diff[~np.isnan(diff)]
    n_pairs = len(diff)
    x = diff[diff != 0]
    n = len(x)
    alpha = 1 - level
    if n == 0:  # every difference zero (R: V = 0, no p), or no pairs at all (R: no test)
        none = 0.0 if n_pairs else math.nan
        return SignedRankResult(n_pairs, 0, none, math.nan, none, math.nan, math.nan, "-", level, none)
    r, groups = _ranks(np.abs(x))
    v = float(r[x > 0].sum())
    ties = len(groups) != n
    if n < 50 and not ties and n == n_pairs:
        p = 1 - psignrank(v - 1, n) if v > n * (n + 1) / 4 else psignrank(v, n)
        pvalue = min(2 * p, 1.0)
        walsh = np.add.outer(x, x)[np.triu_indices(n)] / 2
        walsh.sort()
        qu = qsignrank(alpha / 2, n) or 1
        ql = n * (n + 1) // 2 - qu
        achieved = 2 * psignrank(qu - 1, n)
        conf = 1 - float(f"{achieved:.2g}") if achieved - alpha > alpha / 2 else level  # R: 1 - signif(, 2)
        lower, upper = float(walsh[qu - 1]), float(walsh[ql])
        return SignedRankResult(n_pairs, n, v, pvalue, float(np.median(walsh)), lower, upper, "exact", level, conf)
    z = _standardised(x, 0.0, correct=True)
    pvalue = float(2 * min(norm.cdf(z), norm.sf(z)))
    lo_x, hi_x = float(x.min()), float(x.max())
    w_min, w_max = _standardised(x, lo_x, True), _standardised(x, hi_x, True)
    if not (math.isfinite(w_min) and math.isfinite(w_max)):  # every difference equal: no interval
        return SignedRankResult(n_pairs, n, v, pvalue, (lo_x + hi_x) / 2, math.nan, math.nan, "normal", level, 0.0)
    a = alpha
    while w_min - norm.isf(a / 2) < 0 or w_max - norm.ppf(a / 2) > 0:
        a *= 2
    conf = 1 - min(1.0, a) if (a >= 1 or 1 - level < a * 0.75) else level
    if a < 1:
        lower = _root(x, lo_x, hi_x, w_min, w_max, norm.isf(a / 2))
        upper = _root(x, lo_x, hi_x, w_min, w_max, norm.ppf(a / 2))
    else:
        lower = upper = float(np.median(x))
    e_min, e_max = _standardised(x, lo_x, False), _standardised(x, hi_x, False)
    estimate = _zeroin(lambda d: _standardised(x, d, False), lo_x, hi_x, e_min, e_max, 1e-4)
    return SignedRankResult(n_pairs, n, v, pvalue, estimate, lower, upper, "normal", level, conf)


def _root(x: np.ndarray, lo: float, hi: float, w_lo: float, w_hi: float, zq: float) -> float:
    return _zeroin(lambda d: _standardised(x, d, True) - zq, lo, hi, w_lo - zq, w_hi - zq, 1e-4)
