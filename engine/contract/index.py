"""The run index: a columnar Arrow file per JSONL file, so readers never parse a million lines twice.

JSONL stays the source of truth. An index holds one row per decoded line of the file: its line
number, byte offset, length and CRC-32, and the per-item fields that `stats` and the TUI use
(`OUTCOME_COLUMNS`, `ITEM_COLUMNS`). Readers open it memory-mapped and read whole lines back by
offset only to show an item.

Where an index lives:

- `outcomes.index.arrow` beside `outcomes.jsonl`, written by the engine's `OutcomeWriter` batch by
  batch (an Arrow IPC stream: a schema, then one record batch per appended batch);
- a copy a reader built, under `<cache_root>/index/` (run folders are never written by readers).

An index is trusted only after a check against its JSONL file: the file must be at least as long
as the bytes the index covers, and the first, the last and 15 evenly spaced indexed lines between
them must have the recorded length and CRC.
A torn index (a kill during an append) is read up to its last complete batch. A stale index (the
file was rewritten) is rebuilt; an index behind its file (a run in progress, or a kill between the
two appends) is extended from where it ends. A rebuilt or extended copy is cached.

Adding a column: read the field in the view struct (`OutcomeView` or `ItemView`) if it is not read
yet, add `(name, arrow type)` to the column list and its value to the row function at the same
position (`_outcome_columns` / `_item_columns`), and bump `INDEX_VERSION` so that older indexes are rebuilt
(bump it too when a view rejects lines it used to accept, so that no older index keeps them as rows).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import pyarrow as pa
from msgspec import Struct

from engine.atomic import replace_file
from engine.contract.labels import category
from engine.contract.reader import (
    ITEMS,
    OUTCOMES,
    JsonlChunks,
    RunFolderError,
    corrupt_line,
    decode_object,
    read_line,
)
from engine.contract.records import Index, Rank

INDEX_VERSION = "5"
OUTCOMES_INDEX = "outcomes.index.arrow"
# Bytes decoded at a time: memory stays flat however large the file, and no single call holds the
# GIL long (msgspec does not release it), so a UI thread beside the reader stays responsive.
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where readers keep the indexes they build (`<cache_root>/index`)."""
    from engine.config import cache_root

    return cache_root() / "index"


def hash64(content_hash: str) -> int:
    """A 64-bit key of an item content hash ('sha256:<hex>'): its first 16 hex digits.

    Pairing compares these keys; two different items collide with probability 2^-64.
    """
    if content_hash.startswith("sha256:") and len(content_hash) >= 23:
        with contextlib.suppress(ValueError):
            return int(content_hash[7:23], 16)
    return int.from_bytes(hashlib.blake2b(content_hash.encode("utf-8"), digest_size=8).digest(), "big")


# ------------------------------------------------------------------ what an outcome line contributes


class _Gen(Struct, frozen=True, gc=False):
    correct: bool
    text: str = ""


class _Mc(Struct, frozen=True, gc=False):
    correct: bool


class _Trace(Struct, frozen=True, gc=False):
    first_token_rank: Rank | None = None
    seq_logprob: float | None = None
    margin: float | None = None


class _LayerTrace(Struct, frozen=True, gc=False):
    ranks: list[Rank] = []


class _Beam(Struct, frozen=True, gc=False):
    hit_top: bool | None = None
    hit_any: bool | None = None


class _Sampling(Struct, frozen=True, gc=False):
    hits: Index | None = None


class _OneShot(Struct, frozen=True, gc=False):
    correct: bool | None = None


class _Probes(Struct, frozen=True, gc=False):
    beam: _Beam | None = None
    sampling: _Sampling | None = None
    one_shot: _OneShot | None = None


_CATEGORY_OF = {(o, m): category(o, m) for o in (False, True) for m in (False, True)}  # (open, mc) correct


