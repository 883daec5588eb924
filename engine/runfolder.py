"""Writing run folders: manifest.json, items.jsonl, outcomes.jsonl and its index (the contract of
docs/design.md §4); validating and repairing them.

Torch-free. The reader side of the format (file names, the tolerant line reader, typed records,
the run index, the pairing rule, the schema_version check) is `engine.contract`; this module writes
through it.

Writing is crash-safe: the manifest is replaced atomically (write, fsync, rename), outcome lines are
appended and fsynced batch by batch, then their rows are appended to `outcomes.index.arrow`, and a
torn last line (a write cut by a kill) is detected and cut off when a writer reopens the file. A
kill between the two appends leaves the index behind its file: readers extend it, and the next
writer rewrites it.

One writer per run folder: a writer holds the advisory lock `.writer.lock` (see `engine.locks`) for
its life. A resumed writer (and `prunescope validate --repair`) removes exact duplicate outcome
lines of one item, keeping the first, and refuses, naming item and lines, when duplicates of one
item differ; the index is rebuilt from what remains.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from engine.atomic import replace_file, write_bytes_atomic
from engine.contract.index import (
    OUTCOME_LAYOUT,
    OUTCOMES_INDEX,
    LineIndex,
    append_batch,
    open_index,
    row_batch,
    write_index,
)
from engine.contract.pairing import first_rows
from engine.contract.reader import (
    ITEMS,
    MANIFEST,
    OUTCOMES,
    WRITER_LOCK,
    RunFolderError,
    read_items,
    read_manifest,
    scan_jsonl,
)


def writer_lock(run_dir: Path):
    """The lock a writer of `run_dir` holds for its life (`with writer_lock(run):`); a second writer gets
    `engine.locks.LockHeld` naming the first."""
    from engine.locks import ProcessLock

    return ProcessLock(Path(run_dir) / WRITER_LOCK, f"run folder {run_dir}")


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
    write_bytes_atomic(path, text.encode("utf-8"))


def jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    """A whole JSONL file's bytes, as `write_jsonl_atomic` writes them (to compare a file with records)."""
    return "".join(dumps_line(r) for r in records).encode("utf-8")


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSONL file atomically (used for items.jsonl)."""
    replace_file(path, lambda f: f.writelines(dumps_line(r).encode("utf-8") for r in records))


# ---------------------------------------------------------------- repairs (under the writer lock)


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


def remove_duplicate_outcomes(path: Path) -> list[int]:
    """Remove exact duplicate lines of one item from outcomes.jsonl, keeping the first; returns the
    1-based numbers of the removed lines. Lines of one item that differ raise `RunFolderError` naming
    the item and its lines (nothing is changed then). A unique line is never dropped. The caller holds
    the writer lock and has cut any torn tail."""
    path = Path(path)
    if not path.exists():
        return []
    scan = scan_jsonl(path, strict=True)
    first: dict[str, tuple[int, str]] = {}  # uid -> (line number, canonical line)
    removed: list[tuple[int, int, int]] = []  # (line number, offset, length)
    conflicts: dict[str, list[int]] = {}
    for n, offset, length, rec in zip(scan.lines, scan.offsets, scan.lengths, scan.records):
        uid = rec.get("item_uid")
        if not isinstance(uid, str):
            raise RunFolderError(f"{path}:{n}: corrupt line (no item_uid string)")
        canonical = dumps_line(rec)
        if uid not in first:
            first[uid] = (n, canonical)
        elif first[uid][1] == canonical:
            removed.append((n, offset, length))
        else:
            conflicts.setdefault(uid, [first[uid][0]]).append(n)
    if conflicts:
        uid, where = next(iter(conflicts.items()))
        more = f" (and {len(conflicts) - 1} more items)" if len(conflicts) > 1 else ""
        raise RunFolderError(
            f"{path}: item {uid!r} has different outcome lines {', '.join(map(str, where))}{more}; two writers "
            "disagreed, so neither is kept silently: delete the wrong lines, or the run folder to run it again"
        )
    if removed:
        data = path.read_bytes()
        parts, pos = [], 0
        for _, offset, length in removed:
            parts.append(data[pos:offset])
            pos = offset + length
        write_bytes_atomic(path, b"".join(parts) + data[pos:])
    return [n for n, _, _ in removed]


@dataclass
class Repair:
    """What opening a run's outcomes for writing repaired, and the index of the lines that remain."""

    cut_bytes: int = 0  # a torn last line cut off
    removed_lines: list[int] = field(default_factory=list)  # exact duplicate lines removed
    index: LineIndex | None = None  # None when there is no outcomes.jsonl


