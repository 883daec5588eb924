"""Local item files (JSONL, CSV, Parquet) and the validation of each kind of bad row."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.errors import UserError
from engine.items import content_hash, make_item, read_item_file
from engine.runfolder import schema_errors
from tests.engine.items.rows import good_row, write_jsonl


def test_make_item_fills_uid_and_content_hash():
    item = make_item(
        dataset="ds",
        config="c",
        split="test",
        native_id="a/b",
        language="en",
        question="Q?",
        answer="x",
        aliases=["x", "y", "y"],
        options=["x", "z"],
        gold_index=0,
    )
    assert item["item_uid"] == "ds/c/test/a%2Fb/en"
    assert item["aliases"] == ["y"]
    assert schema_errors("item", item) == []
    assert item["content_hash"] == content_hash(item)
    changed = dict(item, question="Q2?")
    assert content_hash(changed) != item["content_hash"]


def test_jsonl_rows_are_completed(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [good_row(), good_row(id="q2", answer=None, gold_index=2)])
    items = read_item_file(path)
    assert [it["item_uid"] for it in items] == ["mine/default/local/q1/en", "mine/default/local/q2/en"]
    assert items[1]["answer"] == "Nice"
    assert items[0]["source"] == {"dataset": "mine", "config": None, "split": "local", "native_id": "q1"}
    for it in items:
        assert schema_errors("item", it) == []


def test_gold_index_found_from_answer(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [good_row(gold_index=None, answer="the Paris")])
    assert read_item_file(path)[0]["gold_index"] == 1


def test_full_items_round_trip_with_content_hash(tmp_path):
    item = make_item(
        dataset="ds",
        split="test",
        native_id="1",
        language="de",
        question="Frage?",
        answer="Ja",
        options=["Ja", "Nein"],
        gold_index=0,
    )
    path = write_jsonl(tmp_path / "full.jsonl", [item])
    assert read_item_file(path, strict=True) == [item]
    tampered = dict(item, question="Andere Frage?")
    write_jsonl(path, [tampered])
    with pytest.raises(UserError, match=r"full\.jsonl: line 1: content_hash .* does not match"):
        read_item_file(path)


def test_csv_with_pipe_and_json_lists(tmp_path):
    path = tmp_path / "items.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "language", "question", "answer", "aliases", "options", "gold_index", "meta"])
        w.writerow(["a", "fr", "Capitale de la France ?", "Paris", "", "Lyon|Paris|Nice|Lille", "1", '{"k": 1}'])
        w.writerow(["b", "ja", "日本の首都は？", "東京", '["東京都"]', '["大阪", "東京", "京都", "札幌"]', "", ""])
    items = read_item_file(path)
    assert items[0]["options"] == ["Lyon", "Paris", "Nice", "Lille"] and items[0]["meta"] == {"k": 1}
    assert items[1]["aliases"] == ["東京都"] and items[1]["gold_index"] == 1


def test_answers_aliases_and_options_are_stripped_and_composed(tmp_path):
    """The gold trace scores the answer's tokens: ` Paris` from a CSV cell, or a decomposed `Zürich`
    equal to its option only after normalisation, would be scored as other tokens than the option."""
    path = tmp_path / "items.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "language", "question", "answer", "aliases", "options"])
        w.writerow(["a", "en", "Capital of France?", " Paris", "Paris city | ", "London| Paris |Rome"])
        w.writerow(["b", "de", "Größte Stadt der Schweiz?", "Zu\u0308rich", "", "Zürich|Bern|Basel"])
    a, b = read_item_file(path)
    assert (a["answer"], a["aliases"], a["options"], a["gold_index"]) == (
        "Paris",
        ["Paris city"],
        ["London", "Paris", "Rome"],
        1,
    )
    assert b["answer"] == b["options"][0] == "Z\u00fcrich" and b["gold_index"] == 0


def test_parquet(tmp_path):
    rows = [
        good_row(),
        good_row(
            id="q2",
            language="de",
            question="Hauptstadt?",
            answer="Berlin",
            options=["Berlin", "Bonn"],
            gold_index=0,
            aliases=[],
        ),
    ]
    path = tmp_path / "items.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    items = read_item_file(path)
    assert [it["answer"] for it in items] == ["Paris", "Berlin"]
    assert items[1]["item_uid"] == "items/default/local/q2/de"


def test_parquet_string_lists_and_invalid_utf8(tmp_path):
    path = tmp_path / "p.parquet"
    table = pa.table({"id": ["x"], "language": ["en"], "question": [b"Q\xff?"], "answer": ["a"], "options": ["a|b"]})
    pq.write_table(table, path)
    with pytest.raises(UserError, match=r"p\.parquet: row 1: field 'question' is not valid UTF-8"):
        read_item_file(path)
    pq.write_table(
        pa.table({"id": ["x"], "language": ["en"], "question": ["Q?"], "answer": ["a"], "options": ["a|b"]}), path
    )
    assert read_item_file(path)[0]["options"] == ["a", "b"]


BAD_ROWS = [
    ("missing gold", good_row(answer=None, gold_index=None), "missing gold"),
    ("empty question", good_row(question="  "), "field 'question' is missing or empty"),
    ("one option", good_row(options=["Paris"], gold_index=0), "at least two options"),
    ("gold not in options", good_row(answer="Marseille", gold_index=None), "'Marseille' is not among the options"),
    ("gold index wrong", good_row(gold_index=2), "is not options\\[2\\]"),
    ("gold index out of range", good_row(gold_index=7), "gold_index 7 is out of range"),
    (
        "options equal",
        good_row(options=["Paris", "Lyon", "the Paris"]),
        "options 0 and 2 are equal after normalisation",
    ),
    (
        "cjk options equal",
        good_row(language="zh", answer="东京", options=["东京", "東京。", "「东京」"], gold_index=0),
        "options 0 and 2 are equal",
    ),
    ("bad language", good_row(language="English"), "language 'English'"),
    ("no id", good_row(id=None), "needs 'item_uid' or 'id'"),
]


@pytest.mark.parametrize("name,row,message", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_bad_rows_name_file_and_row(tmp_path, name, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [good_row(id="ok"), row])
    with pytest.raises(UserError, match=rf"bad\.jsonl: line 2: .*{message}"):
        read_item_file(path)


def test_duplicate_ids_name_both_rows(tmp_path):
    path = write_jsonl(tmp_path / "dup.jsonl", [good_row(), good_row(id="q2"), good_row()])
    with pytest.raises(
        UserError, match=r"dup\.jsonl: line 3: duplicate id 'dup/default/local/q1/en' \(first at line 1\)"
    ):
        read_item_file(path)


def test_unknown_fields_rejected_only_in_strict_mode(tmp_path):
    path = write_jsonl(tmp_path / "extra.jsonl", [good_row(subject="geo")])
    assert read_item_file(path)[0]["meta"] == {"subject": "geo"}
    with pytest.raises(UserError, match=r"extra\.jsonl: line 1: unknown field\(s\) subject \(strict mode\)"):
        read_item_file(path, strict=True)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "enc.jsonl"
    path.write_bytes(json.dumps(good_row()).encode() + b"\n" + b'{"id": "q2", "question": "\xe9t\xe9"}\n')
    with pytest.raises(UserError, match=r"enc\.jsonl: line 2: invalid UTF-8"):
        read_item_file(path)
    csv_path = tmp_path / "enc.csv"
    csv_path.write_bytes(b"id,language,question,answer,options\nq1,en,Q?,a,a|b\nq2,en,\xff,a,a|b\n")
    with pytest.raises(UserError, match=r"enc\.csv: line 3: invalid UTF-8"):
        read_item_file(csv_path)


def test_csv_bad_cells_name_the_line(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,language,question,answer,options,gold_index\nq1,en,Q?,a,a|b,x\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"c\.csv: line 2: gold_index must be an integer"):
        read_item_file(path)
    path.write_text('id,language,question,answer,options\nq1,en,Q?,a,"[1, 2"\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"c\.csv: line 2: field 'options' is not a valid JSON list"):
        read_item_file(path)


def test_bad_json_and_missing_file(tmp_path):
    path = write_jsonl(tmp_path / "j.jsonl", [good_row(), "{not json"])
    with pytest.raises(UserError, match=r"j\.jsonl: line 2: not valid JSON"):
        read_item_file(path)
    with pytest.raises(UserError, match="no such item file"):
        read_item_file(tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(UserError, match="unknown item file type"):
        read_item_file(tmp_path / "x.txt")


def test_error_counts_further_bad_rows(tmp_path):
    path = write_jsonl(
        tmp_path / "many.jsonl", [good_row(question=""), good_row(id="b", question=""), good_row(id="c", question="")]
    )
    with pytest.raises(UserError, match=r"line 1: .* \(and 2 more bad rows\)"):
        read_item_file(path)


def test_a_csv_cell_longer_than_the_csv_modules_limit_is_read(tmp_path):
    """Python's csv refuses cells over 131072 characters by default: a long context was an internal error."""
    path = tmp_path / "items.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "language", "question", "context", "answer", "options"])
        w.writerow(["a", "en", "Capital of France?", "Paris. " * 30000, "Paris", "London|Paris|Rome"])
    (item,) = read_item_file(path)
    assert len(item["context"]) > 200000


def test_a_quote_never_closed_is_named_with_its_line(tmp_path):
    """Read leniently, the open quote took the rest of the file into one cell and the error was about
    the options of a row that does not exist."""
    path = tmp_path / "items.csv"
    path.write_text(
        'id,language,question,answer,options\n1,en,"What is it?,Paris,London|Paris\n2,en,Q2,A,A|B\n', encoding="utf-8"
    )
    with pytest.raises(UserError, match=r"items\.csv: line 2: not valid CSV \(unexpected end of data\)"):
        read_item_file(path)
