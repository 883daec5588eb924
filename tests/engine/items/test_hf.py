"""Hugging Face adapters on native-format records built here, and the real `datasets` loading path."""

from __future__ import annotations

import json
import random

import pytest

from engine.config import ItemsSpec
from engine.errors import UserError
from engine.items import load_items
from engine.items.hf import belebele_items, global_mmlu_items, mkqa_items, tydiqa_items, xquad_items
from engine.matching import normalize
from engine.runfolder import schema_errors


def squad(rid: str, context: str, question: str, *answers: str, title: str | None = None) -> dict:
    rec = {
        "id": rid,
        "context": context,
        "question": question,
        "answers": {"text": list(answers), "answer_start": [max(context.find(a), 0) for a in answers]},
    }
    if title is not None:
        rec["title"] = title
    return rec


CTX_A = "The Normans were in Normandy in the 10th century. Rollo led them. Their duchy grew under Richard I."
CTX_B = "Berlin was founded in 1237. In 1961 a wall divided it; it fell in 1989. About 3.7 million live there."
CTX_C = "Mount Fuji is 3,776 metres high."
XQUAD = [
    squad("a1", CTX_A, "Where were the Normans?", "Normandy"),
    squad("a2", CTX_A, "Who led them?", "Rollo"),
    squad("a3", CTX_A, "When were they in Normandy?", "10th century"),
    squad("a4", CTX_A, "Under whom did the duchy grow?", "Richard I"),
    squad("a5", CTX_A, "What region did they settle?", "in Normandy"),  # overlaps a1's gold: never its distractor
    squad("b1", CTX_B, "When was Berlin founded?", "1237"),
    squad("b2", CTX_B, "When was the wall built?", "1961"),
    squad("b3", CTX_B, "When did the wall fall?", "1989"),
    squad("b4", CTX_B, "How many people live there?", "3.7 million"),
    squad("c1", CTX_C, "How high is Mount Fuji?", "3,776 metres"),
]


def check_items(items: list[dict]) -> None:
    for it in items:
        assert schema_errors("item", it) == [], it
        assert len(it["options"]) == 4
        assert it["options"][it["gold_index"]] == it["answer"]
        assert len({normalize(o, it["language"]) for o in it["options"]}) == 4


def test_xquad_spans_from_same_context_first():
    items = {it["source"]["native_id"]: it for it in xquad_items(XQUAD, "en")}
    check_items(list(items.values()))
    a1 = items["a1"]
    assert a1["item_uid"] == "xquad/xquad.en/validation/a1/en" and a1["parallel_id"] == "a1"
    assert a1["context"] == CTX_A
    assert set(a1["options"]) == {"Normandy", "Rollo", "10th century", "Richard I"}  # "in Normandy" overlaps
    assert a1["source"]["distractors"] == "answer spans: same_context=3; seed=0"
    # numeric gold: numeric spans of the same context come first
    assert set(items["b1"]["options"]) == {"1237", "1961", "1989", "3.7 million"}
    # a lone context falls back to spans of other contexts, numbers preferred for a number
    c1 = items["c1"]
    assert "other_context=3" in c1["source"]["distractors"]
    assert all(any(ch.isdigit() for ch in o) for o in c1["options"])


def test_xquad_deterministic_and_seeded():
    shuffled = XQUAD[:]
    random.Random(3).shuffle(shuffled)
    first = sorted(xquad_items(XQUAD, "en", seed=0), key=lambda it: it["item_uid"])
    assert first == sorted(xquad_items(shuffled, "en", seed=0), key=lambda it: it["item_uid"])
    other = sorted(xquad_items(XQUAD, "en", seed=1), key=lambda it: it["item_uid"])
    assert [it["options"] for it in first] != [it["options"] for it in other]


def test_tydiqa_filters_language_and_uses_article():
    recs = [
        squad(
            "finnish-1-0", "Helsinki on Suomen pääkaupunki.", "Mikä on Suomen pääkaupunki?", "Helsinki", title="Suomi"
        ),
        squad("finnish-2-0", "Turku on vanha kaupunki.", "Mikä kaupunki on vanha?", "Turku", title="Suomi"),
        squad("finnish-3-0", "Tampere on teollisuuskaupunki.", "Mikä on teollisuuskaupunki?", "Tampere", title="Suomi"),
        squad("finnish-4-0", "Oulu on pohjoisessa.", "Mikä on pohjoisessa?", "Oulu", title="Suomi"),
        squad(
            "finnish-5-0",
            "Sibelius sävelsi Finlandian.",
            "Kuka sävelsi Finlandian?",
            "Sibelius",
            "Jean Sibelius",
            title="Musiikki",
        ),
        squad("english-1-0", "Paris is in France.", "Where is Paris?", "France", title="Paris"),
    ]
    items = tydiqa_items(recs, "fi")
    check_items(items)
    assert {it["language"] for it in items} == {"fi"} and len(items) == 5
    helsinki = next(it for it in items if it["answer"] == "Helsinki")
    assert helsinki["source"]["distractors"] == "answer spans: same_article=3; seed=0"
    assert helsinki["parallel_id"] is None and helsinki["meta"] == {"title": "Suomi"}
    sib = next(it for it in items if it["answer"] == "Sibelius")
    assert sib["aliases"] == ["Jean Sibelius"] and "other_context=3" in sib["source"]["distractors"]


