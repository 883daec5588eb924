"""Seeded N-per-language subsetting that gives the same items on every run and machine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from engine.items.build import stable_hash


def subset_key(item: dict[str, Any]) -> str:
    """What the draw is keyed on: the parallel id when there is one, so translations are drawn together."""
    if item.get("parallel_id"):
        return "p:" + item["parallel_id"]
    return "u:" + item["item_uid"].rsplit("/", 1)[0]


def subset_per_language(items: Sequence[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """At most `n` items per language (all when n <= 0), sorted by (language, item_uid).

    Each item's rank is a sha256 of (seed, its parallel id or uid stem), so the choice depends on
    neither input order nor Python's hash or `random` state, and parallel datasets keep the same
    facts in every language.
    """
    by_lang: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_lang[item["language"]].append(item)
    out: list[dict[str, Any]] = []
    for lang in sorted(by_lang):
        ranked = sorted(by_lang[lang], key=lambda it: (stable_hash("subset", seed, subset_key(it)), it["item_uid"]))
        out.extend(ranked if n <= 0 else ranked[:n])
    return sorted(out, key=lambda it: (it["language"], it["item_uid"]))
