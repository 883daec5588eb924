"""Driving the app headless (benchmarks, tests): keys sent as a terminal sends them, timed until handled.

Pilot's `press` also waits until the whole process is idle, which a busy worker thread (loading a
study, drawing an item) delays by up to a second; `press` here waits only until the app and the
screen have processed the key and what it caused, which is what a user waits for.
"""

from __future__ import annotations

import asyncio
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
    """Wait until `ready()`, polling with plain sleeps."""
    deadline = time.perf_counter() + timeout
    while not ready():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(0.001)


def cpu_starvation() -> float:
    """Wall seconds per CPU second of this thread for a short busy loop: 1.0 on an idle machine whatever
    its CPU, 10 where the process gets a tenth of a core (a shared, oversubscribed machine)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    while time.thread_time() - cpu < 0.1:
        sum(range(1000))
    return max(1.0, (time.perf_counter() - wall) / (time.thread_time() - cpu))
