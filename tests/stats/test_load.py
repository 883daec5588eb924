"""Loading run folders into the tidy table, and dense → pruned pairing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import msgspec
import pytest

from engine.contract.index import OutcomeView
from engine.contract.labels import CATEGORIES, category
from engine.contract.reader import read_json
from engine.errors import UserError
from engine.runfolder import dumps_line, load_schema, write_json_atomic
from stats.load import COLUMNS, load_study, transitions
from tests.synthetic import make_synthetic_study

CONDS = (("dense", 0.0, "unstructured"), ("wanda", 0.5, "unstructured"), ("wanda", 0.7, "unstructured"))


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    make_synthetic_study(tmp_path / "study", n_per_language=12, languages=("en", "sw"), conditions=CONDS, seed=3)
    return tmp_path / "study"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(dumps_line(r) for r in records), encoding="utf-8")


def test_tidy_table(study: Path) -> None:
    df = load_study(study)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 3 * 24
    assert set(df["condition"].astype(str)) == {"dense", "wanda-s50", "wanda-s70"}
    raw = {r["item_uid"]: r for r in _lines(study / "tiny-llama__wanda-s50" / "outcomes.jsonl")}
    sub = df[df["run_id"] == "tiny-llama__wanda-s50"]
    for row in sub.itertuples():
        rec = raw[row.item_uid]
        assert row.open_correct == rec["open"]["correct"] and row.mc_correct == rec["mc"]["correct"]
        assert row.recognition_only == (rec["category"] == "recognition_only")
        assert row.first_token_rank == rec["gold_trace"]["first_token_rank"]
        assert row.parallel_id == row.item_uid.split("/")[3]
        if rec["probes"]:
            assert row.beam_any == rec["probes"]["beam"]["hit_any"]
            assert row.sample_hits == rec["probes"]["sampling"]["hits"]
    assert df["log_params"].iloc[0] == pytest.approx(8.1303, abs=1e-4)
    # the same table from a list of run folders
    runs = sorted(p for p in study.iterdir() if p.is_dir())
    assert len(load_study(runs)) == len(df)


def test_transitions_pair_by_item(study: Path) -> None:
    df = load_study(study)
    tr = transitions(df)
    assert len(tr) == 2 * 24
    assert set(tr["reference_run"].astype(str)) == {"tiny-llama__dense"}
    dense = df[df["method"] == "dense"].set_index("item_uid")
    for row in tr.head(10).itertuples():
        assert row.recognition_only_dense == dense.loc[row.item_uid, "recognition_only"]
        assert row.transition == f"{row.category_dense}→{row.category_pruned}"


def test_run_in_progress_and_corrupt_line(study: Path) -> None:
    run = study / "tiny-llama__wanda-s70"
    manifest = read_json(run / "manifest.json")
    manifest["status"] = "running"
    write_json_atomic(run / "manifest.json", manifest)
    path = run / "outcomes.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:10]) + lines[10][:40], encoding="utf-8")  # torn tail only: fast path
    info = {r["run_id"]: r for r in load_study(study).attrs["runs"]}["tiny-llama__wanda-s70"]
    assert info["torn_tail"] and info["n_outcomes"] == 10 and info["corrupt_lines"] == 0
    # 10 complete lines, one corrupt line (line 5), and a torn tail being written
    body = lines[:4] + ['{"item_uid": "broken\n'] + lines[5:10] + [lines[10][:40]]
    path.write_text("".join(body), encoding="utf-8")
    df = load_study(study)
    info = {r["run_id"]: r for r in df.attrs["runs"]}["tiny-llama__wanda-s70"]
    assert info["torn_tail"] and info["n_outcomes"] == 9 and info["corrupt_lines"] == 1
    assert any(p.startswith(f"{path}:5: corrupt line") for p in df.attrs["problems"])
    tr = transitions(df)
    assert (tr["run_id"] == "tiny-llama__wanda-s70").sum() == 9
    assert tr.attrs["unfinished"] == {"tiny-llama__wanda-s70": 24 - 9}
    with pytest.raises(UserError, match=r":5: corrupt line"):
        load_study(study, strict=True)


def test_fast_and_fallback_paths_agree(study: Path) -> None:
    fast = load_study(study)
    path = study / "tiny-llama__dense" / "outcomes.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + "not json\n", encoding="utf-8")
    slow = load_study(study)
    assert len(slow.attrs["problems"]) == 1
    cols = [c for c in COLUMNS if c not in ("status",)]
    assert fast[cols].astype(str).equals(slow[cols].astype(str))


def test_unpaired_items_are_named(study: Path) -> None:
    path = study / "tiny-llama__wanda-s50" / "outcomes.jsonl"
    recs = _lines(path)
    _write(path, recs[1:])
    with pytest.raises(UserError) as exc:
        transitions(load_study(study))
    msg = str(exc.value)
    assert str(path) in msg and "complete but 1 of its" in msg and recs[0]["item_uid"] in msg


def test_mismatched_item_content_is_named(study: Path) -> None:
    run = study / "tiny-llama__wanda-s50"
    items = _lines(run / "items.jsonl")
    uid = items[3]["item_uid"]
    new_hash = "sha256:" + "ab" * 32
    items[3]["content_hash"] = new_hash
    _write(run / "items.jsonl", items)
    recs = _lines(run / "outcomes.jsonl")
    for r in recs:
        if r["item_uid"] == uid:
            r["content_hash"] = new_hash
    _write(run / "outcomes.jsonl", recs)
    with pytest.raises(UserError) as exc:
        transitions(load_study(study))
    assert "content" in str(exc.value) and uid in str(exc.value) and "tiny-llama__wanda-s50" in str(exc.value)


def test_outcome_hash_must_match_its_items(study: Path) -> None:
    path = study / "tiny-llama__dense" / "outcomes.jsonl"
    recs = _lines(path)
    recs[2]["content_hash"] = "sha256:" + "0" * 64
    _write(path, recs)
    with pytest.raises(UserError, match="content hash differs"):
        load_study(study)


def test_duplicate_outcome_line(study: Path) -> None:
    path = study / "tiny-llama__dense" / "outcomes.jsonl"
    recs = _lines(path)
    _write(path, recs + recs[:1])
    with pytest.raises(UserError, match="more than one outcome line"):
        load_study(study)


def test_two_dense_references_are_ambiguous(tmp_path: Path) -> None:
    make_synthetic_study(
        tmp_path / "s",
        n_per_language=3,
        languages=("en",),
        conditions=(("dense", 0.0, "unstructured"), ("wanda", 0.5, "unstructured")),
    )
    other = tmp_path / "s" / "tiny-llama__dense2"
    other.mkdir()
    for name in ("items.jsonl", "outcomes.jsonl"):
        (other / name).write_bytes((tmp_path / "s" / "tiny-llama__dense" / name).read_bytes())
    manifest = read_json(tmp_path / "s" / "tiny-llama__dense" / "manifest.json")
    manifest["run_id"] = "tiny-llama__dense2"
    write_json_atomic(other / "manifest.json", manifest)
    with pytest.raises(UserError, match="2 dense runs"):
        transitions(load_study(tmp_path / "s"))


def _second_dense_run(study: Path, model: str | None = None) -> Path:
    other = study / "tiny-llama__dense2"
    other.mkdir()
    for name in ("items.jsonl", "outcomes.jsonl"):
        (other / name).write_bytes((study / "tiny-llama__dense" / name).read_bytes())
    manifest = read_json(study / "tiny-llama__dense" / "manifest.json")
    manifest["run_id"] = "tiny-llama__dense2"
    if model is not None:
        manifest["model"]["id"] = model
    write_json_atomic(other / "manifest.json", manifest)
    return other


def test_two_run_folders_pair_directly_as_in_the_tui(tmp_path: Path) -> None:
    """`prunescope stats A B` on two run folders pairs B with A, as `prunescope tui A B` does; the
    statistics found no pair (two dense runs) while the TUI's item list showed their transitions."""
    make_synthetic_study(
        tmp_path / "s", n_per_language=3, languages=("en",), conditions=(("dense", 0.0, "unstructured"),)
    )
    first, second = tmp_path / "s" / "tiny-llama__dense", _second_dense_run(tmp_path / "s", "other/model")
    tr = transitions(load_study([first, second]))
    assert len(tr) == 3 and set(tr["run_id"]) == {"tiny-llama__dense2"}
    assert set(tr["reference_run"]) == {"tiny-llama__dense"} and not tr.attrs["unpaired"]


