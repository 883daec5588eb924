"""The one tolerant reader of run folders: file names, JSON files, and JSONL lines.

A JSONL file is read in complete lines: a final line without a newline is a torn tail (a write in
progress, or one cut by a kill) and is never parsed. A complete line that does not decode is a
corrupt line, named by `file:line` and the reason; `strict` readers raise it, tolerant ones collect
it and go on. Blank lines are skipped (they count in line numbers). `JsonlChunks` is the one place
that reads JSONL files: `JsonlLines` splits its chunks into lines (records, validation, the writer),
and the run index decodes whole chunks at once (`engine.contract.index`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

from engine.errors import UserError

SCHEMA_VERSION = 1  # the run-folder format version this prunescope writes
READABLE_SCHEMA_VERSIONS = (1,)  # the manifest versions this prunescope reads
MANIFEST = "manifest.json"
ITEMS = "items.jsonl"
OUTCOMES = "outcomes.jsonl"
WRITER_LOCK = ".writer.lock"  # held by a run's writer from its start to its end
STUDY_SPEC = "study.toml"

T = TypeVar("T")
_CHUNK = 1 << 24  # bytes read at a time: memory stays flat however large the file


class RunFolderError(UserError, ValueError):
    """A run folder that cannot be read as the format says; the message names file and line."""


def corrupt_line(path: Path, lineno: int, exc: Exception) -> str:
    """The report of one bad line: 'file:line: corrupt line (why)'; a byte-order mark is named as such."""
    why = f"{exc.__class__.__name__}: {str(exc)[:160]}"
    if lineno == 1 and _starts_with_bom(path):
        why += "; the file starts with a UTF-8 byte-order mark, which JSONL does not allow: save it without one"
    return f"{path}:{lineno}: corrupt line ({why})"


def _starts_with_bom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(3) == b"\xef\xbb\xbf"
    except OSError:
        return False


class JsonlChunks:
    """The complete lines of a JSONL file from byte `start`, a chunk of whole lines at a time.

    Iterate for (offset of the chunk in the file, bytes ending in a newline). After iterating, `end`
    is the byte after the last complete line and `torn_tail` says whether an incomplete line follows.
    """

    def __init__(self, path: Path, start: int = 0, chunk: int = _CHUNK) -> None:
        self.path = Path(path)
        self.end, self.chunk = start, chunk
        self.torn_tail = False

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        with open(self.path, "rb") as f:
            f.seek(self.end)
            rest = b""
            while data := f.read(self.chunk):
                data = rest + data if rest else data
                cut = data.rfind(b"\n") + 1
                if cut:
                    yield self.end, data[:cut]
                    self.end += cut
                rest = data[cut:]
        self.torn_tail = bool(rest)


class JsonlLines:
    """Complete lines of a JSONL file from byte `start`; iterate for (line number, offset, raw bytes).

    `lineno` is the number of lines before `start`. After iterating, `end` is the byte after the
    last complete line, `n_lines` the lines read up to there, and `torn_tail` whether an incomplete
    line follows. Blank lines are counted, not yielded.
    """

    def __init__(self, path: Path, start: int = 0, lineno: int = 0) -> None:
        self.path = Path(path)
        self._chunks = JsonlChunks(path, start)
        self.n_lines = lineno

    @property
    def end(self) -> int:
        return self._chunks.end

    @property
    def torn_tail(self) -> bool:
        return self._chunks.torn_tail

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        for base, body in self._chunks:
            pos = 0
            while (nl := body.find(b"\n", pos)) >= 0:
                self.n_lines += 1
                raw = body[pos:nl]
                if raw.strip():
                    yield self.n_lines, base + pos, raw
                pos = nl + 1


@dataclass
class Scan(Generic[T]):
    """What a tolerant read found: decoded records with their line numbers and byte offsets."""

    records: list[T] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # corrupt complete lines, "file:line: why"
    torn_tail: bool = False
    end: int = 0  # byte after the last complete line
    n_lines: int = 0  # complete lines up to `end`


_DICT = msgspec.json.Decoder(dict[str, Any])


def decode_object(raw: bytes) -> dict[str, Any]:
    """One line as a JSON object (any other JSON value is an error)."""
    return _DICT.decode(raw)


def scan_jsonl(
    path: Path,
    start: int = 0,
    strict: bool = False,
    decode: Callable[[bytes], Any] = decode_object,
    lineno: int = 0,
) -> Scan[Any]:
    """Decode the complete lines of `path` from byte `start` with `decode` (JSON objects by default).

    A line `decode` rejects (ValueError or msgspec's errors) is corrupt: raised as RunFolderError
    naming file and line when `strict`, else collected in `errors`.
    """
    lines = JsonlLines(path, start, lineno)
    scan: Scan[Any] = Scan()
    for n, offset, raw in lines:
        try:
            rec = decode(raw)
        except (msgspec.DecodeError, ValueError, UnicodeDecodeError) as exc:
            if strict:
                raise RunFolderError(corrupt_line(lines.path, n, exc)) from None
            scan.errors.append(corrupt_line(lines.path, n, exc))
            continue
        scan.records.append(rec)
        scan.lines.append(n)
        scan.offsets.append(offset)
        scan.lengths.append(len(raw) + 1)
    scan.torn_tail, scan.end, scan.n_lines = lines.torn_tail, lines.end, lines.n_lines
    return scan


def read_line(path: Path, offset: int, length: int) -> bytes:
    """The bytes of one line (newline excluded) at `offset`."""
    with open(path, "rb") as f:
        f.seek(offset)
        raw = f.read(length)
    return raw[:-1] if raw.endswith(b"\n") else raw


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
    """Every item of a run, in order; any bad line raises (items.jsonl is written whole)."""
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


def iter_outcomes(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Complete outcome lines of a run (tolerant of a run in progress; corrupt lines raise)."""
    yield from scan_jsonl(Path(run_dir) / OUTCOMES, strict=True).records


def is_run_dir(path: Path) -> bool:
    """A folder with a manifest, or with outcome lines. A writer creates an empty outcomes.jsonl just
    before the run's first manifest, so a folder with only that (and items.jsonl) is a run starting,
    or one killed in that moment: nothing to read yet (`starting_runs`)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / MANIFEST).exists():
        return True
    try:
        return (path / OUTCOMES).stat().st_size > 0
    except OSError:
        return False


def starting_runs(study_dir: Path) -> list[Path]:
    """Folders of a study that a writer has begun (its lock, items.jsonl or outcomes.jsonl) but that
    have no manifest and no outcome line yet, sorted; hidden folders (`.prunescope`, a `stats --out`
    work folder) are not runs."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir() or is_run_dir(study_dir):
        return []
    return sorted(
        p
        for p in study_dir.iterdir()
        if not p.name.startswith(".")
        and p.is_dir()
        and not is_run_dir(p)
        and any((p / name).exists() for name in (WRITER_LOCK, ITEMS, OUTCOMES))
    )


def discover_runs(study_dir: Path) -> list[Path]:
    """Run folders directly inside a study folder (or the folder itself if it is a run), sorted."""
    study_dir = Path(study_dir)
    if is_run_dir(study_dir):
        return [study_dir]
    return sorted(p for p in study_dir.iterdir() if is_run_dir(p)) if study_dir.is_dir() else []
