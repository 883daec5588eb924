"""Replacing a file atomically (write a temp file beside it, fsync, rename), with the permissions
open() would give: readers see the old file or the new one, never half of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not thread-safe


def mode_like_open(folder: bool = False) -> int:
    """The mode open() (0o666) or mkdir() (0o777) gives under the user's umask."""
    return (0o777 if folder else 0o666) & ~_UMASK


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_leftover_temps(path: Path) -> None:
    """Remove temp files of replacements of `path` that a kill stopped; only for a caller that is the
    file's one writer (under its lock), as another writer's temp file may be in use."""
    for leftover in path.parent.glob(_temp_prefix(path) + "*"):
        leftover.unlink(missing_ok=True)


def _mkstemp_like_open(path: Path) -> tuple[int, str]:
    """A temp file beside `path` with the permissions open() would give (mkstemp makes it 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), dir=path.parent)
    os.fchmod(fd, mode_like_open())
    return fd, tmp


def fsync_dir(folder: Path) -> None:
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


def replace_file(path: Path, write: Callable[[IO[bytes]], object], durable: bool = True) -> None:
    """Replace `path` with what `write(f)` writes to a binary file; `durable` fsyncs file and folder."""
    path = Path(path)
    fd, tmp = _mkstemp_like_open(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, durably."""
    replace_file(path, lambda f: f.write(data))
