"""`prunescope stats` on the committed sample study (a real study the engine made on the demo model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from stats.load import load_study, transitions

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion"


def test_sample_loads_paired() -> None:
    df = load_study([SAMPLE])
    assert df.attrs.get("problems", []) == []
    assert df["run_id"].nunique() == 10 and df["language"].nunique() == 8
    assert df.groupby("run_id").size().nunique() == 1  # every run holds the same items
    tr = transitions(df)
    assert len(tr) == 9 * df.groupby("run_id").size().iloc[0]  # each pruned run pairs with dense, item by item
    assert set(tr["category_dense"]) <= {"both_correct", "recognition_only", "generation_only", "both_wrong"}


def test_stats_reproduces_the_committed_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", str(SAMPLE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Recognition-only" in out
    assert (tmp_path / "REPORT.md").read_text(encoding="utf-8") == (SAMPLE / "REPORT.md").read_text(encoding="utf-8")
    for name in ("recognition_vs_sparsity", "first_token_rank", "glmm_forest", "demotion", "format_ladder"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
        assert (SAMPLE / "figures" / f"{name}.png").exists()
    for key in ("transitions", "ro-denominators", "demotion", "recovery", "recovery-paired", "rank-shift", "ladder"):
        for written in (tmp_path / "tex" / f"{key}.tex", tmp_path / "csv" / f"{key}.csv"):
            assert written.read_text(encoding="utf-8") == (SAMPLE / written.relative_to(tmp_path)).read_text(
                encoding="utf-8"
            )
