"""Far tails: every p-value of the McNemar family and Cochran's Q against 40-digit references (mpmath).

The references compute each test's definition (the docstring of the function under test) directly
in 40-digit arithmetic: binomial tails as sums of C(m, i)/2^m, χ² and normal tails through the
regularized incomplete gamma function and erfc. A p-value must be finite and in [0, 1], and where
the reference is above 1e-300 it must agree to 1e-9 relative. CI limits are finite, or exactly ±∞
where the definition puts them there.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from itertools import product

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stats.binomial import logcdf_half, logpmf_half
from stats.cochran import cochran_q
from stats.intervals import DIFF_METHODS, OR_METHODS, paired_difference_ci, paired_odds_ratio_ci
from stats.mcnemar import METHODS, mcnemar_exact_unconditional, mcnemar_pvalue
from stats.multiple import adjust, benjamini_hochberg, holm
from stats.strata import clustered_mcnemar
from stats.tables import PairedTable

MP = mpmath.mp.clone()
MP.dps = 40
REL = 1e-9
FLOOR = 1e-300
ALTERNATIVES = ("two-sided", "less", "greater")


# ---------------------------------------------------------------- 40-digit references


@lru_cache(maxsize=4096)
def ref_pmf(k: int, m: int) -> mpmath.mpf:
    """P(B = k), B ~ Binomial(m, ½)."""
    if k < 0 or k > m:
        return MP.mpf(0)
    return MP.binomial(m, k) / MP.mpf(2) ** m


@lru_cache(maxsize=4096)
def ref_cdf(k: int, m: int) -> mpmath.mpf:
    """P(B ≤ k) = Σ_{i ≤ k} C(m, i)/2^m, summed from i = k down until the terms stop mattering."""
    if k < 0:
        return MP.mpf(0)
    if k >= m:
        return MP.mpf(1)
    if 2 * k >= m:
        return 1 - ref_cdf(m - k - 1, m)
    term = total = ref_pmf(k, m)
    for i in range(k, 0, -1):
        term = term * i / (m - i + 1)
        total += term
        if term < total * MP.mpf(10) ** -45:
            break
    return total


def ref_chi2_sf(x: float | Fraction, df: int) -> mpmath.mpf:
    x = MP.mpf(x.numerator) / x.denominator if isinstance(x, Fraction) else MP.mpf(x)
    return MP.gammainc(MP.mpf(df) / 2, x / 2, MP.inf, regularized=True)


def ref_mcnemar(b: int, c: int, method: str, alternative: str) -> mpmath.mpf:
    """The definitions in `mcnemar_pvalue`'s docstring."""
    m = b + c
    if m == 0:
        return MP.mpf(1)
    if method in ("exact", "midp"):
        mid = method == "midp"
        if alternative != "two-sided":
            k = b if alternative == "less" else c
            return ref_cdf(k - 1, m) + ref_pmf(k, m) / 2 if mid else ref_cdf(k, m)
        if b == c:
            return 1 - ref_pmf(b, m) / 2 if mid else MP.mpf(1)
        k = min(b, c)
        return 2 * ref_cdf(k - 1, m) + ref_pmf(k, m) if mid else min(MP.mpf(1), 2 * ref_cdf(k, m))
    cc = method == "asymptotic_cc"
    if alternative == "two-sided":
        d = max(abs(b - c) - 1, 0) if cc else abs(b - c)
        return ref_chi2_sf(Fraction(d * d, m), 1)
    shift = (1 if alternative == "greater" else -1) if (cc and b != c) else 0
    z = (b - c - shift) / MP.sqrt(m)
    return MP.ncdf(-z) if alternative == "greater" else MP.ncdf(z)


def assert_close(p: float, ref: mpmath.mpf, what: str) -> None:
    assert isinstance(p, float) and math.isfinite(p) and 0.0 <= p <= 1.0, f"{what}: p = {p!r}"
    if ref > FLOOR:
        assert abs(MP.mpf(p) - ref) <= REL * ref, f"{what}: p = {p!r}, reference {MP.nstr(ref, 17)}"
    else:
        assert p <= 2 * FLOOR, f"{what}: p = {p!r}, reference {MP.nstr(ref, 5)}"


