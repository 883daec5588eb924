"""The thread policy: an explicit count wins, then OMP_NUM_THREADS, then a resumed run's count; else
the physical cores shared among the processes, capped by the idle cores measured at the start."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from engine import threads
from engine.errors import UserError
from engine.threads import choose_threads, idle_cores, physical_cores


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "physical_cores", lambda: 4)


def test_explicit_and_environment_counts_win(four_cores, monkeypatch) -> None:
    assert choose_threads(3).threads == 3 and choose_threads(3).source == "--threads"
    with pytest.raises(UserError, match="--threads"):
        choose_threads(0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    choice = choose_threads(None, processes=4)
    assert (choice.threads, choice.source) == (2, "OMP_NUM_THREADS")
    assert choose_threads(5).threads == 5


def test_a_resumed_run_keeps_its_count(four_cores, monkeypatch) -> None:
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.2: 0.0)
    choice = choose_threads(None, resumed=4)
    assert (choice.threads, choice.source) == (4, "resumed run")


@pytest.mark.parametrize(
    ("processes", "idle", "expected"),
    [(1, 4.0, 4), (1, 2.6, 3), (1, 0.2, 1), (2, 4.0, 2), (2, 1.0, 1), (4, 4.0, 1), (8, 4.0, 1), (1, None, 4)],
)
def test_default_shares_the_cores_and_leaves_busy_ones(four_cores, monkeypatch, processes, idle, expected) -> None:
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.2: idle)
    choice = choose_threads(None, processes=processes)
    assert (choice.threads, choice.source, choice.processes) == (expected, "auto", processes)
    assert choice.as_dict()["physical_cores"] == 4


def test_machine_measures_are_sane() -> None:
    cores = physical_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    idle = idle_cores(0.05)
    assert idle is None or 0.0 <= idle <= cores + 1e-6


def test_a_busy_core_is_seen() -> None:
    """A spinning process takes about one core away from what idle_cores reports."""
    if physical_cores() < 2:
        pytest.skip("needs two cores")
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        loaded = idle_cores(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert loaded is not None and loaded <= physical_cores() - 0.5
