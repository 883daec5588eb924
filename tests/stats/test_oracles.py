"""Oracle values listed in docs/statistics.md §12 (R stats, contingencytables, ratesci, p.adjust) and
the exact-size table.

p-values are checked twice: to rtol 1e-6 against full precision computed independently here (exact
binomial sums in rational arithmetic, χ² tails through math.erfc), and to the last printed digit of
the published value. CIs to 4 decimals (atol 6e-5).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from stats.cochran import cochran_q
from stats.intervals import paired_difference_ci, paired_odds_ratio_ci
from stats.mcnemar import mcnemar, mcnemar_pvalue, mcnemar_statistic
from stats.multiple import adjust
from stats.power import power_mcnemar
from stats.tables import PairedTable

TABLES = {
    "presidential": [[794, 150], [86, 570]],
    "bentur": [[1, 1], [7, 12]],
    "cavo": [[59, 6], [16, 80]],
    "fay": [[21, 2], [9, 12]],
    "ezra": [[7, 25], [2, 68]],
}

# table: (asym χ², asym p, CC χ², CC p, exact p, mid-p), as R's mcnemar.test / binom.test and contingencytables print them
MCNEMAR = {
    "presidential": ("17.3559", "3.0993e-05", "16.8178", "4.1146e-05", "3.7159e-05", "2.8934e-05"),
    "bentur": ("4.5", "0.033895", "3.125", "0.077100", "0.070313", "0.039063"),
    "cavo": ("4.5455", "0.033006", "3.6818", "0.055009", "0.052479", "0.034690"),
    "fay": ("4.4545", "0.03481", "3.2727", "0.07044", "0.065430", "0.038574"),
}

DIFF_CI = {
    "presidential": {
        "wald": (0.0213, 0.0587),
        "wald_cc": (0.0213, 0.0587),
        "agresti_min": (0.0212, 0.0587),
        "bonett_price": (0.0212, 0.0587),
        "newcombe": (0.0212, 0.0587),
        "tango": (0.0214, 0.0590),
    },
    "bentur": {
        "wald": (-0.5197, -0.0517),
        "wald_cc": (-0.5293, -0.0422),
        "agresti_min": (-0.4932, -0.0285),
        "bonett_price": (-0.5084, -0.0134),
        "newcombe": (-0.5069, -0.0256),
        "tango": (-0.5172, -0.0260),
    },
    "cavo": {
        "wald": (-0.1184, -0.0058),
        "wald_cc": (-0.1186, -0.0057),
        "agresti_min": (-0.1182, -0.0045),
        "bonett_price": (-0.1195, -0.0032),
        "newcombe": (-0.1186, -0.0046),
        "tango": (-0.1240, -0.0054),
    },
    "fay": {"newcombe": (-0.2954, -0.0112), "tango": (-0.3116, -0.0132)},
}
# ratesci `scorepairci(c(1, 1, 7, 12))` (docs/statistics.md §4.2): SCAS estimate and interval, bias correction and skewness on
SCAS_BENTUR = (-0.2859, -0.5281, -0.0184)
DELTA = {"presidential": 0.0400, "bentur": -0.2857, "cavo": -0.0621, "fay": -0.1591}

OR_CI = {
    "presidential": {
        "wald": (1.3380, 2.2737),
        "wald_laplace": (1.3332, 2.2596),
        "wilson": (1.3390, 2.2719),
        "cp_exact": (1.3292, 2.3010),
        "cp_midp": (1.3403, 2.2806),
    },
    "bentur": {
        "wald": (0.0176, 1.1611),
        "wald_laplace": (0.0531, 1.1773),
        "wilson": (0.0229, 0.8900),
        "cp_exact": (0.0032, 1.1120),
        "cp_midp": (0.0063, 0.9241),
    },
    "cavo": {
        "wald": (0.1467, 0.9583),
        "wald_laplace": (0.1708, 0.9929),
        "wilson": (0.1514, 0.9287),
        "cp_exact": (0.1202, 1.0089),
        "cp_midp": (0.1347, 0.9354),
    },
    "fay": {"wilson": (0.0541, 0.9120), "cp_exact": (0.0234, 1.0736)},
    "ezra": {
        "wald": (2.9608, 52.7731),
        "wald_laplace": (2.6232, 28.6333),
        "cp_exact": (3.1169, 108.8892),
        "cp_midp": (3.4681, 78.2972),
    },
}
OR_EST = {"presidential": 1.7442, "bentur": 0.1429, "cavo": 0.3750, "fay": 0.2222, "ezra": 12.5}


def assert_printed(value: float, printed: str) -> None:
    """`value` rounds to the printed string: within half a unit of its last printed digit."""
    mant, _, exp = printed.lower().partition("e")
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    half_ulp = 0.5 * 10.0 ** (-decimals + (int(exp) if exp else 0))
    assert abs(value - float(printed)) <= half_ulp * (1 + 1e-9), (value, printed)


def _binom_cdf_exact(k: int, m: int) -> Fraction:
    return sum((Fraction(math.comb(m, i), 2**m) for i in range(k + 1)), Fraction(0))


def full_precision(b: int, c: int) -> dict[str, float]:
    """Independent computation: rational binomial sums; χ²₁ tail = erfc(√(x/2))."""
    m, lo = b + c, min(b, c)
    exact = min(Fraction(1), 2 * _binom_cdf_exact(lo, m))
    pmf = Fraction(math.comb(m, b), 2**m)
    midp = 1 - pmf / 2 if b == c else exact - pmf
    x2 = (b - c) ** 2 / m
    x2cc = max(abs(b - c) - 1, 0) ** 2 / m
    return {
        "x2": x2,
        "asym": math.erfc(math.sqrt(x2 / 2)),
        "x2cc": x2cc,
        "cc": math.erfc(math.sqrt(x2cc / 2)),
        "exact": float(exact),
        "midp": float(midp),
    }


@pytest.mark.parametrize("name", sorted(MCNEMAR))
def test_mcnemar_pvalues(name: str) -> None:
    t = PairedTable.from_matrix(TABLES[name])
    x2, p_asym, x2cc, p_cc, p_exact, p_mid = MCNEMAR[name]
    ref = full_precision(t.b, t.c)
    got = {m: mcnemar(t, m).pvalue for m in ("asymptotic", "asymptotic_cc", "exact", "midp")}
    for key, method in (("asym", "asymptotic"), ("cc", "asymptotic_cc"), ("exact", "exact"), ("midp", "midp")):
        assert got[method] == pytest.approx(ref[key], rel=1e-6, abs=0)
    assert_printed(got["asymptotic"], p_asym)
    assert_printed(got["asymptotic_cc"], p_cc)
    assert_printed(got["exact"], p_exact)
    assert_printed(got["midp"], p_mid)
    assert_printed(mcnemar_statistic(t.b, t.c), x2)
    assert_printed(mcnemar_statistic(t.b, t.c, correction=True), x2cc)
    # the default test is mid-p and always carries the asymptotic p
    res = mcnemar(t)
    assert res.method == "midp" and res.p_asymptotic == got["asymptotic"]


def test_exact_rationals() -> None:
    assert mcnemar_pvalue(1, 7, "exact") == pytest.approx(9 / 128, rel=1e-12)
    assert mcnemar_pvalue(1, 7, "midp") == pytest.approx(5 / 128, rel=1e-12)
    assert mcnemar_pvalue(2, 9, "exact") == pytest.approx(67 / 1024, rel=1e-12)


@pytest.mark.parametrize("name,method", [(n, m) for n in sorted(DIFF_CI) for m in sorted(DIFF_CI[n])])
def test_difference_ci(name: str, method: str) -> None:
    ci = paired_difference_ci(PairedTable.from_matrix(TABLES[name]), method)
    lo, hi = DIFF_CI[name][method]
    assert ci.estimate == pytest.approx(DELTA[name], abs=6e-5)
    assert ci.lower == pytest.approx(lo, abs=6e-5)
    assert ci.upper == pytest.approx(hi, abs=6e-5)


def test_scas_difference_ci_matches_ratesci() -> None:
    ci = paired_difference_ci(PairedTable.from_matrix(TABLES["bentur"]), "scas")
    assert (ci.estimate, ci.lower, ci.upper) == pytest.approx(SCAS_BENTUR, abs=6e-5)
    assert ci.method.startswith("skewness-corrected")


@pytest.mark.parametrize("name,method", [(n, m) for n in sorted(OR_CI) for m in sorted(OR_CI[n])])
def test_odds_ratio_ci(name: str, method: str) -> None:
    ci = paired_odds_ratio_ci(PairedTable.from_matrix(TABLES[name]), method)
    lo, hi = OR_CI[name][method]
    assert ci.estimate == pytest.approx(OR_EST[name], abs=6e-5)
    assert ci.lower == pytest.approx(lo, abs=6e-5)
    assert ci.upper == pytest.approx(hi, abs=6e-5)


def test_fay_transformed_cp_full_precision() -> None:
    """R: binom.test(2, 11)'s CI transformed by θ/(1 − θ) gives 0.02336, 1.07364 (exact2x2's mcnemar.exact CI)."""
    ci = paired_odds_ratio_ci(PairedTable.from_matrix(TABLES["fay"]), "cp_exact")
    assert_printed(ci.lower, "0.02336")
    assert_printed(ci.upper, "1.07364")


def test_edge_cases() -> None:
    zero = PairedTable(10, 0, 0, 5)
    for m in ("midp", "exact", "asymptotic", "asymptotic_cc"):
        res = mcnemar(zero, m)
        assert res.pvalue == 1.0 and res.note == "no discordant pairs"
    assert math.isnan(mcnemar(zero).statistic)
    tie = PairedTable(3, 4, 4, 2)  # statsmodels gives 0.7237 under the correction; R gives 1
    assert mcnemar(tie, "asymptotic_cc").pvalue == 1.0
    assert mcnemar(tie, "asymptotic_cc").statistic == 0.0
    assert mcnemar(tie, "exact").pvalue == 1.0
    assert mcnemar(tie, "midp").pvalue == pytest.approx(1 - 0.5 * math.comb(8, 4) / 256)
    one_zero = PairedTable(5, 0, 6, 5)
    assert paired_odds_ratio_ci(one_zero, "wald").upper == math.inf
    cp = paired_odds_ratio_ci(one_zero, "cp_exact")
    assert cp.estimate == 0 and cp.lower == 0 and math.isfinite(cp.upper)
    empty = mcnemar(PairedTable(0, 0, 0, 0))
    assert math.isnan(empty.pvalue) and "empty" in empty.note


def test_one_sided() -> None:
    # Bentur: b = 1, c = 7; 'less' (p1 < p2) is half the exact two-sided p
    assert mcnemar_pvalue(1, 7, "exact", "less") == pytest.approx(9 / 256)
    assert mcnemar_pvalue(1, 7, "exact", "greater") == pytest.approx(1 - 1 / 256)
    assert mcnemar_pvalue(1, 7, "midp", "less") == pytest.approx(9 / 256 - 0.5 * 8 / 256)
    assert mcnemar_pvalue(1, 7, "asymptotic", "less") == pytest.approx(0.5 * full_precision(1, 7)["asym"])


COCHRAN_CONOVER = [
    [1, 1, 1],
    [1, 1, 1],
    [0, 1, 0],
    [1, 1, 0],
    [0, 0, 0],
    [1, 1, 1],
    [1, 1, 1],
    [1, 1, 0],
    [0, 0, 1],
    [0, 1, 0],
    [1, 1, 1],
    [1, 1, 1],
]
COCHRAN_WEB = [
    [0, 0, 0, 1],
    [0, 0, 0, 1],
    [0, 0, 0, 1],
    [1, 1, 1, 1],
    [1, 0, 0, 1],
    [0, 1, 0, 1],
    [1, 0, 0, 1],
    [0, 0, 0, 1],
    [0, 1, 0, 0],
    [0, 0, 0, 0],
    [1, 0, 0, 1],
    [0, 0, 1, 1],
]


def _sas_rows() -> list[list[int]]:
    cases = [[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 1, 1], [1, 1, 1]]
    counts = [6, 2, 16, 4, 2, 6, 4, 6]
    return [row for row, n in zip(cases, counts) for _ in range(n)]


def test_cochran_q() -> None:
    res = cochran_q(COCHRAN_CONOVER)
    assert res.statistic == pytest.approx(2.8, rel=1e-12)
    assert res.df == 2
    assert res.pvalue == pytest.approx(math.exp(-1.4), rel=1e-6)  # χ²₂ tail = exp(−x/2)
    assert_printed(res.pvalue, "0.246597")
    web = cochran_q(COCHRAN_WEB)
    q = 93 / 7
    assert web.statistic == pytest.approx(q, rel=1e-12)
    full = math.erfc(math.sqrt(q / 2)) + math.sqrt(2 * q / math.pi) * math.exp(-q / 2)  # χ²₃ tail
    assert web.pvalue == pytest.approx(full, rel=1e-6)
    assert web.pvalue == pytest.approx(0.00405776, rel=1e-6)
    assert_printed(web.statistic, "13.2857143")
    sas = cochran_q(_sas_rows())
    assert_printed(sas.statistic, "8.4706")
    assert_printed(sas.pvalue, "0.0145")


def test_cochran_two_columns_is_mcnemar() -> None:
    rows = [r[:2] for r in COCHRAN_CONOVER]
    res = cochran_q(rows)
    t = PairedTable.from_pairs([r[0] for r in rows], [r[1] for r in rows])
    assert res.statistic == pytest.approx(mcnemar_statistic(t.b, t.c))
    assert res.pvalue == pytest.approx(mcnemar(t, "asymptotic").pvalue)


def test_cochran_pairwise_holm() -> None:
    res = cochran_q(COCHRAN_WEB, labels=["a", "b", "c", "d"])
    assert len(res.pairwise) == 6 and res.family is not None and res.family.m == 6
    raw = [r.pvalue for r in res.pairwise]
    assert [r.adjustment.pvalue for r in res.pairwise] == pytest.approx(list(adjust(raw, method="holm").adjusted))


def test_p_adjust() -> None:
    p = [0.01, 0.02, 0.03, 0.04, 0.05]
    assert adjust(p, method="holm").adjusted == pytest.approx((0.05, 0.08, 0.09, 0.09, 0.09), rel=1e-12)
    assert adjust(p, method="bh").adjusted == pytest.approx((0.05,) * 5, rel=1e-12)
    shuffled = [0.04, 0.01, 0.05, 0.03, 0.02]
    assert adjust(shuffled, method="holm").adjusted == pytest.approx((0.09, 0.05, 0.09, 0.09, 0.08))


def test_p_adjust_nan_is_excluded_and_reported() -> None:
    fam = adjust([0.01, math.nan, 0.03], ["x", "y", "z"], "holm", family="demo")
    assert fam.m == 2 and fam.excluded == ("y",)
    assert fam.adjusted[0] == pytest.approx(0.02) and fam.adjusted[2] == pytest.approx(0.03)
    assert math.isnan(fam.adjusted[1])
    assert "m = 2" in fam.describe() and "y" in fam.describe() and "demo" in fam.describe()


SIZE_TABLE = {  # exact actual size at α = 0.05 by full enumeration, computed independently (docs/statistics.md §12)
    (25, 0.1): (0.0223, 0.0009, 0.0009, 0.0050),
    (25, 0.3): (0.0448, 0.0178, 0.0178, 0.0376),
    (50, 0.3): (0.0474, 0.0239, 0.0275, 0.0462),
    (100, 0.3): (0.0520, 0.0307, 0.0307, 0.0450),
    (500, 0.1): (0.0493, 0.0354, 0.0366, 0.0493),
}


@pytest.mark.parametrize("n,pi", sorted(SIZE_TABLE))
def test_actual_size_table(n: int, pi: float) -> None:
    for method, ref in zip(("asymptotic", "asymptotic_cc", "exact", "midp"), SIZE_TABLE[(n, pi)]):
        assert power_mcnemar(pi / 2, pi / 2, n, 0.05, method) == pytest.approx(ref, abs=5e-5)


def test_midp_size_never_exceeds_alpha() -> None:
    """Full enumeration: the mid-p test never exceeds its nominal level (α = 0.05 and 0.01) for every N
    from 10 to 100 with discordance π = 0.01, 0.02, …, 0.70, and for N = 110, 120, …, 500 with
    π = 0.01, …, 0.60 (8,770 scenarios at each α).

    The guarantee is not universal, and the test pins where it ends: with N ≤ 100 the first
    exceedance at α = 0.05 is at π = 0.77, and at π = 1 (every pair discordant, so the number of
    discordant pairs is fixed at N) mid-p is the binomial mid-p test (N = 50: size 0.065). Beyond the
    grid, π = 0.7 with N = 375 gives 0.05002.
    """
    worst_asym = 0.0
    grid = [(n, k / 100) for n in range(10, 101) for k in range(1, 71)]
    grid += [(n, k / 100) for n in range(110, 501, 10) for k in range(1, 61)]
    for n, pi in grid:
        for alpha in (0.05, 0.01):
            assert power_mcnemar(pi / 2, pi / 2, n, alpha, "midp") <= alpha + 1e-9, (n, pi, alpha)
        if n * pi >= 20:
            worst_asym = max(worst_asym, power_mcnemar(pi / 2, pi / 2, n, 0.05, "asymptotic"))
    assert 0.02 <= worst_asym <= 0.06
    first = min(
        k / 100
        for n in range(10, 101)
        for k in range(71, 100)
        if power_mcnemar(k / 200, k / 200, n, 0.05, "midp") > 0.05 + 1e-9
    )
    assert first == 0.77
    assert power_mcnemar(0.5, 0.5, 50, 0.05, "midp") > 0.05  # the π = 1 counterexample above


def test_report_sentence_and_dict() -> None:
    import json

    table = PairedTable.from_matrix(TABLES["cavo"], labels=("after", "before"))
    res = mcnemar(table, outcome="complete response")
    adj = res.adjusted(0.0694, "Holm", "two demo tests", 2)
    text = adj.report()
    for part in (
        "two-sided McNemar mid-p test",
        "after vs before",
        "n = 161 items",
        "b = 6, c = 16",
        "difference -6.2 pp (95% CI -12.4 to -0.5, Tango asymptotic score)",
        "p = 0.035",
        "(asymptotic p = 0.033)",
        "Holm over 'two demo tests' (m = 2): adjusted p = 0.069",
    ):
        assert part in text, (part, text)
    assert "no multiplicity correction" in res.report()
    doc = json.loads(json.dumps(adj.to_dict()))
    assert doc["b"] == 6 and doc["difference"]["method"] == "Tango asymptotic score"
    assert doc["adjustment"]["m"] == 2 and doc["test"] == "McNemar mid-p test"


def test_cochran_without_informative_items() -> None:
    res = cochran_q([[1, 1, 1], [0, 0, 0], [1, 1, 1]])
    assert res.statistic == 0.0 and res.pvalue == 1.0 and "no item differs" in res.note


@pytest.mark.parametrize("name,printed", [("bentur", "0.035416"), ("cavo", "0.034053"), ("fay", "0.040591")])
def test_exact_unconditional(name: str, printed: str) -> None:
    """contingencytables' McNemar exact unconditional test (Berger–Boos γ = 1e-4, 1000-point grid)."""
    from stats.mcnemar import mcnemar_exact_unconditional

    assert_printed(mcnemar_exact_unconditional(PairedTable.from_matrix(TABLES[name])), printed)


