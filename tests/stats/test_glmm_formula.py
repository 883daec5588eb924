"""lme4-style formula parsing and R-compatible design matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.errors import UserError
from stats.glmm.formula import build_design, parse_formula


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 48
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "a": np.tile(["x", "y", "z"], n // 3),
            "b": np.repeat(["p", "q"], n // 2),
            "s": rng.normal(size=n),
            "item": np.repeat(np.arange(12), 4),
            "lang": np.tile(["de", "en"], n // 2),
        }
    )


def test_star_expands_and_orders_terms_like_r() -> None:
    f = parse_formula("y ~ a*b + s + (1|item)")
    assert f.fixed_terms == (("a",), ("b",), ("s",), ("a", "b"))
    d = build_design(frame(), f)
    assert d.fixed_names == ["(Intercept)", "ay", "az", "bq", "s", "ay:bq", "az:bq"]


def test_interaction_without_main_effect_uses_indicators() -> None:
    """R: a factor in a term is coded by contrasts only if the term without it is in the model."""
    # expected names are R 4.2 model.matrix() output
    assert build_design(frame(), "y ~ s + s:a + (1|item)").fixed_names == ["(Intercept)", "s", "s:ay", "s:az"]
    assert build_design(frame(), "y ~ s:a + (1|item)").fixed_names == ["(Intercept)", "s:ax", "s:ay", "s:az"]
    d0 = build_design(frame(), "y ~ 0 + a + (1|item)")
    assert d0.fixed_names == ["ax", "ay", "az"]


def test_numeric_forced_factor_and_categorical_reference() -> None:
    df = frame().assign(period=np.tile([1, 2, 3, 4], 12))
    assert build_design(df, "y ~ C(period) + (1|item)").fixed_names[1:] == ["period2", "period3", "period4"]
    df["a"] = pd.Categorical(df["a"], categories=["z", "x", "y"])
    assert build_design(df, "y ~ a + (1|item)").fixed_names[1:] == ["ax", "ay"]


def test_random_terms_crossed_nested_and_slopes() -> None:
    f = parse_formula("y ~ s + (1|item) + (1|item:lang) + (0 + s|lang) + (1|lang/item)")
    assert [r.group for r in f.random] == [("item",), ("item", "lang"), ("lang",), ("lang",), ("lang", "item")]
    assert f.random[2].intercept is False and f.random[2].slopes == ("s",)
    d = build_design(frame(), "y ~ s + (1|item) + (1|item:lang) + (1 + s|lang)")
    assert d.group_levels == {"item": 12, "item:lang": 24, "lang": 2}


def test_missing_column_names_it_and_lists_columns() -> None:
    with pytest.raises(UserError, match=r"not in the data: langauge; columns are: y, a, b, s, item, lang"):
        build_design(frame(), "y ~ a + (1|langauge)")


@pytest.mark.parametrize("values", [[0, 1, 2], [0.0, 0.5, 1.0], ["no", "yes", "no"]])
def test_response_must_be_binary(values: list) -> None:
    df = pd.DataFrame({"y": values * 4, "g": [1, 2, 3] * 4})
    with pytest.raises(UserError, match="response column 'y'"):
        build_design(df, "y ~ 1 + (1|g)")


def test_bool_response_and_cbind_counts() -> None:
    df = pd.DataFrame({"y": [True, False] * 3, "k": [1, 2] * 3, "n": [3, 3] * 3, "g": [1, 1, 2, 2, 3, 3]})
    assert build_design(df, "y ~ 1 + (1|g)").y.tolist() == [1.0, 0.0] * 3
    d = build_design(df, "cbind(k, n - k) ~ 1 + (1|g)")
    assert d.trials.tolist() == [3.0] * 6 and not d.bernoulli
    e = d.expanded_bernoulli()
    assert e.n_obs == 18 and e.y.sum() == 9
    with pytest.raises(UserError, match="successes 4 of trials 3"):
        build_design(df.assign(k=4), "cbind(k, n - k) ~ 1 + (1|g)")


@pytest.mark.parametrize(
    "bad", ["y ~ a + (1 g)", "y ~ (a + b", "y a + b", "y ~ a - b", "log(y) ~ a", "y ~ a + (s||item)"]
)
def test_bad_syntax_is_a_user_error(bad: str) -> None:
    with pytest.raises(UserError):
        build_design(frame(), bad)


def test_rank_deficient_design_and_missing_rows() -> None:
    df = frame().assign(a2=lambda d: d["a"])
    with pytest.raises(UserError, match="rank deficient"):
        build_design(df, "y ~ a + a2 + (1|item)")
    df = frame()
    df.loc[3, "s"] = np.nan
    d = build_design(df, "y ~ s + (1|item)")
    assert d.n_obs == 47 and "dropped 1 row" in d.notes[0]


def test_a_factor_level_whose_responses_are_all_0_or_1_is_named() -> None:
    df = frame()
    assert not any("separation" in n for n in build_design(df, "y ~ a + b + (1|item)").notes)
    df.loc[df["a"] == "x", "y"] = 0  # the reference level: the intercept and every `a` contrast go to ±∞
    df.loc[df["a"] == "z", "y"] = 1
    d = build_design(df, "y ~ a + b + (1|item)")
    assert d.notes == ["separation: every response of a x is 0, of a z is 1"]
    counts = pd.DataFrame({"k": [0, 0, 2, 3], "n": [4, 5, 4, 3], "g": ["u", "u", "v", "v"], "c": [1, 2, 1, 2]})
    notes = build_design(counts, "cbind(k, n - k) ~ g + (1|c)").notes
    assert notes == ["separation: every response of g u is 0"]  # v: 5 of 7, not all
