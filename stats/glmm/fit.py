"""`fit_glmm`: one entry point for every backend."""

from __future__ import annotations

import importlib

import pandas as pd

from engine.errors import UserError
from stats.glmm.formula import build_design
from stats.glmm.result import GlmmResult

BACKENDS: dict[str, str] = {
    "mixedlm": "stats.glmm.backends.mixedlm_backend",
    "gee": "stats.glmm.backends.gee",
    "lme4": "stats.glmm.backends.lme4_r",
    "bayes": "stats.glmm.backends.bayes",
}


def fit_glmm(df: pd.DataFrame, formula: str, backend: str = "mixedlm", **opts) -> GlmmResult:
    """Fit a binary (logit) mixed or marginal model given an lme4-style formula.

    backend: 'mixedlm' (default; Laplace ML), 'gee' (population-averaged, exchangeable, clustered by
    the first random term's group or `groups=`), 'lme4' (R through Rscript), 'bayes' (exploratory
    variational-Bayes point estimates only, never p-values). Backend options go in `opts`.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown GLMM backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    design = build_design(df, formula)
    return importlib.import_module(BACKENDS[backend]).fit(design, **opts)
