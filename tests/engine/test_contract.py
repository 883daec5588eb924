"""The run-folder contract: records against the schemas, labels, the run index, the writer's index, pairing."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import typing
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from engine.contract import index as index_module
from engine.contract import pairing
from engine.contract.index import OUTCOME_COLUMNS, OUTCOMES_INDEX, OutcomeView, cached_path, open_items, open_outcomes
from engine.contract.labels import (
    CATEGORIES,
    TRANSITION_LABELS,
    category,
    category_codes,
    condition_label,
    discordant,
    parse_pattern,
    transition_code,
)
from engine.contract.reader import ITEMS, OUTCOMES, read_manifest, scan_jsonl
from engine.contract.records import Item, Outcome, run_meta
from engine.runfolder import OutcomeWriter, dumps_line, load_schema, repair_run
from tests.synthetic import make_synthetic_study, synthetic_items, synthetic_outcome

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------ records against the JSON Schemas


def _resolve(node: dict, root: dict) -> dict:
    if "$ref" in node:
        return _resolve(root["$defs"][node["$ref"].split("/")[-1]], root)
    for key in ("oneOf", "anyOf"):
        if key in node:
            options = [_resolve(o, root) for o in node[key] if o.get("type") != "null"]
            return options[0]
    return node


def _struct_of(annotation: object) -> type | None:
    """The Struct inside `T`, `T | None` or `list[T]`, else None."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    for arg in typing.get_args(annotation):
        found = _struct_of(arg)
        if found is not None:
            return found
    return None


def _check_against(cls: type, node: dict, root: dict, where: str) -> None:
    node = _resolve(node, root)
    props = node.get("properties", {})
    fields = {f.name: f for f in msgspec.structs.fields(cls)}
    assert set(fields) == set(props), f"{where}: fields {sorted(set(fields) ^ set(props))} differ from the schema"
    required = {name for name, f in fields.items() if f.required}
    assert required == set(node.get("required", [])), f"{where}: required fields differ from the schema"
    for name, f in fields.items():
        sub = _struct_of(f.type)
        if sub is not None:
            child = _resolve(props[name], root)
            _check_against(
                sub, child.get("items", child) if child.get("type") == "array" else child, root, f"{where}.{name}"
            )


@pytest.mark.parametrize(("cls", "schema"), [(Item, "item"), (Outcome, "outcome")])
def test_records_mirror_the_schemas(cls: type, schema: str) -> None:
    root = load_schema(schema)
    _check_against(cls, root, root, cls.__name__)


def test_schema_valid_lines_decode_and_bad_ones_are_named(tmp_path: Path) -> None:
    (run,) = make_synthetic_study(tmp_path, 3, ("en", "zh"), (("wanda", 0.5, "unstructured"),))
    for line in (run / OUTCOMES).read_bytes().splitlines():
        rec = msgspec.json.decode(line, type=Outcome)
        assert rec.category == category(rec.open.correct, rec.mc.correct)
    for line in (run / ITEMS).read_bytes().splitlines():
        msgspec.json.decode(line, type=Item)
    bad = json.loads((run / OUTCOMES).read_bytes().splitlines()[0])
    bad["open"]["correct"] = "yes"
    with pytest.raises(msgspec.ValidationError, match=r"\$\.open\.correct"):
        msgspec.json.decode(json.dumps(bad), type=Outcome)


def test_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n')
    (error,) = scan_jsonl(path).errors
    assert error.startswith(f"{path}:1: corrupt line") and "UTF-8 byte-order mark" in error


def test_index_view_reads_outcome_fields_by_their_names() -> None:
    outcome = {f.name for f in msgspec.structs.fields(Outcome)}
    assert {f.name for f in msgspec.structs.fields(OutcomeView)} <= outcome


