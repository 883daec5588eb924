"""`prunescope stats` on the committed sample study (a real study the engine made on the demo model).

The report files (REPORT.md, tables.*, csv/) must come out byte-identical to the committed ones on
any machine: they hold numbers at their printed precision and nothing machine-dependent. The GLMM is
the one part whose unrounded numbers move between machines (the optimiser's path depends on the BLAS
kernels), so it is also refitted under other OpenBLAS kernels, which is what another CPU would pick.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from stats.load import load_study, transitions
from stats.paper import KEYS as PAPER_KEYS

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion"


def _report_files(root: Path) -> list[str]:
    return [
        "REPORT.md",
        "tables.tex",
        "tables.json",
        *sorted(f"csv/{p.name}" for p in (root / "csv").glob("*.csv")),
        *sorted(f"tex/{p.name}" for p in (root / "tex").glob("*.tex")),
    ]


def test_sample_loads_paired() -> None:
    df = load_study([SAMPLE])
    assert df.attrs.get("problems", []) == []
    assert df["run_id"].nunique() == 10 and df["language"].nunique() == 8
    assert df.groupby("run_id").size().nunique() == 1  # every run holds the same items
    tr = transitions(df)
    assert len(tr) == 9 * df.groupby("run_id").size().iloc[0]  # each pruned run pairs with dense, item by item
    assert set(tr["category_dense"]) <= {"both_correct", "recognition_only", "generation_only", "both_wrong"}


def test_the_latex_tables_are_ascii() -> None:
    """pdflatex stopped at the first Σ, ✓ or ½ of tables.tex ("Unicode character not set up for use
    with LaTeX"); every symbol a table uses is now a LaTeX command, so the sample's tables are ASCII."""
    for path in [SAMPLE / "tables.tex", *sorted((SAMPLE / "tex").glob("*.tex"))]:
        text = path.read_text(encoding="utf-8")
        assert text.isascii(), (path.name, sorted({c for c in text if not c.isascii()}))


def test_stats_reproduces_the_committed_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", str(SAMPLE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Recognition-only" in out
    names = _report_files(SAMPLE)
    assert len(names) > 3 and _report_files(tmp_path) == names
    for name in names:
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert text == (SAMPLE / name).read_text(encoding="utf-8"), name
        assert not re.search(r"\d+ iterations", text), name  # no optimiser iteration count
    # the machine-dependent convergence details are written, but beside the report and never compared
    diagnostics = json.loads((tmp_path / "diagnostics.json").read_text(encoding="utf-8"))
    assert diagnostics["glmm"]["iterations"] > 0 and len(diagnostics["glmm"]["beta"]) == 17
    for name in ("recognition_vs_sparsity", "first_token_rank", "glmm_forest", "demotion", "format_ladder"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
        assert (SAMPLE / "figures" / f"{name}.png").exists()
    for key in (*PAPER_KEYS, "glmm"):
        assert f"tex/{key}.tex" in names and f"csv/{key}.csv" in names  # one LaTeX file per table


_GLMM_TABLE = """
import sys
from stats import analysis
from stats.load import load_study
from stats.report import render_csv, render_markdown

df = load_study([sys.argv[1]])
table, result = analysis.glmm_report(df, analysis.default_glmm_formula(df), "mixedlm")
sys.stdout.write(render_markdown([table]) + "\\0" + render_csv(table))
"""


@pytest.mark.parametrize("core", ["Haswell", "Prescott"])
def test_glmm_table_is_the_same_under_other_blas_kernels(core: str) -> None:
    """The optimum moves by ~1e-6 between kernels (and the iteration count changes); the printed table does not."""
    env = {**os.environ, "OPENBLAS_CORETYPE": core}
    run = subprocess.run(
        [sys.executable, "-c", _GLMM_TABLE, str(SAMPLE)], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    markdown, csv_text = run.stdout.split("\0")
    assert csv_text == (SAMPLE / "csv" / "glmm.csv").read_text(encoding="utf-8")
    assert markdown in (SAMPLE / "REPORT.md").read_text(encoding="utf-8")
