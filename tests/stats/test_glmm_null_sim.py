"""Calibration of the default GLMM's Wald test under a true null (slow tier; runs in CI).

Design (docs/statistics.md §12): 100 items × 2 conditions × 3 languages = 600 Bernoulli rows, item SD 1.5,
intercept -0.3, an item-level covariate `g` (constant within item: where approximate methods fail)
and a within-item condition, every true effect 0. R = 200 replications; each test's rejection rate
at α = 0.05 must lie in the 99% binomial band of Binomial(200, 0.05): 3..19 rejections (1.5%..9.5%;
scipy ppf(0.005) / isf(0.005)), and the pooled 400 tests in Binomial(400, 0.05)'s band, 10..32
(2.5%..8.0%).
The backend is the default (mixedlm, Laplace ML, RX-based Wald SEs) with the L-BFGS-B optimizer
instead of the default COBYQA, whose pure-Python overhead makes 200 fits too slow for CI; the test
checks on its first replicate that both optimizers reach the same optimum.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from stats.glmm import fit_glmm

REPS, ALPHA = 200, 0.05
FORMULA = "y ~ condition + language + g + (1|item)"


def simulate(rng: np.random.Generator, n_items: int = 100) -> pd.DataFrame:
    item = np.repeat(np.arange(n_items), 6)
    u = rng.normal(0.0, 1.5, n_items)
    eta = -0.3 + u[item]
    return pd.DataFrame(
        {
            "y": (rng.random(item.size) < 1 / (1 + np.exp(-eta))).astype(int),
            "condition": np.tile(np.repeat(["dense", "pruned"], 3), n_items),
            "language": np.tile(["de", "en", "sw"], 2 * n_items),
            "g": rng.normal(size=n_items)[item],
            "item": item,
        }
    )


@pytest.mark.slow
def test_wald_rejection_rate_under_null_is_nominal() -> None:
    rng = np.random.default_rng(20261128)
    first = simulate(rng)
    a = fit_glmm(first, FORMULA, optimizer="L-BFGS-B")
    b = fit_glmm(first, FORMULA)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-4)
    np.testing.assert_allclose(a.estimates, b.estimates, atol=2e-3)

    start = time.perf_counter()
    rejected = np.zeros((REPS, 2), dtype=bool)
    for rep in range(REPS):
        r = a if rep == 0 else fit_glmm(simulate(rng), FORMULA, optimizer="L-BFGS-B")
        assert r.converged, r.warnings
        p = r.coef_table().set_index("term")["p"]
        rejected[rep] = [p["conditionpruned"] < ALPHA, p["g"] < ALPHA]
    lo, hi = binom.ppf(0.005, REPS, ALPHA), binom.isf(0.005, REPS, ALPHA)
    counts = rejected.sum(axis=0)
    print(
        f"null simulation: {REPS} fits in {time.perf_counter() - start:.1f} s; rejections {counts.tolist()} of {REPS}"
    )
    assert (lo, hi) == (3, 19)
    for name, k in zip(("within-item condition", "between-item covariate g"), counts):
        assert lo <= k <= hi, f"{name}: {k}/{REPS} rejections outside the 99% band [{lo:.0f}, {hi:.0f}]"
    total = counts.sum()
    assert binom.ppf(0.005, 2 * REPS, ALPHA) <= total <= binom.isf(0.005, 2 * REPS, ALPHA), total
