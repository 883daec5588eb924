"""Verified cache entries: the pruned-weights cache and the converted demo model (torch-free).

An entry is a folder. It is built in a staged sibling folder (`.tmp-<name>-XXXX`, `engine.staging`),
gets `checksums.json` (size and xxh3-128 of every file) written last and atomically, and is renamed into place, so an entry either has verified contents or does not exist. A read verifies every
file (size, then hash); an entry that fails is named, moved out of the way and rebuilt, never used.
Staged folders whose writer is gone (a killed build) are removed by the next build in that folder.
Entries get the permissions the user's umask gives (a shared cache must be readable by colleagues).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.atomic import mode_like_open, write_bytes_atomic
from engine.staging import LOCK, StagedFolder, sweep_stale

CHECKSUMS = "checksums.json"
TEMP_PREFIX = ".tmp-"


def file_digest(path: Path) -> str:
    """xxh3-128 of a file (fast enough to verify a model's weights on every load)."""
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return "xxh3_128:" + h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name not in (CHECKSUMS, LOCK) and not p.is_symlink()
    )


def write_checksums(folder: Path) -> None:
    """Record size and hash of every file of `folder` in `checksums.json` (atomically)."""
    folder = Path(folder)
    entries = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "hash": file_digest(p)} for p in _files(folder)
    }
    write_bytes_atomic(folder / CHECKSUMS, (json.dumps({"files": entries}, indent=1, sort_keys=True) + "\n").encode())


def has_checksums(folder: Path) -> bool:
    return (Path(folder) / CHECKSUMS).is_file()


def verify(folder: Path) -> str | None:
    """None when every recorded file has its size and hash; else what is wrong, in a few words."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / CHECKSUMS).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return f"no {CHECKSUMS} (written by an older prunescope, or the write was cut)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {CHECKSUMS} ({exc.__class__.__name__})"
    for name, want in sorted(recorded.items()):
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != want["size"]:
            return f"{name} has {size} bytes, {want['size']} were written"
    for name, want in sorted(recorded.items()):
        if file_digest(folder / name) != want["hash"]:
            return f"{name} has changed since it was written (checksum mismatch)"
    return None


def verified_or_discarded(folder: Path, what: str, then: str) -> bool:
    """True when `folder` verifies; else names it on stderr (`what FOLDER: problem; then`), removes it
    and returns False so the caller rebuilds it."""
    problem = verify(folder)
    if problem is None:
        return True
    warn(f"{what} {folder}: {problem}; {then}")
    discard(folder)
    return False


def discard(folder: Path) -> None:
    """Remove an entry: first renamed out of the way (atomic), so no reader sees it half deleted."""
    folder = Path(folder)
    aside = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{folder.name}-bad-", dir=folder.parent))
    with contextlib.suppress(FileNotFoundError):  # someone else removed it first
        os.replace(folder, aside / "entry")
    shutil.rmtree(aside, ignore_errors=True)


def warn(message: str) -> None:
    print(f"prunescope: warning: {message}", file=sys.stderr)


def sweep_stale_builds(parent: Path) -> None:
    """Remove the temporary build folders in `parent` of writers that are gone, naming each."""
    for gone in sweep_stale(parent, TEMP_PREFIX):
        warn(f"removed {gone}, left by a cache write that was killed")


def fix_modes(folder: Path) -> None:
    """The permissions mkdir/open give under the umask (mkdtemp makes 0700, some writers 0600)."""
    os.chmod(folder, mode_like_open(folder=True))
    for p in folder.rglob("*"):
        if not p.is_symlink():
            os.chmod(p, mode_like_open(folder=p.is_dir()))


@contextlib.contextmanager
def build_entry(final: Path) -> Iterator[Path]:
    """Build an entry in a temporary folder that becomes `final` when the block ends without error.

    Stale temp folders of dead writers beside `final` are removed first. If `final` appears meanwhile (a
    concurrent writer won) and verifies, it is kept and this build is dropped.
    """
    final = Path(final)
    sweep_stale_builds(final.parent)
    with StagedFolder(final.parent, f"{TEMP_PREFIX}{final.name[:24]}-") as stage:
        yield stage.path
        stage.unlock()
        write_checksums(stage.path)
        fix_modes(stage.path)
        try:
            os.replace(stage.path, final)
        except OSError:
            if not final.is_dir():
                raise
            if verify(final) is not None:  # a bad entry in the way: replace it
                discard(final)
                os.replace(stage.path, final)
