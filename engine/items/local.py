"""Local item files in the item schema: JSONL, CSV and Parquet.

- **JSONL**: one JSON object per line (blank lines skipped), fields as in the item schema.
- **CSV** (UTF-8, header row): one column per field. `options` and `aliases` are either a JSON list
  (`["Paris", "Lyon"]`) or `|`-separated (`Paris|Lyon|Marseille|Nice`); `source` and `meta`, when
  present, are JSON objects; `gold_index` is an integer; an empty cell means "not given".
- **Parquet**: columns as in the item schema; list columns may be real lists or strings in the CSV
  conventions; binary columns must hold UTF-8.

Rows are labelled `line N` (JSONL, CSV: the physical line of the file) or `row N` (Parquet, 1-based)
in error messages.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.items.validate import validate_items

LIST_FIELDS = ("options", "aliases")
OBJECT_FIELDS = ("source", "meta")


CSV_CELL_LIMIT = 2**31 - 1


def _utf8(data: bytes, path: Path, first_line: int = 1) -> str:
    """Decode `data` (starting at line `first_line` of `path`); invalid UTF-8 names its line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data[: exc.start].count(b"\n")
        raise UserError(f"{path}: line {line}: invalid UTF-8 (byte {data[exc.start]:#04x})") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        text = _utf8(raw, path, n).strip() if raw.strip() else ""
        if not text:
            continue
        if n == 1:
            text = text.lstrip("\ufeff")
        try:
            yield f"line {n}", json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {n}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise UserError(f"{path}: line {n}: JSON nested too deeply to be an item") from None


def _parse_list(value: str, field: str) -> Any:
    value = value.strip()
    if value.startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"field '{field}' is not a valid JSON list ({exc.msg})") from None
    return [part.strip() for part in value.split("|") if part.strip()]


def coerce_flat(row: dict[str, Any]) -> dict[str, Any]:
    """Turn CSV-style string cells into item values (lists, objects, integers); '' means absent."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, str) and not value.strip():
            continue
        if value is None:
            continue
        if key in LIST_FIELDS and isinstance(value, str):
            value = _parse_list(value, key)
        elif key in OBJECT_FIELDS and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"field '{key}' is not a valid JSON object ({exc.msg})") from None
        elif key == "gold_index" and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError(f"gold_index must be an integer, got {value!r}") from None
        elif key == "gold_index" and isinstance(value, float) and value.is_integer():
            value = int(value)
        out[key] = value
    return out


def _flat_rows(rows: Iterator[tuple[str, dict[str, Any]]], path: Path) -> Iterator[tuple[str, Any]]:
    for label, row in rows:
        try:
            yield label, coerce_flat(row)
        except ValueError as exc:
            raise UserError(f"{path}: {label}: {exc}") from None


def _csv_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    text = _utf8(path.read_bytes(), path).lstrip("\ufeff")
    csv.field_size_limit(CSV_CELL_LIMIT)  # the module's 131072 would refuse a long context
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        if not reader.fieldnames:
            raise UserError(f"{path}: empty CSV (a header row is required)")
        for row in reader:
            if None in row:
                raise UserError(f"{path}: line {reader.line_num}: more cells than header columns")
            yield f"line {reader.line_num}", row
    except csv.Error as exc:  # e.g. a quote never closed (it would take the rest of the file into one cell)
        raise UserError(f"{path}: line {reader.line_num + 1}: not valid CSV ({exc})") from None


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None
    for n, row in enumerate(table.to_pylist(), 1):
        out = {}
        for key, value in row.items():
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise UserError(f"{path}: row {n}: field '{key}' is not valid UTF-8") from None
            out[key] = value
        yield f"row {n}", out


def read_item_file(path: str | Path, strict: bool = False) -> list[dict[str, Any]]:
    """Validated items of a local .jsonl, .csv or .parquet file (order of the file)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such item file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows: Iterator[tuple[str, Any]] = _jsonl_rows(path)
    elif suffix == ".csv":
        rows = _flat_rows(_csv_rows(path), path)
    elif suffix in (".parquet", ".pq"):
        rows = _flat_rows(_parquet_rows(path), path)
    else:
        raise UserError(f"{path}: unknown item file type {suffix!r} (use .jsonl, .csv or .parquet)")
    return validate_items(rows, where=str(path), dataset=path.stem, strict=strict)