def repair_outcomes(run_dir: Path) -> Repair:
    """Cut a torn last line, remove exact duplicate lines, and index what remains (the caller holds
    the writer lock). Duplicates are looked for in the index's uid column, so a file without any is
    not parsed twice; the index is rebuilt from the file after lines were removed."""
    path, beside = Path(run_dir) / OUTCOMES, Path(run_dir) / OUTCOMES_INDEX
    if not path.exists():
        return Repair()
    repair = Repair(cut_bytes=repair_torn_tail(path))
    index = open_index(path, OUTCOME_LAYOUT, beside, cache=False)
    if index.problems or len(first_rows(index.table.column("item_uid"))[1]):
        repair.removed_lines = remove_duplicate_outcomes(path)  # names corrupt lines and differing duplicates
        if repair.removed_lines:
            index = open_index(path, OUTCOME_LAYOUT, None, cache=False)
    repair.index = index
    return repair


def write_outcome_index(run_dir: Path, index: LineIndex | None) -> None:
    """Replace a run's `outcomes.index.arrow` with `index` (an empty one when None)."""
    batches = [] if index is None else index.table.combine_chunks().to_batches()
    write_index(Path(run_dir) / OUTCOMES_INDEX, OUTCOME_LAYOUT, batches, {} if index is None else index.meta())


class OutcomeWriter:
    """Append-only writer of outcomes.jsonl (and its index) that resumes where a previous writer stopped.

    The caller holds the run folder's `writer_lock`. Opening repairs the file (`repair_outcomes`:
    a torn last line cut, exact duplicate lines removed), refuses a file with corrupt lines, and
    rewrites the index of what remains.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / OUTCOMES
        self.index_path = self.run_dir / OUTCOMES_INDEX
        repair = repair_outcomes(self.run_dir)
        self.repaired_bytes, self.removed_duplicates = repair.cut_bytes, repair.removed_lines
        index = repair.index
        if index is None:
            self.path.touch()
        elif index.problems:
            raise RunFolderError(index.problems[0])
        uids = [] if index is None else index.table.column("item_uid").to_pylist()
        self.done: set[str] = set(uids)
        self._end, self._lines = (0, 0) if index is None else (index.end, index.n_lines)
        write_outcome_index(self.run_dir, index)
        self._f = open(self.path, "ab")  # noqa: SIM115 (held for the writer's life)

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
        with contextlib.suppress(OSError, RunFolderError):  # else the appended index stays; readers extend it
            write_outcome_index(self.run_dir, open_index(self.path, OUTCOME_LAYOUT, self.index_path, cache=False))

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


INT64_MAX = 2**63 - 1


def _bounded(node: Any) -> Any:
    """The schema with every integer bounded to 64 bits (what the run index and numpy hold), so that a
    rank of 10**30 is a schema error that `validate` names, not an overflow in `stats`."""
    if isinstance(node, list):
        return [_bounded(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _bounded(v) for k, v in node.items()}
    types = out.get("type")
    if types == "integer" or (isinstance(types, list) and "integer" in types):
        out.setdefault("maximum", INT64_MAX)
        out.setdefault("minimum", -INT64_MAX - 1)
    return out


@cache
def _validator(name: str):
    import jsonschema

    schema = _bounded(load_schema(name))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@cache
def _fast_validator(name: str):
    import jsonschema_rs

    return jsonschema_rs.validator_for(_bounded(load_schema(name)))


def schema_errors(name: str, record: dict[str, Any]) -> list[str]:
    """Schema violations of one record, as 'path: message' strings. A valid record is told by the Rust
    validator (0.02 ms for an outcome line where jsonschema takes 3 ms); jsonschema words the errors."""
    if _fast_validator(name).is_valid(record):
        return []
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
    from engine.items.build import content_hash

    by_uid: dict[str | None, dict[str, Any]] = {}
    for n, item in enumerate(items, 1):
        errors = schema_errors("item", item)
        problems += [f"{run_dir / ITEMS}:{n}: {e}" for e in errors]
        if not errors and item["content_hash"] != content_hash(item):
            problems.append(
                f"{run_dir / ITEMS}:{n}: item {item['item_uid']!r}: content_hash does not match its content "
                "(the item was edited after the run was made)"
            )
        by_uid[item.get("item_uid")] = item
    if manifest is not None and manifest.get("items", {}).get("hash") != items_hash(items):
        problems.append(f"{run_dir / MANIFEST}: items.hash does not match items.jsonl")
    path = run_dir / OUTCOMES
    if not path.exists():
        return problems + [f"{path}: missing"]
    scan = scan_jsonl(path)
    problems += scan.errors
    if scan.torn_tail and (manifest or {}).get("status") != "running":
        problems.append(f"{path}: torn last line in a run that is not running")
    seen: set[str | None] = set()
    for n, rec in zip(scan.lines, scan.records):
        errors = schema_errors("outcome", rec)
        problems += [f"{path}:{n}: {e}" for e in errors]
        uid: str | None = rec.get("item_uid")
        if not errors:
            problems += [f"{path}:{n}: {e}" for e in _inconsistencies(rec, by_uid.get(uid))]
        if uid in seen:
            problems.append(
                f"{path}:{n}: duplicate item {uid!r} (`prunescope validate --repair` removes exact duplicates)"
            )
        seen.add(uid)
        known = by_uid.get(uid) if uid is not None else None
        if known is None:
            problems.append(f"{path}:{n}: item {uid!r} is not in items.jsonl")
        elif known["content_hash"] != rec.get("content_hash"):
            problems.append(f"{path}:{n}: content hash of {uid!r} differs from items.jsonl")
    if manifest is not None and manifest.get("status") == "complete" and seen != set(by_uid):
        problems.append(f"{path}: run is complete but {len(set(by_uid) - seen)} items have no outcome")
    return problems


def _inconsistencies(rec: dict[str, Any], item: dict[str, Any] | None) -> list[str]:
    """What contradicts itself in a schema-valid outcome line (or its item): the MC verdict and its
    choice, the category and the verdicts it is made of, the gold index and the language."""
    from engine.contract.labels import category

    out = []
    mc = rec["mc"]
    if mc["correct"] != (mc["choice"] == mc["gold_index"]):
        out.append(f"mc.correct is {mc['correct']} but mc.choice {mc['choice']} vs mc.gold_index {mc['gold_index']}")
    expected = category(rec["open"]["correct"], mc["correct"])
    if rec["category"] != expected:
        out.append(f"category is {rec['category']!r} but open.correct and mc.correct make it {expected!r}")
    if item is not None and mc["gold_index"] != item.get("gold_index"):
        out.append(f"mc.gold_index {mc['gold_index']} differs from the item's gold_index {item.get('gold_index')}")
    if item is not None and rec["language"] != item.get("language"):
        out.append(f"language {rec['language']!r} differs from the item's {item.get('language')!r}")
    return out


REPAIR_KEYS = ("repaired_torn_bytes", "removed_duplicate_lines")  # a manifest's `timings`: repairs so far


def record_repairs(timings: dict[str, Any], cut_bytes: int, removed_lines: int) -> None:
    """Add a repair (a torn tail cut, duplicate lines removed) to the counts a manifest's timings keep."""
    for key, n in zip(REPAIR_KEYS, (cut_bytes, removed_lines)):
        if n:
            timings[key] = int(timings.get(key) or 0) + n


