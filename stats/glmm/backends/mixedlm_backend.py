"""Default backend: `mixedlm` (PyPI, Rust core), Laplace maximum likelihood with lme4's algorithm."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from engine.errors import UserError
from stats.glmm.backends.common import check_options, component_from_cov, fingerprint, separation_warnings
from stats.glmm.formula import Design
from stats.glmm.result import GlmmResult

OPTIONS = {"nAGQ", "se", "optimizer", "maxiter"}
SE_METHODS = {
    "rx": "RX-based Wald SEs from the PIRLS fixed-effects information at the optimum, conditional on θ "
    "(lme4 vcov(use.hessian=FALSE))",
    "hessian": "inverse finite-difference Hessian of the Laplace deviance in (θ, β) (lme4's default vcov)",
}


def _frame(design: Design) -> tuple[pd.DataFrame, str]:
    """Rename everything to safe column names so mixedlm sees exactly our design matrix."""
    cols: dict[str, np.ndarray] = {"y_": design.y / design.trials}
    xs = []
    for j in range(design.X.shape[1]):
        cols[f"x{j}_"] = design.X[:, j]
        xs.append(f"x{j}_")
    slope_names = {s: f"s{j}_" for j, s in enumerate(design.slopes)}
    for s, name in slope_names.items():
        cols[name] = design.slopes[s]
    bars = []
    for k, r in enumerate(design.formula.random):
        cols[f"g{k}_"] = design.groups[r.group_label]
        lhs = " + ".join((["1"] if r.intercept else ["0"]) + [slope_names[s] for s in r.slopes])
        bars.append(f"({lhs} | g{k}_)")
    if not bars:
        raise UserError(
            f"formula {design.formula.text!r} has no random term like (1|item); the mixed-model backends need one (use backend 'gee' for a marginal model)"
        )
    rhs = " + ".join(["0"] + xs + bars)
    return pd.DataFrame(cols), f"y_ ~ {rhs}"


def _hessian_se(result, n_theta: int) -> np.ndarray:
    """lme4-style SEs: central finite-difference Hessian of the deviance in (θ, β), inverted."""
    dev = result.as_function("deviance")
    x0 = np.r_[result.theta, result.beta].astype(float)
    n = x0.size
    h = 1e-4 * np.maximum(np.abs(x0), 1.0)
    H = np.empty((n, n))
    f0 = dev(x0)
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = h[i]
        H[i, i] = (dev(x0 + ei) - 2 * f0 + dev(x0 - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(n)
            ej[j] = h[j]
            H[i, j] = H[j, i] = (dev(x0 + ei + ej) - dev(x0 + ei - ej) - dev(x0 - ei + ej) + dev(x0 - ei - ej)) / (
                4 * h[i] * h[j]
            )
    cov = 2.0 * np.linalg.inv(H)
    return np.sqrt(np.diag(cov)[n_theta:])


def _deviance_ends_past_optimum(result) -> bool:
    """Whether mixedlm's deviance is not finite a little past the reported θ (each nonzero θ·1.1): its
    optimizer then stopped at the edge of where it can evaluate the Laplace approximation, not at the
    optimum, and reports convergence (seen where the outcome is the same for an item in every
    condition, e.g. pruned runs that repeat the dense run: lme4 goes on to a larger θ and a higher
    likelihood)."""
    dev = result.as_function("deviance")
    theta, beta = np.asarray(result.theta, dtype=float), np.asarray(result.beta, dtype=float)
    for k in np.flatnonzero(theta):
        probe = theta.copy()
        probe[k] *= 1.1
        try:
            value = dev(np.r_[probe, beta])
        except ValueError:  # a fit whose deviance takes θ alone (β by PIRLS)
            value = dev(probe)
        if not np.isfinite(value):
            return True
    return False


def fit(design: Design, **opts) -> GlmmResult:
    """Fit with mixedlm.glmer; opts: nAGQ (1), se ('rx' | 'hessian'), optimizer, maxiter."""
    check_options("mixedlm", opts, OPTIONS)
    import mixedlm
    from mixedlm.families import Binomial
    from mixedlm.models.checks import ModelCheckError

    se_kind = opts.get("se", "rx")
    if se_kind not in SE_METHODS:
        raise UserError(f"se must be one of {', '.join(SE_METHODS)}, got {se_kind!r}")
    nagq = int(opts.get("nAGQ", 1))
    frame, formula = _frame(design)
    control = None
    if "optimizer" in opts or "maxiter" in opts:
        kw = {k: opts[k] for k in ("optimizer", "maxiter") if k in opts}
        control = mixedlm.glmerControl(**kw)
    weights = None if design.bernoulli else design.trials.astype(float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r = mixedlm.glmer(formula, frame, family=Binomial(), nAGQ=nagq, weights=weights, control=control)
        except (ValueError, np.linalg.LinAlgError, RuntimeError, ModelCheckError) as exc:
            raise UserError(f"mixedlm could not fit {design.formula.text!r}: {exc}") from exc
    msgs = list(dict.fromkeys(str(w.message) for w in caught))

    components = []
    vc = r.VarCorr()
    for k, term in enumerate(design.formula.random):
        components.append(component_from_cov(term.group_label, term.coef_names, vc.get_cov(f"g{k}_")))
    se = np.sqrt(np.diag(r.vcov())) if se_kind == "rx" else _hessian_se(r, len(r.theta))
    est = np.asarray(r.beta, dtype=float)
    converged = bool(r.converged and r.pirls_converged and np.all(np.isfinite(est)) and np.all(np.isfinite(se)))
    if not converged:
        msgs.append(
            f"mixedlm did not converge (optimizer {r.optimizer}: {r.message or 'no message'}; PIRLS converged: {r.pirls_converged})"
        )
    elif _deviance_ends_past_optimum(r):
        converged = False
        msgs.append(
            "mixedlm stopped where its Laplace deviance stops being finite (just past θ = "
            f"{', '.join(f'{t:.3g}' for t in r.theta)}), not at an optimum: the fit is not trustworthy; "
            "fit it with --glmm-backend lme4"
        )
    singular = bool(r.isSingular())
    if singular:
        msgs.append("singular fit: a random-effect SD is ~0 or a correlation is ±1; simplify the random effects")
    method = (
        "Laplace maximum likelihood (nAGQ=1)"
        if nagq == 1
        else (
            f"adaptive Gauss-Hermite quadrature ML (nAGQ={nagq})" if nagq > 1 else "PIRLS-only approximation (nAGQ=0)"
        )
    )
    return GlmmResult(
        formula=design.formula.text,
        backend="mixedlm",
        backend_version=mixedlm.__version__,
        method=method,
        terms=list(design.fixed_names),
        estimates=est,
        se=np.asarray(se, dtype=float),
        se_method=SE_METHODS[se_kind],
        inferential=True,
        variance_components=components,
        loglik=float(r.logLik().value),
        npar=len(est) + len(r.theta),
        n_obs=design.n_obs,
        n_groups=dict(design.group_levels),
        converged=converged,
        singular=singular,
        optimizer=str(r.optimizer),
        warnings=design.notes + msgs + separation_warnings(design.fixed_names, est),
        response_fingerprint=fingerprint(design),
        diagnostics={
            "optimizer": str(r.optimizer),
            "iterations": int(r.n_iter),
            "message": str(r.message or ""),
            "pirls_converged": bool(r.pirls_converged),
            "loglik": float(r.logLik().value),
            "theta": [float(t) for t in r.theta],
            "beta": [float(b) for b in est],
            "se": [float(x) for x in se],
        },
    )
