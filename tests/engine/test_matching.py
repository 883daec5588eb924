"""Language-aware answer matching."""

from __future__ import annotations

import pytest

from engine.matching import (
    GUARDS,
    Match,
    Scoring,
    clean_prediction,
    degenerate,
    match_answer,
    normalize,
    token_f1,
    tokens,
    words,
)
from engine.runfolder import load_schema


@pytest.mark.parametrize(
    "pred,golds,lang,rule,alias",
    [
        ("Paris", ["Paris"], "en", "exact", "Paris"),
        ("Answer: Paris.", ["Paris"], "en", "exact", "Paris"),
        ('"The Nile"', ["Nile"], "en", "exact", "Nile"),
        ("The capital is Paris.", ["Paris"], "en", "contains", "Paris"),
        ("Parisian", ["Paris"], "en", "none", None),
        ("It is the USA", ["United States", "USA"], "en", "contains", "USA"),
        ("Paris\nQuestion: What is the capital of Italy? Rome", ["Rome"], "en", "none", None),
        (
            "die Vereinigten Staaten",
            ["Vereinigte Staaten", "Vereinigten Staaten"],
            "de",
            "exact",
            "Vereinigten Staaten",
        ),
        ("Antwort: Der Nil", ["Nil"], "de", "exact", "Nil"),
        ("L’Afrique", ["Afrique"], "fr", "exact", "Afrique"),
        ("Réponse : le Caire", ["Le Caire"], "fr", "exact", "Le Caire"),
        ("La respuesta es: El Cairo", ["El Cairo"], "es", "exact", "El Cairo"),
        ("Ответ: Лев Толстой", ["Лев Толстой", "Толстой"], "ru", "exact", "Лев Толстой"),
        ("Это было в Африке.", ["Африка", "Африке"], "ru", "contains", "Африке"),
        ("Фёдор Достоевский", ["Федор Достоевский"], "ru", "exact", "Федор Достоевский"),
        ("東京です。", ["東京", "東京都"], "ja", "contains", "東京"),
        ("「東京都」", ["東京", "東京都"], "ja", "exact", "東京都"),
        ("答え：ゲーテ", ["ゲーテ"], "ja", "exact", "ゲーテ"),
        ("答案：东京。", ["东京"], "zh", "exact", "东京"),
        ("列夫托尔斯泰", ["列夫·托尔斯泰"], "zh", "exact", "列夫·托尔斯泰"),
        ("首都是北京", ["北京"], "zh", "contains", "北京"),
        ("钾的符号是Kr", ["K"], "zh", "none", None),
        ("钾的符号是K", ["K"], "zh", "contains", "K"),
        ("ＡＵ", ["Au"], "en", "exact", "Au"),  # NFKC folds full-width letters
        ("الإجابة: القاهرة", ["القاهرة"], "ar", "exact", "القاهرة"),
        ("إفريقيا", ["أفريقيا"], "ar", "exact", "أفريقيا"),
        ("عاصمة مصر هي القاهرة", ["القاهرة"], "ar", "contains", "القاهرة"),
        ("กรุงเทพมหานคร", ["กรุงเทพ"], "th", "contains", "กรุงเทพ"),
    ],
)
def test_rules_per_language(pred, golds, lang, rule, alias):
    m = match_answer(pred, golds, lang)
    assert (m.rule, m.alias, m.correct) == (rule, alias, rule != "none")
    assert m.normalizer == lang
    assert m.em == (1.0 if rule == "exact" else 0.0)


def test_simplified_and_traditional_are_not_unified():
    # NFKC does not map 东 to 東: a simplified answer needs its traditional form as an alias
    assert not match_answer("東京", ["东京"], "zh").correct
    assert match_answer("東京", ["东京", "東京"], "zh").alias == "東京"


def test_containment_can_be_turned_off():
    m = match_answer("The capital is Paris.", ["Paris"], "en", Scoring.parse("exact"))
    assert (m.correct, m.rule, m.alias) == (False, "none", None)
    assert 0 < m.f1 < 1


def test_exact_preferred_over_contains_across_aliases():
    m = match_answer("Tolstoy", ["Leo Tolstoy", "Tolstoy"], "en")
    assert (m.rule, m.alias) == ("exact", "Tolstoy")


def test_articles_dropped_per_language():
    assert normalize("The United States", "en") == "united states"
    assert normalize("Die Göttliche Komödie", "de") == "göttliche komödie"
    assert normalize("l'Afrique du Sud", "fr") == "afrique sud"
    assert normalize("Los miserables", "es") == "miserables"
    assert normalize("the", "en") == "the"  # never normalised to nothing
    assert normalize("die", "en") == "die"  # German articles only in German


def test_cjk_normalisation_and_tokens():
    assert normalize("「東京都」です。", "ja") == "東京都です"
    assert tokens("iPhone 15を買った", "ja") == ["iphone", "15", "を", "買", "っ", "た"]
    assert normalize("Ｔｏｋｙｏ　タワー", "ja") == "tokyo タワー"


