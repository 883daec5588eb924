"""The study's sidecar folder `<study>/.prunescope/`: item flags with notes, and exported views.

Run data is never rewritten: flags, and the removal of an item's flags, are appended to `flags.jsonl`;
exports are new files.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SIDECAR = ".prunescope"
FLAGS = "flags.jsonl"


class FlagStore:
    """Flags (item uid → notes), appended one JSON line per flag; a line with `"removed": true` clears the
    item's earlier flags. A corrupt line is skipped and reported."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / SIDECAR / FLAGS
        self.notes: dict[str, list[str]] = {}
        self.problems: list[str] = []
        if self.path.exists():
            with open(self.path, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                        uid = str(rec["item_uid"])
                        if rec.get("removed") is True:
                            self.notes.pop(uid, None)
                        else:
                            self.notes.setdefault(uid, []).append(str(rec.get("note", "")))
                    except (ValueError, KeyError, TypeError):
                        self.problems.append(f"{self.path}:{n}: corrupt flag line skipped")

    @property
    def flagged(self) -> set[str]:
        return set(self.notes)

    def add(self, item_uid: str, note: str, run: str | None = None) -> None:
        """Append one flag; raises OSError if the study folder is not writable."""
        self._append({"item_uid": item_uid, "note": note, "run": run})
        self.notes.setdefault(item_uid, []).append(note)

    def remove(self, item_uid: str, run: str | None = None) -> None:
        """Clear every flag of the item (appends a removal line); raises OSError as `add` does."""
        self._append({"item_uid": item_uid, "removed": True, "run": run})
        self.notes.pop(item_uid, None)

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def export_path(root: Path, view: str, ext: str) -> Path:
    """A new file `<root>/.prunescope/exports/<view>-<n>.<ext>` (never overwrites)."""
    folder = Path(root) / SIDECAR / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{view}-{n}.{ext}").exists():
        n += 1
    return folder / f"{view}-{n}.{ext}"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow(row)
            count += 1
    return count


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count