def test_exact_unconditional_edges() -> None:
    from stats.mcnemar import mcnemar_exact_unconditional

    assert mcnemar_exact_unconditional(PairedTable(5, 0, 0, 5)) == 1.0
    tie = mcnemar_exact_unconditional(PairedTable(3, 4, 4, 2))
    assert 0.99 < tie <= 1.0


CAVO_RATIO = {
    "wald": (0.7597, 0.9886),
    "tang": (0.7476, 0.9876),
    "bonett_price": (0.7579, 0.9910),
    "mover_wilson": (0.7592, 0.9866),
}


@pytest.mark.parametrize("method", sorted(CAVO_RATIO))
def test_ratio_ci(method: str) -> None:
    from stats.intervals import paired_ratio_ci

    ci = paired_ratio_ci(PairedTable.from_matrix(TABLES["cavo"]), method)
    assert ci.estimate == pytest.approx(0.8667, abs=6e-5)
    assert (ci.lower, ci.upper) == pytest.approx(CAVO_RATIO[method], abs=6e-5)


def test_transformed_blaker() -> None:
    ci = paired_odds_ratio_ci(PairedTable.from_matrix(TABLES["ezra"]), "blaker")
    assert (ci.lower, ci.upper) == pytest.approx((3.2994, 74.0582), abs=6e-5)