class OutcomeView(Struct, frozen=True, gc=False):
    """The fields of `records.Outcome` that the index keeps (same names; the rest is skipped).

    `category` is checked, not kept: a value outside the schema's, or one that open.correct and
    mc.correct contradict, makes the line corrupt (as `prunescope validate` finds it); so does a
    `demotion` outside the schema's values.
    """

    item_uid: str
    content_hash: str
    language: str
    open: _Gen
    mc: _Mc
    category: Literal["both_correct", "recognition_only", "generation_only", "both_wrong"]  # labels.CATEGORIES
    shown: _Gen | None = None
    gold_trace: _Trace | None = None
    demotion: Literal["demoted", "erased", "not_probed"] | None = None  # the schema's values
    probes: _Probes | None = None
    layer_trace: _LayerTrace | None = None

    def __post_init__(self) -> None:
        expected = _CATEGORY_OF[self.open.correct, self.mc.correct]
        if self.category != expected:
            raise ValueError(f"category is {self.category!r} but open.correct and mc.correct make it {expected!r}")


_LINE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("line", pa.int32()),  # 1-based line number in the JSONL file
    ("offset", pa.int64()),
    ("length", pa.int32()),  # bytes of the line, newline included
    ("crc", pa.uint32()),  # CRC-32 of the line without its newline
)

OUTCOME_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    *_LINE_COLUMNS,
    ("item_uid", pa.string()),
    ("hash64", pa.uint64()),
    ("language", pa.string()),
    ("open_correct", pa.bool_()),
    ("shown_correct", pa.bool_()),  # null: no candidate-shown generation
    ("mc_correct", pa.bool_()),
    ("demotion", pa.string()),
    ("first_token_rank", pa.int32()),
    ("seq_logprob", pa.float64()),
    ("margin", pa.float64()),
    ("beam_top", pa.bool_()),
    ("beam_any", pa.bool_()),
    ("sample_hits", pa.int32()),
    ("one_shot", pa.bool_()),
    ("open_text", pa.string()),
    ("layer_ranks", pa.list_(pa.int32())),  # null: no layer trace
)


def hash64s(hashes: list[str]) -> list[int]:
    """`hash64` of many content hashes (the well-formed ones parsed in one pass)."""
    try:
        if all(h.startswith("sha256:") and len(h) >= 23 for h in hashes):
            return [int(h[7:23], 16) for h in hashes]
    except ValueError:
        pass
    return [hash64(h) for h in hashes]


def _outcome_columns(vs: list[OutcomeView]) -> list[list[Any]]:
    """The values of OUTCOME_COLUMNS (after the line columns) for decoded lines, column by column."""
    trace = [v.gold_trace for v in vs]
    probes = [v.probes for v in vs]
    beam = [None if p is None else p.beam for p in probes]
    sampling = [None if p is None else p.sampling for p in probes]
    one_shot = [None if p is None else p.one_shot for p in probes]
    return [
        [v.item_uid for v in vs],
        hash64s([v.content_hash for v in vs]),
        [v.language for v in vs],
        [v.open.correct for v in vs],
        [None if v.shown is None else v.shown.correct for v in vs],
        [v.mc.correct for v in vs],
        [v.demotion for v in vs],
        [None if t is None else t.first_token_rank for t in trace],
        [None if t is None else t.seq_logprob for t in trace],
        [None if t is None else t.margin for t in trace],
        [None if b is None else b.hit_top for b in beam],
        [None if b is None else b.hit_any for b in beam],
        [None if s is None else s.hits for s in sampling],
        [None if o is None else o.correct for o in one_shot],
        [v.open.text for v in vs],
        [None if v.layer_trace is None else v.layer_trace.ranks for v in vs],
    ]


# ------------------------------------------------------------------ what an item line contributes


class _SourceView(Struct, frozen=True, gc=False):
    dataset: str | None = None


class ItemView(Struct, frozen=True, gc=False):
    """The fields of `records.Item` that the item index keeps."""

    item_uid: str
    content_hash: str
    language: str
    question: str
    answer: str
    options: list[str]
    aliases: list[str] = []
    parallel_id: str | None = None
    source: _SourceView | None = None


ITEM_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    *_LINE_COLUMNS,
    ("item_uid", pa.string()),
    ("hash64", pa.uint64()),
    ("language", pa.string()),
    ("parallel_id", pa.string()),  # the item uid when the item has none
    ("n_options", pa.int16()),
    ("dataset", pa.string()),  # the item source's dataset (null when the line names none)
    ("answer", pa.string()),
    ("search_text", pa.string()),  # question, gold answer and aliases: what a text filter searches
)


