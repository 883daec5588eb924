"""`prunescope status` tells a live writer from a stopped one by the run's writer lock (held from the
start, model loading and pruning included), falls back on the manifest where there is no lock to ask,
and shows a run stopped before its first manifest; readers skip such a run instead of failing."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import ITEMS, MANIFEST, OUTCOMES, discover_runs
from engine.locks import probe_lock
from engine.runfolder import WRITER_LOCK
from engine.status import print_status, run_status, study_status
from tests.lock_holder import hold_lock

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-layer-trace"
RUN = "demo__wanda-s50"
HOUR_AGO = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """The layer-trace sample with its Wanda run made a run in progress, last updated an hour ago and
    before its hardware was recorded (as while a model loads or a pruning runs)."""
    out = tmp_path / "study"
    shutil.copytree(SAMPLE, out, ignore=shutil.ignore_patterns(".prunescope", "csv", "figures", "tex"))
    path = out / RUN / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["status"] = "running"
    manifest["hardware"] = {}
    manifest["timings"]["updated"] = HOUR_AGO
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return out


@pytest.fixture
def held(study: Path) -> Iterator[subprocess.Popen]:
    """A live process holding the run's writer lock."""
    proc = hold_lock(study / RUN / WRITER_LOCK)
    yield proc
    proc.kill()
    proc.wait()


def test_a_live_writer_is_running_however_long_it_loads(study: Path, held: subprocess.Popen) -> None:
    status = run_status(study / RUN)
    assert status.state == "running" and status.error is None


def test_a_stopped_writer_is_stalled_at_once(study: Path, held: subprocess.Popen) -> None:
    held.kill()
    held.wait()
    recent = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = json.loads((study / RUN / MANIFEST).read_text(encoding="utf-8"))
    manifest["timings"]["updated"] = recent  # a fresh manifest does not hide a dead writer
    (study / RUN / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    status = run_status(study / RUN)
    assert status.state == "stalled" and "no process is writing it" in str(status.error)
    assert "resume" in str(status.error)


def test_without_a_lock_file_the_manifest_decides(study: Path) -> None:
    assert not (study / RUN / WRITER_LOCK).exists()
    assert run_status(study / RUN).state == "stalled"  # an hour without an update
    now = datetime.now(UTC)
    assert run_status(study / RUN, now=datetime.fromisoformat(HOUR_AGO) + timedelta(seconds=5)).state == "running"
    manifest = json.loads((study / RUN / MANIFEST).read_text(encoding="utf-8"))
    manifest["hardware"] = {"host": socket.gethostname(), "pid": 2**22 + 1}  # no such process
    manifest["timings"]["updated"] = now.isoformat(timespec="seconds")
    (study / RUN / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert run_status(study / RUN, now=now).state == "stalled"


def test_a_free_lock_last_taken_on_another_host_proves_nothing(study: Path) -> None:
    """A mount whose locks are local to each host shows another host's live writer as free."""
    other = {"host": socket.gethostname() + "-other", "pid": 1}
    (study / RUN / WRITER_LOCK).write_text(json.dumps(other), encoding="utf-8")
    fresh = datetime.fromisoformat(HOUR_AGO) + timedelta(seconds=5)
    assert run_status(study / RUN, now=fresh).state == "running"


def test_probing_a_lock_creates_nothing(tmp_path: Path) -> None:
    assert probe_lock(tmp_path / WRITER_LOCK) == (None, {})
    assert not (tmp_path / WRITER_LOCK).exists()


def test_a_run_stopped_before_its_first_manifest(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer makes items.jsonl and an empty outcomes.jsonl just before the first manifest: killed
    there, the folder holds nothing to read. `stats` leaves it out; `status` shows it."""
    starting = study / "demo__magnitude-s50"
    starting.mkdir()
    shutil.copy(study / RUN / ITEMS, starting / ITEMS)
    (starting / OUTCOMES).touch()
    assert starting not in discover_runs(study)
    assert main(["stats", str(study), "--no-glmm", "--format", "json"]) == 0
    capsys.readouterr()
    rows = {r.run_id: r for r in study_status(study)}
    assert rows["demo__magnitude-s50"].state == "pending" and "no manifest" in str(rows["demo__magnitude-s50"].error)
    holder = {"host": socket.gethostname(), "pid": 2**22 + 1}  # its writer took the lock, then was killed
    (starting / WRITER_LOCK).write_text(json.dumps(holder), encoding="utf-8")
    rows = {r.run_id: r for r in study_status(study)}
    assert rows["demo__magnitude-s50"].state == "stalled" and "before its manifest" in str(
        rows["demo__magnitude-s50"].error
    )
    assert print_status(study) == 1
    assert "demo__magnitude-s50" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"status": "bogus\x1b]0;T\x07\x1b[31m[reverse]X[/reverse]"}, "status 'bogus"),
        ({"timings": [1]}, "timings must be an object"),
        ({"counts": {"done": 0, "total": "8"}}, "counts.total has the wrong type ('8')"),
        ({"timings": {"updated": "yesterday", "items_per_s": 1.0}}, "yesterday"),
        ({"timings": {"updated": HOUR_AGO, "items_per_s": "fast"}}, "timings.items_per_s has the wrong type"),
    ],
)
def test_a_manifest_status_cannot_read_is_named_not_a_crash(
    study: Path, change: dict, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong types in the fields status reads were internal errors; a status outside the format's
    three was printed raw (escape sequences and Rich markup reached the terminal) and left out of the
    summary line."""
    path = study / RUN / MANIFEST
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), **change}), encoding="utf-8")
    status = run_status(study / RUN)
    assert status.state == "unreadable" and named in (status.error or "") and str(path) in (status.error or "")
    assert main(["status", str(study)]) == 1
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "1 unreadable" in out.out