# R 4.x: wilcox.test(y, x, paired = TRUE, conf.int = TRUE, conf.level = level); attr(conf.int, "conf.level")
# is the level achieved, below the requested one (R warns "requested conf.level not achievable") where
# the exact interval's steps of 2^−n or the normal branch's doubling of α cannot reach it.
SIGNED_RANK_LEVELS = [
    # name, x, y, requested, achieved (R), lower, upper (R), method
    ("n=3 exact", [0, 0, 0], [1.5, -0.2, 2.7], 0.95, 0.75, -0.2, 2.7, "exact"),
    ("n=1 exact: a point", [3], [1], 0.95, 0.0, -2.0, -2.0, "exact"),
    ("n=2 exact", [0, 0], [1, 2], 0.95, 0.5, 1.0, 2.0, "exact"),
    ("n=4 exact: 1 - signif(0.125, 2)", [0] * 4, [0.3, 1.1, -0.4, 2.2], 0.95, 0.88, -0.4, 2.2, "exact"),
    ("n=5 exact: within R's α/2 slack", [0] * 5, [0.3, 1.1, -0.4, 2.2, 0.7], 0.95, 0.95, -0.4, 2.2, "exact"),
    ("n=6 ties", [1] * 6, [2, 3, 3, 0, 4, 2], 0.95, 0.8999999999999999, 5.243345687e-05, 2.499950109, "normal"),
    ("n=4 ties", [0] * 4, [1, 1, 2, 3], 0.95, 0.5999999999999996, 1.0, 2.000037581, "normal"),
    ("n=8 ties level 0.99", [0] * 8, [1, 1, 2, 3, -1, 4, 2, 5], 0.99, 0.96, 1.446226584e-05, 4.000005035, "normal"),
    ("n=3 ties level 0.8: α ≥ 1", [0] * 3, [1, 1, 2], 0.8, 0.0, 1.0, 1.0, "normal"),
    ("n=10 ties: reached", [0] * 10, [1, 1, 2, 3, -1, 4, 2, 5, 6, -2], 0.95, 0.95, 4.15668e-05, 4.000031488, "normal"),
]