def _item_columns(vs: list[ItemView]) -> list[list[Any]]:
    """The values of ITEM_COLUMNS (after the line columns) for decoded lines, column by column."""
    return [
        [v.item_uid for v in vs],
        hash64s([v.content_hash for v in vs]),
        [v.language for v in vs],
        [v.item_uid if v.parallel_id is None else v.parallel_id for v in vs],
        [len(v.options) for v in vs],
        [None if v.source is None else v.source.dataset for v in vs],
        [v.answer for v in vs],
        ["\n".join([v.question, v.answer, *v.aliases]) for v in vs],
    ]


@dataclass(frozen=True)
class Layout:
    """How one kind of JSONL file is indexed."""

    kind: str
    columns: tuple[tuple[str, pa.DataType], ...]
    view: type
    values: Callable[[list[Any]], list[list[Any]]]  # decoded lines -> values of the non-line columns

    @property
    def decoder(self) -> msgspec.json.Decoder:
        return _decoder(self.view)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.columns), metadata={"prunescope_index": INDEX_VERSION, "kind": self.kind})


@functools.cache
def _decoder(type_: Any) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(type_)


OUTCOME_LAYOUT = Layout("outcomes", OUTCOME_COLUMNS, OutcomeView, _outcome_columns)
ITEM_LAYOUT = Layout("items", ITEM_COLUMNS, ItemView, _item_columns)


# ------------------------------------------------------------------ building