def test_run_meta_names_the_file_and_key(tmp_path: Path) -> None:
    (run,) = make_synthetic_study(tmp_path, 2, ("en",), (("wanda", 0.5, "2:4"),))
    meta = run_meta(read_manifest(run), "m.json")
    assert meta.label == "wanda-2of4" and meta.model.n_params == 135_000_000
    manifest = read_manifest(run)
    manifest["condition"]["sparsity"] = "half"
    with pytest.raises(ValueError, match=r"m\.json: .*\$\.condition\.sparsity"):
        run_meta(manifest, "m.json")
    # values the schema rejects are rejected by readers too, not reported as they are
    for key, value, where in (
        ("sparsity", 5.0, r"\$\.condition\.sparsity"),
        ("method", "wandaa", r"\$\.condition\.method"),
        ("pattern", "2-4", r"\$\.condition\.pattern"),
    ):
        with pytest.raises(ValueError, match=where):
            run_meta({**manifest, "condition": {**read_manifest(run)["condition"], key: value}}, "m.json")
    with pytest.raises(ValueError, match=r"'finished' - at `\$\.status`"):
        run_meta({**read_manifest(run), "status": "finished"}, "m.json")


def test_out_of_range_outcome_values_are_corrupt_lines(tmp_path: Path) -> None:
    (run,) = make_synthetic_study(tmp_path, 2, ("en",), (("wanda", 0.5, "unstructured"),))
    rec = json.loads((run / OUTCOMES).read_bytes().splitlines()[0])
    for path, value in ((("gold_trace", "first_token_rank"), -5), (("mc", "gold_index"), -1)):
        bad = json.loads(json.dumps(rec))
        bad[path[0]][path[1]] = value
        with pytest.raises(msgspec.ValidationError, match=rf"\$\.{path[0]}\.{path[1]}"):
            msgspec.json.decode(json.dumps(bad), type=Outcome)
    bad = {**rec, "gold_trace": {**rec["gold_trace"], "first_token_rank": 0}}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.gold_trace\.first_token_rank"):
        msgspec.json.decode(json.dumps(bad), type=OutcomeView)  # the index's view, which stats reads


# ------------------------------------------------------------------ labels


def test_labels_and_codes() -> None:
    assert condition_label("dense", 0.0) == "dense"
    assert condition_label("wanda", 0.5) == "wanda-s50"
    assert condition_label("sparsegpt", 0.5, "2:4") == "sparsegpt-2of4"
    assert parse_pattern("unstructured") is None and parse_pattern("2:4") == (2, 4)
    for bad in ("2:x", "4:2", "0:4", "2-4"):
        with pytest.raises(ValueError, match="pattern"):
            parse_pattern(bad)
    o = np.array([True, False, True, False])
    m = np.array([True, True, False, False])
    assert [CATEGORIES[c] for c in category_codes(o, m)] == [category(a, b) for a, b in zip(o, m)]
    codes = transition_code(np.array([0, 0, 4]), np.array([0, 1, 1]))
    assert [TRANSITION_LABELS[c] for c in codes] == ["BC→BC", "BC→RO", "·→RO"]
    assert discordant(codes).tolist() == [False, True, False]


# ------------------------------------------------------------------ the run index


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    (r,) = make_synthetic_study(tmp_path / "s", 40, ("en", "de"), (("wanda", 0.5, "unstructured"),))
    return r


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_index_columns_match_the_lines(run: Path) -> None:
    index = open_outcomes(run)
    assert index.origin == "built" and len(index) == 80 and not index.problems
    recs = _records(run / OUTCOMES)
    t = index.table
    assert t.column("item_uid").to_pylist() == [r["item_uid"] for r in recs]
    assert t.column("open_correct").to_pylist() == [r["open"]["correct"] for r in recs]
    assert t.column("mc_correct").to_pylist() == [r["mc"]["correct"] for r in recs]
    assert t.column("first_token_rank").to_pylist() == [r["gold_trace"]["first_token_rank"] for r in recs]
    assert t.column("sample_hits").to_pylist() == [(r["probes"] or {}).get("sampling", {}).get("hits") for r in recs]
    assert t.column("open_text").to_pylist() == [r["open"]["text"] for r in recs]
    assert [index.fetch(i) for i in (0, 41, 79)] == [recs[0], recs[41], recs[79]]
    assert [f.name for f in t.schema] == [name for name, _ in OUTCOME_COLUMNS]
    items = open_items(run)
    assert items.table.column("n_options").to_pylist() == [4] * 80


