"""Mixed-effects logistic regression for binary outcomes behind one result type.

`fit_glmm(df, formula, backend=...)` parses an lme4-style formula and fits it with mixedlm
(default), statsmodels GEE, R lme4 or statsmodels' variational Bayes (exploratory only).
Heavy packages are imported only when a backend runs.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "BACKENDS": "fit",
    "fit_glmm": "fit",
    "parse_formula": "formula",
    "GlmmResult": "result",
    "VarianceComponent": "result",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import lazily, so `prunescope --help` and `stats.glmm.commands` stay light."""
    if name in _EXPORTS:
        return getattr(import_module(f"stats.glmm.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'stats.glmm' has no attribute {name!r}")
