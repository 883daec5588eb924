"""A process that holds a `engine.locks.ProcessLock`, for tests of what other processes see."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hold_lock(lock_path: Path) -> subprocess.Popen:
    """A process that takes the lock at `lock_path` and sleeps; returns once it holds it."""
    code = (
        "import time\nfrom engine.locks import ProcessLock\n"
        f"ProcessLock({str(lock_path)!r}, 'x').acquire()\nprint('held', flush=True)\ntime.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc
