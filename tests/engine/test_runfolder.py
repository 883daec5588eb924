"""The run-folder store: atomic manifests, append-only outcomes, torn-line repair, validation."""

import json
import os
import random

import pytest

from engine.contract.labels import category
from engine.contract.reader import OUTCOMES, RunFolderError, scan_jsonl
from engine.runfolder import OutcomeWriter, dumps_line, items_hash, repair_torn_tail, validate_run, write_json_atomic
from tests.synthetic import make_synthetic_study, synthetic_items, synthetic_outcome


def test_category_covers_the_2x2():
    assert category(True, True) == "both_correct"
    assert category(False, True) == "recognition_only"
    assert category(True, False) == "generation_only"
    assert category(False, False) == "both_wrong"


def test_synthetic_study_validates(tmp_path):
    runs = make_synthetic_study(tmp_path, n_per_language=5, languages=("en", "zh"))
    assert runs
    for run in runs:
        assert validate_run(run) == []


def test_torn_tail_is_reported_not_parsed_and_repaired(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"item_uid": "a"}\n{"item_uid": "b"}\n{"item_uid": "c", "tr')
    scan = scan_jsonl(path)
    assert [r["item_uid"] for r in scan.records] == ["a", "b"]
    assert scan.torn_tail
    removed = repair_torn_tail(path)
    assert removed == len(b'{"item_uid": "c", "tr')
    assert path.read_bytes().endswith(b'"b"}\n')
    assert repair_torn_tail(path) == 0


def test_corrupt_complete_line_names_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"item_uid": "a"}\nnot json\n{"item_uid": "b"}\n')
    scan = scan_jsonl(path)
    assert [r["item_uid"] for r in scan.records] == ["a", "b"]
    assert scan.errors and f"{path}:2:" in scan.errors[0]
    with pytest.raises(RunFolderError, match=r"x\.jsonl:2"):
        scan_jsonl(path, strict=True)


def test_scan_from_offset_continues_a_live_file(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"item_uid": "a"}\n{"item_uid": "b')
    first = scan_jsonl(path)
    with open(path, "ab") as f:
        f.write(b'"}\n{"item_uid": "c"}\n')
    more = scan_jsonl(path, start=first.end)
    assert [r["item_uid"] for r in more.records] == ["b", "c"]


def _outcomes(n: int) -> list[dict]:
    items = synthetic_items(n, ("en",))
    rng = random.Random(0)
    return [synthetic_outcome(it, rng, 0.5, 0.0, 0.0) for it in items]


def test_writer_resumes_and_refuses_duplicates(tmp_path):
    a, b, c = _outcomes(3)
    with OutcomeWriter(tmp_path) as w:
        w.append([a, b])
    with open(tmp_path / OUTCOMES, "ab") as f:
        f.write(dumps_line(c).encode()[:30])  # a kill in the middle of a write
    w2 = OutcomeWriter(tmp_path)
    assert w2.repaired_bytes > 0
    assert w2.done == {a["item_uid"], b["item_uid"]}
    with pytest.raises(RunFolderError, match="twice"):
        w2.append([a])
    w2.append([c])
    w2.close()
    lines = (tmp_path / OUTCOMES).read_text().splitlines()
    assert [json.loads(x)["item_uid"] for x in lines] == [r["item_uid"] for r in (a, b, c)]


def test_atomic_manifest_leaves_no_temp_files(tmp_path):
    p = tmp_path / "manifest.json"
    write_json_atomic(p, {"a": 1})
    write_json_atomic(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_validate_run_finds_hash_mismatch_and_duplicates(tmp_path):
    (run,) = make_synthetic_study(
        tmp_path, n_per_language=3, languages=("en",), conditions=(("dense", 0.0, "unstructured"),)
    )
    lines = (run / OUTCOMES).read_text(encoding="utf-8").splitlines(keepends=True)
    rec = json.loads(lines[0])
    rec["content_hash"] = "sha256:" + "1" * 64
    (run / OUTCOMES).write_text("".join([json.dumps(rec) + "\n"] + lines[1:] + [lines[1]]), encoding="utf-8")
    problems = "\n".join(validate_run(run))
    assert "content hash" in problems
    assert "duplicate item" in problems


def test_validate_run_finds_lines_that_contradict_themselves(tmp_path):
    (run,) = make_synthetic_study(
        tmp_path, n_per_language=3, languages=("en",), conditions=(("dense", 0.0, "unstructured"),)
    )
    lines = (run / OUTCOMES).read_text(encoding="utf-8").splitlines(keepends=True)
    recs = [json.loads(x) for x in lines]
    recs[0]["mc"]["correct"] = not recs[0]["mc"]["correct"]  # no longer choice == gold_index
    recs[1]["category"] = "both_correct" if recs[1]["category"] != "both_correct" else "both_wrong"
    recs[2]["language"] = "xx"
    (run / OUTCOMES).write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    problems = validate_run(run)
    assert any(":1: mc.correct is" in p for p in problems)
    assert any(":2: category is" in p and "open.correct and mc.correct make it" in p for p in problems)
    assert any(":3: language 'xx' differs from the item's 'en'" in p for p in problems)
    assert len(problems) == 4  # line 1's category no longer follows its flipped mc.correct either


def test_items_hash_depends_on_order_and_content():
    a = {"item_uid": "x", "content_hash": "sha256:" + "a" * 64}
    b = {"item_uid": "y", "content_hash": "sha256:" + "b" * 64}
    assert items_hash([a, b]) != items_hash([b, a])
    assert items_hash([a, b]) == items_hash([dict(a), dict(b)])