def test_index_is_cached_extended_and_rebuilt(run: Path) -> None:
    path = run / OUTCOMES
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:50]))
    assert open_outcomes(run).origin == "built"
    cached = open_outcomes(run)
    assert cached.origin == "cache" and len(cached) == 50
    with open(path, "ab") as f:  # a run going on: a torn line, then more lines
        f.write(lines[50][:20])
    torn = open_outcomes(run)
    assert torn.torn_tail and len(torn) == 50
    with open(path, "ab") as f:
        f.write(lines[50][20:] + b"".join(lines[51:60]))
    grown = open_outcomes(run)
    assert grown.origin == "extended" and len(grown) == 60 and not grown.torn_tail
    assert open_outcomes(run).origin == "cache"
    # rewritten with other content: the cached index no longer checks out
    recs = _records(path)[:60]
    for r in recs:
        r["open"]["text"] = "changed " + r["open"]["text"]
    path.write_text("".join(dumps_line(r) for r in recs), encoding="utf-8")
    rebuilt = open_outcomes(run)
    assert rebuilt.origin == "built" and rebuilt.table.column("open_text")[0].as_py().startswith("changed")


def test_corrupt_lines_are_named_and_kept_in_the_cache(run: Path) -> None:
    path = run / OUTCOMES
    lines = path.read_bytes().splitlines(keepends=True)
    bad = json.loads(lines[3])
    del bad["mc"]
    path.write_bytes(b"".join(lines[:2]) + b"{not json\n" + json.dumps(bad).encode() + b"\n" + b"".join(lines[4:]))
    for origin in ("built", "cache"):
        index = open_outcomes(run)
        assert index.origin == origin and len(index) == 78
        assert index.problems[0].startswith(f"{path}:3: corrupt line")
        assert index.problems[1].startswith(f"{path}:4: corrupt line") and "mc" in index.problems[1]
    assert index.table.column("line").to_pylist()[:3] == [1, 2, 5]


def test_a_changed_line_is_not_shown_as_indexed(run: Path) -> None:
    index = open_outcomes(run)
    path = run / OUTCOMES
    data = bytearray(path.read_bytes())
    start = int(index.table.column("offset")[7].as_py())
    data[start + 3] = ord("X")  # same length, other bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r":8: the line changed"):
        index.fetch(7)


def _new_run(tmp_path: Path, n: int, seed: int) -> tuple[Path, list[dict]]:
    """An empty run folder and `n` synthetic outcome records for it."""
    rng = random.Random(seed)
    recs = [synthetic_outcome(it, rng, 0.3, 1.0, 0.5) for it in synthetic_items(n, ("en",))]
    run = tmp_path / "run"
    run.mkdir()
    return run, recs


