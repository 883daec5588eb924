"""Building items in the item schema (engine/schema/item.schema.json): uid, content hash, gold position."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from engine.runfolder import dumps_line, sha256_text

ITEM_FIELDS = frozenset(
    {
        "item_uid",
        "language",
        "question",
        "context",
        "answer",
        "aliases",
        "options",
        "gold_index",
        "parallel_id",
        "source",
        "meta",
        "content_hash",
    }
)


def uid_part(text: str) -> str:
    """A piece of an item_uid: '%' and '/' percent-encoded so the five parts stay separable."""
    return str(text).replace("%", "%25").replace("/", "%2F")


def make_uid(dataset: str, config: str | None, split: str, native_id: str, language: str) -> str:
    """'dataset/config/split/native_id/language' (config 'default' when there is none)."""
    return "/".join(uid_part(p) for p in (dataset, config or "default", split, native_id, language))


def content_hash(item: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON line of every field except `content_hash` itself."""
    return sha256_text(dumps_line({k: v for k, v in item.items() if k != "content_hash"}))


def stable_hash(*parts: object) -> int:
    """A 64-bit integer from sha256 of the parts: the same on every machine and Python run."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big")


def gold_position(n_options: int, *key: object) -> int:
    """Deterministic gold index for an MC form built from a gold and distractors."""
    return stable_hash("gold-position", *key) % n_options


def place_gold(answer: str, distractors: Sequence[str], position: int) -> list[str]:
    """Options with `answer` inserted at `position` among `distractors` (kept in their order)."""
    options = list(distractors)
    options.insert(position, answer)
    return options


def make_item(
    *,
    dataset: str,
    split: str,
    native_id: str,
    language: str,
    question: str,
    answer: str,
    options: Sequence[str],
    gold_index: int,
    config: str | None = None,
    aliases: Sequence[str] = (),
    context: str | None = None,
    parallel_id: str | None = None,
    distractors: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One item dict in the item schema, with its item_uid and content_hash filled in.

    Aliases equal to the answer are dropped and duplicates removed (order kept). The result is not
    validated here; `engine.items.validate.validate_items` does that for whole item sets.
    """
    seen = {answer}
    clean_aliases = []
    for a in aliases:
        if a and a not in seen:
            seen.add(a)
            clean_aliases.append(a)
    source: dict[str, Any] = {"dataset": dataset, "config": config, "split": split, "native_id": str(native_id)}
    if distractors is not None:
        source["distractors"] = distractors
    item: dict[str, Any] = {
        "item_uid": make_uid(dataset, config, split, str(native_id), language),
        "language": language,
        "question": question,
        "context": context,
        "answer": answer,
        "aliases": clean_aliases,
        "options": list(options),
        "gold_index": int(gold_index),
        "parallel_id": parallel_id,
        "source": source,
        "meta": dict(meta or {}),
    }
    item["content_hash"] = content_hash(item)
    return item
