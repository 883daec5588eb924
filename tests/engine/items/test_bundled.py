"""The bundled QA set meets its own requirements and equals its generator's output."""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict

from engine.config import ItemsSpec
from engine.data import make_bundled_qa
from engine.items import BUNDLED, load_items, read_item_file
from engine.matching import match_answer

LANGS = ("en", "de", "fr", "es", "ru", "zh", "ja", "ar")


def test_shipped_file_equals_generator_output():
    assert BUNDLED.read_text(encoding="utf-8") == make_bundled_qa.render()


def test_requirements():
    items = read_item_file(BUNDLED, strict=True)
    per_lang = Counter(it["language"] for it in items)
    assert set(per_lang) == set(LANGS) and min(per_lang.values()) >= 48
    by_fact = defaultdict(dict)
    for it in items:
        assert len(it["options"]) == 4 and it["source"]["dataset"] == "prunescope-bundled"
        assert it["options"][it["gold_index"]] == it["answer"]
        by_fact[it["parallel_id"]][it["language"]] = it
    for fact, translations in by_fact.items():
        assert set(translations) == set(LANGS), fact
        assert len({t["gold_index"] for t in translations.values()}) == 1, fact
    # non-Latin scripts really are used
    scripts = {
        lang: {
            unicodedata.name(ch).split()[0]
            for it in items
            if it["language"] == lang
            for ch in it["question"]
            if ch.isalpha()
        }
        for lang in ("ru", "zh", "ja", "ar")
    }
    assert "CYRILLIC" in scripts["ru"] and "CJK" in scripts["zh"] and "ARABIC" in scripts["ar"]
    assert {"HIRAGANA", "KATAKANA"} & scripts["ja"]
    # answers have aliases where a second form is common
    assert sum(bool(it["aliases"]) for it in items) > len(items) / 3


def test_answers_match_themselves_and_not_the_distractors():
    for it in read_item_file(BUNDLED):
        golds = [it["answer"], *it["aliases"]]
        for alias in golds:
            assert match_answer(alias, golds, it["language"]).correct, (it["item_uid"], alias)
        for i, opt in enumerate(it["options"]):
            if i != it["gold_index"]:
                assert not match_answer(opt, golds, it["language"]).correct, (it["item_uid"], opt)


def test_load_items_bundled_parallel_subset():
    items = load_items(ItemsSpec(source="bundled", languages=("ja", "en", "ru"), n_per_language=12, seed=5))
    assert [it["language"] for it in items] == ["en"] * 12 + ["ja"] * 12 + ["ru"] * 12
    assert [it["parallel_id"] for it in items[:12]] == [it["parallel_id"] for it in items[12:24]]
