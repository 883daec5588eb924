"""`prunescope rescore`: a derived study, graded again from the stored texts, the source left alone."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine.rescore as rescore_mod
from engine.cli import main
from engine.contract.reader import ITEMS, MANIFEST, OUTCOMES, discover_runs, iter_outcomes, read_manifest
from engine.errors import UserError
from engine.matching import DEFAULT_SCORING, Scoring
from engine.rescore import STAGING, rescore_study
from engine.runfolder import validate_run

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion"


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample re-scored under the default, unguarded containment and exact match (made once)."""
    base = tmp_path_factory.mktemp("rescore")
    before = _digest(SAMPLE)
    out = {}
    for name, scoring in (
        ("default", DEFAULT_SCORING),
        ("unguarded", Scoring.parse("contains", "none")),
        ("exact", Scoring.parse("exact")),
    ):
        out[name] = base / name
        rescore_study(SAMPLE, out[name], scoring)
    assert _digest(SAMPLE) == before  # the source is only read
    return out


def test_the_default_scoring_reproduces_the_sample_lines_exactly(derived: dict[str, Path]) -> None:
    """The sample was graded with the default scoring, so grading it again changes no byte of its lines."""
    runs = discover_runs(SAMPLE)
    assert [r.name for r in discover_runs(derived["default"])] == [r.name for r in runs]
    for run in runs:
        new = derived["default"] / run.name
        assert (new / OUTCOMES).read_bytes() == (run / OUTCOMES).read_bytes()
        assert (new / ITEMS).read_bytes() == (run / ITEMS).read_bytes()
        m, src = read_manifest(new), read_manifest(run)
        assert m["matching"] == src["matching"] == DEFAULT_SCORING.to_dict()
        assert m["derived_from"] == {
            "run": str(run.resolve()),
            "outcomes_sha256": "sha256:" + hashlib.sha256((run / OUTCOMES).read_bytes()).hexdigest(),
            "n_outcomes": 96,
            "matching": src["matching"],
        }
        assert {k: v for k, v in m.items() if k != "derived_from"} == src
        assert validate_run(new) == []


def test_without_guards_the_two_loops_of_issue_18_are_credited_again(derived: dict[str, Path]) -> None:
    from stats.load import load_study

    df = load_study(derived["unguarded"])  # stats reads a derived study like any study
    guarded = load_study(derived["default"])
    pruned = df[df["open_correct"] & (df["method"] != "dense")]
    kept = guarded[guarded["open_correct"] & (guarded["method"] != "dense")]
    assert sorted(zip(kept["run_id"].astype(str), kept["open_text"])) == [
        ("demo__sparsegpt-s50", "The chemical symbol for potassium is K.")  # a real answer: guarded keeps it
    ]
    assert sorted(zip(pruned["run_id"].astype(str), pruned["open_text"])) == [
        ("demo__magnitude-s70", "Sou C M K M K M K M K M K M K"),
        ("demo__magnitude-s70", "by by by M and M. M K M K"),
        ("demo__sparsegpt-s50", "The chemical symbol for potassium is K."),
    ]
    assert read_manifest(derived["unguarded"] / "demo__dense")["matching"]["guards"] == []


def test_an_open_failure_without_probes_is_not_probed_never_erased(derived: dict[str, Path]) -> None:
    """Under exact match the dense run's verbose right answers fail; probes ran only on failed items."""
    src = {r["item_uid"]: r for r in iter_outcomes(SAMPLE / "demo__dense")}
    flipped = [r for r in iter_outcomes(derived["exact"] / "demo__dense") if src[r["item_uid"]]["open"]["correct"]]
    assert len(flipped) == 10 and not any(r["open"]["correct"] for r in flipped)
    for r in flipped:
        assert r["probes"] is None
        near = r["gold_trace"]["first_token_rank"] <= 10
        assert r["demotion"] == ("demoted" if near else "not_probed")
        assert r["category"] == ("recognition_only" if r["mc"]["correct"] else "both_wrong")
    assert any(r["demotion"] == "not_probed" for r in flipped)