@pytest.mark.parametrize("case", SIGNED_RANK_LEVELS, ids=[c[0] for c in SIGNED_RANK_LEVELS])
def test_signed_rank_reports_the_achieved_level_as_r(case) -> None:
    import numpy as np

    from stats.signed_rank import signed_rank

    _, x, y, level, achieved, lower, upper, method = case
    r = signed_rank(np.array(x, float), np.array(y, float), level)
    assert r.method == method and r.level == level
    assert r.conf_level == pytest.approx(achieved, abs=1e-12)
    assert r.lower == pytest.approx(lower, abs=2e-4) and r.upper == pytest.approx(upper, abs=2e-4)


def test_signed_rank_without_an_interval_has_level_zero() -> None:
    """R: every difference equal, or all zero, gives conf.int NaN with attr conf.level 0."""
    import numpy as np

    from stats.signed_rank import signed_rank

    assert signed_rank(np.zeros(3), np.ones(3)).conf_level == 0.0
    assert signed_rank(np.array([1.0, 2.0]), np.array([1.0, 2.0])).conf_level == 0.0
    assert math.isnan(signed_rank(np.array([]), np.array([])).conf_level)


def _rank_frame(ro_ranks: list[tuple[float, float]], other: int = 0):
    import pandas as pd

    rows = [(d, p, True) for d, p in ro_ranks] + [(1.0, 1.0 + (i % 3), False) for i in range(other)]
    return pd.DataFrame(
        {
            "model": "m",
            "condition": "wanda-s50",
            "language": "en",
            "recognition_only_pruned": [r[2] for r in rows],
            "first_token_rank_dense": [r[0] for r in rows],
            "first_token_rank_pruned": [r[1] for r in rows],
            "seq_logprob_dense": [-r[0] for r in rows],
            "seq_logprob_pruned": [-r[1] - 0.1 * i for i, r in enumerate(rows)],
        }
    )


