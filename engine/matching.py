"""Language-aware answer matching for open generation, with guards on containment (torch-free).

What a prediction goes through before it is compared (docs/matching.md says the same with examples):

1. **Cleaning** (`clean_prediction`): only the first non-empty line is kept (generations run on into
   new questions); a leading answer prefix such as ``Answer:``, ``A:``, ``Antwort:``, ``Réponse :``,
   ``Respuesta:``, ``Ответ:``, ``答案：``, ``答え：`` or ``الإجابة:`` is removed.
2. **Normalisation** (`normalize`, the same for prediction, golds and options): Unicode NFKC, case
   folding, invisible format characters removed (bidi marks, soft hyphen, joiners; a zero-width space
   is a separator), language extras (Russian ``ё``→``е``; Arabic diacritics and tatweel removed, ``أ إ آ``→``ا``),
   every Unicode punctuation character (CJK ``。、「」《》・`` included) read as a separator, and articles
   dropped where the language has them (en, de, fr, es, it, pt, nl, ca as free words; French/Italian
   elided ``l'``; the Arabic prefix ``ال``). A text of articles only keeps them, and such a gold or
   option (French ``Au``, a letter ``A``) is searched in the prediction's words with their articles,
   where it stands alone: a whole word that no word follows before punctuation or the end.
3. **Words and tokens** (`words`): a word is a run of characters between whitespace, with punctuation
   at its edges removed; punctuation inside it (``X-ray``, ``1,300``, ``cyclopol.K``) splits it into
   tokens but does not end the word. CJK ideographs, kana and Thai letters are one word and one token
   each (those scripts do not separate words), and a change between one of those scripts and any other
   character is a word boundary (``是K`` is two words), so token F1 is a character F1 for zh/ja/th
   and containment there is contiguous-character containment.

Rules (`Scoring.rule`), tried against the answer first and then each alias in order:

- ``exact``: the token sequences are equal. Always tried first, and never subject to a guard.
- ``contains``: the gold's tokens occur contiguously in the prediction's tokens ("Paris" does not match
  "Parisian": tokens, not characters).
- ``f1``: the bag-of-tokens F1 with the gold is at least ``Scoring.f1_min``.

Guards (`Scoring.guards`) deny credit that ``contains`` or ``f1`` would give, and each one that fires is
named in the match record:

- ``hedge``: the prediction names another of the item's options too (an option that is not a gold, found
  by the same containment test outside every occurrence of a gold): a hedge ("Paris or Lyon"), a list
  of candidates, or the gold only inside a longer option ("York" inside the option "New York").
- ``loop``: the prediction is degenerate (`degenerate`): *tandem repeats* cover at least half of its
  tokens. A tandem repeat is a stretch of back-to-back copies of one unit of 1 to 8 tokens: at least
  3 copies of a one-token unit ("by by by"; two copies are ordinary reduplication such as "Bora Bora"),
  at least 2 copies of a longer unit ("M K M K"). An output equal to a gold is never degenerate.
- ``short``: a short gold (at most 3 characters once normalised, or digits only: chemical symbols,
  abbreviations, numbers, years) is credited only for an occurrence that is a whole word: "K" is not
  found in "K-pop" or "cyclopol.K", "300" not in "1,300". Golds in CJK or Thai script keep the
  character rule.

Known limits: containment in zh/ja can still over-accept a gold inside a longer name (京都 inside 東京都)
when that name is not one of the options; an answer that names a distractor to reject it ("Canberra,
not Sydney") is not credited under ``hedge``; a gold made of a repeated multi-token unit ("New York,
New York") inside a short sentence reads as a loop. EM and F1 are stored to see such cases.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine.errors import UserError

Rule = Literal["exact", "contains", "f1", "none"]
GUARDS = ("hedge", "loop", "short")
MATCHING_VERSION = 4  # 1: exact / contains without guards; 2: words, the guards, the f1 rule;
# 3: invisible format characters removed in normalisation, a zero-width space separating words;
# 4: a gold or option made only of articles is found where it stands alone in the output
SHORT_MAX_CHARS = 3
LOOP_MAX_UNIT = 8
LOOP_MIN_COVERAGE = 0.5
GUARD_DEFINITIONS = {
    "hedge": "no credit when the output also names another of the item's options (outside every gold occurrence)",
    "loop": f"no credit when tandem repeats (>= 3 back-to-back copies of a 1-token unit, >= 2 of a 2-{LOOP_MAX_UNIT}"
    f"-token unit) cover >= {LOOP_MIN_COVERAGE:g} of the output's tokens (the output is then flagged degenerate)",
    "short": f"a gold of <= {SHORT_MAX_CHARS} characters or of digits only (not CJK/Thai) counts only as whole words",
}

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

# One word per character in these scripts: CJK ideographs (+ extensions, compatibility), kana,
# the ideographic iteration mark, and Thai.
_CHAR_SCRIPTS = "\u3005\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f"
_WORD_RE = re.compile(f"[{_CHAR_SCRIPTS}]|[^\\s{_CHAR_SCRIPTS}]+")
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


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def _split_punct(word: str) -> list[str]:
    """The tokens of one word: its pieces between punctuation characters."""
    if word.isalnum():  # the common case, without a per-character lookup
        return [word]
    return "".join(" " if _is_punct(ch) else ch for ch in word).split()


@dataclass(frozen=True)
class Words:
    """A normalised text as tokens, with the token positions where words start and end."""

    tokens: tuple[str, ...]
    starts: frozenset[int]
    ends: frozenset[int]  # exclusive: a word of tokens [i, j) ends at j
    pauses: frozenset[int] = frozenset()  # word ends followed by punctuation or the end of the text

    def whole(self, start: int, end: int) -> bool:
        """Whether tokens [start, end) are whole words (start at a word start, end at a word end)."""
        return start in self.starts and end in self.ends


def words(text: str, language: str, keep_articles: bool = False) -> Words:
    """Normalised words and tokens of `text` (see the module docstring); `keep_articles` keeps the
    articles and records the pauses (what a text of articles only is searched in: `Candidate.alone`)."""
    lang = base_language(language)
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isprintable():  # invisible format characters: removed, a zero-width space a separator
        text = "".join(" " if ch == "\u200b" else "" if unicodedata.category(ch) == "Cf" else ch for ch in text)
    if lang == "ru":
        text = text.replace("ё", "е")
    elif lang == "ar":
        text = _AR_ALEF_RE.sub("\u0627", _AR_DIACRITICS_RE.sub("", text))
    raw = _WORD_RE.findall(text)
    split = [_split_punct(w) for w in raw]
    groups = [toks for toks in split if toks]
    paused: list[bool] = []
    if keep_articles:  # a word pauses when punctuation ends it or begins the next word, or nothing follows
        paused = [
            _is_punct(w[-1]) or k + 1 == len(raw) or _is_punct(raw[k + 1][0])
            for k, (w, toks) in enumerate(zip(raw, split))
            if toks
        ]
    articles = None if keep_articles else ARTICLES.get(lang)
    if articles:
        kept = [[t for t in g if t not in articles] for g in groups]
        if any(kept):  # never normalised to nothing: a text of articles only keeps them
            groups = [g for g in kept if g]
    elif lang == "ar":
        groups = [[t[2:] if t.startswith("\u0627\u0644") and len(t) > 3 else t for t in g] for g in groups]
    flat: list[str] = []
    starts, ends, pauses = set(), set(), set()
    for k, g in enumerate(groups):
        starts.add(len(flat))
        flat.extend(g)
        ends.add(len(flat))
        if paused and paused[k]:
            pauses.add(len(flat))
    return Words(tuple(flat), frozenset(starts), frozenset(ends), frozenset(pauses))


def tokens(text: str, language: str) -> list[str]:
    """Normalised tokens of `text` (see the module docstring)."""
    return list(words(text, language).tokens)


def is_char_token(token: str) -> bool:
    """A CJK / kana / Thai character (one token per character in those scripts)."""
    return bool(_CHAR_TOKEN_RE.match(token))


def normalize(text: str, language: str) -> str:
    """Normalised text: tokens joined by spaces, without spaces between CJK/Thai characters."""
    out: list[str] = []
    prev_char = False
    for tok in tokens(text, language):
        is_char = is_char_token(tok)
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


def occurrences(hay: Sequence[str], needle: Sequence[str]) -> list[tuple[int, int]]:
    """Token spans [i, j) where the non-empty sequence `needle` occurs contiguously in `hay`."""
    n, needle = len(needle), list(needle)
    if n == 0:
        return []
    return [(i, i + n) for i in range(len(hay) - n + 1) if list(hay[i : i + n]) == needle]


def contains_tokens(hay: Sequence[str], needle: Sequence[str]) -> bool:
    """Whether the non-empty token sequence `needle` occurs contiguously in `hay`."""
    return bool(occurrences(hay, needle))


def degenerate(toks: Sequence[str]) -> bool:
    """A repetition loop: tandem repeats cover at least `LOOP_MIN_COVERAGE` of the tokens.

    A tandem repeat is a maximal stretch of back-to-back copies of a unit of u tokens, 1 <= u <=
    `LOOP_MAX_UNIT`, with at least 3 copies when u = 1 and at least 2 when u >= 2.
    """
    toks = list(toks)
    n = len(toks)
    covered = [False] * n
    for u in range(1, LOOP_MAX_UNIT + 1):
        need = 3 if u == 1 else 2
        i = 0
        while i + need * u <= n:
            copies = 1
            while i + (copies + 1) * u <= n and toks[i + copies * u : i + (copies + 1) * u] == toks[i : i + u]:
                copies += 1
            if copies >= need:
                for k in range(i, i + copies * u):
                    covered[k] = True
            i += 1
    return n > 0 and sum(covered) >= LOOP_MIN_COVERAGE * n


def _is_short(toks: Sequence[str]) -> bool:
    if any(is_char_token(t) for t in toks):
        return False
    joined = "".join(toks)
    return len(joined) <= SHORT_MAX_CHARS or joined.isdigit()


@dataclass(frozen=True)
class Candidate:
    """A gold string or an option, normalised once."""

    text: str
    tokens: tuple[str, ...]
    short: bool
    alone: bool = False  # only articles (French `Au`, a letter `A`): found only where it stands alone

    def spans(self, pred: Words, kept: Words | None) -> list[tuple[int, int]]:
        """Where the candidate occurs in the output: in its tokens, or, for a text of articles only, in
        its tokens with the articles kept, as whole words that nothing follows before punctuation or
        the end (an article precedes its noun: `au` in "au Japon" is not the symbol, in "est Au." it is)."""
        if not self.alone:
            return occurrences(pred.tokens, self.tokens)
        assert kept is not None
        return [(i, j) for i, j in occurrences(kept.tokens, self.tokens) if kept.whole(i, j) and j in kept.pauses]


def only_articles(toks: Sequence[str], language: str) -> bool:
    """Tokens that are all articles of the language (the French `Au`, a letter `A`): such a text keeps
    them when normalised, and is found only where it stands alone (`Candidate.alone`)."""
    return bool(toks) and set(toks) <= ARTICLES.get(base_language(language), frozenset())


def _candidates(texts: Iterable[str], lang: str) -> list[Candidate]:
    out = []
    for t in texts:
        toks = tuple(tokens(t, lang)) if t and t.strip() else ()
        if toks:
            out.append(Candidate(t, toks, _is_short(toks), only_articles(toks, lang)))
    return out


@dataclass(frozen=True)
class AnswerKey:
    """What an output is matched against: the golds (answer, then aliases) and the other options."""

    language: str  # base language code: the normaliser
    golds: tuple[Candidate, ...]
    others: tuple[Candidate, ...]

    @classmethod
    def of(cls, golds: Sequence[str], language: str, options: Sequence[str] = ()) -> AnswerKey:
        lang = base_language(language)
        gold = _candidates(golds, lang)
        gold_toks = {g.tokens for g in gold}
        others = [o for o in _candidates(options, lang) if o.tokens not in gold_toks]
        return cls(lang, tuple(gold), tuple(others))

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> AnswerKey:
        """An item's key: its answer, its aliases in order, its options."""
        golds = [item["answer"], *[a for a in item.get("aliases") or [] if a != item["answer"]]]
        return cls.of(golds, item["language"], item.get("options") or ())


