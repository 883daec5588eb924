"""The thread policy: an explicit count wins, then OMP_NUM_THREADS, then a resumed run's count; else
the physical cores shared among the processes, capped by the idle cores measured at the start (not
for bulk work, whose threads sleep when they wait: `prunescope prune`)."""

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


@pytest.mark.parametrize(
    ("idle", "asked", "sleep", "expected"),
    [(0.0, True, True, 2), (1.0, True, True, 2), (0.0, True, False, 1), (2.0, False, True, 2), (None, False, True, 2)],
)
def test_bulk_work_takes_its_share_of_busy_cores_when_its_threads_sleep(
    four_cores, monkeypatch, idle, asked, sleep, expected
) -> None:
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.2: idle)
    calls = []
    monkeypatch.setattr(threads, "sleeping_waits", lambda: calls.append(1) or sleep)
    choice = choose_threads(None, processes=2, bulk=True)
    assert (choice.threads, choice.source, choice.idle_cores) == (expected, "auto", idle)
    assert bool(calls) is asked  # only when the cores are busy


def test_sleeping_waits_only_before_torch_and_never_over_the_users_choice(monkeypatch) -> None:
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert threads.sleeping_waits() is False  # torch is loaded in this process: too late, nothing set
    assert "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.delitem(sys.modules, "torch")
    assert threads.sleeping_waits() is True
    assert os.environ["GOMP_SPINCOUNT"] == "1000"
    monkeypatch.setenv("GOMP_SPINCOUNT", "50000")
    assert threads.sleeping_waits() is True
    assert os.environ["GOMP_SPINCOUNT"] == "50000"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert threads.sleeping_waits() is False
    assert "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert threads.sleeping_waits() is True


def test_the_prune_command_sets_sleeping_waits_before_torch_loads(tmp_path) -> None:
    """On busy cores, `prune` sets GOMP_SPINCOUNT while torch is not loaded (sleeping_waits does
    nothing after)."""
    code = (
        "import os, sys\n"
        "import engine.threads as t\n"
        "t.physical_cores, t.idle_cores = (lambda: 2), (lambda window=0.2: 0.0)\n"  # a busy 2-core machine
        "from engine.cli import main\n"
        f"rc = main(['prune', 'demo', '--method', 'wanda', '--nsamples', '0', '--out', {str(tmp_path / 'o')!r}])\n"
        "print(rc, 'torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "True", "1000"], out.stderr  # the bad --nsamples came after torch loaded


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