def test_a_complete_run_without_its_lines_is_named(study: Path) -> None:
    path = study / RUN / MANIFEST
    path.write_text(
        json.dumps({**json.loads(path.read_text(encoding="utf-8")), "status": "complete"}), encoding="utf-8"
    )
    (study / RUN / OUTCOMES).unlink()
    status = run_status(study / RUN)
    assert status.state == "unreadable" and "0 lines in a run marked complete" in (status.error or "")


def test_a_run_killed_right_after_taking_its_lock_is_shown(study: Path) -> None:
    """A writer killed between taking its lock and writing items.jsonl leaves a folder holding the lock
    file alone: status said nothing of it ("no run folders yet" in a new study)."""
    starting = study / "demo__sparsegpt-s50"
    starting.mkdir()
    holder = {"host": socket.gethostname(), "pid": 2**22 + 1}
    (starting / WRITER_LOCK).write_text(json.dumps(holder), encoding="utf-8")
    (study / ".stats-x").mkdir()  # a `stats --out` work folder in the study folder is no run
    (study / ".stats-x" / WRITER_LOCK).touch()
    rows = {r.run_id: r for r in study_status(study)}
    assert rows["demo__sparsegpt-s50"].state == "stalled" and ".stats-x" not in rows
    assert starting not in discover_runs(study)


def test_runs_the_kept_spec_plans_but_not_yet_started_are_listed(
    study: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study killed before its second run began: status showed the first run alone, and a study
    killed at its start 'no run folders yet'; the runs its kept study.toml plans are listed as not started."""
    shutil.rmtree(study / "demo__dense")
    rows = {r.run_id: r for r in study_status(study)}
    assert set(rows) == {"demo__dense", RUN}
    assert (rows["demo__dense"].state, rows["demo__dense"].error) == ("pending", "not started")
    shutil.rmtree(study / RUN)
    assert [(r.run_id, r.state) for r in study_status(study)] == [("demo__dense", "pending"), (RUN, "pending")]
    assert print_status(study) == 0
    out = capsys.readouterr().out
    assert "no run folders yet" not in out and "2 pending" in out
    (study / "study.toml").unlink()  # a folder of imported or copied runs: nothing planned to list
    assert study_status(study) == []
