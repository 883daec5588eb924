"""Language-aware answer matching for open generation (torch-free).

What a prediction goes through before it is compared (documented in engine/data/README.md too):

1. **Cleaning** (`clean_prediction`): only the first non-empty line is kept (generations run on into
   new questions); a leading answer prefix such as ``Answer:``, ``A:``, ``Antwort:``, ``Réponse :``,
   ``Respuesta:``, ``Ответ:``, ``答案：``, ``答え：`` or ``الإجابة:`` is removed; surrounding quotes,
   brackets and a trailing period go with the punctuation in step 2.
2. **Normalisation** (`normalize`, the same for prediction and gold): Unicode NFKC, case folding,
   language extras (Russian ``ё``→``е``; Arabic diacritics and tatweel removed, ``أ إ آ``→``ا``),
   every Unicode punctuation character (CJK ``。、「」《》・`` included) replaced by a space,
   whitespace collapsed, and articles dropped where the language has them (en, de, fr, es, it, pt,
   nl, ca as free words; French/Italian elided ``l'``; the Arabic prefix ``ال``).
3. **Tokens**: words split on whitespace, except that CJK ideographs, kana and Thai letters are one
   token each (those scripts do not separate words), so token F1 is a character F1 for zh/ja/th and
   containment in those languages is contiguous-character containment. Runs of Latin letters or
   digits inside CJK text stay whole words, so ``K`` does not match inside ``Kr``.

Rules, tried against the answer first and then each alias in order:
``exact`` (token sequences equal) before ``contains`` (the gold token sequence occurs contiguously
in the prediction's tokens: a token-boundary match, so "Paris" does not match "Parisian"; only when
`containment` is on). EM is 1.0 when some gold matches exactly; F1 is the best bag-of-tokens F1 over
the golds. Known limit: character containment in zh/ja can over-accept when the gold is a
substring of a longer name (京都 inside 東京都); aliases cannot fix that, EM/F1 are stored to see it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Rule = Literal["exact", "contains", "none"]

ARTICLES: dict[str, frozenset[str]] = {
    "en": frozenset({"a", "an", "the"}),
    "de": frozenset({"der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "eines"}),
    "fr": frozenset({"le", "la", "les", "l", "un", "une", "des", "du", "au", "aux"}),
    "es": frozenset({"el", "la", "lo", "los", "las", "un", "una", "unos", "unas"}),
    "it": frozenset({"il", "lo", "la", "i", "gli", "le", "l", "un", "uno", "una"}),
    "pt": frozenset({"o", "a", "os", "as", "um", "uma", "uns", "umas"}),
    "nl": frozenset({"de", "het", "een"}),
    "ca": frozenset({"el", "la", "els", "les", "l", "un", "una"}),
}

# One token per character in these scripts: CJK ideographs (+ extensions, compatibility), kana,
# the ideographic iteration mark, and Thai.
_CHAR_SCRIPTS = "\u3005\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f"
_TOKEN_RE = re.compile(f"[{_CHAR_SCRIPTS}]|[^\\s{_CHAR_SCRIPTS}]+")
_CHAR_TOKEN_RE = re.compile(f"^[{_CHAR_SCRIPTS}]$")
_AR_DIACRITICS_RE = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_AR_ALEF_RE = re.compile("[\u0622\u0623\u0625\u0671]")

_PREFIXES = (
    "final answer",
    "the answer is",
    "answer",
    "a",
    "antwort",
    "die antwort ist",
    "réponse",
    "reponse",
    "la réponse est",
    "respuesta",
    "la respuesta es",
    "ответ",
    "答案",
    "答",
    "回答",
    "答え",
    "الإجابة",
    "الاجابة",
    "الجواب",
    "jibu",
)
_PREFIX_RE = re.compile(
    r"^\s*(?:\*\*)?(?:"
    + "|".join(re.escape(p) for p in sorted(_PREFIXES, key=len, reverse=True))
    + r")(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)


def base_language(language: str) -> str:
    """'zh-TW' -> 'zh': the normaliser is chosen by the base language code."""
    return language.split("-")[0].split("_")[0].lower()


def _strip_punctuation(text: str) -> str:
    return "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)


def tokens(text: str, language: str) -> list[str]:
    """Normalised tokens of `text` (see the module docstring)."""
    lang = base_language(language)
    text = unicodedata.normalize("NFKC", text).casefold()
    if lang == "ru":
        text = text.replace("ё", "е")
    elif lang == "ar":
        text = _AR_ALEF_RE.sub("\u0627", _AR_DIACRITICS_RE.sub("", text))
    toks = _TOKEN_RE.findall(_strip_punctuation(text))
    articles = ARTICLES.get(lang)
    if articles:
        kept = [t for t in toks if t not in articles]
        toks = kept or toks
    elif lang == "ar":
        toks = [t[2:] if t.startswith("\u0627\u0644") and len(t) > 3 else t for t in toks]
    return toks


def normalize(text: str, language: str) -> str:
    """Normalised text: tokens joined by spaces, without spaces between CJK/Thai characters."""
    out: list[str] = []
    prev_char = False
    for tok in tokens(text, language):
        is_char = bool(_CHAR_TOKEN_RE.match(tok))
        if out and not (is_char and prev_char):
            out.append(" ")
        out.append(tok)
        prev_char = is_char
    return "".join(out)


def clean_prediction(text: str) -> str:
    """First non-empty line of a generation, without a leading 'Answer:'-style prefix."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    return _PREFIX_RE.sub("", line, count=1).strip()


def token_f1(pred: Sequence[str], gold: Sequence[str]) -> float:
    """SQuAD-style bag-of-tokens F1."""
    if not pred or not gold:
        return float(list(pred) == list(gold))
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains_tokens(hay: Sequence[str], needle: Sequence[str]) -> bool:
    """Whether the non-empty token sequence `needle` occurs contiguously in `hay`."""
    n = len(needle)
    return n > 0 and any(list(hay[i : i + n]) == list(needle) for i in range(len(hay) - n + 1))


@dataclass(frozen=True)
class Match:
    """The outcome of matching one prediction against the gold answer and its aliases."""

    correct: bool
    rule: Rule
    alias: str | None
    normalizer: str
    em: float
    f1: float

    def to_dict(self) -> dict[str, object]:
        """The outcome schema's `match` object (em/f1 are separate fields of a generation)."""
        return {"rule": self.rule, "alias": self.alias, "normalizer": self.normalizer}


def match_answer(prediction: str, golds: Sequence[str], language: str, containment: bool = True) -> Match:
    """Match a generation against `golds` (answer first, then aliases) in `language`."""
    lang = base_language(language)
    pred = tokens(clean_prediction(prediction), lang)
    gold_toks = [(g, tokens(g, lang)) for g in golds if g and g.strip()]
    gold_toks = [(g, t) for g, t in gold_toks if t]
    f1 = max((token_f1(pred, t) for _, t in gold_toks), default=0.0)
    if pred:
        for g, t in gold_toks:
            if pred == t:
                return Match(True, "exact", g, lang, 1.0, f1)
        if containment:
            for g, t in gold_toks:
                if contains_tokens(pred, t):
                    return Match(True, "contains", g, lang, 0.0, f1)
    return Match(False, "none", None, lang, 0.0, f1)
