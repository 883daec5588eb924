"""The one exception type users see as a single clear line (the CLI prints it without a traceback), and
the one-line wording of file system errors."""

from __future__ import annotations

import errno


class UserError(Exception):
    """Bad input or an impossible request; the message names the file, row or field at fault."""


_OS_HINTS = {
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOSPC: "the disk is full; free space or choose another disk",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another disk",
    errno.ENOTDIR: "a file is where a folder is expected",
    errno.EISDIR: "a folder is where a file is expected",
    errno.EEXIST: "it is in the way; move it or choose another path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "use a shorter path",
}


def os_error_line(exc: OSError) -> str | None:
    """'PATH: what happened; what to do' for a file system error that names its path (or a full disk,
    which a write to an open file reports without one); None for anything else."""
    hint = _OS_HINTS.get(exc.errno or -1)
    if exc.filename is None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return f"{exc.strerror} while writing; {hint}"
        return None
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
    return f"{where}: {exc.strerror or exc.__class__.__name__}" + (f"; {hint}" if hint else "")