def test_rank_shift_table_names_the_level_its_ci_reaches() -> None:
    """3 RO items: R's interval is a 75% one (exact, n = 3), not the 95% the header asks for."""
    from stats.rank_shift import rank_shift_report
    from stats.report import render_csv, render_latex, render_markdown

    table = rank_shift_report(_rank_frame([(1, 3), (2, 9), (5, 4)], other=40))
    ro = next(r for r in table.records if r["subset"] == "RO")
    assert ro["rank_hl_level"] == 0.75 and ro["logprob_hl_level"] == 0.75
    every = next(r for r in table.records if r["subset"] == "all")
    assert every["rank_hl_level"] == 0.95
    md = render_markdown([table])
    assert "| 2.500 [−1.000, 7.000] (75% CI) |" in md  # R: 2.5, conf.int −1, 7, attr conf.level 0.75
    assert "| −2.575 [−7.100, 0.800] (75% CI) |" in md  # R: −2.575, conf.int −7.1, 0.8, 0.75
    row_all = next(line for line in md.splitlines() if "| all | all |" in line)
    assert "% CI)" not in row_all  # 43 differences: 95% reached, nothing added
    assert "(75\\% CI)" in render_latex([table])
    assert "rank_hl_level" in render_csv(table).splitlines()[0]


def test_ci_cell_names_the_level_only_where_it_differs() -> None:
    from stats.report import Column, format_value

    col = Column("HL [95% CI]", "hl", "ci", level=0.95)
    rec = {"hl": 1.0, "hl_low": 0.5, "hl_high": 2.0, "hl_level": 0.95}
    assert format_value(rec, col) == "1.000 [0.500, 2.000]"
    assert format_value({**rec, "hl_level": 0.88}, col) == "1.000 [0.500, 2.000] (88% CI)"
    assert format_value({**rec, "hl_level": 0.0, "hl_low": 1.0, "hl_high": 1.0}, col).endswith("(0% CI)")
    no_ci = {**rec, "hl_level": 0.0, "hl_low": math.nan, "hl_high": math.nan}
    assert format_value(no_ci, col) == "1.000 [–, –]"  # no interval: nothing to qualify
    assert format_value({**rec, "hl_level": 0.88}, Column("HL", "hl", "ci")) == "1.000 [0.500, 2.000]"