def test_runs_without_any_reference_are_named(tmp_path: Path) -> None:
    """Two models' dense runs (imported runs, say) in one study: nothing pairs, and the note says why."""
    make_synthetic_study(
        tmp_path / "s", n_per_language=3, languages=("en",), conditions=(("dense", 0.0, "unstructured"),)
    )
    _second_dense_run(tmp_path / "s", "other/model")
    tr = transitions(load_study(tmp_path / "s"))
    assert len(tr) == 0
    (why,) = tr.attrs["unpaired"]
    assert why.startswith("both runs: each is a dense run of its own model") and why.endswith("--baseline RUN")


def test_empty_and_missing_studies(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run folders"):
        load_study(tmp_path / "empty")
    with pytest.raises(UserError, match="no such"):
        load_study(tmp_path / "nope")
    make_synthetic_study(
        tmp_path / "s", n_per_language=2, languages=("en",), conditions=(("dense", 0.0, "unstructured"),)
    )
    outcomes = tmp_path / "s" / "tiny-llama__dense" / "outcomes.jsonl"
    outcomes.write_text("", encoding="utf-8")  # a complete run with no lines is damaged, not left out
    with pytest.raises(UserError, match="complete but 2 of its 2 items have no outcome line"):
        load_study(tmp_path / "s")
    manifest = json.loads((outcomes.parent / "manifest.json").read_text(encoding="utf-8"))
    (outcomes.parent / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}), encoding="utf-8")
    with pytest.raises(UserError, match="no outcomes"):  # one just started holds none yet
        load_study(tmp_path / "s")