@dataclass
class Rows:
    """Index rows decoded from part of a JSONL file, and what the read found."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    end: int = 0
    n_lines: int = 0
    torn_tail: bool = False


def _batch(
    layout: Layout, lines: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, crcs: list[int], views: list[Any]
) -> pa.RecordBatch:
    cols = [lines.astype(np.int32), offsets.astype(np.int64), lengths.astype(np.int32), np.asarray(crcs, np.uint32)]
    cols += layout.values(views)
    return pa.record_batch([pa.array(c, t) for c, (_, t) in zip(cols, layout.columns)], schema=layout.schema)


def _decode_chunk(layout: Layout, path: Path, body: bytes, base: int, lineno: int, out: Rows) -> int:
    """Index rows of `body` (complete lines starting at file offset `base`, after `lineno` lines) into
    `out`; returns the number of lines in `body`.

    All lines are decoded in one call (`decode_lines`); a chunk that fails that way (a corrupt or
    blank line) is decoded line by line, naming the bad lines.
    """
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    numbers = lineno + 1 + np.arange(len(ends))
    try:
        views = layout.decoder.decode_lines(body)
        if len(views) != len(ends):  # a blank line: decoded line by line below, which skips it
            raise ValueError("blank line")
        keep = np.arange(len(ends))
    except (msgspec.DecodeError, ValueError):
        views, kept = [], []
        decode = layout.decoder.decode
        for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
            raw = body[s:e]
            if not raw.strip():
                continue
            try:
                views.append(decode(raw))
                kept.append(k)
            except (msgspec.DecodeError, ValueError) as exc:
                out.errors.append(corrupt_line(path, int(numbers[k]), exc))
        keep = np.asarray(kept, dtype=np.int64)
    crcs = [zlib.crc32(body[s:e]) for s, e in zip(starts[keep].tolist(), ends[keep].tolist())]
    lengths = ends[keep] - starts[keep] + 1
    try:
        out.batches.append(_batch(layout, numbers[keep], base + starts[keep], lengths, crcs, views))
    except (OverflowError, pa.ArrowInvalid):  # a value no index column holds (an integer past 64 bits): name its line
        for j, view in enumerate(views):
            one = keep[j : j + 1]
            try:
                batch = _batch(layout, numbers[one], base + starts[one], lengths[j : j + 1], crcs[j : j + 1], [view])
            except (OverflowError, pa.ArrowInvalid) as exc:
                out.errors.append(corrupt_line(path, int(numbers[one[0]]), exc))
                continue
            out.batches.append(batch)
    return len(ends)


def decode_rows(layout: Layout, path: Path, start: int = 0, lineno: int = 0) -> Rows:
    """Index rows of the complete lines of `path` from byte `start`; corrupt lines are named, not fatal."""
    out = Rows(end=start, n_lines=lineno)
    chunks = JsonlChunks(path, start, _CHUNK)
    for base, body in chunks:
        out.n_lines += _decode_chunk(layout, path, body, base, out.n_lines, out)
    out.end, out.torn_tail = chunks.end, chunks.torn_tail
    if not out.batches:
        out.batches.append(_empty(layout))
    return out


def _empty(layout: Layout) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=layout.schema)


def row_batch(layout: Layout, lines: Sequence[tuple[int, int, bytes]]) -> pa.RecordBatch:
    """Index rows of lines the caller has just written: (line number, offset, bytes without newline)."""
    views = [layout.decoder.decode(raw) for _, _, raw in lines]
    return _batch(
        layout,
        np.asarray([n for n, _, _ in lines]),
        np.asarray([off for _, off, _ in lines]),
        np.asarray([len(raw) + 1 for _, _, raw in lines]),
        [zlib.crc32(raw) for _, _, raw in lines],
        views,
    )


# ------------------------------------------------------------------ index files


def index_bytes(layout: Layout, batches: Sequence[pa.RecordBatch], meta: dict[str, Any]) -> bytes:
    """An index file's bytes: an Arrow IPC stream, `meta` in the schema metadata, then `batches`.

    No end-of-stream marker: batches appended later (`append_batch`) are part of the stream."""
    schema = layout.schema.with_metadata({**layout.schema.metadata, b"state": json.dumps(meta).encode()})
    return schema.serialize().to_pybytes() + b"".join(b.serialize().to_pybytes() for b in batches)


def write_index(path: Path, layout: Layout, batches: Sequence[pa.RecordBatch], meta: dict[str, Any]) -> None:
    """Write an index file whole, atomically."""
    data = index_bytes(layout, batches, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, lambda f: f.write(data), durable=False)


def append_batch(path: Path, batch: pa.RecordBatch) -> None:
    """Append one record batch to an index stream written by `write_index`."""
    with open(path, "ab") as f:
        f.write(batch.serialize().to_pybytes())
        f.flush()


@dataclass
class _Loaded:
    table: pa.Table
    meta: dict[str, Any]


def _load(path: Path, layout: Layout) -> _Loaded | None:
    """An index file read up to its last complete batch (memory-mapped); None when unusable."""
    try:
        source = pa.memory_map(str(path))
    except (OSError, pa.ArrowException):
        return None
    try:
        reader = pa.ipc.open_stream(source)
    except (OSError, pa.ArrowException):
        return None
    schema = reader.schema
    md = schema.metadata or {}
    if md.get(b"prunescope_index") != INDEX_VERSION.encode() or md.get(b"kind") != layout.kind.encode():
        return None
    if [(f.name, f.type) for f in schema] != list(layout.columns):
        return None
    batches = []
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except (OSError, pa.ArrowException):  # a torn append: keep what came before
            break
    try:
        meta = json.loads(md.get(b"state", b"{}"))
    except ValueError:
        return None
    return _Loaded(pa.Table.from_batches(batches, schema=schema), meta if isinstance(meta, dict) else {})


@dataclass
class LineIndex:
    """The index of one JSONL file: rows of decoded lines, and how far the file was read."""

    path: Path  # the JSONL file
    layout: Layout
    table: pa.Table
    end: int  # byte after the last complete line read
    n_lines: int  # complete lines up to `end`
    torn_tail: bool = False
    problems: list[str] = field(default_factory=list)  # corrupt lines, 'file:line: why'
    origin: str = "built"  # 'run folder', 'cache' or 'built'

    def __len__(self) -> int:
        return self.table.num_rows

    def extend(self) -> int:
        """Read lines appended since the last read; returns how many rows were added."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size <= self.end:  # nothing new (a shorter file was cut under us: the rows read stay)
            self.torn_tail = False
            return 0
        rows = decode_rows(self.layout, self.path, self.end, self.n_lines)
        self._add(rows)
        return sum(b.num_rows for b in rows.batches)

    def _add(self, rows: Rows) -> None:
        new = pa.Table.from_batches(rows.batches, schema=self.table.schema)
        if new.num_rows:
            self.table = pa.concat_tables([self.table, new])
        self.end, self.n_lines, self.torn_tail = rows.end, rows.n_lines, rows.torn_tail
        self.problems += rows.errors

    def fetch(self, row: int) -> dict[str, Any]:
        """The whole record of index row `row`, read back from the file by offset and checked by CRC."""
        offset = int(self.table.column("offset")[row].as_py())
        length = int(self.table.column("length")[row].as_py())
        line = int(self.table.column("line")[row].as_py())
        raw = read_line(self.path, offset, length)
        if zlib.crc32(raw) != self.table.column("crc")[row].as_py():
            raise RunFolderError(f"{self.path}:{line}: the line changed since it was indexed; reopen the study")
        return decode_object(raw)

    def meta(self) -> dict[str, Any]:
        return {"end": self.end, "n_lines": self.n_lines, "problems": self.problems}


