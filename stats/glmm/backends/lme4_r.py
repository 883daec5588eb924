"""R lme4 backend: writes the design to a temporary CSV, runs stats/r/fit_glmer.R with Rscript,
and reads the fit back as JSON. Needs R with lme4 (Debian: r-base-core r-cran-lme4)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from engine.errors import UserError
from stats.glmm.backends.common import check_options, fingerprint, separation_warnings
from stats.glmm.formula import Design
from stats.glmm.result import GlmmResult, VarianceComponent

OPTIONS = {"nAGQ", "se", "tolPwrss", "timeout"}
SCRIPT = Path(__file__).resolve().parents[2] / "r" / "fit_glmer.R"
SE_METHODS = {
    "hessian": "inverse finite-difference Hessian of the Laplace deviance (lme4 default vcov, use.hessian=TRUE)",
    "rx": "RX-based, conditional on θ (lme4 vcov(use.hessian=FALSE))",
}


def rscript() -> str:
    """Path of Rscript, or a UserError saying how to get it."""
    path = shutil.which("Rscript")
    if path is None:
        raise UserError(
            "backend 'lme4' needs R: Rscript is not on PATH (Debian: apt-get install r-base-core r-cran-lme4); "
            "the default backend 'mixedlm' needs no R"
        )
    return path


def _frame(design: Design) -> tuple[pd.DataFrame, str, list[str]]:
    cols: dict[str, np.ndarray] = {"y_": design.y, "n_": design.trials}
    xs = [f"x{j}_" for j in range(design.X.shape[1])]
    for j, name in enumerate(xs):
        cols[name] = design.X[:, j]
    slope = {s: f"s{j}_" for j, s in enumerate(design.slopes)}
    for s, name in slope.items():
        cols[name] = design.slopes[s]
    bars, gcols = [], []
    for k, r in enumerate(design.formula.random):
        cols[f"g{k}_"] = design.groups[r.group_label]
        gcols.append(f"g{k}_")
        bars.append(f"({' + '.join((['1'] if r.intercept else ['0']) + [slope[s] for s in r.slopes])} | g{k}_)")
    if not bars:
        raise UserError(
            f"formula {design.formula.text!r} has no random term like (1|item); backend 'lme4' fits mixed models"
        )
    lhs = "y_" if design.bernoulli else "cbind(y_, n_ - y_)"
    return pd.DataFrame(cols), f"{lhs} ~ {' + '.join(['0'] + xs + bars)}", gcols


def fit(design: Design, **opts) -> GlmmResult:
    """opts: nAGQ (1), se ('hessian' | 'rx'), tolPwrss (lme4's 1e-7), timeout (seconds)."""
    check_options("lme4", opts, OPTIONS)
    se_kind = opts.get("se", "hessian")
    if se_kind not in SE_METHODS:
        raise UserError(f"se must be one of {', '.join(SE_METHODS)}, got {se_kind!r}")
    exe = rscript()
    frame, formula, gcols = _frame(design)
    nagq = int(opts.get("nAGQ", 1))
    with tempfile.TemporaryDirectory(prefix="prunescope-lme4-") as tmp:
        data, out = Path(tmp) / "data.csv", Path(tmp) / "fit.json"
        frame.to_csv(data, index=False, float_format="%.17g")
        cmd = [
            exe,
            str(SCRIPT),
            str(data),
            formula,
            str(nagq),
            repr(float(opts.get("tolPwrss", 1e-7))),
            str(out),
            ",".join(gcols),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.get("timeout"))
        except subprocess.TimeoutExpired as exc:
            raise UserError(f"lme4 fit of {design.formula.text!r} exceeded the {exc.timeout} s timeout") from exc
        if not out.exists():
            raise UserError(f"Rscript failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        res = json.loads(out.read_text())
    if "error" in res:
        raise UserError(f"lme4 could not fit {design.formula.text!r}: {res['error']}")

    label = {f"g{k}_": r.group_label for k, r in enumerate(design.formula.random)}
    slope_back = {f"s{j}_": s for j, s in enumerate(design.slopes)}
    thetas: dict[str, list[float]] = {}
    for name, value in zip(res["theta_names"], res["theta"]):
        thetas.setdefault(name.split(".")[0], []).append(value)
    components = []
    for g in res["groups"]:
        terms = tuple(slope_back.get(t, t) for t in g["terms"])
        components.append(
            VarianceComponent(
                label[g["group"]],
                terms,
                tuple(g["sd"]),
                tuple(c if c is not None else float("nan") for c in g["corr"]),
                tuple(thetas[g["group"]]),
            )
        )
    order = {r.group_label: k for k, r in enumerate(design.formula.random)}
    components.sort(key=lambda vc: order[vc.group])
    conv = list(res.get("convergence_messages", []))
    messages = list(dict.fromkeys(conv + list(res.get("r_warnings", []))))  # R warns what the fit records
    # lme4 files "boundary (singular) fit" among its convergence messages; the fit converged (singular below)
    converged = res["optimizer_code"] == 0 and all(m.startswith("boundary (singular) fit") for m in conv)
    est = np.asarray(res["fixef"], dtype=float)
    se = np.asarray([np.nan if v is None else v for v in res[f"se_{se_kind}"]], dtype=float)
    if not converged:
        messages.append("lme4 reported a convergence problem (see messages above)")
    if res["singular"]:
        messages.append("singular fit: a random-effect SD is ~0 or a correlation is ±1; simplify the random effects")
    return GlmmResult(
        formula=design.formula.text,
        backend="lme4",
        backend_version=f"lme4 {res['lme4_version']} ({res['r_version']})",
        method="Laplace maximum likelihood (nAGQ=1)"
        if nagq == 1
        else f"adaptive Gauss-Hermite quadrature ML (nAGQ={nagq})",
        terms=list(design.fixed_names),
        estimates=est,
        se=se,
        se_method=SE_METHODS[se_kind],
        inferential=True,
        variance_components=components,
        loglik=float(res["loglik"]),
        npar=len(est) + len(res["theta"]),
        n_obs=int(res["nobs"]),
        n_groups=dict(design.group_levels),
        converged=bool(converged),
        singular=bool(res["singular"]),
        optimizer=", ".join(res["optimizer"]) + f" (tolPwrss {float(opts.get('tolPwrss', 1e-7)):g})",
        warnings=design.notes + messages + separation_warnings(design.fixed_names, est),
        response_fingerprint=fingerprint(design),
    )
