"""The run folder: manifest.json, items.jsonl, outcomes.jsonl (the contract of docs/design.md §4).

Torch-free on purpose: `stats` and `tui` read run folders through this module.

Writing is crash-safe: the manifest is replaced atomically (write, fsync, rename), outcome lines are
appended and fsynced batch by batch, and a torn last line (a write cut by a kill) is detected and
cut off when a writer reopens the file. Readers never parse a torn line; they report it.

One writer per run folder: a writer holds the advisory lock `.writer.lock` (see `engine.locks`) for its
life. A resumed writer removes exact duplicate outcome lines of one item (keeping the first) and refuses,
naming item and lines, when duplicates of one item differ.
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

from engine.errors import UserError

SCHEMA_VERSION = 1
READABLE_SCHEMA_VERSIONS = (1,)  # the manifest versions this prunescope reads
MANIFEST = "manifest.json"
ITEMS = "items.jsonl"
OUTCOMES = "outcomes.jsonl"
STUDY_SPEC = "study.toml"
WRITER_LOCK = ".writer.lock"
CATEGORIES = ("both_correct", "recognition_only", "generation_only", "both_wrong")


class RunFolderError(UserError, ValueError):
    """A run folder that cannot be read as the format says; the message names file and line."""


def writer_lock(run_dir: Path):
    """The lock a writer of `run_dir` holds for its life (`with writer_lock(run):`); a second writer gets
    `engine.locks.LockHeld` naming the first."""
    from engine.locks import ProcessLock

    return ProcessLock(Path(run_dir) / WRITER_LOCK, f"run folder {run_dir}")


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


def mode_like_open(folder: bool = False) -> int:
    """The mode open() (0o666) or mkdir() (0o777) gives under the user's umask."""
    return (0o777 if folder else 0o666) & ~_UMASK


def _mkstemp_like_open(path: Path) -> tuple[int, str]:
    """A temp file beside `path` with the permissions open() would give (mkstemp makes it 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, mode_like_open())
    return fd, tmp


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace `path` with `obj` as JSON so that readers see the old or the new file, never half."""
    text = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: written beside it, fsynced, renamed over it, the folder fsynced."""
    path = Path(path)
    fd, tmp = _mkstemp_like_open(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
    write_bytes_atomic(path, "".join(dumps_line(r) for r in records).encode("utf-8"))


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


def remove_duplicate_outcomes(path: Path) -> list[int]:
    """Remove exact duplicate lines of one item from outcomes.jsonl, keeping the first; returns the
    1-based numbers of the removed lines. Lines of one item that differ raise `RunFolderError` naming
    the item and its lines (nothing is changed then). A unique line is never dropped. The caller holds
    the writer lock and has cut any torn tail."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines(keepends=True)
    first: dict[str, tuple[int, str]] = {}  # uid -> (line number, canonical line)
    removed: list[int] = []
    conflicts: dict[str, list[int]] = {}
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
            uid = rec["item_uid"]
        except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise RunFolderError(f"{path}:{n}: corrupt line ({exc.__class__.__name__}: {str(exc)[:120]})") from None
        canonical = dumps_line(rec)
        if uid not in first:
            first[uid] = (n, canonical)
        elif first[uid][1] == canonical:
            removed.append(n)
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
        drop = set(removed)
        write_bytes_atomic(path, b"".join(raw for n, raw in enumerate(lines, 1) if n not in drop))
    return removed


class OutcomeWriter:
    """Append-only writer of outcomes.jsonl that resumes where a previous writer stopped.

    The caller holds the run folder's `writer_lock`. Opening cuts a torn last line and removes exact
    duplicate lines of one item (see `remove_duplicate_outcomes`).
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / OUTCOMES
        self.repaired_bytes = repair_torn_tail(self.path)
        self.removed_duplicates = remove_duplicate_outcomes(self.path)
        self.done: set[str] = set()
        if self.path.exists():
            scan = scan_jsonl(self.path, strict=True)
            self.done = {rec["item_uid"] for rec in scan.records}
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
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise RunFolderError(f"{path}: expected a JSON object")
    return obj


def check_schema_version(manifest: dict[str, Any], path: Path) -> None:
    """Refuse a manifest whose `schema_version` this prunescope cannot read (every reader goes through here)."""
    version = manifest.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS or isinstance(version, bool):
        readable = ", ".join(map(str, READABLE_SCHEMA_VERSIONS))
        got = "no schema_version" if "schema_version" not in manifest else f"schema_version {version!r}"
        raise RunFolderError(
            f"{path}: {got}, but this prunescope reads schema_version {readable}; "
            "use the prunescope version that wrote the run"
        )


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest.json, after checking that its schema_version is one this prunescope reads."""
    path = Path(run_dir) / MANIFEST
    manifest = read_json(path)
    check_schema_version(manifest, path)
    return manifest


def read_items(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / ITEMS
    if not path.exists():
        raise RunFolderError(f"{path}: missing")
    try:
        scan = scan_jsonl(path, strict=True)
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read ({exc.strerror or exc})") from None
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
    for n, rec in enumerate(scan.records, 1):
        problems += [f"{path}:{n}: {e}" for e in schema_errors("outcome", rec)]
        uid: str | None = rec.get("item_uid")
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


def repair_run(run_dir: Path) -> list[str]:
    """What a resume repairs, without running: cut a torn last line and remove exact duplicate outcome
    lines (under the writer lock, so never while a writer is live); returns what was done."""
    run_dir = Path(run_dir)
    done: list[str] = []
    path = run_dir / OUTCOMES
    with writer_lock(run_dir):
        cut = repair_torn_tail(path)
        if cut:
            done.append(f"{path}: cut a torn last line ({cut} bytes)")
        removed = remove_duplicate_outcomes(path)
        if removed:
            shown = ", ".join(map(str, removed[:10])) + (", …" if len(removed) > 10 else "")
            done.append(f"{path}: removed {len(removed)} exact duplicate lines (lines {shown}; the first of each kept)")
        if removed and (run_dir / MANIFEST).exists():
            manifest = read_manifest(run_dir)
            counts = manifest.get("counts")
            if isinstance(counts, dict):
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


def iter_outcomes(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Complete outcome lines of a run (tolerant of a run in progress; corrupt lines raise)."""
    yield from scan_jsonl(Path(run_dir) / OUTCOMES, strict=True).records