def mkqa_record(eid: int, en_q: str, ja_q: str, atype, en_a: str, ja_a: str, aliases=()) -> dict:
    return {
        "example_id": eid,
        "query": en_q,
        "queries": {"en": en_q, "ja": ja_q, "zh_cn": en_q + "？"},
        "answers": {
            "en": [{"type": atype, "entity": "Q1", "text": en_a, "aliases": list(aliases)}],
            "ja": [{"type": atype, "entity": "Q1", "text": ja_a, "aliases": []}],
            "zh_cn": [{"type": atype, "entity": "Q1", "text": en_a, "aliases": []}],
        },
    }


MKQA = [
    mkqa_record(
        1, "who wrote hamlet", "ハムレットの作者は", "entity", "William Shakespeare", "シェイクスピア", ["Shakespeare"]
    ),
    mkqa_record(2, "capital of japan", "日本の首都は", "entity", "Tokyo", "東京"),
    mkqa_record(3, "largest planet", "最大の惑星は", "entity", "Jupiter", "木星"),
    mkqa_record(4, "author of faust", "ファウストの作者は", "entity", "Goethe", "ゲーテ"),
    mkqa_record(5, "year of moon landing", "月面着陸の年は", "date", "1969", "1969年"),
    mkqa_record(6, "is water wet", "水は濡れているか", "binary", "yes", "はい"),
    mkqa_record(7, "meaning of life", "人生の意味は", "unanswerable", "", ""),
    mkqa_record(8, "year ww2 ended", "第二次世界大戦終結の年は", "date", "1945", "1945年"),
]


def test_mkqa_same_type_distractors_and_skips():
    items = {it["source"]["native_id"]: it for it in mkqa_items(MKQA, "en")}
    check_items(list(items.values()))
    assert set(items) == {"1", "2", "3", "4"}  # binary, unanswerable skipped; too few dates for 4 options
    hamlet = items["1"]
    assert hamlet["aliases"] == ["Shakespeare"] and hamlet["meta"] == {"answer_type": "entity"}
    assert set(hamlet["options"]) == {"William Shakespeare", "Tokyo", "Jupiter", "Goethe"}
    assert hamlet["source"]["distractors"] == "answers of the same type: same_type[entity]=3; seed=0"
    assert hamlet["item_uid"] == "mkqa/default/train/1/en" and hamlet["parallel_id"] == "1"
    ja = mkqa_items(MKQA, "ja")
    assert {it["answer"] for it in ja} == {"シェイクスピア", "東京", "木星", "ゲーテ"}
    # integer answer types (the hub's ClassLabel) read the same as strings; zh_cn becomes zh
    as_int = json.loads(json.dumps(MKQA))
    for r in as_int:
        for answers in r["answers"].values():
            answers[0]["type"] = [
                "entity",
                "long_answer",
                "unanswerable",
                "date",
                "number",
                "number_with_unit",
                "short_phrase",
                "binary",
            ].index(answers[0]["type"])
    assert [it["options"] for it in mkqa_items(as_int, "en")] == [it["options"] for it in mkqa_items(MKQA, "en")]
    assert {it["language"] for it in mkqa_items(MKQA, "zh")} == {"zh"}


def mmlu(sid: str, q: str, opts: list[str], ans: str, **meta) -> dict:
    return {
        "sample_id": sid,
        "question": q,
        "option_a": opts[0],
        "option_b": opts[1],
        "option_c": opts[2],
        "option_d": opts[3],
        "answer": ans,
        "subject": "geography",
        "subject_category": "Humanities",
        "cultural_sensitivity_label": "CA",
        **meta,
    }


GMMLU = [
    mmlu("geo/1", "What is the capital of Peru?", ["Quito", "Lima", "Bogotá", "La Paz"], "B"),
    mmlu("geo/2", "Which of the following is a river?", ["Nile", "Alps", "Sahara", "Gobi"], "A"),
    mmlu("geo/3", "What is the largest ocean?", ["Atlantic", "Indian", "Pacific", "All of the above"], "C"),
    mmlu("geo/4", "Statements: I. … II. … Which are true?", ["I only", "II only", "I and II", "Neither"], "C"),
    mmlu("geo/5", "以下哪个是河流？", ["尼罗河", "阿尔卑斯山", "撒哈拉", "戈壁"], "A"),
    mmlu("geo/6", "What is the highest mountain?", ["Everest", "K2", "everest.", "Fuji"], "A"),  # options equal
]