# ---------------------------------------------------------------- the references themselves


def test_references_match_exact_rational_sums() -> None:
    for m in (1, 2, 7, 40, 301):
        for k in range(m + 1):
            exact = Fraction(sum(math.comb(m, i) for i in range(k + 1)), 2**m)
            assert abs(ref_cdf(k, m) - MP.mpf(exact.numerator) / exact.denominator) <= MP.mpf(10) ** -35


def test_the_values_of_the_issue_against_r() -> None:
    """R 4.2: 2*pbinom(17, 1086, .5), 2*pbinom(16, 1086, .5) + dbinom(17, 1086, .5) (SciPy gave 0 and < 0)."""
    assert mcnemar_pvalue(1069, 17, "exact") == pytest.approx(2.4704584015383135e-290, rel=1e-12)
    assert mcnemar_pvalue(1069, 17, "midp") == pytest.approx(1.2548354592920631e-290, rel=1e-12)


# ---------------------------------------------------------------- McNemar family


@st.composite
def discordant(draw: st.DrawFn, top: int = 10**5) -> tuple[int, int]:
    """(b, c) with b + c ≤ top: anywhere, near b = c (p near 1) or a few SDs out (p in the far tail)."""
    m = draw(st.integers(1, top))
    kind = draw(st.sampled_from(["uniform", "centre", "tail", "edge"]))
    if kind == "uniform":
        b = draw(st.integers(0, m))
    elif kind == "centre":
        b = m // 2 + draw(st.integers(-3, 3))
    elif kind == "tail":  # |b − c| up to ~40 SDs: p from ~1 down past 1e-300
        b = round(m / 2 + draw(st.floats(-20, 20)) * math.sqrt(m))
    else:
        b = draw(st.integers(0, min(m, 30)))
        b = b if draw(st.booleans()) else m - b
    b = min(max(b, 0), m)
    return b, m - b


@settings(max_examples=300, deadline=None)
@given(discordant())
@example((1069, 17))
@example((17, 1069))
@example((1100, 3))  # in SciPy's underflow band (m ≈ 1075–1319, small k)
@example((1316, 3))
@example((0, 1))
@example((5000, 5000))
def test_mcnemar_pvalues_against_mpmath(bc: tuple[int, int]) -> None:
    b, c = bc
    for method, alternative in product(METHODS, ALTERNATIVES):
        assert_close(
            mcnemar_pvalue(b, c, method, alternative),
            ref_mcnemar(b, c, method, alternative),
            f"{b}, {c}, {method}, {alternative}",
        )


@pytest.mark.parametrize(
    "b, c",
    [(500_000, 500_000), (499_500, 500_500), (497_000, 503_000), (490_000, 510_000), (3, 999_990), (480_000, 520_100)],
)
def test_mcnemar_pvalues_near_a_million(b: int, c: int) -> None:
    for method, alternative in product(METHODS, ALTERNATIVES):
        assert_close(
            mcnemar_pvalue(b, c, method, alternative),
            ref_mcnemar(b, c, method, alternative),
            f"{b}, {c}, {method}, {alternative}",
        )


@settings(max_examples=200, deadline=None)
@given(discordant())
def test_log_tails_against_mpmath(bc: tuple[int, int]) -> None:
    b, c = bc
    m = b + c
    for k in {b, c, b - 1, min(b, c)}:
        for got, ref in ((logcdf_half(k, m), ref_cdf(k, m)), (logpmf_half(k, m), ref_pmf(k, m))):
            if ref == 0:
                assert got == -math.inf
            else:
                assert abs(got - float(MP.log(ref))) <= 1e-12 * max(1.0, abs(float(MP.log(ref))))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 120), st.data())