@dataclass(frozen=True)
class Scoring:
    """How open generations are scored: a rule and the guards on it (recorded in the manifest)."""

    rule: Literal["exact", "contains", "f1"] = "contains"
    guards: tuple[str, ...] = GUARDS
    f1_min: float | None = None  # the threshold of the f1 rule

    @classmethod
    def parse(cls, rule: str = "contains", guards: str | Sequence[str] | None = None) -> Scoring:
        """'exact' | 'contains' | 'f1>=X', and guards as 'hedge,loop' / 'all' / 'none' or a list."""
        rule = rule.strip()
        names = parse_guards(GUARDS if guards is None else guards)
        if rule == "exact":
            return cls("exact", names)
        if rule == "contains":
            return cls("contains", names)
        if rule.startswith("f1"):
            m = re.fullmatch(r"f1\s*>=\s*([0-9]*\.?[0-9]+)", rule)
            if not m or not 0 < float(m.group(1)) <= 1:
                raise UserError(
                    f"rule {rule!r}: the F1 rule is written f1>=X with 0 < X <= 1, e.g. 'f1>=0.5' "
                    "(quote it in a shell: > redirects)"
                )
            return cls("f1", names, float(m.group(1)))
        raise UserError(f"rule {rule!r}: choose exact, contains or f1>=X (e.g. 'f1>=0.5')")

    @property
    def name(self) -> str:
        """'contains+hedge+loop+short', 'exact', 'f1>=0.5': a short label (used in derived folders' notes)."""
        rule = f"f1>={self.f1_min:g}" if self.rule == "f1" else self.rule
        return "+".join([rule, *self.guards]) if self.rule != "exact" else rule

    def describe(self, version: int = MATCHING_VERSION) -> str:
        """A phrase for reports: 'contains with guards hedge, loop, short (matching v4)'; `version`: the
        matcher's version that applied it (a run folder's, for runs made before the current one)."""
        rule = f"token F1 >= {self.f1_min:g}" if self.rule == "f1" else self.rule
        if self.rule == "exact":
            return f"exact (matching v{version})"
        guards = f"guards {', '.join(self.guards)}" if self.guards else "no guards"
        return f"{rule} with {guards} (matching v{version})"

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `matching` block."""
        return {
            "function": "engine.matching.grade",
            "version": MATCHING_VERSION,
            "rule": self.rule,
            "f1_min": self.f1_min,
            "guards": list(self.guards),
            "golds": "answer, then aliases in order; exact before the rule",
            "options": "the item's options that are not a gold (the hedge guard's candidates)",
            "definitions": {g: GUARD_DEFINITIONS[g] for g in self.guards},
        }


def parse_guards(value: str | Sequence[str]) -> tuple[str, ...]:
    """Guard names in canonical order; 'all' and 'none' as words, unknown names rejected."""
    if not isinstance(value, (str, list, tuple)):
        raise UserError(f"guards: expected a list of names from {', '.join(GUARDS)}, got {value!r}")
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    names = [n for n in names if n]
    if names == ["none"]:
        return ()
    if names == ["all"]:
        return GUARDS
    bad = [n for n in names if n not in GUARDS]
    if bad:
        raise UserError(f"guards: unknown {', '.join(map(repr, bad))}; choose from {', '.join(GUARDS)}, all or none")
    return tuple(g for g in GUARDS if g in names)


DEFAULT_SCORING = Scoring()


@dataclass(frozen=True)
class Match:
    """The outcome of matching one prediction against an answer key."""

    correct: bool
    rule: Rule
    alias: str | None  # the gold credited, or (not correct) the gold found and then denied by a guard
    normalizer: str
    em: float
    f1: float
    guards: tuple[str, ...] = ()  # guards that denied credit
    degenerate: bool = False
    other_options: tuple[str, ...] = ()  # options other than the gold that the output names

    def to_dict(self) -> dict[str, object]:
        """The outcome schema's `match` object (em/f1 are separate fields of a generation)."""
        return {
            "rule": self.rule,
            "alias": self.alias,
            "normalizer": self.normalizer,
            "guards": list(self.guards),
            "degenerate": self.degenerate,
            "other_options": list(self.other_options),
        }


