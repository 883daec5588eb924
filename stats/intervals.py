"""Confidence intervals: Wilson for a rate, paired difference Δ = (b − c)/n, conditional odds ratio b/c.

Formulas follow Fagerland, Lydersen & Laake, *Statistical Analysis of Contingency Tables* (ch. 2, 8),
and are checked against their `contingencytables` R package (docs/statistics.md §4, §12).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, special
from scipy.stats import beta, norm

from engine.errors import UserError
from stats.tables import PairedTable

DIFF_METHODS = ("tango", "scas", "newcombe", "wald", "wald_cc", "agresti_min", "bonett_price")
OR_METHODS = ("wilson", "cp_exact", "cp_midp", "blaker", "wald", "wald_laplace")
DIFF_NAMES = {
    "tango": "Tango asymptotic score",
    "scas": "skewness-corrected asymptotic score (SCAS)",
    "newcombe": "Newcombe square-and-add",
    "wald": "Wald",
    "wald_cc": "Wald with continuity correction",
    "agresti_min": "Agresti–Min adjusted Wald",
    "bonett_price": "Bonett–Price adjusted Wald",
}
OR_NAMES = {
    "wilson": "transformed Wilson score",
    "cp_exact": "transformed Clopper–Pearson exact",
    "cp_midp": "transformed Clopper–Pearson mid-p",
    "blaker": "transformed Blaker exact",
    "wald": "Wald (log scale)",
    "wald_laplace": "Wald with Laplace adjustment (+1)",
}
_NAN = float("nan")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval and the method that produced it."""

    estimate: float
    lower: float
    upper: float
    level: float
    method: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def excludes(self, value: float) -> bool:
        return bool(self.lower > value or self.upper < value)

    def format(self, digits: int = 3, scale: float = 1.0) -> str:
        """'0.123 [0.045, 0.201]' (NaN shown as 'n/a')."""

        def f(x: float) -> str:
            if math.isnan(x):
                return "n/a"
            if math.isinf(x):
                return "∞" if x > 0 else "−∞"
            return f"{x * scale:.{digits}f}"

        return f"{f(self.estimate)} [{f(self.lower)}, {f(self.upper)}]"


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise UserError(f"confidence level must be in (0, 1), got {level}")
    return float(norm.ppf(1 - (1 - level) / 2))


# ---------------------------------------------------------------- one proportion