def _check(loaded: _Loaded, jsonl: Path, size: int) -> tuple[int, int] | None:
    """(end, n_lines) the index covers when it matches `jsonl`, else None: the file is long enough, and
    the first, the last and 15 evenly spaced lines between them have the recorded length and CRC."""
    t = loaded.table
    end, n_lines = int(loaded.meta.get("end", 0)), int(loaded.meta.get("n_lines", 0))
    if t.num_rows:
        last = t.num_rows - 1
        row_end = int(t.column("offset")[last].as_py()) + int(t.column("length")[last].as_py())
        end, n_lines = max(end, row_end), max(n_lines, int(t.column("line")[last].as_py()))
    if size < end:
        return None
    for row in sorted(set(np.linspace(0, t.num_rows - 1, 17).astype(int).tolist())) if t.num_rows else ():
        offset, length = int(t.column("offset")[row].as_py()), int(t.column("length")[row].as_py())
        raw = read_line(jsonl, offset, length)
        if len(raw) + 1 != length or zlib.crc32(raw) != t.column("crc")[row].as_py():
            return None
    return end, n_lines


def _checked(path: Path | None, layout: Layout, jsonl: Path, size: int) -> tuple[_Loaded, tuple[int, int]] | None:
    """The index file at `path` and the (end, n_lines) of `jsonl` it covers, when it exists and checks out."""
    if path is None or not path.exists():
        return None
    loaded = _load(path, layout)
    covered = _check(loaded, jsonl, size) if loaded is not None else None
    return None if loaded is None or covered is None else (loaded, covered)


def cached_path(jsonl: Path) -> Path:
    key = hashlib.sha256(str(Path(jsonl).resolve()).encode("utf-8")).hexdigest()[:32]
    return cache_dir() / f"{key}.arrow"


def open_index(jsonl: Path, layout: Layout, beside: Path | None = None, cache: bool = True) -> LineIndex:
    """The index of `jsonl`, checked against the file, extended or rebuilt as needed.

    `beside` is the index a writer keeps next to the file (used when it checks out); a copy this
    reader had to build or extend is written to the cache (when `cache`).
    """
    jsonl = Path(jsonl)
    size = jsonl.stat().st_size
    best: LineIndex | None = None
    for where, path in (("run folder", beside), ("cache", cached_path(jsonl) if cache else None)):
        found = _checked(path, layout, jsonl, size)
        if found is None:
            continue
        on_disk, (end, n_lines) = found
        if best is None or end > best.end:
            problems = list(on_disk.meta.get("problems", []))
            best = LineIndex(jsonl, layout, on_disk.table, end, n_lines, False, problems, where)
    if best is not None and best.end == size:
        return best
    if best is None:
        best = LineIndex(jsonl, layout, layout.schema.empty_table(), 0, 0)
        best.extend()
    elif best.extend():
        best.origin = "extended"
    else:  # nothing new but a torn line or corrupt lines: not worth a new copy
        return best
    if cache:
        path = cached_path(jsonl)
        with contextlib.suppress(OSError):
            write_index(path, layout, best.table.combine_chunks().to_batches(), best.meta())
            loaded = _load(path, layout)  # the same rows, memory-mapped: the built copy can go
            if loaded is not None and loaded.table.num_rows == best.table.num_rows:
                best.table = loaded.table
    return best


def is_current(jsonl: Path, layout: Layout, beside: Path | None = None) -> bool:
    """Whether `open_index` would find an index (beside the file or cached) covering all of `jsonl`."""
    try:
        size = Path(jsonl).stat().st_size
    except FileNotFoundError:
        return True  # nothing to build
    for path in (beside, cached_path(jsonl)):
        found = _checked(path, layout, jsonl, size)
        if found is not None and found[1][0] == size:
            return True
    return False


