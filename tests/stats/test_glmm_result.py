"""GlmmResult behaviour, flags for bad fits, backends' labelling, the CLI and import hygiene."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import UserError
from stats.glmm import fit_glmm
from stats.report import format_p

GOLDENS = Path(__file__).parent / "goldens"
CBPP = "cbind(incidence, size - incidence) ~ C(period) + (1|herd)"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return pd.read_csv(GOLDENS / "cbpp.csv")


def iid_groups(seed: int = 3) -> pd.DataFrame:
    """Groups with no between-group variance: the ML SD estimate sits on its boundary."""
    rng = np.random.default_rng(seed)
    n = 400
    return pd.DataFrame({"y": rng.integers(0, 2, n), "x": rng.normal(size=n), "g": np.repeat(np.arange(40), 10)})


def test_coef_table_json_and_report(cbpp: pd.DataFrame) -> None:
    r = fit_glmm(cbpp, CBPP)
    tab = r.coef_table()
    assert list(tab.columns) == ["term", "estimate", "se", "z", "p", "odds_ratio", "or_low", "or_high"]
    row = tab.set_index("term").loc["period2"]
    assert row.or_low < row.odds_ratio < row.or_high
    assert row.odds_ratio == pytest.approx(math.exp(row.estimate))
    assert row.or_high == pytest.approx(math.exp(row.estimate + 1.959963984540054 * row.se))
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["backend"] == "mixedlm" and d["n_groups"] == {"herd": 15} and d["converged"] is True
    assert d["variance_components"][0]["group"] == "herd"
    sentence = r.report("period4")
    p4 = tab.set_index("term").loc["period4", "p"]
    assert 1e-4 < p4 < 0.001 and f"p = {format_p(p4)}" in sentence and format_p(p4).startswith("2.")
    assert "period4" in sentence and "95% Wald CI" in sentence and "Laplace" in sentence
    assert any("Status: converged" in line for line in r.summary_lines())


def test_singular_fit_is_flagged() -> None:
    r = fit_glmm(iid_groups(), "y ~ x + (1|g)")
    assert r.singular
    assert any("SINGULAR" in line for line in r.summary_lines())
    assert "SINGULAR" in r.report()


def test_non_convergence_is_flagged(cbpp: pd.DataFrame) -> None:
    r = fit_glmm(cbpp, CBPP, maxiter=2)
    assert not r.converged
    assert any("DID NOT CONVERGE" in line for line in r.summary_lines())
    assert any("did not converge" in w for w in r.warnings)


def test_bayes_never_reports_p_values(cbpp: pd.DataFrame) -> None:
    r = fit_glmm(cbpp, CBPP, backend="bayes")
    assert not r.inferential
    tab = r.coef_table()
    assert tab[["se", "z", "p", "or_low", "or_high"]].isna().all().all()
    assert np.all(np.isfinite(tab["estimate"]))
    text = "\n".join(r.summary_lines()) + r.report()
    assert "EXPLORATORY" in text and "p =" not in text and "no p-value" in text
    assert all(c["p"] is None for c in r.to_dict()["coefficients"])
    with pytest.raises(UserError, match="likelihood"):
        r.lrt(fit_glmm(cbpp, CBPP))


def test_lrt_refuses_different_data_and_non_nested(cbpp: pd.DataFrame) -> None:
    full = fit_glmm(cbpp, CBPP)
    other = fit_glmm(cbpp.assign(incidence=cbpp["incidence"].clip(upper=1)), CBPP)
    with pytest.raises(UserError, match="same rows"):
        full.lrt(other)
    with pytest.raises(UserError, match="different numbers of parameters"):
        full.lrt(full)


def test_bad_backend_and_option(cbpp: pd.DataFrame) -> None:
    with pytest.raises(UserError, match="unknown GLMM backend 'glmmTMB'"):
        fit_glmm(cbpp, CBPP, backend="glmmTMB")
    with pytest.raises(UserError, match="does not take option"):
        fit_glmm(cbpp, CBPP, nagq=2)
    with pytest.raises(UserError, match="no random term"):
        fit_glmm(cbpp, "cbind(incidence, size - incidence) ~ C(period)")


def test_cli_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import argparse

    from stats.glmm.commands import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["glmm", "--data", str(GOLDENS / "cbpp.csv"), "--formula", CBPP, "--json"])
    assert args.backend == "mixedlm"
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["coefficients"][1]["term"] == "period2"
    bad = parser.parse_args(["glmm", "--data", str(GOLDENS / "cbpp.csv"), "--formula", "incidence ~ perod + (1|herd)"])
    with pytest.raises(UserError, match="perod"):
        bad.func(bad)
    missing = parser.parse_args(["glmm", "--data", str(tmp_path / "nope.csv"), "--formula", CBPP])
    with pytest.raises(UserError, match="no such file"):
        missing.func(missing)


def test_import_is_light() -> None:
    code = (
        "import sys, stats.glmm, stats.glmm.commands; "
        "bad = [m for m in ('torch', 'transformers', 'mixedlm', 'statsmodels') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_missing_rscript_is_a_clear_error(cbpp: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="Rscript is not on PATH"):
        fit_glmm(cbpp, CBPP, backend="lme4")


@pytest.mark.skipif(
    shutil.which("Rscript") is None, reason="environment: R (Rscript) is not installed; the lme4 backend needs it"
)
def test_lme4_backend_reproduces_golden() -> None:
    """The backend runs the golden's own call; R's Nelder–Mead stops at a slightly different point of a
    flat optimum on another BLAS build (here: β within 4e-5, logLik within 2e-8), so the tolerances are
    the GLMM agreement ones of the goldens test."""
    g = json.loads((GOLDENS / "sim_slope_crossed.json").read_text())
    df = pd.read_csv(GOLDENS / g["data"])
    r = fit_glmm(df, g["formula_python"], backend="lme4", tolPwrss=1e-10)
    assert r.terms == g["fixef_names"] and r.converged and not r.singular
    beta = np.asarray(g["fixef"])
    np.testing.assert_array_less(np.abs(r.estimates - beta), 1e-3 * (1 + np.abs(beta)))
    np.testing.assert_allclose(r.se, g["se_hessian"], rtol=1e-2)
    assert r.loglik == pytest.approx(g["loglik"], abs=1e-3)
    assert [vc.group for vc in r.variance_components] == ["item", "language"]
    assert r.variance_components[0].terms == ("(Intercept)", "sparsity_c")
    assert "lme4 1.1" in r.backend_version and "Hessian" in r.se_method


@pytest.mark.skipif(
    shutil.which("Rscript") is None, reason="environment: R (Rscript) is not installed; the lme4 backend needs it"
)
def test_a_singular_fit_converges_in_both_backends() -> None:
    """lme4 files "boundary (singular) fit" among its convergence messages; its optimizer converged all
    the same (code 0), as mixedlm says: singular, not DID NOT CONVERGE."""
    rng = np.random.default_rng(0)
    rows = [
        (f"i{i}", c, int(rng.random() < p)) for i in range(30) for c, p in (("dense", 0.5), ("a", 0.4), ("b", 0.35))
    ]
    df = pd.DataFrame(rows, columns=["item", "condition", "y"])
    for backend in ("mixedlm", "lme4"):
        r = fit_glmm(df, "y ~ condition + (1|item)", backend=backend)
        assert r.converged and r.singular, backend


@pytest.mark.skipif(
    shutil.which("Rscript") is None, reason="environment: R (Rscript) is not installed; the lme4 backend needs it"
)
def test_lme4_says_each_convergence_problem_once() -> None:
    """The layer-trace sample's GLMM (language ar separated): lme4's 'Model failed to converge with
    max|grad| = ...' came twice, from its convergence messages and again as an R warning."""
    from stats.analysis import default_glmm_formula, glmm_frame
    from stats.load import load_study

    df = load_study([ROOT / "sample_runs" / "smollm2-layer-trace"])
    r = fit_glmm(glmm_frame(df), default_glmm_formula(df), backend="lme4")
    failed = [w for w in r.warnings if w.startswith("Model failed to converge")]
    assert not r.converged and len(failed) == 1 and len(r.warnings) == len(set(r.warnings)), r.warnings


