"""Exploratory backend: statsmodels BinomialBayesMixedGLM, mean-field variational Bayes.

Point estimates only. Its posterior SDs of fixed effects are several times too small (worst for
item-level covariates; docs/statistics.md §11), so the result carries no SEs, CIs or p-values.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from engine.errors import UserError
from stats.glmm.backends.common import check_options, fingerprint
from stats.glmm.formula import Design
from stats.glmm.result import GlmmResult, VarianceComponent

OPTIONS = {"vcp_p", "fe_p"}
LABEL = (
    "exploratory: mean-field variational-Bayes posterior means; posterior SDs understate uncertainty "
    "several-fold, so no SEs, CIs or p-values are reported"
)


def _exog_vc(design: Design) -> tuple[Any, np.ndarray, list[tuple[str, str]]]:
    """Sparse random-effects design: one column per level per term; `ident` labels the component."""
    import scipy.sparse as sp

    blocks: list[Any] = []
    ident: list[int] = []
    names: list[tuple[str, str]] = []
    n = design.n_obs
    for r in design.formula.random:
        codes = design.groups[r.group_label]
        levels = design.group_levels[r.group_label]
        values = ([("(Intercept)", np.ones(n))] if r.intercept else []) + [(s, design.slopes[s]) for s in r.slopes]
        for term, v in values:
            blocks.append(sp.csr_matrix((v, (np.arange(n), codes)), shape=(n, levels)))
            ident += [len(names)] * levels
            names.append((r.group_label, term))
    return sp.hstack(blocks).tocsr(), np.asarray(ident), names


def fit(design: Design, **opts) -> GlmmResult:
    """opts: vcp_p (prior SD of log random-effect SDs, 0.5), fe_p (prior SD of fixed effects, 2)."""
    check_options("bayes", opts, OPTIONS)
    import statsmodels
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    if not design.formula.random:
        raise UserError("bayes needs at least one random term such as (1|item)")
    d = design.expanded_bernoulli()
    exog_vc, ident, names = _exog_vc(d)
    vcp_p, fe_p = float(opts.get("vcp_p", 0.5)), float(opts.get("fe_p", 2.0))
    model = BinomialBayesMixedGLM(d.y, d.X, exog_vc, ident, vcp_p=vcp_p, fe_p=fe_p, fep_names=list(d.fixed_names))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = model.fit_vb()
    msgs = list(dict.fromkeys(str(w.message) for w in caught))
    opt = getattr(res, "optim_retvals", None)
    converged = bool(getattr(opt, "success", True) if opt is not None else True) and bool(
        np.all(np.isfinite(res.fe_mean))
    )
    if not converged:
        msgs.append("variational optimisation did not converge")
    sds = np.exp(np.asarray(res.vcp_mean, dtype=float))
    comps: dict[str, list[tuple[str, float]]] = {}
    for (group, term), sd in zip(names, sds):
        comps.setdefault(group, []).append((term, float(sd)))
    vcs = [VarianceComponent(g, tuple(t for t, _ in v), tuple(s for _, s in v)) for g, v in comps.items()]
    if any(r.slopes for r in design.formula.random):
        msgs.append("random slopes are fitted as independent components (no correlation) by this backend")
    return GlmmResult(
        formula=design.formula.text,
        backend="bayes",
        backend_version=f"statsmodels {statsmodels.__version__} BinomialBayesMixedGLM.fit_vb",
        method=f"variational Bayes (priors: fixed effects N(0, {fe_p}^2), log SDs N(0, {vcp_p}^2))",
        terms=list(design.fixed_names),
        estimates=np.asarray(res.fe_mean, dtype=float),
        se=np.full(len(design.fixed_names), np.nan),
        se_method="none (exploratory point estimates)",
        inferential=False,
        variance_components=vcs,
        loglik=None,
        npar=len(design.fixed_names) + len(names),
        n_obs=d.n_obs,
        n_groups=dict(design.group_levels),
        converged=converged,
        singular=False,
        effect_scale="conditional log-odds (posterior means)",
        warnings=[LABEL] + d.notes + msgs,
        response_fingerprint=fingerprint(design),
    )
