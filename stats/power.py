"""Power and minimum detectable effect of McNemar tests.

Exact power enumerates the null rejection region for every number of discordant pairs m:
m ~ Binom(n, p_b + p_c) and b | m ~ Binom(m, p_b/(p_b + p_c)). The closed form is Connor's (1987)
normal approximation.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize
from scipy.stats import binom, chi2, norm

from engine.errors import UserError
from stats.mcnemar import METHODS


@lru_cache(maxsize=256)
def _thresholds(n: int, alpha: float, method: str) -> np.ndarray:
    """k_lo[m] for m = 0..n: largest k ≤ m/2 with two-sided p(k, m − k) < alpha, −1 if none.

    The two-sided p-value only grows as min(b, c) grows, so the rejection region is a prefix.
    """
    if method not in METHODS:
        raise UserError(f"unknown McNemar method {method!r}; choose from {', '.join(METHODS)}")
    out = np.full(n + 1, -1, dtype=np.int64)
    step = 256
    for start in range(1, n + 1, step):
        m = np.arange(start, min(n, start + step - 1) + 1)[:, None].astype(float)
        k = np.arange(0, n // 2 + 1)[None, :].astype(float)
        valid = k <= m / 2
        tie = k == m - k
        with np.errstate(invalid="ignore", divide="ignore"):
            if method in ("exact", "midp"):
                p = np.minimum(1.0, 2.0 * binom.cdf(k, m, 0.5))
                p = np.where(tie, 1.0, p)
                if method == "midp":
                    pmf = binom.pmf(k, m, 0.5)
                    p = np.where(tie, 1.0 - 0.5 * pmf, p - pmf)
            else:
                d = m - 2 * k
                if method == "asymptotic_cc":
                    d = np.maximum(d - 1, 0)
                p = chi2.sf(d * d / m, 1)
        rej = valid & (p < alpha)
        out[start : start + m.shape[0]] = rej.sum(axis=1) - 1
    return out


def power_mcnemar(p_b: float, p_c: float, n: int, alpha: float = 0.05, method: str = "midp") -> float:
    """Exact power of the two-sided McNemar test (`method`) at level alpha with n pairs.

    p_b, p_c: probabilities of the two discordant cells (p_b − p_c is the paired difference).
    With p_b = p_c it is the test's actual size (docs/statistics.md §9, §12).
    """
    if not (0 <= p_b <= 1 and 0 <= p_c <= 1 and p_b + p_c <= 1 + 1e-12):
        raise UserError(f"power: need 0 ≤ p_b, p_c and p_b + p_c ≤ 1, got {p_b}, {p_c}")
    if n < 1:
        raise UserError(f"power: n must be positive, got {n}")
    disc = min(p_b + p_c, 1.0)
    if disc == 0:
        return 0.0
    q = p_b / (p_b + p_c)
    k_lo = _thresholds(int(n), float(alpha), method)
    m = np.arange(n + 1)
    w = binom.pmf(m, n, disc)
    ok = k_lo >= 0
    prob = binom.cdf(k_lo[ok], m[ok], q) + binom.sf(m[ok] - k_lo[ok] - 1, m[ok], q)
    return float(min(np.sum(w[ok] * prob), 1.0))


def power_mcnemar_normal(p_b: float, p_c: float, n: int, alpha: float = 0.05) -> float:
    """Connor (1987) normal approximation to the power of the two-sided asymptotic McNemar test."""
    disc, delta = p_b + p_c, abs(p_b - p_c)
    if disc == 0:
        return 0.0
    z = norm.ppf(1 - alpha / 2)
    shift, var = delta * math.sqrt(n) - z * math.sqrt(disc), disc - delta**2
    if var <= 0:  # every pair discordant the same way: the statistic is fixed, Φ(±∞)
        return 1.0 if shift > 0 else 0.0 if shift < 0 else 0.5
    return float(norm.cdf(shift / math.sqrt(var)))


def min_detectable_effect(
    n: int, discordance: float, alpha: float = 0.05, power: float = 0.8, method: str = "midp"
) -> float:
    """Smallest paired difference |p_b − p_c| the test detects with `power`, at discordance p_b + p_c.

    `method='normal'` uses Connor's closed form; otherwise exact power. NaN when even the largest
    possible difference (= discordance) is not detected.
    """
    if not 0 < discordance <= 1:
        raise UserError(f"minimum detectable effect: discordance must be in (0, 1], got {discordance}")

    def pw(delta: float) -> float:
        pb, pc = (discordance + delta) / 2, (discordance - delta) / 2
        if method == "normal":
            return power_mcnemar_normal(pb, pc, n, alpha)
        return power_mcnemar(pb, pc, n, alpha, method)

    if pw(discordance) < power:
        return math.nan
    return float(optimize.brentq(lambda d: pw(d) - power, 0.0, discordance, xtol=1e-12))
