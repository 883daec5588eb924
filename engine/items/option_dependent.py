"""Which multiple-choice questions make no sense without their options (and so get no open form).

A question is option-dependent when its text refers to the options ("Which of the following…",
"Lequel des suivants…", "以下哪…") or when an option does ("All of the above", "Both A and B",
"I and III only", "True, False"). The marker lists below cover the languages of Global-MMLU and
Belebele that we could check (en, de, fr, es, it, pt, nl, ru, uk, pl, tr, id, sw, zh, ja, ko, ar,
hi); markers in alphabetic scripts match whole words only; every list is applied to every item, because a false alarm only drops an item while a miss
leaves an unanswerable open question. Matching is on NFKC-casefolded text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

QUESTION_MARKERS: dict[str, tuple[str, ...]] = {
    "en": (
        "which of the following",
        "which one of the following",
        "the following",
        "which of these",
        "all of the above",
        "none of the above",
        "statement 1",
        "statement i",
    ),
    "de": (
        "welche der folgenden",
        "welcher der folgenden",
        "welches der folgenden",
        "welche dieser",
        "folgende",
        "folgenden",
        "folgendes",
        "aussage 1",
    ),
    "fr": (
        "lequel des suivants",
        "laquelle des suivantes",
        "lesquels des suivants",
        "lesquelles des suivantes",
        "parmi les suivants",
        "parmi les suivantes",
        "ci-dessous",
        "ci-dessus",
        "suivantes",
        "suivants",
        "affirmation 1",
        "énoncé 1",
    ),
    "es": (
        "cuál de los siguientes",
        "cuál de las siguientes",
        "cuáles de los siguientes",
        "cuáles de las siguientes",
        "siguientes",
        "siguiente afirmación",
        "afirmación 1",
        "enunciado 1",
    ),
    "it": ("quale dei seguenti", "quale delle seguenti", "seguenti", "affermazione 1"),
    "pt": ("qual dos seguintes", "qual das seguintes", "quais dos seguintes", "seguintes", "afirmação 1"),
    "nl": ("welke van de volgende", "volgende", "bewering 1"),
    "ru": (
        "какой из следующих",
        "какая из следующих",
        "какое из следующих",
        "какие из следующих",
        "что из следующего",
        "из перечисленных",
        "следующих",
        "утверждение 1",
    ),
    "uk": ("яке з наступних", "який з наступних", "що з наступного", "з перелічених", "наступних"),
    "pl": ("który z poniższych", "która z poniższych", "które z poniższych", "poniższych", "stwierdzenie 1"),
    "tr": ("aşağıdakilerden hangisi", "aşağıdakilerden", "ifade 1"),
    "id": ("manakah dari berikut", "berikut ini", "pernyataan 1"),
    "sw": ("ipi kati ya zifuatazo", "zifuatazo", "yafuatayo", "ifuatayo"),
    "zh": (
        "以下哪",
        "下列哪",
        "下面哪",
        "以下选项",
        "下列选项",
        "以下各项",
        "下列各项",
        "以下关于",
        "下列关于",
        "以上都",
        "以上皆",
        "以上均",
        "陈述1",
    ),
    "ja": (
        "次のうち",
        "以下のうち",
        "次の中で",
        "以下の中で",
        "次のどれ",
        "以下のどれ",
        "次のいずれ",
        "以下のいずれ",
        "上記",
        "記述1",
    ),
    "ko": ("다음 중", "다음 보기", "위의 모든", "진술 1"),
    "ar": (
        "أي مما يلي",
        "أي من التالي",
        "أي من العبارات التالية",
        "مما يلي",
        "التالية",
        "جميع ما سبق",
        "كل ما سبق",
        "العبارة 1",
    ),
    "hi": ("निम्नलिखित में से", "निम्न में से", "इनमें से कौन"),
}

OPTION_MARKERS: dict[str, tuple[str, ...]] = {
    "en": (
        "all of the above",
        "none of the above",
        "all of these",
        "none of these",
        "both of these",
        "neither of these",
        "both a and b",
        "all the above",
    ),
    "de": (
        "alle oben genannten",
        "keine der oben genannten",
        "alle genannten",
        "keine der genannten",
        "alle der oben",
        "sowohl a als auch b",
        "alle antworten",
    ),
    "fr": (
        "toutes les réponses",
        "aucune des réponses",
        "tout ce qui précède",
        "aucune de ces",
        "toutes ces réponses",
        "a et b",
    ),
    "es": (
        "todas las anteriores",
        "ninguna de las anteriores",
        "todas las opciones",
        "ninguna de las opciones",
        "todo lo anterior",
        "a y b",
    ),
    "it": ("tutte le precedenti", "nessuna delle precedenti", "tutte le risposte"),
    "pt": ("todas as anteriores", "nenhuma das anteriores", "todas as alternativas"),
    "ru": (
        "все вышеперечисленные",
        "все перечисленные",
        "всё вышеперечисленное",
        "все вышеперечисленное",
        "ничего из перечисленного",
        "ни один из",
        "все ответы",
    ),
    "zh": ("以上都", "以上皆", "以上均", "以上全", "都不是", "都对", "都正确"),
    "ja": ("上記のすべて", "上記すべて", "上記のいずれ", "すべて正しい", "いずれでもない"),
    "ar": ("جميع ما سبق", "كل ما سبق", "لا شيء مما سبق", "جميع ما ذكر", "كل ما ذكر"),
    "sw": ("yote yaliyotajwa", "yote hapo juu", "hakuna kati ya"),
}

# Options that are only references to listed statements ("I and III only", "1, 2", "(A) and (C)")
# or truth-value pairs ("True, False") are option-dependent in any language.
_REF = r"(?:[ivx]{1,4}|\d{1,2}|\(?[a-d]\))"
_JOINER = r"(?:\s*(?:,|;|&|\+|and|et|und|y|e|и|та|ve|dan|na|و|和|及|と|与|및)\s*)"
_ONLY = r"(?:only|seulement|uniquement|nur|solo|solamente|только|のみ|だけ|仅|只有|فقط)"
_REFERENCE_OPTION = re.compile(
    rf"^\s*(?:{_REF}(?:{_JOINER}{_REF})+\s*{_ONLY}?|{_REF}\s*{_ONLY}|ii|iii|iv|\([a-d]\))\s*\.?\s*$"
)
_TRUTH = (
    r"(?:true|false|wahr|falsch|vrai|faux|verdadero|falso|vero|verdadeiro|верно|неверно|正确|错误|正しい|誤り|صحيح|خطأ)"
)
_TRUTH_PAIR = re.compile(rf"^\s*{_TRUTH}\s*[,،、;]\s*{_TRUTH}\s*$")
_OPTION_LETTER_REF = re.compile(r"\b(?:options?|choices?|answers?)\s*\(?[a-d]\)?(?:\b|$)")

_CJK = re.compile("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def _marker_regex(markers: dict[str, tuple[str, ...]]) -> re.Pattern[str]:
    """One regex for all markers; markers in alphabetic scripts must stand as whole words."""
    parts = []
    for marker in sorted({m for ms in markers.values() for m in ms}, key=len, reverse=True):
        body = re.escape(marker)
        parts.append(body if _CJK.match(marker) else rf"(?<!\w){body}(?!\w)")
    return re.compile("|".join(parts))


_QUESTION_RE = _marker_regex(QUESTION_MARKERS)
_OPTION_RE = _marker_regex(OPTION_MARKERS)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def option_dependent(question: str, options: Sequence[str]) -> str | None:
    """The reason a question cannot be asked without its options, or None if it can."""
    q = _fold(question)
    found = _QUESTION_RE.search(q)
    if found:
        return f"question mentions {found.group(0)!r}"
    if _OPTION_LETTER_REF.search(q):
        return "question refers to an option by letter"
    for opt in options:
        o = _fold(opt)
        found = _OPTION_RE.search(o)
        if found:
            return f"option {opt!r} mentions {found.group(0)!r}"
        if _REFERENCE_OPTION.match(o):
            return f"option {opt!r} only refers to other statements"
        if _TRUTH_PAIR.match(o):
            return f"option {opt!r} is a truth-value pair"
    return None
