"""Population-averaged backend: statsmodels GEE, binomial/logit, exchangeable working correlation."""

from __future__ import annotations

import warnings

import numpy as np

from engine.errors import UserError
from stats.glmm.backends.common import check_options, fingerprint, separation_warnings
from stats.glmm.formula import Design
from stats.glmm.result import GlmmResult

OPTIONS = {"groups", "cov_type"}
COV_TYPES = {
    "robust": "robust (sandwich) SEs clustered by {g}",
    "bias_reduced": "bias-reduced (Mancl-DeRouen) sandwich SEs clustered by {g}",
    "naive": "model-based (naive) SEs under the working correlation",
}


def fit(design: Design, **opts) -> GlmmResult:
    """opts: groups (the clustering factor; default the first random term's group), cov_type."""
    check_options("gee", opts, OPTIONS)
    import statsmodels
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    cov_type = opts.get("cov_type", "robust")
    if cov_type not in COV_TYPES:
        raise UserError(f"cov_type must be one of {', '.join(COV_TYPES)}, got {cov_type!r}")
    labels = [r.group_label for r in design.formula.random]
    group = opts.get("groups") or (labels[0] if labels else None)
    if group is None:
        raise UserError("gee needs a clustering factor: add a term like (1|item) to the formula or pass groups='item'")
    if group not in labels:
        raise UserError(
            f"gee: groups={group!r} is not a random-term group of the formula (groups: {', '.join(labels) or 'none'})"
        )
    notes = []
    ignored = [str(r) for r in design.formula.random if r.group_label != group or r.slopes]
    if ignored:
        notes.append(
            f"GEE has one clustering factor ({group}); random terms {', '.join(ignored)} are not modelled "
            "(dependence within them enters only through the sandwich SE when nested in the cluster)"
        )
    d = design.expanded_bernoulli()
    codes = d.groups[group]
    order = np.argsort(codes, kind="stable")  # GEE expects cluster rows together
    model = sm.GEE(
        d.y[order],
        d.X[order],
        groups=codes[order],
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = model.fit(cov_type=cov_type)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise UserError(f"GEE could not fit {design.formula.text!r}: {exc}") from exc
    msgs = list(dict.fromkeys(str(w.message) for w in caught))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    est = np.asarray(res.params, dtype=float)
    se = np.asarray(res.bse, dtype=float)
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(se))):
        converged = False
        msgs.append("GEE returned non-finite estimates or SEs")
    if not converged:
        msgs.append("GEE did not converge")
    rho = float(np.atleast_1d(model.cov_struct.dep_params)[0])
    return GlmmResult(
        formula=design.formula.text,
        backend="gee",
        backend_version=f"statsmodels {statsmodels.__version__}",
        method=f"GEE (binomial, logit link, exchangeable working correlation, clustered by {group})",
        terms=list(design.fixed_names),
        estimates=est,
        se=se,
        se_method=COV_TYPES[cov_type].format(g=group),
        inferential=True,
        variance_components=[],
        loglik=None,
        npar=len(est),
        n_obs=d.n_obs,
        n_groups={group: design.group_levels[group]},
        converged=converged,
        singular=False,
        effect_scale="marginal (population-averaged) log-odds",
        warnings=design.notes
        + d.notes[len(design.notes) :]
        + notes
        + msgs
        + separation_warnings(design.fixed_names, est),
        extra={"working correlation (exchangeable rho)": rho, "clusters": int(design.group_levels[group])},
        response_fingerprint=fingerprint(design),
    )