def wilson(x: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion x/n (n = 0 gives NaN, flagged)."""
    if n <= 0:
        return Interval(_NAN, _NAN, _NAN, level, "Wilson score", "empty cell (n = 0)")
    lo, hi = _wilson_limits(x, n, _z(level))
    return Interval(x / n, max(0.0, lo), min(1.0, hi), level, "Wilson score")


def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    alpha = 1 - level
    lo = 0.0 if x == 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
    return lo, hi


def _binom_pmf(x: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0 if x == 0 else 0.0
    if p >= 1.0:
        return 1.0 if x == n else 0.0
    return math.exp(
        math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * math.log(p) + (n - x) * math.log1p(-p)
    )


def clopper_pearson_midp(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Mid-p version: P(X > x) + ½P(X = x) = α/2 (lower), P(X < x) + ½P(X = x) = α/2 (upper)."""
    alpha = 1 - level
    eps = 1e-15

    def lower_eq(p: float) -> float:
        return float(special.bdtrc(x, n, p)) + 0.5 * _binom_pmf(x, n, p) - alpha / 2

    def upper_eq(p: float) -> float:
        below = float(special.bdtr(x - 1, n, p)) if x > 0 else 0.0
        return below + 0.5 * _binom_pmf(x, n, p) - alpha / 2

    lo = 0.0 if x == 0 else optimize.brentq(lower_eq, eps, 1 - eps, xtol=1e-14)
    hi = 1.0 if x == n else optimize.brentq(upper_eq, eps, 1 - eps, xtol=1e-14)
    return lo, hi


# ---------------------------------------------------------------- paired difference


def _tango_p21(delta0: float, b: int, c: int, n: int) -> float:
    """Restricted MLE of the discordant cell p21 under Δ = delta0 (Tango 1998)."""
    a_ = 2.0 * n
    b_ = -b - c + (2.0 * n - b + c) * delta0
    c_ = -c * delta0 * (1 - delta0)
    return max(0.0, (math.sqrt(max(b_ * b_ - 4 * a_ * c_, 0.0)) - b_) / (2 * a_))


def _tango_score(delta0: float, b: int, c: int, n: int) -> float:
    """Tango's score statistic for H0: Δ = delta0 (decreasing in delta0)."""
    p21 = _tango_p21(delta0, b, c, n)
    var = n * (2 * p21 + delta0 * (1 - delta0))
    num = b - c - n * delta0
    if var <= 0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def _scas_score(delta0: float, n11: int, b: int, c: int, n22: int) -> float:
    """Laud's skewness-corrected score for H0: Δ = delta0 (ratesci `scorepairci`, bcf and skew on).

    Tango's restricted MLE of the cell probabilities, the variance with the N/(N − 1) bias correction,
    the third central moment of the score, and the quadratic in z that removes the skewness term."""
    n = n11 + b + c + n22
    s = (b - c - n * delta0) / n
    p21 = _tango_p21(delta0, b, c, n)
    p12 = p21 + delta0
    p11 = 0.0 if n11 == 0 else n11 / (n11 + n22) * (1 - p12 - p21)
    p22 = 1 - p11 - p12 - p21
    p2 = min(1.0, max(0.0, p21 + p11))
    p1 = p2 + delta0
    lam = n / (n - 1) if n > 1 else 1.0
    var = max(0.0, (p1 * (1 - p1) + p2 * (1 - p2) - 2 * (p11 * p22 - p12 * p21)) / n) * lam
    mu3 = (
        p1 * (1 - p1) * (1 - 2 * p1)
        - p2 * (1 - p2) * (1 - 2 * p2)
        - 3 * (p11 * (1 - p1) ** 2 + p21 * p1**2 - p1 * p2 * (1 - p1))
        + 3 * (p11 * (1 - p2) ** 2 + p12 * p2**2 - p1 * p2 * (1 - p2))
    ) / n**2
    z1 = 0.0 if s == 0 else s / math.sqrt(var) if var > 0 else math.copysign(math.inf, s)
    skew = 0.0 if abs(mu3) < 1e-10 or var < 1e-10 else mu3 / (6 * var**1.5)
    if skew == 0:
        return z1
    # The root of skew·z² + z − (z1 + skew) = 0 that tends to z1 as skew → 0, in the form without cancellation.
    return 2 * (z1 + skew) / (1 + math.sqrt(max(0.0, 1 + 4 * skew * (z1 + skew))))


def _bisect_decreasing(f: Any) -> float:
    """Where a decreasing score crosses zero on (−1, 1), by bisection of the whole range.

    Plain bisection (not a bracketing solver seeded at the estimate) because the skewness-corrected
    score is not monotone near the edges of small tables; it is the search `ratesci` makes, so the
    limits agree with it there too."""
    lo, hi = -1.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if f(mid) <= 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def _wilson_limits(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score limits of x/n: (centre ∓ half); exactly 0 at x = 0 and exactly 1 at x = n.

    centre = (p + z²/2n)/(1 + z²/n), half = z √(p(1 − p)/n + z²/4n²)/(1 + z²/n). At x = n the upper
    limit is 1 by the algebra but comes out as 1 − 2⁻⁵³ in floating point, which the odds transform
    would turn into 9.0e15 instead of ∞; the edges are therefore set exactly.
    """
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (0.0 if x == 0 else centre - half), (1.0 if x == n else centre + half)


def paired_difference_ci(table: PairedTable, method: str = "tango", level: float = 0.95) -> Interval:
    """CI for Δ = p1 − p2 = (b − c)/n of a paired table."""
    if method not in DIFF_METHODS:
        raise UserError(f"unknown paired-difference CI method {method!r}; choose from {', '.join(DIFF_METHODS)}")
    name = DIFF_NAMES[method]
    n, b, c = table.n, table.b, table.c
    if n == 0:
        return Interval(_NAN, _NAN, _NAN, level, name, "empty cell (n = 0)")
    z = _z(level)
    est = (b - c) / n
    if method == "tango":
        tol = 1e-12
        lo = -1.0 if est == -1 else optimize.brentq(lambda d: _tango_score(d, b, c, n) - z, -1 + tol, est, xtol=1e-13)
        hi = 1.0 if est == 1 else optimize.brentq(lambda d: _tango_score(d, b, c, n) + z, est, 1 - tol, xtol=1e-13)
        return Interval(est, lo, hi, level, name)
    if method == "scas":

        def score(d: float) -> float:
            return _scas_score(d, table.n11, b, c, table.n22)

        lo = _bisect_decreasing(lambda d: score(d) - z)
        hi = _bisect_decreasing(lambda d: score(d) + z)
        if b == c:  # the score is odd in Δ (with zero variance at 0 when b = c = 0): the estimate is 0
            return Interval(0.0, lo, hi, level, name, "no discordant pairs" if b == 0 else "")
        return Interval(
            _bisect_decreasing(score), lo, hi, level, name, "estimate: the root of the skewness-corrected score"
        )
    if method == "newcombe":
        n1p, n2p = table.n11 + table.n12, table.n21 + table.n22
        np1, np2 = table.n11 + table.n21, table.n12 + table.n22
        p1, p2 = n1p / n, np1 / n
        l1, u1 = _wilson_limits(n1p, n, z)
        l2, u2 = _wilson_limits(np1, n, z)
        if min(n1p, n2p, np1, np2) == 0:
            psi = 0.0
        else:
            a = table.n11 * table.n22 - b * c
            prod = math.sqrt(n1p * n2p * np1 * np2)
            psi = (a - n / 2) / prod if a > n / 2 else (0.0 if a >= 0 else a / prod)
        lo = est - math.sqrt(max((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * psi * (p1 - l1) * (u2 - p2), 0.0))
        hi = est + math.sqrt(max((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * psi * (p2 - l2) * (u1 - p1), 0.0))
        return Interval(est, lo, hi, level, name)
    if method == "wald":
        se = math.sqrt(max((b + c) - (b - c) ** 2 / n, 0.0)) / n
        centre = est
    elif method == "wald_cc":
        se = math.sqrt(max((b + c) - (abs(b - c) - 1) ** 2 / n, 0.0)) / n
        centre = est
    elif method == "agresti_min":
        m = n + 2.0
        q12, q21 = (b + 0.5) / m, (c + 0.5) / m
        centre = q12 - q21
        se = math.sqrt(max((q12 + q21 - centre**2) / m, 0.0))
    else:  # bonett_price
        m = n + 2.0
        q12, q21 = (b + 1) / m, (c + 1) / m
        centre = q12 - q21
        se = math.sqrt(max((q12 + q21 - centre**2) / m, 0.0))
    return Interval(est, max(-1.0, centre - z * se), min(1.0, centre + z * se), level, name)


# ---------------------------------------------------------------- conditional odds ratio


def _to_odds(p: float) -> float:
    return math.inf if p >= 1 else p / (1 - p)


def paired_odds_ratio_ci(table: PairedTable, method: str = "wilson", level: float = 0.95) -> Interval:
    """CI for the conditional odds ratio ψ = b/c (the subject-specific OR of the paired logit model)."""
    if method not in OR_METHODS:
        raise UserError(f"unknown odds-ratio CI method {method!r}; choose from {', '.join(OR_METHODS)}")
    name = OR_NAMES[method]
    b, c = table.b, table.c
    m = b + c
    if m == 0:
        return Interval(_NAN, _NAN, _NAN, level, name, "no discordant pairs")
    est = math.inf if c == 0 else b / c
    z = _z(level)
    if method in ("wald", "wald_laplace"):
        bb, cc = (b, c) if method == "wald" else (b + 1, c + 1)
        if bb == 0 or cc == 0:
            return Interval(est, 0.0, math.inf, level, name, "a discordant cell is zero")
        log_or, se = math.log(bb / cc), math.sqrt(1 / bb + 1 / cc)
        return Interval(est, math.exp(log_or - z * se), math.exp(log_or + z * se), level, name)
    if method == "wilson":
        lo, hi = _wilson_limits(b, m, z)
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    elif method == "cp_exact":
        lo, hi = clopper_pearson(b, m, level)
    elif method == "blaker":
        lo, hi = blaker(b, m, level)
    else:
        lo, hi = clopper_pearson_midp(b, m, level)
    return Interval(est, _to_odds(lo), _to_odds(hi), level, name)


# ---------------------------------------------------------------- ratio of paired proportions

RATIO_METHODS = ("tang", "wald", "bonett_price", "mover_wilson")
RATIO_NAMES = {
    "tang": "Tang asymptotic score",
    "wald": "Wald (log scale)",
    "bonett_price": "Bonett–Price hybrid Wilson score",
    "mover_wilson": "MOVER Wilson score",
}


def _tang_ratio_score(phi: float, n11: int, n12: int, n21: int, n: int) -> float:
    a_ = n * (1 + phi)
    b_ = (n11 + n21) * phi**2 - (n11 + n12 + 2 * n21)
    c_ = n21 * (1 - phi) * (n11 + n12 + n21) / n
    p21 = (-b_ + math.sqrt(max(b_ * b_ - 4 * a_ * c_, 0.0))) / (2 * a_)
    var = n * (1 + phi) * p21 + (n11 + n12 + n21) * (phi - 1)
    num = (n11 + n12) - (n11 + n21) * phi
    if var <= 0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def paired_ratio_ci(table: PairedTable, method: str = "tang", level: float = 0.95) -> Interval:
    """CI for φ = p1/p2 = (n11 + n12)/(n11 + n21), the ratio of the two paired rates."""
    if method not in RATIO_METHODS:
        raise UserError(f"unknown paired-ratio CI method {method!r}; choose from {', '.join(RATIO_METHODS)}")
    name = RATIO_NAMES[method]
    n11, n12, n21, n = table.n11, table.n12, table.n21, table.n
    n1p, np1 = n11 + n12, n11 + n21
    if n == 0 or np1 == 0:
        return Interval(_NAN, _NAN, _NAN, level, name, "ratio undefined (no successes under condition 2)")
    est = n1p / np1
    z = _z(level)
    if method == "tang":
        lo = (
            0.0
            if est == 0
            else optimize.brentq(lambda f: _tang_ratio_score(f, n11, n12, n21, n) - z, 1e-12, est, xtol=1e-13)
        )
        hi_end = est * 2 + 1
        while _tang_ratio_score(hi_end, n11, n12, n21, n) + z > 0:
            hi_end *= 2
        hi = optimize.brentq(lambda f: _tang_ratio_score(f, n11, n12, n21, n) + z, est, hi_end, xtol=1e-13)
        return Interval(est, lo, hi, level, name)
    if method == "wald":
        if n1p == 0:
            return Interval(est, 0.0, math.inf, level, name, "a margin is zero")
        se = math.sqrt((n12 + n21) / (n1p * np1))
        return Interval(est, est * math.exp(-z * se), est * math.exp(z * se), level, name)
    if method == "bonett_price":
        nstar = n11 + n12 + n21
        a = math.sqrt((n12 + n21 + 2) / ((n1p + 1) * (np1 + 1)))
        b = math.sqrt((1 - (n1p + 1) / (nstar + 2)) / (n1p + 1))
        c = math.sqrt((1 - (np1 + 1) / (nstar + 2)) / (np1 + 1))
        zz = a / (b + c) * z

        def limits(x: int) -> tuple[float, float]:
            root = zz * math.sqrt(zz * zz + 4 * x * (1 - x / nstar))
            return (2 * x + zz * zz - root) / (2 * (nstar + zz * zz)), (2 * x + zz * zz + root) / (
                2 * (nstar + zz * zz)
            )

        l1, u1 = limits(n1p)
        l2, u2 = limits(np1)
        return Interval(est, l1 / u2, u1 / l2 if l2 > 0 else math.inf, level, name)
    # MOVER Wilson
    p1, p2 = n1p / n, np1 / n
    l1, u1 = _wilson_limits(n1p, n, z)
    l2, u2 = _wilson_limits(np1, n, z)
    prod = (n11 + n12) * (n21 + table.n22) * (n11 + n21) * (n12 + table.n22)
    corr = (n11 * table.n22 - n12 * n21) / math.sqrt(prod) if prod > 0 else 0.0
    a = corr * (p1 - l1) * (u2 - p2)
    b = corr * (u1 - p1) * (p2 - l2)
    disc_lo = _exact_zero((a - p1 * p2) ** 2, l1 * (2 * p1 - l1) * u2 * (2 * p2 - u2))
    lo = (a - p1 * p2 + math.sqrt(max(disc_lo, 0.0))) / (u2 * (u2 - 2 * p2))
    den = l2 * (l2 - 2 * p2)
    disc = _exact_zero((b - p1 * p2) ** 2, u1 * (2 * p1 - u1) * l2 * (2 * p2 - l2))
    hi = (b - p1 * p2 - math.sqrt(disc)) / den if den != 0 and disc >= 0 else math.inf
    lo, hi = max(0.0, lo), hi if hi >= 0 else math.inf
    if lo > hi:  # the point 1 of that case, its two ends computed a rounding apart
        lo = hi = est
    return Interval(est, lo, hi, level, name)


def _exact_zero(x: float, y: float) -> float:
    """x − y, with a difference within rounding of the terms taken as the exact 0 it is (MOVER at
    b = c = 0 and rates ½: x = y, and the interval is the point 1, which a square root of the rounding
    error would turn into [1, 1 + 1e-8] or a reversed pair)."""
    d = x - y
    return 0.0 if abs(d) <= 1e-12 * max(abs(x), abs(y)) else d


# ---------------------------------------------------------------- Blaker exact interval (binomial)


def _blaker_acceptability(x: int, n: int, p: float) -> float:
    """Blaker's (2000) acceptability: P_p(γ(X) ≤ γ(x)), γ(k) = min(P(X ≤ k), P(X ≥ k))."""
    k = np.arange(n + 1)
    cdf = special.bdtr(k, n, p)
    sf = 1.0 - np.concatenate(([0.0], cdf[:-1]))  # P(X ≥ k)
    gam = np.minimum(cdf, sf)
    pmf = np.diff(np.concatenate(([0.0], cdf)))
    return float(np.sum(pmf[gam <= gam[x] * (1 + 1e-10)]))


def blaker(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Blaker's exact CI for a binomial proportion (the acceptability set's hull, found by bisection)."""
    alpha = 1 - level
    est = x / n

    def edge(lo: float, hi: float) -> float:  # acceptability crosses alpha between lo (out) and hi (in)
        for _ in range(60):
            mid = (lo + hi) / 2
            if _blaker_acceptability(x, n, mid) > alpha:
                hi = mid
            else:
                lo = mid
        return hi

    def outer(limit: float) -> float:
        """Walk a grid from the estimate towards `limit`; refine the last accepted point's edge."""
        grid = np.linspace(est, limit, 501)
        accepted = np.array([_blaker_acceptability(x, n, g) > alpha for g in grid])
        last = int(np.flatnonzero(accepted)[-1])
        return float(grid[last]) if last == len(grid) - 1 else edge(float(grid[last + 1]), float(grid[last]))

    lo = 0.0 if x == 0 else outer(0.0)
    hi = 1.0 if x == n else outer(1.0)
    return lo, hi