def test_global_mmlu_open_form_filters_option_dependent_questions():
    items = global_mmlu_items(GMMLU, "en")
    check_items(items)
    assert [it["source"]["native_id"] for it in items] == ["geo/1"]
    peru = items[0]
    assert peru["answer"] == "Lima" and peru["gold_index"] == 1 and peru["parallel_id"] == "geo/1"
    assert peru["item_uid"] == "global_mmlu/en/test/geo%2F1/en"
    assert peru["meta"]["cultural_sensitivity_label"] == "CA" and peru["source"]["distractors"] == "native options"
    lite = global_mmlu_items(GMMLU[:1], "en", dataset="global_mmlu_lite")
    assert lite[0]["item_uid"].startswith("global_mmlu_lite/")


def belebele_record(qn: int, q: str, answers: list[str], correct: str) -> dict:
    rec = {
        "link": "https://en.wikibooks.org/wiki/Accordion/Right_hand",
        "question_number": qn,
        "flores_passage": "Make sure your hand is as relaxed as possible.",
        "question": q,
        "correct_answer_num": correct,
        "dialect": "eng_Latn",
        "ds": "2023-05-03",
    }
    rec.update({f"mc_answer{i + 1}": a for i, a in enumerate(answers)})
    return rec


def test_belebele_passage_items():
    recs = [
        belebele_record(1, "How should the hand be?", ["Tense", "Relaxed", "Closed", "Cold"], "2"),
        belebele_record(2, "Which of the following is true?", ["A", "B", "C", "D"], "1"),
    ]
    items = belebele_items(recs, "eng_Latn")
    check_items(items)
    assert len(items) == 1
    it = items[0]
    assert it["language"] == "en" and it["answer"] == "Relaxed" and it["gold_index"] == 1
    assert it["context"].startswith("Make sure") and it["source"]["config"] == "eng_Latn"
    assert it["item_uid"].startswith("belebele/eng_Latn/test/") and it["item_uid"].endswith("-q1/en")
    assert belebele_items(recs, "en") == items


def test_local_native_files_go_through_datasets(hf_cache):
    folder = hf_cache
    de = [dict(r, question="[de] " + r["question"]) for r in XQUAD]
    for name, recs in (("xquad.en", XQUAD), ("xquad.de", de)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    spec = ItemsSpec(source=f"hf:xquad:{folder}/{{config}}.jsonl", languages=("en", "de"), n_per_language=4, seed=2)
    items = load_items(spec)
    assert [it["language"] for it in items] == ["de"] * 4 + ["en"] * 4
    assert [it["parallel_id"] for it in items[:4]] == [it["parallel_id"] for it in items[4:]]
    assert items[4] == next(it for it in xquad_items(XQUAD, "en", seed=2) if it["item_uid"] == items[4]["item_uid"])


def test_hub_path_calls_load_dataset(monkeypatch):
    import datasets

    calls = []
    native = {
        "facebook/belebele": [
            belebele_record(1, "How should the hand be?", ["Tense", "Relaxed", "Closed", "Cold"], "2")
        ],
        "google/xquad": XQUAD,
    }

    def fake_load(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(native[path])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    items = load_items(ItemsSpec(source="hf:belebele", languages=("en", "zho_Hans"), n_per_language=0))
    assert calls == [("facebook/belebele", "eng_Latn", "test"), ("facebook/belebele", "zho_Hans", "test")]
    assert sorted(it["language"] for it in items) == ["en", "zh"]
    calls.clear()
    items = load_items(ItemsSpec(source="hf:xquad", languages=("ru",), split="validation", n_per_language=3))
    assert calls == [("google/xquad", "xquad.ru", "validation")]
    assert len(items) == 3 and {it["language"] for it in items} == {"ru"}

    def failing(path, name=None, split=None, **kw):
        raise RuntimeError("Dataset scripts are no longer supported")

    monkeypatch.setattr(datasets, "load_dataset", failing)
    with pytest.raises(UserError, match=r"hf:mkqa: cannot load apple/mkqa .*ml-mkqa"):
        load_items(ItemsSpec(source="hf:mkqa", languages=("en",)))


def test_unknown_hf_dataset_or_language():
    with pytest.raises(UserError, match=r"unknown dataset 'squad' \(known: hf:xquad, hf:tydiqa"):
        load_items(ItemsSpec(source="hf:squad"))
    with pytest.raises(UserError, match=r"unknown language\(s\) ja \(available: ar, de, el, en"):
        load_items(ItemsSpec(source="hf:xquad", languages=("en", "ja")))


def test_mkqa_from_a_local_gzipped_jsonl(hf_cache):
    import gzip

    path = hf_cache / "mkqa.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in MKQA:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    items = load_items(ItemsSpec(source=f"hf:mkqa:{path}", languages=("ja", "zh"), n_per_language=0))
    assert sorted(it["item_uid"] for it in items if it["language"] == "ja") == [
        "mkqa/default/train/1/ja",
        "mkqa/default/train/2/ja",
        "mkqa/default/train/3/ja",
        "mkqa/default/train/4/ja",
    ]
    assert {it["language"] for it in items} == {"ja", "zh"}
