"""Seeded cluster (item) bootstrap for composite statistics such as a difference in differences.

Items are resampled with replacement, keeping every row of an item (all its languages, models and
conditions) together. Statistics are computed from per-cluster sums, so B = 10,000 resamples of
thousands of items take a fraction of a second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.errors import UserError


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile CI and null-shifted two-sided p-value of a cluster-bootstrapped statistic."""

    statistic: str
    estimate: float
    lower: float
    upper: float
    level: float
    se: float
    pvalue: float
    n_boot: int
    n_clusters: int
    seed: int
    unit: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def report(self) -> str:
        from stats.report import format_p

        return (
            f"{self.statistic} = {self.estimate:.4f} ({100 * self.level:g}% percentile CI {self.lower:.4f} to "
            f"{self.upper:.4f}; cluster bootstrap over {self.n_clusters} {self.unit}s, B = {self.n_boot}, "
            f"seed {self.seed}; null-shifted p = {format_p(self.pvalue)})."
        )


def cluster_bootstrap(
    sums: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    name: str = "statistic",
    n_boot: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
    unit: str = "item",
    chunk: int = 500,
) -> BootstrapResult:
    """Bootstrap `statistic` over clusters.

    `sums` is (clusters × m): per-cluster totals of m quantities. `statistic` maps an (r × m) array of
    column totals to r values (vectorised). The p-value counts resamples with |δ* − δ| ≥ |δ|.
    """
    sums = np.asarray(sums, dtype=float)
    if sums.ndim != 2 or sums.shape[0] < 2:
        raise UserError(f"cluster bootstrap needs at least two clusters, got array of shape {sums.shape}")
    if n_boot < 1:
        raise UserError("cluster bootstrap: n_boot must be positive")
    k = sums.shape[0]
    est = float(np.asarray(statistic(sums.sum(axis=0)[None, :]))[0])
    rng = np.random.default_rng(seed)
    probs = np.full(k, 1.0 / k)
    draws = []
    done = 0
    while done < n_boot:
        r = min(chunk, n_boot - done)
        weights = rng.multinomial(k, probs, size=r)
        draws.append(np.asarray(statistic(weights @ sums), dtype=float))
        done += r
    boot = np.concatenate(draws)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0 or math.isnan(est):
        return BootstrapResult(name, est, math.nan, math.nan, level, math.nan, math.nan, n_boot, k, seed, unit)
    alpha = 1 - level
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    p = float(np.mean(np.abs(boot - est) >= abs(est))) if est != 0 else 1.0
    se = float(boot.std(ddof=1)) if boot.size > 1 else math.nan  # one finite resample has no spread to measure
    return BootstrapResult(name, est, float(lo), float(hi), level, se, p, n_boot, k, seed, unit)


def difference_in_differences(
    cluster: np.ndarray,
    group: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    group_a: str,
    group_b: str,
    n_boot: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
    what: str = "recognition-only rate",
) -> BootstrapResult:
    """(after − before rate in group A) − (after − before rate in group B), item-cluster bootstrap.

    One entry per pair (e.g. item × language): its cluster (parallel item id), its group (e.g.
    language) and the 0/1 outcome before and after (dense and pruned).
    """
    cluster = np.asarray(cluster)
    group = np.asarray(group)
    before = np.asarray(before, dtype=float)
    after = np.asarray(after, dtype=float)
    for g in (group_a, group_b):
        if not np.any(group == g):
            raise UserError(f"difference in differences: group {g!r} has no pairs")
    codes, inverse = np.unique(cluster, return_inverse=True)
    sums = np.zeros((codes.size, 6))
    for col, (g, arr) in enumerate(
        ((group_a, before), (group_a, after), (group_a, None), (group_b, before), (group_b, after), (group_b, None))
    ):
        mask = group == g
        vals = np.ones(mask.sum()) if arr is None else arr[mask]
        np.add.at(sums[:, col], inverse[mask], vals)

    def stat(t: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (t[:, 1] - t[:, 0]) / t[:, 2] - (t[:, 4] - t[:, 3]) / t[:, 5]

    return cluster_bootstrap(sums, stat, f"change in {what}, {group_a} minus {group_b}", n_boot, seed, level)
