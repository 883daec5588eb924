"""Writing run folders: manifest.json, items.jsonl, outcomes.jsonl and its index; validating them.

Torch-free. The reader side of the format (file names, the tolerant line reader, typed records,
the run index, the pairing rule) is `engine.contract`; this module writes through it.

Writing is crash-safe: the manifest is replaced atomically (write, fsync, rename), outcome lines are
appended and fsynced batch by batch, then their rows are appended to `outcomes.index.arrow`, and a
torn last line (a write cut by a kill) is detected and cut off when a writer reopens the file. A
kill between the two appends leaves the index behind its file: readers extend it, and the next
writer rewrites it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from engine.atomic import replace_file
from engine.contract.index import OUTCOME_LAYOUT, OUTCOMES_INDEX, append_batch, index_bytes, open_index, row_batch
from engine.contract.reader import ITEMS, MANIFEST, OUTCOMES, RunFolderError, read_items, read_manifest, scan_jsonl

SCHEMA_VERSION = 1


def dumps_line(record: dict[str, Any]) -> str:
    """One canonical JSONL line (stable key order, UTF-8 kept, no NaN)."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True, allow_nan=False, separators=(",", ":")) + "\n"


def sha256_text(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def items_hash(items: Iterable[dict[str, Any]]) -> str:
    """Hash of an ordered item set: the content hashes of its items, in order."""
    h = hashlib.sha256()
    for item in items:
        h.update(item["item_uid"].encode("utf-8") + b"\0" + item["content_hash"].encode("ascii") + b"\n")
    return "sha256:" + h.hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace `path` with `obj` as JSON so that readers see the old or the new file, never half."""
    text = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n"
    replace_file(path, lambda f: f.write(text.encode("utf-8")))


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSONL file atomically (used for items.jsonl)."""
    replace_file(path, lambda f: f.writelines(dumps_line(r).encode("utf-8") for r in records))


def repair_torn_tail(path: Path) -> int:
    """Cut a torn last line off `path`; returns the number of bytes removed (0 if none)."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        # Walk back to the last newline.
        block = 1 << 16
        end = size
        last_nl = -1
        while end > 0 and last_nl < 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                last_nl = start + idx
            end = start
        keep = last_nl + 1
        if keep == size:
            return 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


class OutcomeWriter:
    """Append-only writer of outcomes.jsonl (and its index) that resumes where a previous writer stopped."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / OUTCOMES
        self.index_path = Path(run_dir) / OUTCOMES_INDEX
        self.repaired_bytes = repair_torn_tail(self.path)
        self.done: set[str] = set()
        self._end = self._lines = 0
        if self.path.exists():
            index = open_index(self.path, OUTCOME_LAYOUT, self.index_path, cache=False)
            if index.problems:
                raise RunFolderError(index.problems[0])
            for uid in index.table.column("item_uid").to_pylist():
                if uid in self.done:
                    raise RunFolderError(f"{self.path}: item {uid!r} appears twice")
                self.done.add(uid)
            self._end, self._lines = index.end, index.n_lines
            batches = index.table.to_batches()
        else:
            self.path.touch()
            batches = []
        self._rewrite_index(batches)
        self._f = open(self.path, "ab")  # noqa: SIM115 (held for the writer's life)

    def _rewrite_index(self, batches: list[Any]) -> None:
        data = index_bytes(OUTCOME_LAYOUT, batches, {})
        replace_file(self.index_path, lambda f: f.write(data), durable=False)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append one batch and fsync it: after return, the batch survives a kill. Then index it."""
        lines = []
        for r in records:
            if r["item_uid"] in self.done:
                raise RunFolderError(f"{self.path}: refusing to write item {r['item_uid']!r} twice")
            lines.append(dumps_line(r).encode("utf-8"))
            self.done.add(r["item_uid"])
        self._f.write(b"".join(lines))
        self._f.flush()
        os.fsync(self._f.fileno())
        rows = []
        for raw in lines:
            self._lines += 1
            rows.append((self._lines, self._end, raw[:-1]))
            self._end += len(raw)
        append_batch(self.index_path, row_batch(OUTCOME_LAYOUT, rows))

    def close(self) -> None:
        """Close the file; the index is rewritten as one batch (fewer, larger chunks for readers)."""
        self._f.close()
        with contextlib.suppress(OSError, RunFolderError):
            index = open_index(self.path, OUTCOME_LAYOUT, self.index_path, cache=False)
            self._rewrite_index(index.table.combine_chunks().to_batches())

    def __enter__(self) -> OutcomeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- validation


@cache
def load_schema(name: str) -> dict[str, Any]:
    """`name` is 'item', 'outcome' or 'manifest'."""
    path = Path(__file__).with_name("schema") / f"{name}.schema.json"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@cache
def _validator(name: str):
    import jsonschema

    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def schema_errors(name: str, record: dict[str, Any]) -> list[str]:
    """Schema violations of one record, as 'path: message' strings."""
    out = []
    for err in sorted(_validator(name).iter_errors(record), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        out.append(f"{where}: {err.message[:200]}")
    return out


def validate_run(run_dir: Path) -> list[str]:
    """Every problem of a run folder against the schemas and the format's invariants."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    try:
        manifest = read_manifest(run_dir)
        problems += [f"{run_dir / MANIFEST}: {e}" for e in schema_errors("manifest", manifest)]
    except RunFolderError as exc:
        problems.append(str(exc))
        manifest = None
    try:
        items = read_items(run_dir)
    except RunFolderError as exc:
        return problems + [str(exc)]
    by_uid: dict[str, dict[str, Any]] = {}
    for n, item in enumerate(items, 1):
        problems += [f"{run_dir / ITEMS}:{n}: {e}" for e in schema_errors("item", item)]
        by_uid[item["item_uid"]] = item
    if manifest is not None and manifest.get("items", {}).get("hash") != items_hash(items):
        problems.append(f"{run_dir / MANIFEST}: items.hash does not match items.jsonl")
    path = run_dir / OUTCOMES
    if not path.exists():
        return problems + [f"{path}: missing"]
    scan = scan_jsonl(path)
    problems += scan.errors
    if scan.torn_tail and (manifest or {}).get("status") != "running":
        problems.append(f"{path}: torn last line in a run that is not running")
    seen: set[str] = set()
    for n, rec in zip(scan.lines, scan.records):
        problems += [f"{path}:{n}: {e}" for e in schema_errors("outcome", rec)]
        uid = rec.get("item_uid")
        if uid in seen:
            problems.append(f"{path}:{n}: duplicate item {uid!r}")
        seen.add(uid)
        item = by_uid.get(uid)
        if item is None:
            problems.append(f"{path}:{n}: item {uid!r} is not in items.jsonl")
        elif item["content_hash"] != rec.get("content_hash"):
            problems.append(f"{path}:{n}: content hash of {uid!r} differs from items.jsonl")
    if manifest is not None and manifest.get("status") == "complete" and seen != set(by_uid):
        problems.append(f"{path}: run is complete but {len(set(by_uid) - seen)} items have no outcome")
    return problems
