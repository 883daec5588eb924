"""Helpers shared by the GLMM backends."""

from __future__ import annotations

import hashlib

import numpy as np

from engine.errors import UserError
from stats.glmm.formula import Design
from stats.glmm.result import SEPARATION_LOG_ODDS, VarianceComponent


def check_options(backend: str, opts: dict, allowed: set[str]) -> None:
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise UserError(
            f"backend {backend!r} does not take option(s) {', '.join(unknown)}; it accepts: {', '.join(sorted(allowed)) or 'none'}"
        )


def fingerprint(design: Design) -> str:
    """Identifies the rows and response, so LRTs refuse models fitted to different data."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(design.y, dtype=float).tobytes())
    h.update(np.ascontiguousarray(design.trials, dtype=float).tobytes())
    return h.hexdigest()[:16]


def theta_from_cov(cov: np.ndarray) -> tuple[float, ...]:
    """lme4's θ block for σ = 1: the lower Cholesky factor of the RE covariance, column-wise."""
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    k = cov.shape[0]
    L = np.zeros_like(cov)
    for j in range(k):  # Cholesky that tolerates a zero pivot (a singular, boundary fit)
        pivot = cov[j, j] - L[j, :j] @ L[j, :j]
        L[j, j] = np.sqrt(pivot) if pivot > 0 else 0.0
        for i in range(j + 1, k):
            L[i, j] = (cov[i, j] - L[i, :j] @ L[j, :j]) / L[j, j] if L[j, j] > 0 else 0.0
    return tuple(float(L[i, j]) for j in range(k) for i in range(j, k))


def component_from_cov(group: str, terms: list[str], cov: np.ndarray) -> VarianceComponent:
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    corr = []
    k = len(terms)
    for j in range(k):
        for i in range(j + 1, k):
            corr.append(float(cov[i, j] / (sd[i] * sd[j])) if sd[i] > 0 and sd[j] > 0 else float("nan"))
    return VarianceComponent(group, tuple(terms), tuple(float(s) for s in sd), tuple(corr), theta_from_cov(cov))


def separation_warnings(terms: list[str], est: np.ndarray) -> list[str]:
    big = [t for t, b in zip(terms, est) if abs(b) > SEPARATION_LOG_ODDS]
    if big:
        return [
            f"|log-odds| > {SEPARATION_LOG_ODDS:g} for {', '.join(big)}: likely (quasi-)complete separation; their "
            "odds ratios are not estimable, and these estimates and tests are unreliable"
        ]
    return []