# Below this many bytes to index, worker processes cost more than they save: each spends about
# 0.5 s of CPU importing pyarrow (which imports pandas) and numpy.
PARALLEL_MIN_BYTES = 256 << 20


def _build_main() -> None:
    """A worker process of `build_in_parallel`: argv holds (kind, JSONL file, index beside or '')
    triples; builds and caches their indexes, printing each file's path when it is done."""
    args = sys.argv[1:]
    for k in range(0, len(args) - 2, 3):
        kind, jsonl, beside = args[k : k + 3]
        layout = OUTCOME_LAYOUT if kind == OUTCOME_LAYOUT.kind else ITEM_LAYOUT
        with contextlib.suppress(Exception):  # the caller's open_index redoes it and names the problem
            open_index(Path(jsonl), layout, Path(beside) if beside else None, cache=True)
        print(jsonl, flush=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def idle_cpus() -> int:
    """CPUs no process is using, by the 1-minute load average (rounded)."""
    return int((os.cpu_count() or 1) - os.getloadavg()[0] + 0.5)


def build_in_parallel(
    files: Sequence[tuple[Path, Layout, Path | None]],
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> None:
    """Build the missing or stale indexes of `files` ((JSONL file, layout, index beside it)) into the
    cache in `workers` processes (default: one per idle CPU), when there is enough to index and at
    least two workers; `open_index` then finds them (and itself builds any a worker could not).

    Used for a study opened the first time: parsing is most of the work, and processes share it out
    across idle CPUs and keep it off the caller's GIL (the TUI's event loop runs beside the loader).
    On a machine without idle CPUs workers only add their start-up (measured at load average 14 on 2
    CPUs: 70 s wall and 29 s of CPU against 48 s and 21 s in one process for 1M lines), so the
    caller's `open_index` builds the indexes itself. Workers are plain interpreters (`python -c`), so
    no caller needs a `__main__` guard.
    """
    if sum(_size(f) for f, _, _ in files) < PARALLEL_MIN_BYTES:
        return
    workers = idle_cpus() if workers is None else workers
    if workers < 2:
        return
    todo = [(f, layout, beside) for f, layout, beside in files if not is_current(f, layout, beside)]
    sizes = [_size(f) for f, _, _ in todo]
    workers = min(len(todo), workers)
    if workers < 2 or sum(sizes) < PARALLEL_MIN_BYTES:
        return
    if progress:
        progress(f"indexing {len(todo)} files ({sum(sizes) / 2**20:.0f} MiB) in {workers} processes")
    shares: list[list[str]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for size, (f, layout, beside) in sorted(zip(sizes, todo), key=lambda x: -x[0]):
        w = loads.index(min(loads))  # largest file first, to the least loaded worker
        shares[w] += [layout.kind, str(f), str(beside or "")]
        loads[w] += size
    root = str(Path(__file__).resolve().parents[2])  # where `engine` is, for the workers to import it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    code = "from engine.contract.index import _build_main; _build_main()"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *share], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        for share in shares
    ]
    done = 0
    try:
        for p in procs:
            assert p.stdout is not None
            os.set_blocking(p.stdout.fileno(), False)
        while any(p.poll() is None for p in procs):
            time.sleep(0.05)
            finished = sum((p.stdout.read() or b"").count(b"\n") for p in procs if p.stdout)
            if finished and progress:
                done += finished
                progress(f"indexed {done} of {len(todo)} files")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout:
                p.stdout.close()


def open_outcomes(run_dir: Path, cache: bool = True) -> LineIndex:
    """The index of a run's outcomes.jsonl (FileNotFoundError when there is none)."""
    run_dir = Path(run_dir)
    return open_index(run_dir / OUTCOMES, OUTCOME_LAYOUT, run_dir / OUTCOMES_INDEX, cache)


def open_items(run_dir: Path, cache: bool = True) -> LineIndex:
    """The index of a run's items.jsonl (FileNotFoundError when there is none)."""
    return open_index(Path(run_dir) / ITEMS, ITEM_LAYOUT, None, cache)
