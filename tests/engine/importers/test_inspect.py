"""`prunescope import inspect` on real Inspect AI 0.3.285 logs (tests/engine/importers/fixtures/inspect/README.md):
the documented format read as inspect_ai reads it, valid run folders, verdicts equal to Inspect's scores."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import iter_outcomes, read_manifest
from engine.importers.inspect_logs import read_log
from engine.runfolder import validate_run
from stats.api import StatsOptions, analyse

HERE = Path(__file__).parent / "fixtures" / "inspect"
LOGS = HERE / "logs"
DENSE = "SmolLM2-135M-Instruct"
PRUNED = "SmolLM2-135M-Instruct-wanda-s50"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inspect") / "study"
    assert main(["import", "inspect", str(LOGS), "--out", str(out), "--baseline", DENSE]) == 0
    return out


def test_reader_finds_what_inspect_ai_finds() -> None:
    view = json.loads((HERE / "inspect_ai_view.json").read_text(encoding="utf-8"))
    assert len(view) == 4
    for rel, expected in view.items():
        task = read_log(LOGS / rel)
        assert task.name == expected["task"] and task.model == expected["model_path"]
        got = {}
        for _, s in task.samples:
            name, score = next(iter(s["scores"].items()))
            got[str(s["id"])] = {
                "target": s["target"],
                "choices": s.get("choices"),
                "completion": s["output"]["completion"],
                "score": [name, score["value"], score.get("answer")],
            }
        assert got == expected["samples"]


@pytest.mark.parametrize("model", [DENSE, PRUNED])
def test_import_gives_valid_runs_with_inspects_verdicts(study: Path, model: str) -> None:
    run = study / model
    assert validate_run(run) == []
    manifest = read_manifest(run)
    assert manifest["imported"]["harness"] == "inspect" and manifest["imported"]["version"] == "0.3.285"
    assert manifest["imported"]["pairs"] == [{"mc": "psqa_mc", "open": "psqa_gen"}]
    view = json.loads((HERE / "inspect_ai_view.json").read_text(encoding="utf-8"))
    scores = {
        (log["task"], sid): s["score"][1]
        for rel, log in view.items()
        if rel.startswith(model + "/")
        for sid, s in log["samples"].items()
    }
    outcomes = list(iter_outcomes(run))
    assert len(outcomes) == 16
    for out in outcomes:
        sid = out["item_uid"].split("/")[3]
        assert out["mc"]["correct"] == (scores[("psqa_mc", sid)] == "C")
        assert out["open"]["harness"]["correct"] == (scores[("psqa_gen", sid)] == "C")
        assert out["mc"]["rule"] == "generated_letter" and out["mc"]["scores"] is None
        assert all(o["loglik"] is None for o in out["mc"]["options"])
        assert out["gold_trace"] is None and out["probes"] is None
    assert [o["item_uid"].split("/")[3] for o in outcomes][:2] == ["capital-france-en", "capital-australia-en"]


def test_stats_pairs_the_two_models(study: Path) -> None:
    result = analyse([study], StatsOptions(tests=("open",), glmm=False))
    (rec,) = result.tables[0].records
    assert rec["n"] == 16 and (rec["b"], rec["c"]) == (0, 7)


def test_malformed_logs_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.eval"
    bad.write_bytes(b"not a zip")
    assert main(["import", "inspect", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}: not an Inspect .eval log (not a zip archive)" in capsys.readouterr().err
    src = next(LOGS.rglob("*psqa-mc*.eval"))
    broken = tmp_path / "broken.eval"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(broken, "w") as zout:
        for name in zin.namelist():
            if name != "header.json":
                zout.writestr(name, b"{}")
    assert main(["import", "inspect", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert f"{broken}: header.json missing" in capsys.readouterr().err
    log = tmp_path / "log.json"
    log.write_text(json.dumps({"eval": {"task": "t"}, "status": "success", "samples": [{"id": 1}]}), encoding="utf-8")
    assert main(["import", "inspect", str(log), "--out", str(tmp_path / "o")]) == 2
    assert f"{log}: samples[0]: key 'input' missing" in capsys.readouterr().err
    log.write_text('{"eval": ', encoding="utf-8")
    assert main(["import", "inspect", str(log), "--out", str(tmp_path / "o")]) == 2
    assert f"{log}:1: not valid JSON" in capsys.readouterr().err


def test_json_files_that_are_not_logs_are_passed_over_in_a_folder(
    tmp_path: Path, study: Path, capsys: pytest.CaptureFixture
) -> None:
    """`inspect eval-set` writes logs.json into the log folder, and a study may sit inside it: neither
    stops the import of the folder; a file given by name must be a log."""
    logs = tmp_path / "logs"
    shutil.copytree(LOGS, logs)
    (logs / DENSE / "logs.json").write_text('{"x.eval": {"name": "x"}}', encoding="utf-8")
    shutil.copytree(study, logs / "study")
    assert main(["import", "inspect", str(logs), "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "passed over" in err and "not Inspect logs" in err
    for model in (DENSE, PRUNED):
        assert (tmp_path / "s" / model / "outcomes.jsonl").read_bytes() == (
            study / model / "outcomes.jsonl"
        ).read_bytes()
    assert main(["import", "inspect", str(logs / DENSE / "logs.json"), "--out", str(tmp_path / "t")]) == 2
    assert "not an Inspect log" in capsys.readouterr().err


def test_a_generation_task_whose_samples_carry_choices_stays_a_generation_task() -> None:
    """MC is told by Inspect's `choice()` scorer or `multiple_choice()` solver, and in a log that names
    neither, by targets that are option letters: a generation task with `choices` (its answer as the
    target) is not taken for the MC twin."""
    mc = read_log(next(LOGS.rglob("*psqa-mc*.eval")))
    gen = read_log(next(LOGS.rglob("*psqa-gen*.eval")))
    assert mc.is_mc and not gen.is_mc
    for _, s in gen.samples:
        s["choices"] = ["Paris", "Lyon", "Nice", "Lille"]
    assert not gen.is_mc
    mc.header = {**mc.header, "eval": {**mc.eval, "scorers": []}, "plan": {"steps": []}}
    assert mc.is_mc  # no scorer or solver named: letters as targets
    for _, s in mc.samples:
        s["target"] = s["choices"][0]
    assert not mc.is_mc
