"""Deterministic multiple-choice distractors built from the data itself.

Candidates come in tiers (e.g. other answer spans of the same context, then of the same article,
then of other contexts of the same language). Inside a tier, candidates of the gold's kind (numeric
or not) come first, then the rest, each in an order fixed by a seeded sha256 hash, never by Python's
`random` state or set order. A candidate is skipped when, after language-aware normalisation, it is
empty, equals an earlier choice, or overlaps a gold string (one contains the other as tokens).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from engine.items.build import stable_hash
from engine.matching import contains_tokens, tokens

SCAN_LIMIT = 256  # ring candidates looked at for a same-kind match before any kind is accepted


def kind(text: str) -> str:
    """'number' when the text holds a digit, else 'text' (a cheap answer-type match)."""
    return "number" if any(ch.isdigit() for ch in text) else "text"


def seeded_order(candidates: Iterable[tuple[str, str]], *key: object) -> list[tuple[str, str]]:
    """(id, text) candidates sorted by a seeded hash of (key, id): stable across machines."""
    return sorted(candidates, key=lambda c: (stable_hash(*key, c[0]), c[0]))


@dataclass
class Ring:
    """(id, text) candidates in a fixed hashed order; each item walks it from its own start."""

    entries: list[tuple[str, str]]
    seed: int

    @classmethod
    def build(cls, candidates: Iterable[tuple[str, str]], seed: int) -> Ring:
        unique = dict(candidates)
        return cls(seeded_order(unique.items(), "ring", seed), seed)

    def walk(self, start_key: str) -> Iterator[tuple[str, str]]:
        n = len(self.entries)
        if not n:
            return
        start = stable_hash("ring-start", self.seed, start_key) % n
        for i in range(n):
            yield self.entries[(start + i) % n]


class Picker:
    """Collects up to `k` distractors for one gold, tier by tier, and counts where each came from."""

    def __init__(self, golds: Sequence[str], language: str, k: int = 3):
        self.language = language
        self.k = k
        self.gold_kind = kind(golds[0])
        self.gold_toks = [t for t in (tokens(g, language) for g in golds) if t]
        self.picked: list[str] = []
        self._picked_toks: list[list[str]] = []
        self.counts: dict[str, int] = {}

    @property
    def done(self) -> bool:
        return len(self.picked) >= self.k

    def _acceptable(self, text: str) -> list[str] | None:
        toks = tokens(text, self.language)
        if not toks or toks in self._picked_toks:
            return None
        for g in self.gold_toks:
            if contains_tokens(toks, g) or contains_tokens(g, toks):
                return None
        return toks

    def _try(self, tier: str, text: str) -> None:
        toks = self._acceptable(text)
        if toks is not None:
            self.picked.append(text)
            self._picked_toks.append(toks)
            self.counts[tier] = self.counts.get(tier, 0) + 1

    def offer(self, tier: str, candidates: Iterable[tuple[str, str]], scan_limit: int | None = None) -> None:
        """Take (id, text) candidates from one tier, the gold's kind first, then any kind.

        Candidates are read lazily; with `scan_limit`, at most that many are looked at.
        """
        deferred: list[str] = []
        for n, (_, text) in enumerate(candidates):
            if self.done or (scan_limit is not None and n >= scan_limit):
                break
            if kind(text) == self.gold_kind:
                self._try(tier, text)
            else:
                deferred.append(text)
        for text in deferred:
            if self.done:
                break
            self._try(tier, text)

    def describe(self, method: str, seed: int) -> str:
        """What goes into `source.distractors`, e.g. 'spans: same_context=2, other_context=1; seed=0'."""
        parts = ", ".join(f"{tier}={n}" for tier, n in self.counts.items())
        return f"{method}: {parts}; seed={seed}"
