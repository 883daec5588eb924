"""Driving the app headless (benchmarks, tests): keys sent as a terminal sends them, timed until handled.

Pilot's `press` also waits until the whole process is idle, which a busy worker thread (loading a
study, drawing an item) delays by up to a second; `press` here waits only until the app and the
screen have processed the key and what it caused, which is what a user waits for.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable
from typing import Any

from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key


async def press(pilot: Any, *keys: str) -> float:
    """Send `keys` one by one, each handled before the next; returns the seconds that took."""
    t = time.perf_counter()
    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        try:
            char: str | None = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(key, char)
        event.set_sender(pilot.app)
        pilot.app._driver.send_message(event)
        # Twice: the app forwards the key to the screen, whose queue then runs past it.
        await pilot._wait_for_screen()
        await pilot._wait_for_screen()
    return time.perf_counter() - t


async def until(ready: Callable[[], bool], timeout: float = 1800.0) -> None:
    """Wait until `ready()`, polling with plain sleeps: every millisecond for the first 0.2 s (short
    waits are timed to the millisecond), then every 20 ms (polling a long wait every millisecond
    costs the process about 5% of a core, which a benchmark would count as the app's)."""
    start = time.perf_counter()
    while not ready():
        waited = time.perf_counter() - start
        if waited > timeout:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(0.001 if waited < 0.2 else 0.02)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (index-building workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


_SAMPLER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    wall, cpu = time.perf_counter(), time.process_time()
    while time.process_time() - cpu < 0.02:
        pass
    print((time.perf_counter() - wall) / (time.process_time() - cpu), flush=True)
    time.sleep(0.3)
"""


class MachineShare:
    """How oversubscribed the machine is while a block runs, measured in a separate process.

    `with MachineShare() as share: ...`; then `share.starvation` is the median, over the block, of the
    wall seconds a process needs per CPU second of a short busy loop (about 4% of a core): 1.0 on an
    idle machine whatever its CPU, 10 where a process gets a tenth of a core. Measured outside this
    process, so waits this process causes itself (its own threads holding the GIL) are not counted.
    """

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> MachineShare:
        self._proc = subprocess.Popen([sys.executable, "-c", _SAMPLER], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        out, _ = self._proc.communicate()
        self.samples = [float(x) for x in out.split()]

    @property
    def starvation(self) -> float:
        return max(1.0, statistics.median(self.samples)) if self.samples else 1.0
