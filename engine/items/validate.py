"""Validation of item rows: every bad row is named by file and row, and raised as a UserError.

A row from a local file may leave out what can be derived: `item_uid` (then `id` is required and
becomes the native id), `source`, `content_hash` (checked when given), `aliases`, `context`,
`gold_index` (then the answer must be one of the options) or `answer` (then `gold_index` names it).
Unknown fields are an error in strict mode and are kept under `meta` otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from engine.errors import UserError
from engine.items.build import ITEM_FIELDS, content_hash, make_uid
from engine.matching import normalize
from engine.runfolder import schema_errors

INPUT_FIELDS = ITEM_FIELDS | {"id"}
_LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")


class RowError(ValueError):
    """One problem of one row (collected, then raised together as a UserError)."""


def _text(row: Mapping[str, Any], key: str) -> str | None:
    """An optional string field (None when missing or blank)."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise RowError(f"field '{key}' must be a string, got {type(value).__name__}")
    return value


def _required_text(row: Mapping[str, Any], key: str) -> str:
    value = _text(row, key)
    if value is None:
        raise RowError(f"field '{key}' is missing or empty")
    return value


def _str_list(row: Mapping[str, Any], key: str) -> list[str]:
    value = row.get(key)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RowError(f"field '{key}' must be a list of strings")
    return list(value)


def _answer_text(text: str) -> str:
    """An answer, alias or option as the model is scored on it: without surrounding whitespace (a CSV's
    ` Paris` would make the gold trace score a space token) and in Unicode's composed form, NFC (a
    decomposed `Zürich` would be traced as other tokens than the option it equals)."""
    return unicodedata.normalize("NFC", text.strip())


def options_problem(options: list[str], language: str) -> str | None:
    """Why these options cannot form a multiple-choice item, or None."""
    if len(options) < 2:
        return f"needs at least two options, got {len(options)}"
    seen: dict[str, int] = {}
    for i, opt in enumerate(options):
        norm = normalize(opt, language)
        if not norm:
            return f"option {i} is empty after normalisation ({opt!r})"
        if norm in seen:
            return f"options {seen[norm]} and {i} are equal after normalisation ({options[seen[norm]]!r}, {opt!r})"
        seen[norm] = i
    return None


def coerce_row(row: Mapping[str, Any], dataset: str, strict: bool) -> dict[str, Any]:
    """Turn one input row into a complete item, or raise RowError saying what is wrong."""
    if not isinstance(row, Mapping):
        raise RowError("not an object")
    unknown = sorted(set(row) - INPUT_FIELDS)
    if unknown and strict:
        raise RowError(f"unknown field(s) {', '.join(unknown)} (strict mode)")
    language = _required_text(row, "language")
    if not _LANG_RE.match(language):
        raise RowError(f"language {language!r} is not a code like 'en' or 'zh-TW'")
    question = _required_text(row, "question")
    context = _text(row, "context")
    options = [_answer_text(o) for o in _str_list(row, "options")]
    problem = options_problem(options, language)
    if problem:
        raise RowError(problem)
    answer = _text(row, "answer")
    answer = None if answer is None else _answer_text(answer)
    gold_index = row.get("gold_index")
    if gold_index is not None and (isinstance(gold_index, bool) or not isinstance(gold_index, int)):
        raise RowError(f"gold_index must be an integer, got {gold_index!r}")
    if gold_index is not None and not 0 <= gold_index < len(options):
        raise RowError(f"gold_index {gold_index} is out of range for {len(options)} options")
    if answer is None:
        if gold_index is None:
            raise RowError("missing gold: neither 'answer' nor 'gold_index' is given")
        answer = options[gold_index]
    norm_answer = normalize(answer, language)
    if gold_index is None:
        matches = [i for i, o in enumerate(options) if normalize(o, language) == norm_answer]
        if not matches:
            raise RowError(f"gold answer {answer!r} is not among the options")
        gold_index = matches[0]
    elif normalize(options[gold_index], language) != norm_answer:
        raise RowError(f"gold answer {answer!r} is not options[{gold_index}] ({options[gold_index]!r})")
    aliases = [_answer_text(a) for a in _str_list(row, "aliases") if a.strip()]
    source = row.get("source")
    native = row.get("id")
    if source is None:
        if native is None and row.get("item_uid") is None:
            raise RowError("needs 'item_uid' or 'id' (a stable native id, never a position)")
        source = {
            "dataset": dataset,
            "config": None,
            "split": "local",
            "native_id": str(native if native is not None else row["item_uid"]),
        }
    if not isinstance(source, Mapping):
        raise RowError("field 'source' must be an object")
    item_uid = _text(row, "item_uid") or make_uid(
        str(source.get("dataset", dataset)),
        source.get("config"),
        str(source.get("split", "local")),
        str(native if native is not None else source.get("native_id", "")),
        language,
    )
    meta = row.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise RowError("field 'meta' must be an object")
    meta = dict(meta)
    for key in unknown:
        meta.setdefault(key, row[key])
    item: dict[str, Any] = {
        "item_uid": item_uid,
        "language": language,
        "question": question,
        "context": context,
        "answer": answer,
        "aliases": aliases,
        "options": options,
        "gold_index": gold_index,
        "parallel_id": row.get("parallel_id"),
        "source": dict(source),
        "meta": meta,
    }
    if item["parallel_id"] is not None:
        item["parallel_id"] = str(item["parallel_id"])
    computed = content_hash(item)
    given = row.get("content_hash")
    if given is not None and given != computed:
        raise RowError(f"content_hash {given!r} does not match the row's content ({computed})")
    item["content_hash"] = computed
    errors = schema_errors("item", item)
    if errors:
        raise RowError("; ".join(errors[:3]))
    return item


def validate_items(
    rows: Iterable[tuple[str, Mapping[str, Any]]], where: str, dataset: str = "local", strict: bool = False
) -> list[dict[str, Any]]:
    """Complete and check `(row label, row)` pairs read from `where`; raise UserError on bad rows.

    The error names the file and row of the first problem and counts the others; duplicate
    item_uids name both rows.
    """
    items: list[dict[str, Any]] = []
    problems: list[str] = []
    first_row: dict[str, str] = {}
    for label, row in rows:
        try:
            item = coerce_row(row, dataset, strict)
        except RowError as exc:
            problems.append(f"{where}: {label}: {exc}")
            continue
        uid = item["item_uid"]
        if uid in first_row:
            problems.append(f"{where}: {label}: duplicate id {uid!r} (first at {first_row[uid]})")
            continue
        first_row[uid] = label
        items.append(item)
    if problems:
        more = f" (and {len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
    return items
