"""One result type for every GLMM backend: coefficients, variance components, fit flags, reporting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import UserError
from stats.report import format_p

if TYPE_CHECKING:
    import pandas as pd

Z95 = 1.959963984540054
# A fixed effect beyond this |log-odds| (an odds ratio past e^10 ≈ 22,000 or below its inverse) is taken
# as (quasi-)complete separation: its maximum-likelihood estimate is at ±∞, its odds ratio not estimable.
SEPARATION_LOG_ODDS = 10.0


@dataclass(frozen=True)
class VarianceComponent:
    """Random-effect SDs (and correlations) of one grouping factor; `theta` is lme4's θ block."""

    group: str
    terms: tuple[str, ...]
    sd: tuple[float, ...]
    corr: tuple[float, ...] = ()  # lower triangle, column-wise, as lme4 prints it
    theta: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "terms": list(self.terms),
            "sd": list(self.sd),
            "corr": list(self.corr),
            "theta": list(self.theta),
        }


def format_ratio(x: float) -> str:
    """An odds ratio in at most 9 cells: 1.234, or 2.5e+43 / 3.1e-07 far from 1 (a wide CI's limit), inf, nan."""
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.3f}" if x == 0 or 1e-3 <= abs(x) < 1e4 else f"{x:.2g}" if abs(x) < 1e100 else f"{x:.1e}"


def _separated_ratio(estimate: float) -> str:
    """What a separated term's odds ratio prints as: beyond 1e4 in the estimate's direction."""
    return "> 1e4" if estimate > 0 else "< 1e-4"


def _fixed(x: float, width: int, decimals: int) -> str:
    """`x` right-aligned in `width` cells with `decimals` decimals, or in scientific notation when that
    would not leave a space before it (a column never runs into the next)."""
    text = f"{x:.{decimals}f}"
    return f"{text:>{width}}" if len(text) < width else f"{x:>{width}.2e}"


