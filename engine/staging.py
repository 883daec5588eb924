"""Folders made beside their destination and moved into place once whole (torch-free).

A staged folder `<parent>/<prefix>XXXX` holds a lock file (`.writer.lock`) while its writer lives. The
next writer in `parent` removes the staged folders whose lock nobody holds (their writer was killed) and
leaves those of live writers alone; a folder not yet locked is left alone for `STALE_AFTER_S`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType

from engine.locks import NO_FLOCK, ProcessLock, lock_is_free

LOCK = ".writer.lock"
STALE_AFTER_S = 10.0  # a staged folder without a lock file, this old, belongs to a writer killed at once


class StagedFolder:
    """`with StagedFolder(parent, prefix) as stage:` makes and locks `stage.path`; the block writes into
    it, calls `stage.unlock()` (which removes the lock file, so the folder holds only what was written)
    and moves the folder or its contents into place. Whatever is left is removed when the block ends."""

    def __init__(self, parent: Path, prefix: str):
        self.parent = Path(parent)
        self.prefix = prefix
        self.path = Path()
        self._lock: ProcessLock | None = None

    def __enter__(self) -> StagedFolder:
        self.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.parent))
        lock = ProcessLock(self.path / f"{LOCK}.new", f"staged folder {self.path}")
        try:
            lock.acquire()
            os.replace(lock.path, self.path / LOCK)  # visible to a sweeper only once held
        except BaseException:
            lock.release()
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        lock.path = self.path / LOCK
        self._lock = lock
        return self

    def unlock(self) -> None:
        """Drop the lock and its file, the file first (a sweeper then sees a folder without a lock whose
        mtime just moved, and leaves it alone a while; never a free lock on a finished folder)."""
        if self._lock is not None:
            (self.path / LOCK).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)


def sweep_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the staged folders `parent/prefix*` whose writer is gone; returns what was removed."""
    removed = []
    try:
        candidates = [p for p in Path(parent).iterdir() if p.name.startswith(prefix) and p.is_dir()]
    except FileNotFoundError:
        return []
    now = time.time()
    for staged in candidates:
        try:
            if (staged / LOCK).exists():  # the writer renames its lock into place only once it holds it
                if not _abandoned(staged / LOCK):
                    continue
            elif now - staged.stat().st_mtime < STALE_AFTER_S:
                continue  # a writer may be between making the folder and taking its lock
        except FileNotFoundError:
            continue
        shutil.rmtree(staged, ignore_errors=True)
        removed.append(staged)
    return removed


def _abandoned(lock: Path) -> bool:
    """Whether the lock file `lock` is there with nobody holding it: its writer was killed. One that is
    gone, or unlinked while this looked (its writer unlocked a finished folder and is moving it into
    place), is not; and no lock file is created here, as taking the lock would."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return os.fstat(fd).st_nlink > 0  # still linked under a free lock: nobody will remove it
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno not in NO_FLOCK:
            raise
        return lock_is_free(lock)  # no flock here: the lock is the file and its holder's pid
    finally:
        os.close(fd)  # drops a flock taken above