def test_writer_keeps_its_index_in_step_and_survives_kills(tmp_path: Path) -> None:
    run, recs = _new_run(tmp_path, 30, 1)
    with OutcomeWriter(run) as w:
        for k in range(0, 20, 5):
            w.append(recs[k : k + 5])
            index = open_outcomes(run, cache=False)
            assert index.origin == "run folder" and len(index) == k + 5
    assert open_outcomes(run, cache=False).table.column("item_uid").num_chunks == 1  # compacted on close
    # a kill between the two appends: lines in the file, not yet in the index
    with open(run / OUTCOMES, "ab") as f:
        f.write("".join(dumps_line(r) for r in recs[20:23]).encode())
    behind = open_outcomes(run, cache=False)
    assert behind.origin == "extended" and len(behind) == 23
    # a kill inside an index append: a torn batch at the end of the index file
    with open(run / OUTCOMES_INDEX, "ab") as f:
        f.write(b"\xff\xff\xff\xff\x10\x00\x00\x00partial")
    assert len(open_outcomes(run, cache=False)) == 23
    with OutcomeWriter(run) as w:  # resumes from the file, rewrites the index, goes on
        assert len(w.done) == 23
        w.append(recs[23:])
    index = open_outcomes(run, cache=False)
    assert index.origin == "run folder" and index.table.column("item_uid").to_pylist() == [r["item_uid"] for r in recs]
    assert not cached_path(run / OUTCOMES).exists()  # readers with cache=False write nothing


def _duplicate_and_tear(run: Path, recs: list[dict], dups: list[int], torn: dict) -> int:
    """What a second writer killed mid-line leaves: exact copies of lines `dups`, then a cut line."""
    cut = dumps_line(torn).encode()[:25]
    with open(run / OUTCOMES, "ab") as f:
        f.write("".join(dumps_line(recs[k]) for k in dups).encode() + cut)
    return len(cut)


def _assert_index_matches_file(run: Path, recs: list[dict]) -> None:
    """Every index (beside the file, and a reader's cached copy) has exactly the file's lines."""
    lines = (run / OUTCOMES).read_bytes().splitlines()
    assert [json.loads(x) for x in lines] == recs
    for cache in (False, True):
        index = open_outcomes(run, cache=cache)
        assert index.table.column("item_uid").to_pylist() == [r["item_uid"] for r in recs]
        assert index.table.column("line").to_pylist() == list(range(1, len(recs) + 1))
        assert [index.fetch(k) for k in range(len(recs))] == recs  # offsets, lengths and CRCs of this file
        assert not index.torn_tail and not index.problems


def test_index_stays_in_step_through_duplicate_and_torn_tail_repairs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))
    run, recs = _new_run(tmp_path, 14, 2)
    with OutcomeWriter(run) as w:
        w.append(recs[:6])
    cut = _duplicate_and_tear(run, recs, [1, 4], recs[6])
    seen = open_outcomes(run)  # a reader before the repair: duplicates indexed (and cached), tail torn
    assert len(seen) == 8 and seen.torn_tail
    with OutcomeWriter(run) as w:  # a resume repairs, rewrites the index, and goes on
        assert (w.removed_duplicates, w.repaired_bytes, len(w.done)) == ([7, 8], cut, 6)
        w.append(recs[6:10])
    _assert_index_matches_file(run, recs[:10])
    cut = _duplicate_and_tear(run, recs, [0, 9, 3], recs[10])  # again, then `prunescope validate --repair`
    assert len(open_outcomes(run)) == 13
    done = repair_run(run)
    assert any(f"cut a torn last line ({cut} bytes)" in d for d in done)
    assert any("removed 3 exact duplicate lines (lines 11, 12, 13" in d for d in done)
    _assert_index_matches_file(run, recs[:10])
    with OutcomeWriter(run) as w:
        w.append(recs[10:])
    _assert_index_matches_file(run, recs)