def _num(x: float | None) -> float | None:
    """JSON-safe float: NaN and ±inf become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class GlmmResult:
    """A fitted binary mixed (or marginal) model from one backend.

    `inferential` is False for exploratory point estimates (the 'bayes' backend): then `se`, `z`, `p`
    and the odds-ratio CI are NaN and nothing is printed as a p-value.
    """

    formula: str
    backend: str
    backend_version: str
    method: str  # e.g. "Laplace maximum likelihood (nAGQ=1)"
    terms: list[str]
    estimates: np.ndarray
    se: np.ndarray
    se_method: str
    inferential: bool
    variance_components: list[VarianceComponent]
    loglik: float | None
    npar: int
    n_obs: int
    n_groups: dict[str, int]
    converged: bool
    singular: bool
    optimizer: str = ""  # the optimiser's name; how it got there goes in `diagnostics`
    effect_scale: str = "conditional (subject-specific) log-odds"
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # Convergence details that differ between machines (iteration counts, optimiser messages, the
    # unrounded optimum): never in the summary or a report, only in diagnostics.json and to_dict().
    diagnostics: dict[str, Any] = field(default_factory=dict)
    response_fingerprint: str = ""  # identifies the data, so an LRT refuses different data

    # ---- derived quantities ----
    @property
    def z(self) -> np.ndarray:
        if not self.inferential:
            return np.full(len(self.terms), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.se > 0, self.estimates / self.se, np.nan)

    @property
    def p(self) -> np.ndarray:
        from scipy.stats import norm

        return 2.0 * norm.sf(np.abs(self.z))

    @property
    def separated(self) -> np.ndarray:
        """Per term: |log-odds| > SEPARATION_LOG_ODDS, where the odds ratio and its CI are not estimable."""
        return np.abs(self.estimates) > SEPARATION_LOG_ODDS

    @property
    def aic(self) -> float | None:
        return None if self.loglik is None else -2.0 * self.loglik + 2.0 * self.npar

    @property
    def theta(self) -> list[float]:
        return [t for vc in self.variance_components for t in vc.theta]

    def coef_table(self, level: float = 0.95) -> pd.DataFrame:
        """term, estimate, se, z, p, odds_ratio, or_low, or_high (Wald CI at `level`); the odds ratio and
        its CI are NaN for a separated term (`separated`)."""
        import pandas as pd
        from scipy.stats import norm

        q = norm.ppf(0.5 + level / 2.0)
        se = self.se if self.inferential else np.full(len(self.terms), np.nan)
        with np.errstate(over="ignore"):  # a limit beyond e^709 (near-separation) is +inf, as it should print
            odds = [np.exp(self.estimates), np.exp(self.estimates - q * se), np.exp(self.estimates + q * se)]
        ratio, low, high = (np.where(self.separated, np.nan, o) for o in odds)
        return pd.DataFrame(
            {
                "term": self.terms,
                "estimate": self.estimates,
                "se": se,
                "z": self.z,
                "p": self.p,
                "odds_ratio": ratio,
                "or_low": low,
                "or_high": high,
            }
        )

    def status(self) -> str:
        parts = ["converged" if self.converged else "DID NOT CONVERGE"]
        if self.singular:
            parts.append("SINGULAR FIT (a random-effect variance or correlation is at its boundary)")
        return "; ".join(parts)

    def summary_lines(self) -> list[str]:
        """Printable summary: model, method, groups, variance components, coefficient table, flags.

        The lines a report keeps are machine-independent: across CPUs and BLAS kernels the optimum
        moves by about 1e-6, so the random-effect SDs are printed to 3 decimals (as the report's
        coefficient table), the log-likelihood, flat at the optimum, to 4, and no iteration count
        (that is in `diagnostics`). The coefficient rows here (4 decimals) are for the terminal;
        reports leave them out."""
        lines = [
            f"Binary mixed model: {self.formula}",
            f"Backend: {self.backend} {self.backend_version}; {self.method}",
        ]
        if self.optimizer:
            lines.append(f"Optimizer: {self.optimizer}")
        if not self.inferential:
            lines.append(
                "EXPLORATORY POINT ESTIMATES ONLY: no standard errors, CIs or p-values (approximate posterior; see warnings)"
            )
        lines.append(f"Effects: {self.effect_scale}")
        grp = ", ".join(f"{g}: {n}" for g, n in self.n_groups.items())
        lines.append(f"Observations: {self.n_obs}" + (f"; groups: {grp}" if grp else ""))
        if self.loglik is not None:
            lines.append(f"logLik {self.loglik:.4f} (df={self.npar}), AIC {self.aic:.4f}")
        for vc in self.variance_components:
            sds = ", ".join(f"SD({t}) = {s:.3f}" for t, s in zip(vc.terms, vc.sd))
            cor = f", corr = {', '.join(f'{c:.3f}' for c in vc.corr)}" if vc.corr else ""
            lines.append(f"Random effects {vc.group}: {sds}{cor}")
        for k, v in self.extra.items():
            if isinstance(v, (int, float, str)):
                lines.append(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
        tab = self.coef_table()
        if self.inferential:
            lines.append(f"Fixed effects (SE: {self.se_method}; Wald z, two-sided p; OR with 95% Wald CI):")
            lines.append(f"{'term':<28}{'estimate':>10}{'se':>9}{'z':>8}{'p':>11}{'OR':>9}{'OR 95% CI':>21}")
            for r, sep in zip(tab.itertuples(), self.separated):
                ratio = (
                    f"{_separated_ratio(r.estimate):>9}   not estimable (separation)"
                    if sep
                    else f"{format_ratio(r.odds_ratio):>9}   [{format_ratio(r.or_low)}, {format_ratio(r.or_high)}]"
                )
                lines.append(
                    f"{r.term!s:<28}{_fixed(r.estimate, 10, 4)}{_fixed(r.se, 9, 4)}{_fixed(r.z, 8, 3)}"
                    f"{format_p(r.p):>11}{ratio}"
                )
        else:
            lines.append("Fixed effects (exploratory point estimates; posterior means):")
            lines.append(f"{'term':<28}{'estimate':>10}{'OR':>9}")
            for r, sep in zip(tab.itertuples(), self.separated):
                ratio = _separated_ratio(r.estimate) if sep else format_ratio(r.odds_ratio)
                lines.append(f"{r.term!s:<28}{_fixed(r.estimate, 10, 4)}{ratio:>9}")
        lines.append(f"Status: {self.status()}")
        lines += [f"Warning: {w}" for w in self.warnings]
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (NaN/inf → null)."""
        tab = self.coef_table()
        coefs = [
            {**{k: (_num(v) if k != "term" else v) for k, v in row.items()}, "separated": bool(sep)}
            for row, sep in zip(tab.to_dict("records"), self.separated)
        ]
        return {
            "formula": self.formula,
            "backend": self.backend,
            "backend_version": self.backend_version,
            "method": self.method,
            "optimizer": self.optimizer,
            "inferential": self.inferential,
            "effect_scale": self.effect_scale,
            "se_method": self.se_method,
            "coefficients": coefs,
            "variance_components": [
                {
                    **vc.to_dict(),
                    "sd": [_num(s) for s in vc.sd],
                    "corr": [_num(c) for c in vc.corr],
                    "theta": [_num(t) for t in vc.theta],
                }
                for vc in self.variance_components
            ],
            "loglik": _num(self.loglik),
            "aic": _num(self.aic),
            "npar": self.npar,
            "n_obs": self.n_obs,
            "n_groups": dict(self.n_groups),
            "converged": bool(self.converged),
            "singular": bool(self.singular),
            "warnings": list(self.warnings),
            "extra": {k: (_num(v) if isinstance(v, float) else v) for k, v in self.extra.items()},
            "diagnostics": dict(self.diagnostics),
        }

    def lrt(self, other: GlmmResult) -> tuple[float, int, float]:
        """Likelihood-ratio test between nested models on the same data: (chi2, df, p).

        The larger model is whichever has more parameters. When the models differ in a variance
        component, the null is on the parameter boundary and the χ² p-value is conservative.
        """
        from scipy.stats import chi2 as chi2_dist

        big, small = (self, other) if self.npar >= other.npar else (other, self)
        if big.loglik is None or small.loglik is None:
            raise UserError(
                f"LRT needs likelihoods; backend {(big if big.loglik is None else small).backend!r} has none"
            )
        if self.n_obs != other.n_obs or self.response_fingerprint != other.response_fingerprint:
            raise UserError("LRT needs both models fitted to the same rows and response")
        df = big.npar - small.npar
        if df <= 0:
            raise UserError("LRT needs nested models with different numbers of parameters")
        missing = sorted(set(small.terms) - set(big.terms))
        if missing:
            raise UserError(
                f"models are not nested: the smaller has fixed terms the larger lacks: {', '.join(missing)}"
            )
        stat = max(0.0, 2.0 * (big.loglik - small.loglik))
        return stat, df, float(chi2_dist.sf(stat, df))

    def report(self, term: str | None = None) -> str:
        """The reporting sentence for one term (default: every non-intercept term)."""
        names = [term] if term else [t for t in self.terms if t != "(Intercept)"]
        unknown = [n for n in names if n not in self.terms]
        if unknown:
            raise UserError(f"no term {unknown[0]!r}; terms are: {', '.join(self.terms)}")
        tab = self.coef_table().set_index("term")
        grp = ", ".join(f"{n} {g} levels" for g, n in self.n_groups.items())
        re = "; ".join(f"SD({vc.group}) = {vc.sd[0]:.3f}" for vc in self.variance_components)
        head = (
            f"{self.method} via {self.backend} {self.backend_version}, formula {self.formula}, "
            f"n = {self.n_obs} observations" + (f" ({grp})" if grp else "") + (f", {re}" if re else "")
        )
        separated = dict(zip(self.terms, self.separated))
        parts = []
        for n in names:
            r = tab.loc[n]
            ratio = (
                f"OR {_separated_ratio(r.estimate)}, not estimable (separation)"
                if separated[n]
                else f"OR {format_ratio(r.odds_ratio)}"
            )
            if self.inferential:
                ci = "" if separated[n] else f", 95% Wald CI [{format_ratio(r.or_low)}, {format_ratio(r.or_high)}]"
                parts.append(
                    f"{n}: log-OR {r.estimate:.3f} (SE {r.se:.3f}), {ratio}{ci}, z = {r.z:.2f}, p = {format_p(r.p)}"
                )
            else:
                parts.append(f"{n}: exploratory point estimate log-OR {r.estimate:.3f} ({ratio}); no p-value")
        tail = f"; SEs: {self.se_method}; {self.status()}." if self.inferential else f"; {self.status()}."
        return head + ": " + "; ".join(parts) + tail
