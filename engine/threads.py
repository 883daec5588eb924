"""How many torch threads a command uses: `--threads`, else a default that suits the machine now.

On a 2-core machine two OpenMP threads were 7-10x slower than one while other jobs kept the cores
busy (every parallel region waits for a thread that is not running), and faster than one when the
machine was idle. So, unless `--threads` (or OMP_NUM_THREADS, as set by Ray and by users) says
otherwise, a process takes the physical cores available to it, divided among the processes that run
together (`prunescope run --workers N`), and no more than the cores found idle when it starts
(measured from /proc/stat over 0.2 s), and at least one. The choice is recorded (run manifests,
pruning reports); a resumed run keeps the count it started with.

`prunescope prune` is different (`bulk=True`): its parallel regions are large (calibration forwards,
Hessian products, factorizations), so it takes its share of the physical cores however busy the
machine is. When the cores are busy at the start, its OpenMP threads also sleep after a short spin
when they wait for each other (`sleeping_waits`: GOMP_SPINCOUNT=1000, set before torch loads, unless
the user set it or OMP_WAIT_POLICY): a waiting thread then gives its core back instead of spinning,
and the second thread adds to the process's share of the busy CPU. With two other processes spinning
on this 2-core machine, `prune demo` took 43.6 s that way with SparseGPT against 57.0 s on one
thread, 25.2 s with Wanda against 30.0 s (bench/README.md). On an idle machine the short spin made
Wanda 20% slower (the small regions of a layer's forward pay a wake-up each), so it is set only when
the cores are busy; decoding (`run`) never sets it. Where the threads would spin (torch loaded
already, OMP_WAIT_POLICY=active), the idle cores cap the count as for other commands.

`reproducible_blas` (called by the `prunescope` command before torch loads) puts MKL in its strict
conditional-numerical-reproducibility mode (MKL_CBWR=AUTO,STRICT: the fastest code path of this
CPU, matrix products independent of the thread count). Whether every other kernel (ATen's own
reductions) is too has not been tested across thread counts: the sample study records its count.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError


@dataclass(frozen=True)
class ThreadChoice:
    """The torch thread count and why: '--threads', 'OMP_NUM_THREADS', 'resumed run' or 'auto'."""

    threads: int
    source: str
    physical_cores: int
    processes: int = 1
    idle_cores: float | None = None  # measured at the start ('auto' only)
    # GOMP_SPINCOUNT as the choice is made (before torch loads, for `prune`: see sleeping_waits)
    gomp_spincount: str | None = field(default_factory=lambda: os.environ.get("GOMP_SPINCOUNT"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyperthread siblings counted once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (topo.joinpath("physical_package_id").read_text().strip(), topo.joinpath("core_id").read_text().strip())
            )
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat, or None where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields)


def idle_cores(window: float = 0.2) -> float | None:
    """Physical cores' worth of CPU time left idle over `window` seconds (None where not measurable)."""
    before = _cpu_times()
    time.sleep(window)
    after = _cpu_times()
    if before is None or after is None or after[1] <= before[1]:
        return None
    logical = os.cpu_count() or 1
    idle_cpus = logical * (after[0] - before[0]) / (after[1] - before[1])
    return idle_cpus * physical_cores() / logical


def choose_threads(
    requested: int | None = None, processes: int = 1, resumed: int | None = None, bulk: bool = False
) -> ThreadChoice:
    """The thread count for a process that runs beside `processes - 1` others like it. `bulk` work
    (large parallel regions) takes its share of the cores even when they are busy, if its threads
    sleep when they wait (`sleeping_waits`: so choose before torch loads)."""
    cores = physical_cores()
    if requested is not None:
        if requested < 1:
            raise UserError(f"--threads must be at least 1 (got {requested})")
        return ThreadChoice(requested, "--threads", cores, processes)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return ThreadChoice(int(env), "OMP_NUM_THREADS", cores, processes)
    if resumed is not None:
        return ThreadChoice(resumed, "resumed run", cores, processes)
    share = max(1, cores // max(1, processes))
    idle = idle_cores() if share > 1 else None
    n = share if idle is None else max(1, min(share, int(idle + 0.5)))
    if bulk and n < share and sleeping_waits():
        n = share
    return ThreadChoice(n, "auto", cores, processes, None if idle is None else round(idle, 2))


def sleeping_waits() -> bool:
    """OpenMP threads that sleep after 1000 spins when they wait (libgomp's GOMP_SPINCOUNT; torch's
    CPU builds use libgomp for ATen, MKL and oneDNN), unless the user chose a wait policy; has effect
    only before torch is imported. Returns whether waiting threads sleep soon (a spin count set, or
    OMP_WAIT_POLICY=passive)."""
    if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "1000")
    return "GOMP_SPINCOUNT" in os.environ or os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive"


def reproducible_blas() -> None:
    """MKL results that do not depend on the thread count (unless the user set MKL_CBWR); has effect
    only before MKL is loaded (before torch is imported)."""
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


def apply_threads(choice: ThreadChoice) -> None:
    import torch

    torch.set_num_threads(choice.threads)