def test_rescore_command_reports_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exact"
    assert main(["rescore", str(SAMPLE), "--out", str(out), "--rule", "exact", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "scoring: exact (matching v4)" in text
    assert "demo__dense: 96; open 10 -> 0;" in text and "never probed" in text
    # again into the same folder: the earlier derived runs are replaced, nothing is left in staging
    assert main(["rescore", str(SAMPLE), "--out", str(out), "--rule", "f1>=0.5", "--guards", "loop"]) == 0
    assert read_manifest(out / "demo__dense")["matching"]["rule"] == "f1"
    assert read_manifest(out / "demo__dense")["matching"]["guards"] == ["loop"]
    assert not any((out / STAGING).iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rule", "f1"], r"f1>=X .*quote it"),
        (["--rule", "f1>=1.5"], r"0 < X <= 1"),
        (["--rule", "fuzzy"], r"choose exact, contains or f1>=X"),
        (["--guards", "hedge,loops"], r"unknown 'loops'"),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["rescore", str(SAMPLE), "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prunescope rescore: error: ") and len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err


def _small_study(tmp_path: Path) -> Path:
    study = tmp_path / "study"
    study.mkdir(parents=True)
    shutil.copytree(SAMPLE / "demo__dense", study / "demo__dense")
    return study


def test_never_writes_into_the_source(tmp_path: Path) -> None:
    study = _small_study(tmp_path)
    for out in (study, study / "demo__dense", study / "demo__dense" / "derived"):
        with pytest.raises(UserError, match="never rewrites the original lines"):
            rescore_study(study, out, DEFAULT_SCORING)
    other = _small_study(tmp_path / "other")  # a folder of runs that rescore did not write
    with pytest.raises(UserError, match="demo__dense is a run folder that rescore did not write"):
        rescore_study(study, other, DEFAULT_SCORING)
    rescore_study(study, study / "derived", DEFAULT_SCORING)  # a new folder inside the study is fine
    assert validate_run(study / "derived" / "demo__dense") == []


def test_bad_source_lines_are_named(tmp_path: Path) -> None:
    study = _small_study(tmp_path)
    run = study / "demo__dense"
    lines = (run / OUTCOMES).read_text(encoding="utf-8").splitlines(keepends=True)
    stray = json.loads(lines[2])
    stray["item_uid"] = "nope/0/en"
    (run / OUTCOMES).write_text("".join(lines[:2]) + json.dumps(stray) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{OUTCOMES}:3: item 'nope/0/en' is not in"):
        rescore_study(study, tmp_path / "a", DEFAULT_SCORING)
    (run / OUTCOMES).write_text("".join(lines[:2]) + lines[1], encoding="utf-8")
    with pytest.raises(UserError, match=rf"{OUTCOMES}:3: duplicate item .*validate --repair"):
        rescore_study(study, tmp_path / "dup", DEFAULT_SCORING)
    (run / OUTCOMES).write_text("".join(lines[:2]) + "{not json\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{OUTCOMES}:3: corrupt line"):
        rescore_study(study, tmp_path / "b", DEFAULT_SCORING)
    (run / OUTCOMES).write_text("".join(lines), encoding="utf-8")
    manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
    del manifest["demotion_rule"], manifest["resume_identity"]
    (run / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(UserError, match=r"manifest.json: no demotion_rule.max_rank"):
        rescore_study(study, tmp_path / "c", DEFAULT_SCORING)
    with pytest.raises(UserError, match="no such study"):
        rescore_study(tmp_path / "missing", tmp_path / "d", DEFAULT_SCORING)


def _edit_manifest(run: Path, **fields: object) -> None:
    manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
    (run / MANIFEST).write_text(json.dumps({**manifest, **fields}), encoding="utf-8")


def _edit_line(path: Path, index: int, *keys: str, value: object) -> None:
    """Set `keys` (a path into the record) of the line at 0-based `index` of a JSONL file to `value`."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    rec = json.loads(lines[index])
    inner = rec
    for key in keys[:-1]:
        inner = inner[key]
    inner[keys[-1]] = value
    lines[index] = json.dumps(rec, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize(("status", "tail"), [("running", b'{"item_uid": "half'), ("failed", b"")])
def test_an_unfinished_run_keeps_its_status_and_a_torn_last_line_is_left_out(
    tmp_path: Path, status: str, tail: bytes
) -> None:
    study = _small_study(tmp_path)
    run = study / "demo__dense"
    _edit_manifest(run, status=status)
    data = b"".join((run / OUTCOMES).read_bytes().splitlines(keepends=True)[:90])
    (run / OUTCOMES).write_bytes(data + tail)
    rescore_study(study, tmp_path / "out", DEFAULT_SCORING)
    new = tmp_path / "out" / "demo__dense"
    m = read_manifest(new)
    assert m["status"] == status
    assert m["derived_from"]["n_outcomes"] == 90
    assert m["derived_from"]["outcomes_sha256"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert validate_run(new) == []


def _break_torn(run: Path) -> None:
    (run / OUTCOMES).write_bytes((run / OUTCOMES).read_bytes() + b'{"item_uid": "half')


def _break_empty(run: Path) -> None:
    (run / OUTCOMES).write_bytes(b"")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_break_torn, rf"{OUTCOMES}: torn last line in a run that is not running"),
        (_break_empty, rf"{OUTCOMES}: run is complete but 96 items have no outcome"),
        (lambda run: _edit_line(run / OUTCOMES, 4, "language", value=5), rf"{OUTCOMES}:5: language: 5 is not"),
        (
            lambda run: _edit_line(run / OUTCOMES, 6, "gold_trace", "first_token_rank", value=-3),
            rf"{OUTCOMES}:7: gold_trace/first_token_rank: -3 is",
        ),
        (lambda run: _edit_line(run / OUTCOMES, 0, "open", "correct", value="yes"), rf"{OUTCOMES}:1: open/correct"),
        (lambda run: _edit_line(run / ITEMS, 3, "options", value="a|b"), rf"{ITEMS}:4: options: 'a\|b' is not"),
        (lambda run: _edit_line(run / ITEMS, 8, "gold_index", value="1"), rf"{ITEMS}:9: gold_index: '1' is not"),
        (lambda run: _edit_line(run / ITEMS, 2, "question", value=None), rf"{ITEMS}:3: question: None is not"),
    ],
)
def test_an_invalid_source_run_is_refused_before_anything_is_written(
    tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    """What `prunescope validate` (and so `stats`) refuses, rescore refuses too, naming file and line."""
    study = _small_study(tmp_path)
    shutil.copytree(SAMPLE / "demo__wanda-s50", study / "demo__wanda-s50")
    damage(study / "demo__wanda-s50")  # the second run: the first is not written either
    assert validate_run(study / "demo__wanda-s50")
    with pytest.raises(UserError, match=rf"demo__wanda-s50/{message}.*`prunescope validate` accepts"):
        rescore_study(study, tmp_path / "out", DEFAULT_SCORING)
    assert not (tmp_path / "out").exists()


def test_blank_lines_count_in_the_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines are named as `validate` names them: by their line in the file, blank lines included."""
    study = _small_study(tmp_path)
    run = study / "demo__dense"
    lines = (run / OUTCOMES).read_text(encoding="utf-8").splitlines(keepends=True)
    stray = json.loads(lines[3])
    stray["item_uid"] = "nope/0/en"
    (run / OUTCOMES).write_text("".join(lines[:2]) + "\n \n" + json.dumps(stray) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{OUTCOMES}:5: item 'nope/0/en' is not in"):
        rescore_study(study, tmp_path / "a", DEFAULT_SCORING)
    # the lines rescore itself names (a grading failure after validation passed) are numbered the same way
    _edit_manifest(run, status="running")
    (run / OUTCOMES).write_text("".join(lines[:2]) + "\n \n" + lines[2], encoding="utf-8")
    bad = json.loads(lines[2])["item_uid"]
    real = rescore_mod.regrade

    def regrade(rec: dict[str, Any], *args: Any) -> dict[str, Any]:
        if rec["item_uid"] == bad:
            raise AttributeError("'int' object has no attribute 'lower'")
        return real(rec, *args)

    monkeypatch.setattr(rescore_mod, "regrade", regrade)
    with pytest.raises(UserError, match=rf"{OUTCOMES}:5: cannot grade item {bad!r}: this line or its item") as exc:
        rescore_study(study, tmp_path / "b", DEFAULT_SCORING)
    assert "AttributeError" not in str(exc.value) and "lower" not in str(exc.value)


def test_a_bad_item_or_a_missing_file_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = _small_study(tmp_path)
    run = study / "demo__dense"
    _edit_line(run / ITEMS, 4, "language", value=7)
    assert main(["rescore", str(study), "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{ITEMS}:5: language: 7 is not of type 'string'" in err and "Error" not in err, err
    (run / ITEMS).write_bytes((SAMPLE / "demo__dense" / ITEMS).read_bytes())
    (run / OUTCOMES).unlink()
    assert main(["rescore", str(study), "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{run / OUTCOMES}: missing" in err and "Errno" not in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
