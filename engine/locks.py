"""Exclusive, non-blocking locks between processes, naming their holder (torch-free).

A lock is a small file holding `{"host", "pid", "started", "command"}` of its holder. Where the file
system supports `flock` (local disks, NFSv4, Lustre mounted with `-o flock`) the kernel (or the NFS
server) holds the lock and releases it when the holder dies, so a lock whose holder is gone is taken
over at once. Where `flock` is refused (Lustre with `noflock`, some FUSE mounts) the lock falls back to
creating the file exclusively; a holder on this host that is no longer alive is then detected by its
pid and the lock is taken over, while a holder on another host can only be cleared by deleting the
file (the error says which file).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import UserError

# errno values meaning "this file system does not do flock", not "someone holds it"
NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_TRIES = 5  # attempts 20 ms apart before a lock counts as held


class LockHeld(UserError):
    """Another live process holds the lock; the message names it."""

    def __init__(self, message: str, holder: dict[str, Any]):
        super().__init__(message)
        self.holder = holder

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole (Ray sends a worker's exception back)
        return (type(self), (str(self), self.holder))


def _me() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv)[:300],
    }


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(holder: dict[str, Any]) -> str:
    """'pid 123 on host-a since 2025-…' (what a user needs to find the holder)."""
    if not holder:
        return "an unknown process"
    since = f" since {holder['started']}" if holder.get("started") else ""
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}{since}"


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _write_holder(fd: int, holder: dict[str, Any]) -> None:
    data = (json.dumps(holder, sort_keys=True) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


class ProcessLock:
    """An exclusive lock on `path`, held from `acquire()` to `release()` (or the holder's death).

    `what` names the locked thing in messages ("run folder runs/x/demo__dense").
    """

    def __init__(self, path: Path, what: str):
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None
        self._exclusive_file = False  # the no-flock fallback: we created the file and delete it on release

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> ProcessLock:
        """Take the lock or raise `LockHeld` naming the holder; a dead holder's lock is taken over."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            for attempt in range(_TRIES):  # `probe_lock` holds a shared lock for an instant
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == _TRIES - 1:
                        raise
                    time.sleep(0.02)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeld(self._held_message(holder), holder) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno not in NO_FLOCK:
                raise
            return self._acquire_exclusive_file()
        _write_holder(fd, _me())
        self._fd = fd
        return self

    def _acquire_exclusive_file(self) -> ProcessLock:
        """Fallback where flock is refused: the lock is the existence of the file."""
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                with open(self.path, "rb") as f:
                    holder = _read_holder(f.fileno())
                if holder and holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", 0))):
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()  # its holder is gone: take it over
                    continue
                hint = (
                    f"; if that process is gone, delete {self.path}"
                    if holder.get("host") != socket.gethostname()
                    else ""
                )
                raise LockHeld(self._held_message(holder) + hint, holder) from None
            _write_holder(fd, _me())
            self._fd = fd
            self._exclusive_file = True
            return self
        raise LockHeld(f"{self.what}: could not take the lock file {self.path}", {})

    def _held_message(self, holder: dict[str, Any]) -> str:
        return f"{self.what} is being written by another prunescope ({describe(holder)}); wait for it or stop it"

    def release(self) -> None:
        if self._fd is None:
            return
        if self._exclusive_file:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None
        self._exclusive_file = False

    def __enter__(self) -> ProcessLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def probe_lock(path: Path) -> tuple[bool | None, dict[str, Any]]:
    """(held, holder) of the flock at `path`, taking nothing but a shared lock for an instant and
    creating nothing: held is None where it cannot be told (no lock file, or no flock there)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None, {}
    try:
        holder = _read_holder(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, holder
        except OSError:
            return None, holder
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, holder
    finally:
        os.close(fd)


def lock_is_free(path: Path) -> bool:
    """Whether nobody alive holds the lock at `path` (a missing file counts as free); takes nothing."""
    try:
        lock = ProcessLock(path, str(path)).acquire()
    except LockHeld:
        return False
    except FileNotFoundError:
        return True
    lock.release()
    return True
