"""The matching rules' robustness table of `prunescope stats`, on the committed sample study."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import iter_outcomes, read_items
from engine.matching import AnswerKey, Scoring, grade
from stats.load import load_study
from stats.robustness import RULES, matching_findings, matching_report, stored_scoring

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion"


@pytest.fixture(scope="module")
def table():
    return matching_report(load_study([SAMPLE]))


def test_every_cell_is_the_direct_grading_of_the_stored_texts(table) -> None:
    """Recomputed here from the run folders with the matcher itself, line by line."""
    items = {it["item_uid"]: it for it in read_items(SAMPLE / "demo__dense")}
    by_run = {r["run_id"]: r for r in table.records}
    assert len(by_run) == 10
    for run_id, rec in by_run.items():
        lines = list(iter_outcomes(SAMPLE / run_id))
        assert rec["n"] == len(lines) == 96
        verdicts = {
            key: [grade(r["open"]["text"], AnswerKey.from_item(items[r["item_uid"]]), s).correct for r in lines]
            for key, _, s in RULES
        }
        for key, v in verdicts.items():
            assert rec[f"open_{key}"] == pytest.approx(sum(v) / 96)
            ro = sum(r["mc"]["correct"] and not ok for r, ok in zip(lines, v))
            assert rec[f"ro_{key}"] == pytest.approx(ro / 96)
        rows = list(zip(*verdicts.values()))
        assert rec["changed"] == sum(len(set(row)) > 1 for row in rows)
        assert rec["changed_vs_guarded_exact"] == sum(a != b for a, b in zip(verdicts["exact"], verdicts["guarded"]))
        # the stored scoring is the guarded default: its column is what the run folders say
        assert verdicts["guarded"] == [r["open"]["correct"] for r in lines]


def test_what_the_sample_shows(table) -> None:
    rows = {r["condition"]: r for r in table.records}
    assert table.records[0]["condition"] == "dense"
    assert rows["dense"]["open_guarded"] == rows["dense"]["open_contains"] == pytest.approx(10 / 96)
    assert rows["dense"]["open_exact"] == 0.0  # the dense model answers in sentences
    # the two credits of issue 18 exist only without guards
    assert rows["magnitude-s70"]["open_contains"] == pytest.approx(2 / 96)
    assert rows["magnitude-s70"]["open_guarded"] == 0.0 and rows["magnitude-s70"]["changed"] == 2
    assert rows["magnitude-s70"]["loops"] > rows["dense"]["loops"]
    (line,) = matching_findings(table)
    assert "dense 0.0% / 10.4% / 10.4% / 1.0%" in line and "change category between the rules" in line
    assert "contains with guards hedge, loop, short (matching v4)" in table.notes[-1]


def test_markdown_report_shows_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", str(SAMPLE), "--no-glmm", "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "## Open-generation matching rules (robustness)" in md
    header = "| model | condition | n | open: exact | open: guarded | open: contains | open: F1 ≥ 0.5 |"
    assert header in md
    assert "open accuracy under the matching rules exact, guarded, contains, F1 ≥ 0.5" in md  # the summary


def test_stored_scoring_names_old_and_new_blocks() -> None:
    assert stored_scoring({"function": "engine.matching.match_answer", "containment": True}) == (
        "contains without guards (matching v1)"
    )
    assert (
        stored_scoring(Scoring.parse("f1>=0.6", "loop").to_dict()) == "token F1 >= 0.6 with guards loop (matching v4)"
    )
    assert stored_scoring(Scoring.parse("exact").to_dict()) == "exact (matching v4)"
    assert stored_scoring(None) == "not recorded"
    older = {**Scoring.parse().to_dict(), "version": 3}  # a run made by the matcher before this one
    assert stored_scoring(older) == "contains with guards hedge, loop, short (matching v3)"


def test_the_note_names_the_task_metric_of_runs_imported_with_grade_task(tmp_path: Path) -> None:
    """An lm-eval import with --grade task stores the task's own verdicts; the note said they were the
    matcher's ('contains with guards ...')."""
    logs = Path(__file__).resolve().parents[1] / "engine" / "importers" / "fixtures" / "lm_eval" / "runs"
    out = tmp_path / "study"
    assert main(["import", "lm-eval", str(logs), "--out", str(out), "--grade", "task"]) == 0
    note = matching_report(load_study([out])).notes[-1]
    assert note == (
        "The other tables use the scoring stored in the run folders: the task's own metric (== 1) "
        "(imported with --grade task)."
    )
