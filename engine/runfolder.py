"""The run folder: manifest.json, items.jsonl, outcomes.jsonl (the contract of docs/design.md §4).

Torch-free on purpose: `stats` and `tui` read run folders through this module.

Writing is crash-safe: the manifest is replaced atomically (write, fsync, rename), outcome lines are
appended and fsynced batch by batch, and a torn last line (a write cut by a kill) is detected and
cut off when a writer reopens the file. Readers never parse a torn line; they report it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
ITEMS = "items.jsonl"
OUTCOMES = "outcomes.jsonl"
STUDY_SPEC = "study.toml"
CATEGORIES = ("both_correct", "recognition_only", "generation_only", "both_wrong")


class RunFolderError(ValueError):
    """A run folder that cannot be read as the format says; the message names file and line."""


def category(open_correct: bool, mc_correct: bool) -> str:
    """Paired outcome category of one item in one run."""
    if open_correct and mc_correct:
        return "both_correct"
    if mc_correct:
        return "recognition_only"
    if open_correct:
        return "generation_only"
    return "both_wrong"


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


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not thread-safe


def _mkstemp_like_open(path: Path) -> tuple[int, str]:
    """A temp file beside `path` with the permissions open() would give (mkstemp makes it 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    return fd, tmp


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace `path` with `obj` as JSON so that readers see the old or the new file, never half."""
    path = Path(path)
    fd, tmp = _mkstemp_like_open(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSONL file atomically (used for items.jsonl)."""
    path = Path(path)
    fd, tmp = _mkstemp_like_open(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in records:
                f.write(dumps_line(r))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@dataclass
class JsonlScan:
    """What a tolerant read of a JSONL file found."""

    records: list[dict[str, Any]] = field(default_factory=list)
    torn_tail: bool = False  # last line has no newline: a write in progress or cut by a kill
    good_bytes: int = 0  # length of the prefix made of complete, parsed lines
    errors: list[str] = field(default_factory=list)  # corrupt complete lines, "file:line: why"


def scan_jsonl(path: Path, start: int = 0, strict: bool = False) -> JsonlScan:
    """Read complete lines of `path` from byte offset `start`.

    A final line without a newline is a torn tail and is never parsed. A complete line that is not a
    JSON object is an error: raised with file and line when `strict`, else collected in `errors`.
    """
    path = Path(path)
    scan = JsonlScan(good_bytes=start)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    pos = 0
    lineno = _count_lines(path, start) if start else 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            scan.torn_tail = True
            break
        raw = data[pos:nl]
        lineno += 1
        pos = nl + 1
        if not raw.strip():
            scan.good_bytes = start + pos
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            msg = f"{path}:{lineno}: corrupt line ({exc.__class__.__name__}: {str(exc)[:120]})"
            if strict:
                raise RunFolderError(msg) from None
            scan.errors.append(msg)
            continue
        scan.records.append(rec)
        scan.good_bytes = start + pos
    return scan


def _count_lines(path: Path, upto: int) -> int:
    with open(path, "rb") as f:
        return f.read(upto).count(b"\n")


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
    """Append-only writer of outcomes.jsonl that resumes where a previous writer stopped."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / OUTCOMES
        self.repaired_bytes = repair_torn_tail(self.path)
        self.done: set[str] = set()
        if self.path.exists():
            scan = scan_jsonl(self.path, strict=True)
            for rec in scan.records:
                uid = rec["item_uid"]
                if uid in self.done:
                    raise RunFolderError(f"{self.path}: item {uid!r} appears twice")
                self.done.add(uid)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held for the writer's life)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append one batch and fsync it: after return, the batch survives a kill."""
        lines = []
        for r in records:
            if r["item_uid"] in self.done:
                raise RunFolderError(f"{self.path}: refusing to write item {r['item_uid']!r} twice")
            lines.append(dumps_line(r))
            self.done.add(r["item_uid"])
        self._f.write("".join(lines))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> OutcomeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- reading


def read_json(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise RunFolderError(f"{path}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise RunFolderError(f"{path}: expected a JSON object")
    return obj


def read_manifest(run_dir: Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / MANIFEST)


def read_items(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / ITEMS
    if not path.exists():
        raise RunFolderError(f"{path}: missing")
    scan = scan_jsonl(path, strict=True)
    if scan.torn_tail:
        raise RunFolderError(f"{path}: last line is incomplete (items.jsonl is written whole; the file is damaged)")
    return scan.records


def is_run_dir(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST).exists() or (path / OUTCOMES).exists())


def discover_runs(study_dir: Path) -> list[Path]:
    """Run folders directly inside a study folder (or the folder itself if it is a run), sorted."""
    study_dir = Path(study_dir)
    if is_run_dir(study_dir):
        return [study_dir]
    return sorted(p for p in study_dir.iterdir() if is_run_dir(p)) if study_dir.is_dir() else []


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
    seen: set[str | None] = set()
    for n, rec in enumerate(scan.records, 1):
        problems += [f"{path}:{n}: {e}" for e in schema_errors("outcome", rec)]
        uid: str | None = rec.get("item_uid")
        if uid in seen:
            problems.append(f"{path}:{n}: duplicate item {uid!r}")
        seen.add(uid)
        known = by_uid.get(uid) if uid is not None else None
        if known is None:
            problems.append(f"{path}:{n}: item {uid!r} is not in items.jsonl")
        elif known["content_hash"] != rec.get("content_hash"):
            problems.append(f"{path}:{n}: content hash of {uid!r} differs from items.jsonl")
    if manifest is not None and manifest.get("status") == "complete" and seen != set(by_uid):
        problems.append(f"{path}: run is complete but {len(set(by_uid) - seen)} items have no outcome")
    return problems


def iter_outcomes(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Complete outcome lines of a run (tolerant of a run in progress; corrupt lines raise)."""
    yield from scan_jsonl(Path(run_dir) / OUTCOMES, strict=True).records
