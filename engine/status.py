"""Per-run progress of a study folder: done / running / failed / stalled, items, rate and ETA (torch-free)."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.contract.reader import MANIFEST, OUTCOMES, RunFolderError, discover_runs, read_manifest, starting_runs
from engine.errors import UserError
from engine.locks import pid_alive, probe_lock
from engine.runfolder import WRITER_LOCK, load_schema

STALE_AFTER_S = 600.0  # a running run without a lock to ask whose manifest is this old is stalled
RESUME = "run the study's command again to resume it"


@dataclass
class RunStatus:
    run_id: str
    state: str  # complete | running | stalled | failed | pending | unreadable
    done: int
    total: int | None
    items_per_s: float | None
    eta_s: float | None
    error: str | None


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def run_status(run_dir: Path, now: datetime | None = None) -> RunStatus:
    now = now or datetime.now(UTC)
    done = _count_lines(Path(run_dir) / OUTCOMES)
    try:
        m = read_manifest(run_dir)
    except RunFolderError as exc:
        # no manifest yet: a run that is starting; one that cannot be read (damaged, newer format) is an error
        state = "pending" if not (Path(run_dir) / MANIFEST).exists() else "unreadable"
        return RunStatus(Path(run_dir).name, state, done, None, None, None, str(exc))
    try:
        total = _field(m, "counts", "total", int) or _field(m, "items", "n", int)
        rate = _field(m, "timings", "items_per_s", (int, float))
        updated = _field(m, "timings", "updated", str)
        state = m.get("status", "pending")  # a manifest without one is from before the field
        if "status" in m and state not in STATES:
            raise ValueError(f"status {state!r} is not one of {', '.join(STATES)}")
        error = m.get("error")
        when = datetime.fromisoformat(updated) if updated else None
    except ValueError as exc:
        return RunStatus(Path(run_dir).name, "unreadable", done, None, None, None, f"{Path(run_dir) / MANIFEST}: {exc}")
    if state == "running":
        held = _writer_alive(Path(run_dir))
        if held is False:  # its writer holds the lock from start to end, loading and pruning included
            state, error = "stalled", f"no process is writing it (stopped); {RESUME}"
        elif held is None:  # no lock to ask: the manifest's pid on this host, else its age
            hw: dict[str, Any] = m["hardware"] if isinstance(m.get("hardware"), dict) else {}
            age = (now - when).total_seconds() if when is not None else None
            same_host_dead = (
                hw.get("host") == socket.gethostname() and isinstance(hw.get("pid"), int) and not pid_alive(hw["pid"])
            )
            if same_host_dead or (age is not None and age > STALE_AFTER_S):
                state = "stalled"
    if state == "complete" and total is not None and done != total:
        state, error = (
            "unreadable",
            f"{Path(run_dir) / OUTCOMES}: {done} lines in a run marked complete with {total} items",
        )
    eta = (total - done) / rate if state == "running" and rate and total else None
    return RunStatus(m.get("run_id", Path(run_dir).name), state, done, total, rate, eta, error)


STATES = tuple(load_schema("manifest")["properties"]["status"]["enum"])  # running, complete, failed


def _field(manifest: dict[str, Any], block: str, key: str, kind: type | tuple[type, ...]) -> Any:
    """`manifest[block][key]` when it has the type `kind` (None when absent); ValueError naming it otherwise."""
    part = manifest.get(block)
    if part is None:
        return None
    if not isinstance(part, dict):
        raise ValueError(f"{block} must be an object, got {type(part).__name__}")
    value = part.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise ValueError(f"{block}.{key} has the wrong type ({value!r})")
    return value


def _writer_alive(run_dir: Path) -> bool | None:
    """Whether a process holds the run's writer lock; None where the lock cannot tell: no lock file, no
    flock, or a free lock last taken on another host (a mount whose locks are local to each host would
    show another host's writer as free)."""
    held, holder = probe_lock(run_dir / WRITER_LOCK)
    if held is False and holder.get("host") != socket.gethostname():
        return None
    return held


def _starting(run_dir: Path) -> RunStatus:
    """A folder a writer began without a manifest yet: starting, or stopped before writing one."""
    if _writer_alive(Path(run_dir)) is False:
        return RunStatus(Path(run_dir).name, "stalled", 0, None, None, None, f"stopped before its manifest; {RESUME}")
    return RunStatus(Path(run_dir).name, "pending", 0, None, None, None, "starting (no manifest yet)")


def study_status(study: Path) -> list[RunStatus]:
    study = Path(study)
    if not study.exists():
        raise UserError(f"{study}: no such study folder")
    if not study.is_dir():
        raise UserError(f"{study}: not a folder (give a study folder or a run folder)")
    runs = [(r, run_status) for r in discover_runs(study)] + [(r, _starting) for r in starting_runs(study)]
    rows = [status(r) for r, status in runs]
    seen = {r.run_id for r in rows}
    rows += [
        RunStatus(rid, "pending", 0, None, None, None, "not started") for rid in _planned(study) if rid not in seen
    ]
    return sorted(rows, key=lambda r: r.run_id)


def _planned(study: Path) -> list[str]:
    """The run ids the study's kept spec (`study.toml`) plans; none when it has no spec that parses (a
    folder of imported or copied runs)."""
    from engine.study import parse_study, plan_runs

    try:
        return [p.run_id for p in plan_runs(parse_study(study / "study.toml"))]
    except (UserError, OSError, ValueError):
        return []


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def print_status(study: Path, file=None) -> int:
    """Print the status table; returns 1 when any run failed, stalled or cannot be read, else 0."""
    from rich.console import Console
    from rich.table import Table

    from engine.safe_text import rich_text
    from engine.terminal import stdout_console

    rows = study_status(study)
    console = stdout_console() if file is None else Console(file=file)
    if not rows:
        console.print(rich_text(f"{study}: no run folders yet"))
        return 0
    table = Table(title=rich_text(f"study {study}"))
    for col in ("run", "state", "items", "items/s", "ETA", "error"):
        table.add_column(col, justify="right" if col in ("items", "items/s", "ETA") else "left")
    for r in rows:
        items = f"{r.done}/{r.total}" if r.total is not None else str(r.done)
        table.add_row(
            rich_text(r.run_id),
            rich_text(r.state),
            items,
            f"{r.items_per_s:.2f}" if r.items_per_s else "-",
            _fmt_eta(r.eta_s),
            rich_text(r.error or "", max_len=120),
        )
    console.print(table)
    states = ("complete", "running", "stalled", "failed", "pending", "unreadable")
    counts = {s: sum(r.state == s for r in rows) for s in states}
    console.print(", ".join(f"{v} {k}" for k, v in counts.items() if v))
    for r in rows:
        if r.state == "unreadable":
            print(f"prunescope status: error: {r.error}", file=sys.stderr)
    return 1 if counts["failed"] or counts["stalled"] or counts["unreadable"] else 0
