"""Stratified and cluster-adjusted McNemar tests, the cluster bootstrap, and power / MDE."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from engine.errors import UserError
from stats.bootstrap import cluster_bootstrap, difference_in_differences
from stats.mcnemar import mcnemar, mcnemar_pvalue, mcnemar_statistic
from stats.power import min_detectable_effect, power_mcnemar, power_mcnemar_normal
from stats.strata import clustered_mcnemar, homogeneity_test, stratified_mcnemar
from stats.tables import PairedTable


def test_stratified_pooled_and_homogeneity() -> None:
    tables = {"en": PairedTable(50, 20, 5, 25), "de": PairedTable(40, 12, 10, 38), "sw": PairedTable(30, 4, 18, 48)}
    res = stratified_mcnemar(tables)
    assert (res.pooled.b, res.pooled.c, res.pooled.n) == (36, 33, 300)
    assert res.pooled.pvalue == mcnemar(PairedTable(120, 36, 33, 111)).pvalue
    ref = chi2_contingency(np.array([[20, 5], [12, 10], [4, 18]]), correction=False)
    assert res.homogeneity.statistic == pytest.approx(ref[0], rel=1e-10)
    assert res.homogeneity.pvalue == pytest.approx(ref[1], rel=1e-10)
    assert res.homogeneity.df == 2 and res.homogeneity.pvalue < 0.001
    same = homogeneity_test([10, 20, 0], [5, 10, 0], ["a", "b", "c"])
    assert same.statistic == pytest.approx(0.0) and same.strata_used == ("a", "b")
    assert math.isnan(homogeneity_test([3], [1], ["a"]).pvalue)


def test_clustered_reduces_to_mcnemar_for_single_pairs() -> None:
    b = [1] * 14 + [0] * 30
    c = [0] * 14 + [1] * 6 + [0] * 24
    res = clustered_mcnemar(b, c, [1] * 44, method="durkalski")
    assert res.statistic == pytest.approx(mcnemar_statistic(14, 6))
    assert res.pvalue == pytest.approx(mcnemar_pvalue(14, 6, "asymptotic"))
    obu = clustered_mcnemar(b, c, [1] * 44, method="obuchowski")
    k, big_n = 44, 44
    wald_var = k / (k - 1) * (20 - 8**2 / big_n)
    assert obu.statistic == pytest.approx(64 / wald_var)
    assert clustered_mcnemar([0, 0], [0, 0], [2, 3]).pvalue == 1.0
    with pytest.raises(UserError):
        clustered_mcnemar([3], [0], [2])


def test_clustered_test_holds_its_level_where_mcnemar_does_not() -> None:
    """Null with items recurring in 6 languages and item-level direction of change: naive McNemar is
    anti-conservative, the cluster-adjusted tests stay near 5 %."""
    rng = np.random.default_rng(7)
    reps, k, size = 600, 120, 6
    naive = obu = durk = 0
    for _ in range(reps):
        theta = rng.beta(0.7, 0.7, size=k)  # per-item tendency; symmetric, so the null holds
        disc = rng.binomial(size, 0.3, size=k)
        b = rng.binomial(disc, theta)
        c = disc - b
        naive += mcnemar_pvalue(int(b.sum()), int(c.sum()), "asymptotic") < 0.05
        obu += clustered_mcnemar(b, c, np.full(k, size), "obuchowski").pvalue < 0.05
        durk += clustered_mcnemar(b, c, np.full(k, size), "durkalski").pvalue < 0.05
    assert naive / reps > 0.09
    for rate in (obu / reps, durk / reps):
        assert 0.025 <= rate <= 0.08


def test_cluster_bootstrap_is_seeded_and_correct() -> None:
    rng = np.random.default_rng(0)
    n_items = 150
    cluster = np.repeat(np.arange(n_items), 2)
    group = np.tile(["en", "sw"], n_items)
    before = rng.random(2 * n_items) < 0.2
    after = rng.random(2 * n_items) < np.where(group == "sw", 0.5, 0.3)
    r1 = difference_in_differences(cluster, group, before, after, "sw", "en", n_boot=2000, seed=11)
    r2 = difference_in_differences(cluster, group, before, after, "sw", "en", n_boot=2000, seed=11)
    r3 = difference_in_differences(cluster, group, before, after, "sw", "en", n_boot=2000, seed=12)
    assert r1 == r2 and (r1.lower, r1.upper) != (r3.lower, r3.upper)
    sw, en = group == "sw", group == "en"
    direct = (after[sw].mean() - before[sw].mean()) - (after[en].mean() - before[en].mean())
    assert r1.estimate == pytest.approx(direct)
    assert r1.lower < r1.estimate < r1.upper and r1.n_clusters == n_items and r1.n_boot == 2000
    assert r1.se == pytest.approx(0.07, abs=0.03)
    assert "seed 11" in r1.report() and "B = 2000" in r1.report()
    with pytest.raises(UserError):
        difference_in_differences(cluster, group, before, after, "sw", "zz")


def test_cluster_bootstrap_mean_matches_theory() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    sums = np.column_stack([x, np.ones_like(x)])
    res = cluster_bootstrap(sums, lambda t: t[:, 0] / t[:, 1], "mean", n_boot=4000, seed=3)
    assert res.se == pytest.approx(x.std(ddof=1) / math.sqrt(x.size), rel=0.08)


def test_power_matches_simulation() -> None:
    rng = np.random.default_rng(5)
    p_b, p_c, n, reps = 0.07, 0.03, 300, 3000
    cells = rng.multinomial(n, [p_b, p_c, 1 - p_b - p_c], size=reps)
    cache: dict[tuple[int, int], float] = {}
    rejected = 0
    for b, c, _ in cells:
        key = (int(b), int(c))
        if key not in cache:
            cache[key] = mcnemar_pvalue(*key, "midp")
        rejected += cache[key] < 0.05
    exact = power_mcnemar(p_b, p_c, n, 0.05, "midp")
    se = math.sqrt(exact * (1 - exact) / reps)
    assert abs(rejected / reps - exact) < 4 * se
    assert power_mcnemar_normal(p_b, p_c, n) == pytest.approx(power_mcnemar(p_b, p_c, n, 0.05, "asymptotic"), abs=0.03)


def test_min_detectable_effect() -> None:
    mde = min_detectable_effect(800, 0.12, power=0.8, method="normal")
    pb, pc = (0.12 + mde) / 2, (0.12 - mde) / 2
    assert power_mcnemar_normal(pb, pc, 800) == pytest.approx(0.8, abs=1e-3)
    exact = min_detectable_effect(800, 0.12, power=0.8)
    assert exact == pytest.approx(mde, rel=0.1)
    assert math.isnan(min_detectable_effect(10, 0.01))


@pytest.mark.parametrize("n, disc", [(64, 0.3), (96, 0.16), (800, 0.12), (5000, 0.05)])
def test_min_detectable_effect_is_exact_to_the_printed_digits(n: int, disc: float) -> None:
    """Connor's power equation solved in closed form (a quadratic in the difference d):
    d·sqrt(n) − z_a·sqrt(disc) = z_b·sqrt(disc − d²). The reports print 6 significant digits."""
    from scipy.stats import norm

    za, zb = norm.ppf(0.975), norm.ppf(0.8)
    a, b, c = n + zb**2, -2 * za * math.sqrt(disc * n), za**2 * disc - zb**2 * disc
    closed = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    assert min_detectable_effect(n, disc, method="normal") == pytest.approx(closed, rel=1e-9)


def test_power_where_every_pair_is_discordant_the_same_way() -> None:
    """π − δ² = 0 in Connor's formula: the statistic is fixed, so the power is Φ(+∞) = 1 when the
    shift is positive (it was returned as 0, leaving the minimum detectable effect blank)."""
    assert power_mcnemar_normal(1.0, 0.0, 40) == 1.0 == power_mcnemar(1.0, 0.0, 40)
    assert power_mcnemar_normal(1.0, 0.0, 2) == 0.0  # too few pairs to reach significance
    assert math.isclose(min_detectable_effect(40, 1.0, method="normal"), 0.43, abs_tol=5e-3)
    assert math.isclose(min_detectable_effect(40, 1.0), min_detectable_effect(40, 0.999), abs_tol=5e-3)


@pytest.mark.parametrize("method", ["obuchowski", "durkalski", "auto"])
def test_clustered_balanced_clusters_give_p_one(method: str) -> None:
    """B = C with every d_i = 0: the variance is 0 and so is B − C; the answer is χ² = 0, p = 1
    (as the unclustered test for b = c), not 0/0 = NaN."""
    for n in ([2, 2, 2, 2], [2, 2, 2, 3]):
        res = clustered_mcnemar([1, 1, 1, 0], [1, 1, 1, 0], n, method)
        assert (res.statistic, res.pvalue, res.note) == (0.0, 1.0, ""), (method, n)
    assert "χ² = 0.000, df = 1, p = 1.000" in res.report()


def test_clustered_zero_variance_with_imbalance_says_why() -> None:
    """B = 50, C = 0 over 25 clusters, each discordant the same way: no statistic, and a note naming why."""
    res = clustered_mcnemar([2] * 25, [0] * 25, [2] * 25)
    assert res.method == "obuchowski" and math.isnan(res.statistic) and math.isnan(res.pvalue)
    assert res.note == "zero between-cluster variance (every cluster discordant in the same proportion)"
    assert "no χ² [zero between-cluster variance" in res.report()
    one = clustered_mcnemar([3], [1], [5])
    assert math.isnan(one.pvalue) and one.note == "needs at least two clusters"


def _within_frame(b_first: list[bool], b_second: list[bool], clusters: int):
    """One run, `clusters` parallel items in two languages; mc right and open wrong (b) or the reverse (c)."""
    import pandas as pd

    rows = []
    for lang, bs in (("en", b_first), ("sw", b_second)):
        for i in range(clusters):
            rows.append({"parallel_id": f"p{i}" if clusters > 1 else "p0", "language": lang, "b": bs[i]})
    df = pd.DataFrame(rows)
    df["mc_correct"] = df["b"]
    df["open_correct"] = ~df["b"]
    df["recognition_only"] = df["b"]
    for k, v in {"model": "m", "method": "wanda", "sparsity": 0.5, "pattern": "unstructured", "condition": "c"}.items():
        df[k] = v
    df["run_id"] = "r"
    return df


def _within_row(df):
    import pandas as pd

    from stats.analysis import paired_table_report

    table, _ = paired_table_report(df, pd.DataFrame(), "within", ["model"])
    assert any(c.key == "p_clustered" for c in table.columns)
    return table.records[0]


def test_paired_table_report_shows_why_the_clustered_p_is_missing() -> None:
    every_one_way = _within_row(_within_frame([True] * 25, [True] * 25, 25))
    assert (every_one_way["b"], every_one_way["c"]) == (50, 0) and math.isnan(every_one_way["p_clustered"])
    assert every_one_way["flag"] == (
        "items recur (25 clusters); no clustered p: zero between-cluster variance "
        "(every cluster discordant in the same proportion)"
    )
    single = _within_row(_within_frame([True] * 3, [False] * 3, 1))
    assert single["flag"] == "items recur (1 clusters); no clustered p: needs at least two clusters"
    balanced = _within_row(_within_frame([True] * 10, [False] * 10, 10))  # each item: one b, one c
    assert (balanced["b"], balanced["c"], balanced["p_clustered"]) == (10, 10, 1.0)
    assert balanced["flag"] == "items recur (10 clusters)"