def repair_run(run_dir: Path) -> list[str]:
    """What a resume repairs, without running: cut a torn last line and remove exact duplicate outcome
    lines (under the writer lock, so never while a writer is live); returns what was done. The run's
    index, when it has one, is rebuilt after lines were removed."""
    run_dir = Path(run_dir)
    done: list[str] = []
    path = run_dir / OUTCOMES
    with writer_lock(run_dir):
        repair = repair_outcomes(run_dir)
        if repair.cut_bytes:
            done.append(f"{path}: cut a torn last line ({repair.cut_bytes} bytes)")
        removed = repair.removed_lines
        if removed:
            shown = ", ".join(map(str, removed[:10])) + (", …" if len(removed) > 10 else "")
            done.append(f"{path}: removed {len(removed)} exact duplicate lines (lines {shown}; the first of each kept)")
            if (run_dir / OUTCOMES_INDEX).exists():
                write_outcome_index(run_dir, repair.index)
        if (removed or repair.cut_bytes) and (run_dir / MANIFEST).exists():  # recorded as a resume records it
            manifest = read_manifest(run_dir)
            record_repairs(manifest.setdefault("timings", {}), repair.cut_bytes, len(removed))
            counts = manifest.get("counts")
            if removed and isinstance(counts, dict):
                counts["done"] = len(scan_jsonl(path, strict=True).records)
            write_json_atomic(run_dir / MANIFEST, manifest)
    return done


def validate_study(runs: list[Path]) -> list[str]:
    """Problems across the runs of one study: every run must hold the same items.jsonl."""
    by_hash: dict[bytes, list[Path]] = {}
    for run in runs:
        try:
            data = (Path(run) / ITEMS).read_bytes()
        except OSError:
            continue  # validate_run names the missing or unreadable file
        by_hash.setdefault(hashlib.sha256(data).digest(), []).append(Path(run))
    if len(by_hash) <= 1:
        return []
    groups = sorted(by_hash.values(), key=len, reverse=True)
    ref = groups[0][0]
    return [
        f"{run / ITEMS}: differs from {ref / ITEMS}; the runs of one study must share one item set"
        for group in groups[1:]
        for run in group
    ]