@dataclass(frozen=True)
class Evidence:
    """What one prediction shows against one answer key, before a scoring rule is applied."""

    key: AnswerKey
    words: Words
    f1: tuple[float, ...]  # per gold
    spans: tuple[tuple[tuple[int, int], ...], ...]  # per gold: its occurrences
    whole: tuple[bool, ...]  # per gold: one of its occurrences is whole words
    degenerate: bool
    other_options: tuple[str, ...]

    def verdict(self, scoring: Scoring = DEFAULT_SCORING) -> Match:
        """The match under `scoring`: exact first, then the rule with its guards, gold by gold."""
        key, pred, lang = self.key, self.words.tokens, self.key.language
        best_f1 = max(self.f1, default=0.0)
        if pred:
            for g in key.golds:
                if pred == g.tokens:
                    return Match(True, "exact", g.text, lang, 1.0, best_f1, (), False, self.other_options)
        fired: list[str] = []
        found: str | None = None
        if pred and scoring.rule != "exact":
            for g, f1, spans, whole in zip(key.golds, self.f1, self.spans, self.whole):
                if not (spans if scoring.rule == "contains" else f1 >= (scoring.f1_min or 0.0)):
                    continue
                found = found or g.text
                denied = [
                    name
                    for name, fires in (
                        ("hedge", bool(self.other_options)),
                        ("loop", self.degenerate),
                        ("short", g.short and not whole),
                    )
                    if fires and name in scoring.guards
                ]
                if not denied:
                    return Match(
                        True, scoring.rule, g.text, lang, 0.0, best_f1, (), self.degenerate, self.other_options
                    )
                fired += [d for d in denied if d not in fired]
        order = sorted(fired, key=GUARDS.index)
        return Match(False, "none", found, lang, 0.0, best_f1, tuple(order), self.degenerate, self.other_options)


