"""The GLMM forest plot draws estimable terms and names the separated ones instead of plotting them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stats import figures


def test_separated_terms_are_named_not_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    coef = pd.DataFrame(
        {
            "term": ["(Intercept)", "conditionwanda-s50", "languagede", "languageen"],
            "estimate": [-20.0, 0.64, 19.5, 0.3],
            "odds_ratio": [np.exp(-20.0), 1.9, np.exp(19.5), 1.35],
            "or_low": [0.0, 0.7, 0.0, 0.6],
            "or_high": [np.inf, 5.1, np.inf, 3.0],
        }
    )
    seen: dict[str, object] = {}

    def keep(fig, stem):  # the figure as drawn, before it is saved
        ax = fig.axes[0]
        seen["labels"] = [t.get_text() for t in ax.get_yticklabels()]
        seen["notes"] = [(t.get_text(), t.xy[1]) for t in ax.texts]
        seen["x"] = sorted(float(x) for line in ax.lines for x in np.atleast_1d(line.get_xdata()))
        seen["xlim"] = ax.get_xlim()
        return []

    monkeypatch.setattr(figures, "_save", keep)
    figures.glmm_forest(coef, tmp_path / "forest")
    assert seen["labels"] == ["conditionwanda-s50", "languagede", "languageen"]  # intercept left out
    assert seen["notes"] == [("not estimable (separation)", 1)]  # languagede, the middle row
    lo, hi = seen["xlim"]
    assert 0.4 < lo < 0.6 and 5.1 < hi < 7  # the axis spans the estimable limits only
    assert not any(x > 1e3 for x in seen["x"])