def test_exact_unconditional_against_mpmath(n: int, data: st.DataObject) -> None:
    """Suissa–Shuster with γ = 0: max over the π grid of Σ_m P(M = m | n, π) · P(T ≥ T_obs | m)."""
    b = data.draw(st.integers(0, n))
    c = data.draw(st.integers(0, n - b))
    table = PairedTable(n - b - c, b, c, 0)
    p = mcnemar_exact_unconditional(table, gamma=0.0, n_grid=40)
    assert math.isfinite(p) and 0.0 <= p <= 1.0
    if b + c == 0:
        assert p == 1.0
        return
    d2, s = (b - c) ** 2, b + c
    reach = []
    for mm in range(n + 1):  # P(T ≥ T_obs | mm discordant pairs), T = (x − (mm − x))²/mm, in exact integers
        tail = [x for x in range(mm + 1) if mm and (2 * x - mm) ** 2 * s >= d2 * mm]
        reach.append(MP.mpf(0) if mm == 0 else sum((ref_pmf(x, mm) for x in tail), MP.mpf(0)))
    best = max(
        sum(MP.binomial(n, mm) * MP.mpf(pi) ** mm * (1 - MP.mpf(pi)) ** (n - mm) * reach[mm] for mm in range(n + 1))
        for pi in np.linspace(0.0, 1.0, 40)
    )
    assert_close(p, min(best, MP.mpf(1)), f"unconditional {table}")


# ---------------------------------------------------------------- Cochran's Q and the clustered test


def _cochran_ref(counts: dict[tuple[int, ...], int], k: int) -> mpmath.mpf:
    n = sum(counts.values())
    cols = [sum(v for row, v in counts.items() if row[j]) for j in range(k)]
    total = sum(cols)
    denom = k * total - sum(sum(row) ** 2 * v for row, v in counts.items())
    if n == 0 or denom == 0:
        return MP.mpf(1)
    q = Fraction((k - 1) * (k * sum(x * x for x in cols) - total**2), denom)
    return ref_chi2_sf(q, k - 1)


@st.composite
def pattern_counts(draw: st.DrawFn) -> tuple[int, dict[tuple[int, ...], int]]:
    """k conditions and how many items show each 0/1 pattern across them (up to 1e5 items)."""
    k = draw(st.integers(2, 4))
    patterns = list(product((0, 1), repeat=k))
    if draw(st.booleans()):  # near-equal rates: Q of order 1 to ~1000, p from ~1 into the far tail
        base = draw(st.integers(0, 20_000))
        spread = draw(st.sampled_from([3, 30, 300]))
        weights = [max(0, base + draw(st.integers(-spread, spread))) for _ in patterns]
    else:
        weights = draw(st.lists(st.integers(0, 50_000), min_size=len(patterns), max_size=len(patterns)))
    return k, dict(zip(patterns, weights))


@settings(max_examples=60, deadline=None)
@given(pattern_counts())
@example((3, {(1, 1, 0): 1069, (0, 0, 1): 17, (1, 1, 1): 30, (0, 0, 0): 20}))  # one collapsed model, ~1,100 items
def test_cochran_q_against_mpmath(case: tuple[int, dict[tuple[int, ...], int]]) -> None:
    k, counts = case
    rows = [row for row, v in counts.items() for _ in range(v)]
    x = np.array(rows, dtype=np.int8).reshape(-1, k)
    res = cochran_q(x)
    if x.shape[0] == 0:
        assert math.isnan(res.pvalue)
        return
    assert_close(res.pvalue, _cochran_ref(counts, k), f"Cochran's Q, k = {k}, {counts}")
    for r in res.pairwise:  # McNemar mid-p follow-ups and their Holm adjustment
        assert 0.0 <= r.pvalue <= 1.0 and r.adjustment is not None and 0.0 <= r.adjustment.pvalue <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400)), min_size=2, max_size=30))
def test_clustered_mcnemar_against_mpmath(clusters: list[tuple[int, int]]) -> None:
    b = [x for x, _ in clusters]
    c = [y for _, y in clusters]
    n = [x + y + 5 for x, y in clusters]
    for method in ("obuchowski", "durkalski"):
        res = clustered_mcnemar(b, c, n, method)
        if res.b + res.c == 0:
            assert res.pvalue == 1.0  # no discordant pairs
            continue
        if math.isnan(res.pvalue):
            assert "variance" in res.note  # every cluster has b_i − c_i at its expectation: χ² undefined
            continue
        assert_close(res.pvalue, ref_chi2_sf(res.statistic, 1), f"clustered {method}")


# ---------------------------------------------------------------- confidence limits


@settings(max_examples=200, deadline=None)
@given(discordant(), st.integers(0, 1000), st.sampled_from(OR_METHODS), st.sampled_from([0.9, 0.95, 0.99]))
@example((53, 0), 65, "wilson", 0.95)  # the issue's table (7, 53, 0, 58): the upper limit is ∞, not 9.0e15
@example((0, 53), 65, "wilson", 0.95)
def test_odds_ratio_limits_finite_or_exactly_infinite(
    bc: tuple[int, int], concordant: int, method: str, level: float
) -> None:
    b, c = bc
    if method == "blaker" and b + c > 1000:  # Blaker scans the whole support for every candidate limit
        b, c = b * 1000 // (b + c), c * 1000 // (b + c)
    ci = paired_odds_ratio_ci(PairedTable(concordant, b, c, concordant), method, level)
    if b + c == 0:
        assert math.isnan(ci.lower) and math.isnan(ci.upper)
        return
    assert not math.isnan(ci.lower) and not math.isnan(ci.upper) and 0.0 <= ci.lower <= ci.upper
    zero_cell = method == "wald" and 0 in (b, c)
    assert (ci.upper == math.inf) == ((c == 0 and method != "wald_laplace") or zero_cell), ci
    assert (ci.lower == 0.0) == ((b == 0 and method != "wald_laplace") or zero_cell), ci
    assert ci.estimate == (math.inf if c == 0 else b / c)


@settings(max_examples=200, deadline=None)
@given(discordant(), st.integers(0, 10**5), st.integers(0, 10**5), st.sampled_from(DIFF_METHODS))
def test_difference_limits_are_finite(bc: tuple[int, int], a: int, d: int, method: str) -> None:
    b, c = bc
    ci = paired_difference_ci(PairedTable(a, b, c, d), method)
    assert all(math.isfinite(v) for v in (ci.estimate, ci.lower, ci.upper)), ci
    assert -1.0 <= ci.lower <= ci.upper <= 1.0


# ---------------------------------------------------------------- multiplicity with NaN, as R's p.adjust


NA = math.nan
P = [0.04, NA, 0.001, 0.2, NA, 0.04, 0.9, 0.0125]
# R 4.2: p.adjust(c(0.04, NA, 0.001, 0.2, NA, 0.04, 0.9, 0.0125), "holm") and "BH"
R_HOLM = [0.16, NA, 0.006, 0.4, NA, 0.16, 0.9, 0.0625]
R_BH = [0.06, NA, 0.006, 0.24, NA, 0.06, 0.9, 0.0375]


@pytest.mark.parametrize(
    "fn, method, expected",
    [(holm, "holm", R_HOLM), (benjamini_hochberg, "bh", R_BH)],
)
def test_nan_is_left_out_of_m_and_kept_as_r_does(fn, method: str, expected: list[float]) -> None:
    for got in (list(fn(P)), list(adjust(P, method=method).adjusted)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert (math.isnan(g) and math.isnan(e)) or g == pytest.approx(e, rel=1e-12)
    assert adjust(P, method=method).m == 6
    assert list(holm([0.01, NA, 0.03])) == pytest.approx([0.02, NA, 0.03], nan_ok=True)
    assert all(math.isnan(v) for v in fn([NA, NA])) and fn([]).size == 0


def test_mover_wilson_ratio_at_perfect_agreement_and_rates_of_one_half() -> None:
    """b = c = 0 with n11 = n22: the MOVER interval is the point 1, where rounding gave the reversed
    pair [1 + 2e-16, 1 - 1e-16] at 95%, [1, inf] at 90% and [1, 1 + 1e-8] at 99%."""
    from stats.intervals import paired_ratio_ci

    for k in range(1, 40):
        for level in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999):
            ci = paired_ratio_ci(PairedTable(k, 0, 0, k), "mover_wilson", level)
            assert ci.lower <= ci.upper, (k, level, ci)
            assert ci.lower == pytest.approx(1.0, abs=1e-12) and ci.upper == pytest.approx(1.0, abs=1e-12), ci