def evidence(prediction: str, key: AnswerKey) -> Evidence:
    """Tokens, F1 and occurrences per gold, the loop test and the other options named."""
    text = clean_prediction(prediction)
    w = words(text, key.language)
    kept = words(text, key.language, keep_articles=True) if any(c.alone for c in key.golds + key.others) else None
    pred = w.tokens
    spans = tuple(tuple(g.spans(w, kept)) for g in key.golds)
    # a gold occurrence hides the options inside it; spans of texts of articles only are in `kept`'s tokens
    inside = {
        alone: [s for g, per in zip(key.golds, spans) if g.alone == alone for s in per] for alone in (False, True)
    }
    named = tuple(
        o.text
        for o in key.others
        if any(
            not any(a <= i and j <= b for a, b in inside[o.alone]) and (not o.short or o.alone or w.whole(i, j))
            for i, j in o.spans(w, kept)
        )
    )
    is_gold = any(pred == g.tokens for g in key.golds)
    return Evidence(
        key=key,
        words=w,
        f1=tuple(token_f1(pred, g.tokens) for g in key.golds),
        spans=spans,
        whole=tuple(bool(per) if g.alone else any(w.whole(*s) for s in per) for g, per in zip(key.golds, spans)),
        degenerate=bool(pred) and not is_gold and degenerate(pred),
        other_options=named,
    )


def grade(prediction: str, key: AnswerKey, scoring: Scoring = DEFAULT_SCORING) -> Match:
    """Match a generation against an item's answer key under `scoring`."""
    return evidence(prediction, key).verdict(scoring)


def match_answer(
    prediction: str,
    golds: Sequence[str],
    language: str,
    scoring: Scoring = DEFAULT_SCORING,
    options: Sequence[str] = (),
) -> Match:
    """Match a generation against `golds` (answer first, then aliases) and `options` in `language`."""
    return grade(prediction, AnswerKey.of(golds, language, options), scoring)
