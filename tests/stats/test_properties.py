"""Property tests of the McNemar family and its intervals (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from engine.errors import UserError
from stats.intervals import DIFF_METHODS, OR_METHODS, paired_difference_ci, paired_odds_ratio_ci
from stats.mcnemar import METHODS, mcnemar, mcnemar_pvalue
from stats.tables import PairedTable

count = st.integers(min_value=0, max_value=400)
small = st.integers(min_value=0, max_value=60)
FAST = settings(max_examples=150, deadline=None)


@FAST
@given(count, count, count, count)
def test_symmetry_in_b_and_c(a: int, b: int, c: int, d: int) -> None:
    t, s = PairedTable(a, b, c, d), PairedTable(a, c, b, d)
    for m in METHODS:
        assert mcnemar_pvalue(b, c, m) == pytest.approx(mcnemar_pvalue(c, b, m), rel=1e-12, abs=1e-300)
    if t.n:
        dt, ds = paired_difference_ci(t), paired_difference_ci(s)
        assert dt.estimate == -ds.estimate
        assert dt.lower == pytest.approx(-ds.upper, abs=1e-9) and dt.upper == pytest.approx(-ds.lower, abs=1e-9)
    assert mcnemar_pvalue(b, c, "exact", "greater") == pytest.approx(mcnemar_pvalue(c, b, "exact", "less"))


@settings(max_examples=40, deadline=None)
@given(small, small, count, count, count, count)
def test_pvalue_independent_of_a_and_d(b: int, c: int, a1: int, d1: int, a2: int, d2: int) -> None:
    assume(b + c > 0)
    for m in METHODS:
        r1, r2 = mcnemar(PairedTable(a1, b, c, d1), m), mcnemar(PairedTable(a2, b, c, d2), m)
        assert (r1.pvalue, r1.p_asymptotic, r1.statistic) == (r2.pvalue, r2.p_asymptotic, r2.statistic)


@FAST
@given(count, count, st.sampled_from(["two-sided", "greater", "less"]))
def test_p_in_unit_interval_and_midp_below_exact(b: int, c: int, alternative: str) -> None:
    ps = {m: mcnemar_pvalue(b, c, m, alternative) for m in METHODS}
    assert all(0.0 <= p <= 1.0 for p in ps.values())
    assert ps["midp"] <= ps["exact"] + 1e-15
    if b + c == 0:
        assert all(p == 1.0 for p in ps.values()) or alternative != "two-sided"


@settings(max_examples=300, deadline=None)
@given(count, small, small, count, st.sampled_from([0.9, 0.95, 0.99]))
def test_tango_ci_excludes_zero_iff_asymptotic_test_rejects(a: int, b: int, c: int, d: int, level: float) -> None:
    """Tango's score CI inverts the asymptotic McNemar test without continuity correction (docs/statistics.md §4.2)."""
    t = PairedTable(a, b, c, d)
    assume(t.n > 0 and b + c > 0)
    z = (b - c) / math.sqrt(b + c)
    crit = norm.ppf(1 - (1 - level) / 2)
    assume(abs(abs(z) - crit) > 1e-6)  # not exactly on the boundary
    ci = paired_difference_ci(t, "tango", level)
    p = mcnemar(t, "asymptotic").pvalue
    assert ci.excludes(0.0) == (p < 1 - level)


@FAST
@given(count, count, count, count, st.sampled_from(DIFF_METHODS))
def test_difference_ci_contains_estimate_and_nests(a: int, b: int, c: int, d: int, method: str) -> None:
    t = PairedTable(a, b, c, d)
    assume(t.n > 0)
    lo90, hi90 = paired_difference_ci(t, method, 0.90).lower, paired_difference_ci(t, method, 0.90).upper
    ci = paired_difference_ci(t, method, 0.95)
    assert -1.0 - 1e-12 <= ci.lower <= ci.upper <= 1.0 + 1e-12
    if method in ("tango", "newcombe", "wald", "wald_cc"):
        assert ci.lower - 1e-9 <= ci.estimate <= ci.upper + 1e-9
    assert ci.lower <= lo90 + 1e-9 and hi90 <= ci.upper + 1e-9


@FAST
@given(count, count, count, count, st.sampled_from(DIFF_METHODS))
def test_difference_ci_mirrors_when_b_and_c_swap(a: int, b: int, c: int, d: int, method: str) -> None:
    assume(a + b + c + d > 1)
    ci = paired_difference_ci(PairedTable(a, b, c, d), method)
    swapped = paired_difference_ci(PairedTable(a, c, b, d), method)
    assert swapped.estimate == pytest.approx(-ci.estimate, abs=1e-9)
    assert (swapped.lower, swapped.upper) == pytest.approx((-ci.upper, -ci.lower), abs=1e-9)


@FAST
@given(small, small, st.sampled_from(OR_METHODS))
def test_odds_ratio_ci_contains_estimate(b: int, c: int, method: str) -> None:
    assume(b > 0 and c > 0)
    ci = paired_odds_ratio_ci(PairedTable(5, b, c, 5), method)
    assert ci.lower <= ci.estimate * (1 + 1e-9) or method == "wald_laplace"
    assert ci.lower <= ci.upper


@settings(max_examples=40, deadline=None)
@given(count, count, count, count)
def test_int_and_float_input_agree(a: int, b: int, c: int, d: int) -> None:
    ti = PairedTable(a, b, c, d)
    tf = PairedTable.from_matrix([[float(a), float(b)], [float(c), float(d)]])
    assert mcnemar(ti).to_dict() == mcnemar(tf).to_dict() or (ti.n == 0)


def test_bad_tables_raise() -> None:
    with pytest.raises(UserError):
        PairedTable.from_matrix([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    with pytest.raises(UserError):
        PairedTable.from_matrix([[1, 2], [3, -1]])
    with pytest.raises(UserError):
        PairedTable.from_matrix([[1, 2.5], [3, 1]])
    with pytest.raises(UserError):
        mcnemar(PairedTable(1, 2, 3, 4), "yates")