def test_token_f1():
    assert token_f1(["a", "b"], ["a", "b"]) == 1.0
    assert token_f1(["a", "x"], ["a", "b"]) == 0.5
    assert token_f1([], ["a"]) == 0.0
    m = match_answer("北京市", ["北京"], "zh")  # characters for zh: P=2/3, R=1
    assert m.f1 == pytest.approx(0.8)
    assert match_answer("New York City", ["New York"], "en").f1 == pytest.approx(0.8)


def test_clean_prediction():
    assert clean_prediction("\n\n  **Answer:** Berlin\nmore") == "Berlin"
    assert clean_prediction("A: Madrid") == "Madrid"
    assert clean_prediction("") == ""


def test_empty_prediction_or_golds():
    assert match_answer("", ["Paris"], "en") == Match(False, "none", None, "en", 0.0, 0.0)
    assert not match_answer("Paris", ["", "  "], "en").correct
    assert match_answer("...", ["Paris"], "en").rule == "none"


def test_to_dict_is_the_schema_match_object():
    import jsonschema

    m = match_answer("Paris", ["Paris"], "zh-TW")
    assert m.normalizer == "zh"
    jsonschema.validate(m.to_dict(), {"$defs": load_schema("outcome")["$defs"], "$ref": "#/$defs/match"})
    assert set(m.to_dict()) == {"rule", "alias", "normalizer", "guards", "degenerate", "other_options"}


@pytest.mark.parametrize(
    ("text", "loop"),
    [
        ("Sou C M K M K M K M K M K M K", True),  # a 2-token unit, 6 copies
        ("by by by M and M. M K M K", True),  # by×3 and (M K)×2 cover 7 of 10 tokens
        ("Paris Paris Paris", True),
        ("北京北京北京", True),  # characters are tokens in zh
        ("The island is Bora Bora.", False),  # two copies of one token: reduplication, not a loop
        ("New York City", False),
        ("我的妈妈是老师", False),  # 妈妈: two copies of one character
        ("Yes yes, the capital is Paris", False),  # a repeat covering less than half
        ("", False),
    ],
)
def test_degenerate(text: str, loop: bool) -> None:
    lang = "zh" if any(ord(c) > 0x3000 for c in text) else "en"
    assert degenerate(tokens(text, lang)) is loop


def test_words_keep_inner_punctuation_and_split_at_scripts() -> None:
    w = words("K-pop, (K) 钾是K. 1,300", "zh")
    assert w.tokens == ("k", "pop", "k", "钾", "是", "k", "1", "300")
    assert w.whole(0, 1) is False and w.whole(0, 2) and w.whole(2, 3) and w.whole(5, 6)
    assert w.whole(7, 8) is False  # '300' inside '1,300'
    assert tokens("l'Afrique du Sud", "fr") == ["afrique", "sud"]  # articles go before words are formed


def test_scoring_parse_and_record() -> None:
    assert Scoring.parse() == Scoring("contains", ("hedge", "loop", "short"), None)
    s = Scoring.parse("f1 >= 0.5", "short,hedge")
    assert (s.rule, s.f1_min, s.guards, s.name) == ("f1", 0.5, ("hedge", "short"), "f1>=0.5+hedge+short")
    assert Scoring.parse("exact", "none").name == "exact" and Scoring.parse(guards="all").guards == GUARDS
    block = s.to_dict()
    assert block["version"] == 4 and set(block["definitions"]) == {"hedge", "short"}
    import jsonschema

    jsonschema.validate({"matching": block}, {"properties": load_schema("manifest")["properties"]})


def test_a_guard_only_denies_what_the_rule_would_credit() -> None:
    m = match_answer("Lyon or Marseille", ["Paris"], "en", options=["Paris", "Lyon", "Marseille"])
    assert (m.correct, m.guards, m.alias, m.other_options) == (False, (), None, ("Lyon", "Marseille"))
    m = match_answer("Paris or Lyon", ["Paris"], "en", Scoring.parse("contains", "none"), ["Paris", "Lyon"])
    assert (m.correct, m.rule, m.other_options) == (True, "contains", ("Lyon",))  # recorded, not applied
    m = match_answer("Paris", ["Paris"], "en", options=["Paris", "Lyon"])
    assert (m.rule, m.degenerate) == ("exact", False)


def test_f1_rule_with_guards() -> None:
    f1 = Scoring.parse("f1>=0.5")
    assert match_answer("New York City", ["New York"], "en", f1).rule == "f1"
    assert match_answer("York", ["New York"], "en", f1).correct  # F1 = 2/3
    m = match_answer("K-pop", ["K"], "en", f1)  # F1 = 2/3, but a short gold must be a whole word
    assert (m.correct, m.guards) == (False, ("short",))
    assert match_answer("K-pop", ["K"], "en", Scoring.parse("f1>=0.5", "none")).correct


def test_invisible_format_characters_do_not_decide_a_match():
    """A right-to-left mark in an Arabic gold, a zero-width space or a soft hyphen in an output made a
    visually identical answer wrong, even under containment."""
    assert match_answer("Paris\u200b", ["Paris"], "fr").rule == "exact"
    assert match_answer("باريس", ["\u200fباريس"], "ar").rule == "exact"
    assert match_answer("\u200eBerlin ist die Hauptstadt", ["Berlin"], "de").rule == "contains"
    assert normalize("Ber\u00adlin", "de") == "berlin" and normalize("Mont\u200bBlanc", "fr") == "mont blanc"
