"""Real-terminal smoke test: `prunescope tui STUDY` inside tmux (start, item, filter, quit), screen captured."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path


def _tmux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=30)


def _wait_for(session: str, needle: str, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session).stdout
        if needle in screen:
            return screen
        time.sleep(0.25)
    raise AssertionError(f"{needle!r} did not appear within {timeout}s; screen was:\n{screen}")


def test_tui_in_tmux(study: Path) -> None:
    assert shutil.which("tmux"), "tmux is needed for this test (.ci/run installs it)"
    exe = Path(sys.executable).parent / "prunescope"
    assert exe.exists(), f"{exe}: the venv's prunescope entry point is missing"
    session = f"prunescope-tui-{uuid.uuid4().hex[:8]}"
    env = {"TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none"}
    cmd = " ".join(f"{k}={v}" for k, v in env.items()) + f" {exe} tui {study} --no-glmm --no-stats"
    started = _tmux("new-session", "-d", "-s", session, "-x", "130", "-y", "40", cmd)
    assert started.returncode == 0, started.stderr
    try:
        screen = _wait_for(session, "wanda-s70")
        assert "1 Overview" in screen and "O 0." in screen and "R 0." in screen
        _tmux("send-keys", "-t", session, "2")
        screen = _wait_for(session, "48 of 48 rows")
        assert "dense→run" in screen and "q000000/en" in screen
        _tmux("send-keys", "-t", session, "j", "Enter")
        screen = _wait_for(session, "Gold: answer0")  # the item is drawn in a worker, after the title
        assert "3 Item" in screen and "Options" in screen
        _tmux("send-keys", "-t", session, "Escape")
        _wait_for(session, "2 Items")
        _tmux("send-keys", "-t", session, "/")
        _wait_for(session, "Filter items")
        _tmux("send-keys", "-t", session, "-l", "lang:sw cat:RO")
        _tmux("send-keys", "-t", session, "Enter")
        screen = _wait_for(session, "filter: lang:sw cat:RO")
        rows = [line for line in screen.splitlines() if line.startswith("wanda-s")]
        assert rows and all(" sw " in line and "→RO" in line for line in rows)
        assert "\x1b" not in screen
        _tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 30
        while _tmux("has-session", "-t", session).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _tmux("has-session", "-t", session).returncode != 0, "the app did not quit on q"
    finally:
        _tmux("kill-session", "-t", session)