def test_a_corrupt_line_of_a_complete_run_is_named(study: Path) -> None:
    path = study / "tiny-llama__wanda-s50" / "outcomes.jsonl"
    recs = _lines(path)
    del recs[3]["open"]
    _write(path, recs)
    with pytest.raises(UserError) as exc:
        load_study(study)  # not only "not paired": which line, and why
    assert f"{path}:4: corrupt line" in str(exc.value) and "'open'" in str(exc.value).replace("`", "'")


def test_a_category_validate_rejects_is_a_corrupt_line(study: Path) -> None:
    run = study / "tiny-llama__wanda-s50"
    path = run / "outcomes.jsonl"
    recs = _lines(path)
    wrong = next(c for c in CATEGORIES if c != recs[4]["category"])  # valid, but open/mc make it another
    for line, value, why in ((4, "bogus", r"'bogus' - at `\$\.category`"), (5, wrong, f"category is '{wrong}' but")):
        recs[line - 1]["category"] = value
        _write(path, recs)
        with pytest.raises(UserError, match=rf"{path}:{line}: corrupt line \(ValidationError: .*{why}"):
            load_study(study, strict=True)
        recs[line - 1]["category"] = category(recs[line - 1]["open"]["correct"], recs[line - 1]["mc"]["correct"])
    recs[3]["category"] = "bogus"
    _write(path, recs)
    manifest = read_json(run / "manifest.json")
    write_json_atomic(run / "manifest.json", {**manifest, "status": "running"})
    df = load_study(study)  # without strict: named, and the line left out
    assert any(p.startswith(f"{path}:4: corrupt line") and "$.category" in p for p in df.attrs["problems"])
    assert {r["run_id"]: r for r in df.attrs["runs"]}[run.name]["n_outcomes"] == len(recs) - 1
    (field,) = (f for f in msgspec.structs.fields(OutcomeView) if f.name == "category")
    assert list(get_args(field.type)) == load_schema("outcome")["properties"]["category"]["enum"]


def test_a_demotion_validate_rejects_is_a_corrupt_line(study: Path) -> None:
    path = study / "tiny-llama__wanda-s50" / "outcomes.jsonl"
    recs = _lines(path)
    recs[3]["demotion"] = "lost"
    _write(path, recs)
    with pytest.raises(UserError, match=rf"{path}:4: corrupt line \(ValidationError: .*'lost' - at `\$\.demotion`"):
        load_study(study, strict=True)
    (field,) = (f for f in msgspec.structs.fields(OutcomeView) if f.name == "demotion")
    allowed = [a for a in get_args(field.type) if a is not type(None)]
    assert list(get_args(allowed[0])) == load_schema("outcome")["properties"]["demotion"]["oneOf"][1]["enum"]


def test_no_dense_reference_is_reported(tmp_path: Path) -> None:
    make_synthetic_study(
        tmp_path / "s", n_per_language=3, languages=("en",), conditions=(("wanda", 0.5, "unstructured"),)
    )
    tr = transitions(load_study(tmp_path / "s"))
    assert len(tr) == 0 and tr.attrs["no_reference"] == ["synthetic/tiny-llama"]
    assert tr.attrs["unpaired"] == ["tiny-llama__wanda-s50: no dense run of synthetic/tiny-llama"]