def test_worker_processes_build_the_same_index(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))
    study = tmp_path / "study"
    make_synthetic_study(study, n_per_language=30, languages=("en", "de"))
    runs = sorted(p for p in study.iterdir() if p.is_dir())
    serial = [open_outcomes(r, cache=False).table for r in runs]
    monkeypatch.setattr(index_module, "PARALLEL_MIN_BYTES", 0)
    messages: list[str] = []
    files = [(r / OUTCOMES, index_module.OUTCOME_LAYOUT, r / OUTCOMES_INDEX) for r in runs]
    index_module.build_in_parallel(files, messages.append, workers=2)
    assert (
        messages[0].startswith(f"indexing {len(runs)} files")
        and messages[-1] == f"indexed {len(runs)} of {len(runs)} files"
    )
    for run, table in zip(runs, serial):
        assert cached_path(run / OUTCOMES).exists()  # built by a worker
        index = open_outcomes(run)
        assert index.origin == "cache" and index.table.equals(table)
    messages.clear()
    index_module.build_in_parallel(files, messages.append, workers=2)  # all current: nothing to do
    assert messages == []
    for run in runs:
        cached_path(run / OUTCOMES).unlink()
    monkeypatch.setattr(index_module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(index_module.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    index_module.build_in_parallel(files, messages.append)  # one idle CPU: the caller indexes in-process
    assert messages == [] and not any(cached_path(r / OUTCOMES).exists() for r in runs)
    monkeypatch.setattr(index_module.os, "getloadavg", lambda: (0.3, 1.0, 1.0))
    index_module.build_in_parallel(files, messages.append)  # two idle CPUs: two workers
    assert messages[0].endswith("in 2 processes") and all(cached_path(r / OUTCOMES).exists() for r in runs)


def test_engine_import_stays_torch_free() -> None:
    code = (
        "import sys, engine.contract.runs, engine.contract.index, engine.runfolder, stats.load, tui.model, tui.view; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------ pairing


def _key(name: str, dense: bool, items: str = "h", model: str = "m") -> pairing.RunKey:
    return pairing.RunKey(name, model, dense, items)


def test_reference_rule() -> None:
    refs = pairing.references([_key("d", True), _key("w", False), _key("x", False, model="other")])
    assert refs.of == [pairing.NONE, 0, pairing.NONE] and refs.no_reference == ["other"] and not refs.problems
    assert refs.unpaired == ["x: no dense run of other"]
    elsewhere = pairing.references([_key("d", True, items="sha256:aaaa"), _key("w", False, items="sha256:bbbb")])
    assert elsewhere.of == [pairing.NONE] * 2 and len(elsewhere.unpaired) == 1  # a dense run, on other items
    assert elsewhere.unpaired[0].startswith("w: the dense run of m (d) ran another item set (items.hash sha256:aaaa")
    chosen = pairing.references([_key("d", True, items="a"), _key("w", False, items="b")], baseline="d")
    assert chosen.unpaired[0].startswith("w: the baseline run (d) ran another item set")
    two = pairing.references([_key("d1", True), _key("d2", True), _key("w", False)])
    assert two.of == [pairing.NONE] * 3 and "2 dense runs on the same items (d1, d2)" in two.problems[0]
    # dense runs on different item sets are not ambiguous: each pruned run takes its own
    sets = pairing.references([_key("d1", True, "a"), _key("d2", True, "b"), _key("w", False, "b")])
    assert sets.of == [pairing.NONE, pairing.NONE, 1] and not sets.problems
    assert pairing.references([_key("a", False), _key("b", False)], direct=True).of == [pairing.NONE, 0]
    # a pruned run opened before its dense run is still the pruned side (it was paired the other way round)
    assert pairing.references([_key("w", False), _key("d", True)], direct=True).of == [1, pairing.NONE]


def test_match_rows_names_what_does_not_pair() -> None:
    run = pa.array(["a", "b", "c", "d"])
    ref = pa.array(["d", "c", "a", "e"])
    m = pairing.match_rows(run, np.array([1, 2, 3, 4], np.uint64), ref, np.array([4, 9, 1, 5], np.uint64))
    assert m.ref_row.tolist() == [2, pairing.NONE, 1, 0]
    assert m.differ.tolist() == [2] and m.paired.tolist() == [0, 3]
    problems = m.problems("w", "d", run, ref, unfinished=False)
    assert "1 item(s) have different content (content hash), e.g. 'c'" in problems[0]
    assert "1 only in w (e.g. 'b'); 1 only in d (e.g. 'e')" in problems[1]
    assert len(m.problems("w", "d", run, ref, unfinished=True)) == 1
