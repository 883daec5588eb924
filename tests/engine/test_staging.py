"""Staged folders: a sweeper removes a killed writer's folder and never a live one's, even when the
writer unlocks it while the sweeper looks."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from engine import staging
from engine.staging import LOCK, StagedFolder, sweep_stale

PREFIX = ".stage-"


def test_a_killed_writers_folder_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{PREFIX}dead"
    dead.mkdir()
    (dead / LOCK).write_text("{}")  # its lock file, held by nobody
    with StagedFolder(tmp_path, PREFIX) as live:
        assert sweep_stale(tmp_path, PREFIX) == [dead]
        assert live.path.exists() and not dead.exists()


def test_a_folder_unlocked_while_the_sweeper_probes_it_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweeper saw the lock file, then its writer unlocked (file removed, lock dropped) and began
    moving the folder's contents into place: the sweeper took the free lock for a killed writer's and
    removed the folder under the move (FileNotFoundError in one of two concurrent `stats --out`)."""
    with StagedFolder(tmp_path, PREFIX) as staged:
        real = fcntl.flock

        def unlock_first(fd: int, op: int) -> None:
            staged.unlock()  # the writer finishes between the sweeper's open and its flock
            real(fd, op)

        monkeypatch.setattr(fcntl, "flock", unlock_first)
        assert sweep_stale(tmp_path, PREFIX) == []
        monkeypatch.undo()
        assert staged.path.exists()
        assert not (staged.path / LOCK).exists()  # and the probe left no lock file behind to be moved in


def test_probing_a_lock_that_is_gone_creates_nothing(tmp_path: Path) -> None:
    assert staging._abandoned(tmp_path / LOCK) is False
    assert list(tmp_path.iterdir()) == []
