"""Row builders shared by the item tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def good_row(**over: Any) -> dict[str, Any]:
    """A valid local-file row; a keyword set to None removes that field."""
    row = {
        "id": "q1",
        "language": "en",
        "question": "What is the capital of France?",
        "answer": "Paris",
        "aliases": ["City of Light"],
        "options": ["Lyon", "Paris", "Nice", "Lille"],
        "gold_index": 1,
    }
    row.update(over)
    return {k: v for k, v in row.items() if v is not None}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Rows (dicts, or raw strings for broken lines) as a JSONL file."""
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return path