def test_odds_ratio_limits_past_double_range_are_infinite_without_a_warning(cbpp: pd.DataFrame) -> None:
    """Near-separation gives a Wald limit beyond e^709: the table holds +inf, and no NumPy warning leaks out."""
    import dataclasses
    import warnings

    r = fit_glmm(cbpp, CBPP)
    huge = dataclasses.replace(r, se=np.full(len(r.terms), 400.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tab = huge.coef_table()
    assert np.isinf(tab["or_high"]).all() and (tab["or_low"] >= 0).all()


def test_odds_ratios_and_columns_stay_readable_far_from_one() -> None:
    from stats.glmm.result import _fixed, format_ratio

    assert [format_ratio(x) for x in (1.2345, 0.0, 1.3e44, 3.1e-7, math.inf, math.nan)] == [
        "1.234",
        "0.000",
        "1.3e+44",
        "3.1e-07",
        "inf",
        "nan",
    ]
    assert _fixed(0.5, 9, 4) == "   0.5000" and _fixed(122360.6789, 9, 4) == " 1.22e+05"  # never touches its neighbour


def test_a_typo_in_a_numeric_column_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stats.glmm.commands import _read_table

    rows = "".join(f"{i % 2},0.{i % 7},g{i % 5}\n" for i in range(30))
    (tmp_path / "t.csv").write_text("y,x,g\n" + rows + "1,abc,g1\n", encoding="utf-8")
    _read_table(str(tmp_path / "t.csv"))
    assert "column 'x' is read as a factor (text) because of line 32: 'abc'" in capsys.readouterr().err


def test_a_fit_stopped_where_mixedlm_cannot_evaluate_its_deviance_is_not_converged(tmp_path: Path) -> None:
    """Pruned runs that repeat the dense run's outcomes: mixedlm's Laplace deviance is infinite past
    θ ≈ 3, so its optimizer stopped there and said converged (logLik −73.66, lme4 −72.51 at θ 6.48,
    with zero condition effects); the fit is marked not converged and says to use lme4."""
    from stats.api import StatsOptions, analyse
    from tests.synthetic import make_synthetic_study

    runs = make_synthetic_study(tmp_path / "s", n_per_language=20, languages=("en", "de"))
    dense = next(r for r in runs if r.name.endswith("dense"))
    for run in runs:
        if run != dense:
            shutil.copy(dense / "outcomes.jsonl", run / "outcomes.jsonl")
    result = analyse([tmp_path / "s"], StatsOptions(tests=("recognition",)))
    assert result.glmm is not None and not result.glmm.converged
    assert any("stops being finite" in w and "--glmm-backend lme4" in w for w in result.glmm.warnings)


def test_a_model_the_data_cannot_fit_is_named_and_every_other_table_kept(tmp_path: Path) -> None:
    """One item (a random effect of one level) and a constant response are refused as lme4 refuses
    them; `stats` keeps its other tables and says in the GLMM's why it is not fitted (an internal
    error used to lose the whole report)."""
    from stats.api import StatsOptions, analyse
    from tests.synthetic import make_synthetic_study

    one = pd.DataFrame({"item": ["i0"] * 4, "condition": ["dense", "a"] * 2, "y": [0, 1, 1, 0]})
    with pytest.raises(UserError, match=r"grouping factor 'item' of .* has 1 level"):
        fit_glmm(one, "y ~ condition + (1|item)")
    flat = pd.DataFrame({"item": ["i0", "i1"] * 2, "condition": ["dense"] * 2 + ["a"] * 2, "y": [0] * 4})
    with pytest.raises(UserError, match="is constant"):
        fit_glmm(flat, "y ~ condition + (1|item)")
    make_synthetic_study(tmp_path / "s", n_per_language=1, languages=("en",))
    result = analyse([tmp_path / "s"], StatsOptions(tests=("recognition",)))
    glmm = result.tables[-1]
    assert result.glmm is None and glmm.key == "glmm" and not glmm.records
    assert glmm.notes[0].startswith("Not fitted: ") and len(result.tables) > 1


def test_a_separated_term_has_no_odds_ratio_and_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Every dense response is 1: its coefficient runs off to ~100 (an OR of 4e44 with CI [0, ∞] used to be
    printed as an estimate); the OR and CI are not estimable, β̂, SE, z and p are kept as fitted."""
    rng = np.random.default_rng(1)
    rates = (("dense", 1.0), ("a", 0.3), ("b", 0.6))
    rows = [(f"i{i}", c, int(rng.random() < p)) for i in range(30) for c, p in rates]
    df = pd.DataFrame(rows, columns=["item", "condition", "y"])
    for backend in ("mixedlm", "gee"):  # GEE's sandwich SE of the separated term is small, not huge
        r = fit_glmm(df, "y ~ condition + (1|item)", backend=backend)
        tab = r.coef_table().set_index("term")
        dense = tab.loc["conditiondense"]
        assert dense.estimate == r.estimates[2] > 10 and np.isnan(dense[["odds_ratio", "or_low", "or_high"]]).all()
        assert dense.se == r.se[2] and dense.p == r.p[2]
        assert np.isfinite(tab.loc["conditionb", ["odds_ratio", "or_low", "or_high"]].astype(float)).all()
        assert "separation: every response of condition dense is 1" in r.warnings
        row = next(line for line in r.summary_lines() if line.startswith("conditiondense"))
        assert "> 1e4   not estimable (separation)" in row and "e+" not in row.split("> 1e4")[1]
        assert "conditiondense: log-OR" in r.report() and "OR > 1e4, not estimable (separation), z =" in r.report()
        coef = json.loads(json.dumps(r.to_dict(), allow_nan=False))["coefficients"][2]
        assert coef["separated"] and coef["odds_ratio"] is None and coef["estimate"] > 10
    (tmp_path / "t.csv").write_text(df.to_csv(index=False), encoding="utf-8")
    from engine.cli import main

    assert main(["glmm", "--data", str(tmp_path / "t.csv"), "--formula", "y ~ condition + (1|item)"]) == 0
    out = capsys.readouterr().out
    assert "not estimable (separation)" in out and "e+44" not in out
