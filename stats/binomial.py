"""Binomial(m, ½) probabilities in log space, with relative accuracy far into the tails.

The exact and mid-p McNemar tests need P(X ≤ k) and P(X = k) for X ~ Binomial(b + c, ½). SciPy's
`binom.cdf` underflows to 0 for m ≈ 1075–1319 and small k although the true tail (~1e-290) is a
normal double, which made the mid-p value negative. Here:

- the point probability uses Loader's saddle-point form (as R's `dbinom`): log C(m, k) − m log 2
  = stirlerr(m) − stirlerr(k) − stirlerr(m − k) − bd0(k, m/2) − bd0(m − k, m/2) − ½ log(2πk(m − k)/m),
  every term small, so there is no cancellation between two numbers of size m log 2;
- the lower tail for k < m/2 is P(X = k) · Σ_j Π_{i≤j} (k − i + 1)/(m − k + i), a sum of positive,
  geometrically falling terms; for k ≥ m/2 it is 1 − P(X ≤ m − k − 1) (≥ ½, so no relative loss).

Both are returned as natural logs, so nothing underflows; `math.exp` of the result is a probability
with a relative error of a few units in the 15th digit down to the smallest normal double.
"""

from __future__ import annotations

import math

import numpy as np

_LN_2PI = math.log(2 * math.pi)
_LN2 = math.log(2.0)
_S0, _S1, _S2, _S3, _S4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
_CHUNK = 4096


def stirlerr(n: int) -> float:
    """log(n!) − log(√(2πn) (n/e)^n), the error of Stirling's formula (exact factorial for n ≤ 15)."""
    if n <= 15:
        return math.log(math.factorial(n)) - (n + 0.5) * math.log(n) + n - 0.5 * _LN_2PI if n else 0.0
    nn = float(n) * n
    if n > 500:
        return (_S0 - _S1 / nn) / n
    if n > 80:
        return (_S0 - (_S1 - _S2 / nn) / nn) / n
    if n > 35:
        return (_S0 - (_S1 - (_S2 - _S3 / nn) / nn) / nn) / n
    return (_S0 - (_S1 - (_S2 - (_S3 - _S4 / nn) / nn) / nn) / nn) / n


def bd0(x: float, np_: float) -> float:
    """x log(x/np) + np − x, without cancellation when x is near np (Loader 2000)."""
    if abs(x - np_) < 0.1 * (x + np_):
        v = (x - np_) / (x + np_)
        s = (x - np_) * v
        ej = 2 * x * v
        v2 = v * v
        for j in range(1, 1000):
            ej *= v2
            s1 = s + ej / (2 * j + 1)
            if s1 == s:
                return s1
            s = s1
        return s
    return x * math.log(x / np_) + np_ - x


def logpmf_half(k: int, m: int) -> float:
    """log P(X = k) for X ~ Binomial(m, ½); −inf outside 0..m."""
    if k < 0 or k > m:
        return -math.inf
    if k in (0, m):
        return -m * _LN2
    half = m / 2
    lc = stirlerr(m) - stirlerr(k) - stirlerr(m - k) - bd0(k, half) - bd0(m - k, half)
    return lc - 0.5 * (_LN_2PI + math.log(k) + math.log1p(-k / m))


def _log_lower_sum(k: int, m: int) -> float:
    """log Σ_{i=0..k} P(X = i)/P(X = k) for k < m/2: the ratios fall geometrically once past the mode."""
    total, run = 1.0, 1.0
    for start in range(1, k + 1, _CHUNK):
        j = np.arange(start, min(k, start + _CHUNK - 1) + 1, dtype=float)
        terms = run * np.cumprod((k - j + 1) / (m - k + j))
        chunk = float(terms.sum())
        total += chunk
        run = float(terms[-1])
        if run <= total * 1e-17:
            break
    return math.log(total)


def logcdf_half(k: int, m: int) -> float:
    """log P(X ≤ k) for X ~ Binomial(m, ½)."""
    if k < 0:
        return -math.inf
    if k >= m:
        return 0.0
    if 2 * k < m:
        return logpmf_half(k, m) + _log_lower_sum(k, m)
    return math.log1p(-math.exp(logcdf_half(m - k - 1, m)))


def logsf_half(k: int, m: int) -> float:
    """log P(X ≥ k) for X ~ Binomial(m, ½) (= log P(X ≤ m − k) by symmetry)."""
    return logcdf_half(m - k, m)


def logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) for scalars, −inf-safe."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))
