"""One writer per run folder: a second writer (local or a launcher worker) fails at once naming the
first; the lock of a killed holder is taken over; duplicated outcome lines are repaired without losing a
unique line."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.contract.reader import MANIFEST, OUTCOMES, RunFolderError, read_manifest
from engine.errors import UserError
from engine.locks import LockHeld, ProcessLock
from engine.runfolder import (
    WRITER_LOCK,
    OutcomeWriter,
    dumps_line,
    remove_duplicate_outcomes,
    validate_run,
    writer_lock,
)
from tests.lock_holder import hold_lock
from tests.tiny import make_tiny_model_dir

SPEC = """
name = "lock-test"
[items]
source = "bundled"
languages = ["en", "de"]
n_per_language = 12
[[models]]
id = "{model}"
[protocol]
batch_size = 2
max_new_tokens = 4
probes = "none"
"""
RUN = "tiny-llama__dense"


# ---------------------------------------------------------------- the lock itself


def test_second_holder_fails_naming_the_first_and_takes_over_after_a_kill(tmp_path: Path) -> None:
    holder = hold_lock(tmp_path / WRITER_LOCK)
    try:
        with pytest.raises(LockHeld) as info:
            writer_lock(tmp_path).acquire()
        msg = str(info.value)
        assert f"pid {holder.pid} on {socket.gethostname()}" in msg and str(tmp_path) in msg
        assert isinstance(info.value, UserError)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with writer_lock(tmp_path) as lock:  # the holder is gone: its lock is taken over
        assert lock.held
        assert json.loads((tmp_path / WRITER_LOCK).read_text())["pid"] == os.getpid()


def test_without_flock_the_lock_file_names_its_holder_and_a_dead_one_is_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system that refuses flock (Lustre with noflock) the lock is the file's existence."""
    import fcntl

    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    path = tmp_path / WRITER_LOCK
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        path.write_text(json.dumps({"host": socket.gethostname(), "pid": sleeper.pid}))
        with pytest.raises(LockHeld, match=f"pid {sleeper.pid}"):
            ProcessLock(path, "run folder x").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = ProcessLock(path, "run folder x").acquire()  # its holder died: taken over
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not path.exists()
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    with pytest.raises(LockHeld, match=f"delete {path}"):  # cannot see processes of another host
        ProcessLock(path, "run folder x").acquire()


# ---------------------------------------------------------------- duplicate outcome lines


def _lines(path: Path, uids: list[str], text: str = "") -> None:
    path.write_text("".join(dumps_line({"item_uid": u, "v": text or u}) for u in uids), encoding="utf-8")


def test_exact_duplicates_removed_keeping_the_first(tmp_path: Path) -> None:
    path = tmp_path / OUTCOMES
    _lines(path, ["a", "b", "a", "c", "b", "b"])
    assert remove_duplicate_outcomes(path) == [3, 5, 6]
    assert path.read_text().splitlines() == [dumps_line({"item_uid": u, "v": u}).strip() for u in "abc"]
    assert remove_duplicate_outcomes(path) == []


def test_differing_duplicates_are_refused_naming_item_and_lines(tmp_path: Path) -> None:
    path = tmp_path / OUTCOMES
    _lines(path, ["a", "b"])
    with open(path, "a", encoding="utf-8") as f:
        f.write(dumps_line({"item_uid": "b", "v": "other"}))
    before = path.read_bytes()
    with pytest.raises(RunFolderError, match=r"item 'b' has different outcome lines 2, 3"):
        OutcomeWriter(tmp_path)
    assert path.read_bytes() == before


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=40))
def test_repair_never_drops_a_unique_line(tmp_path_factory, order: list[int]) -> None:
    path = tmp_path_factory.mktemp("dup") / OUTCOMES
    _lines(path, [f"item{i}" for i in order])
    removed = remove_duplicate_outcomes(path)
    kept = [json.loads(x)["item_uid"] for x in path.read_text().splitlines()]
    assert kept == list(dict.fromkeys(f"item{i}" for i in order))
    assert len(removed) == len(order) - len(kept)


# ---------------------------------------------------------------- two writers on one run folder


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lock")
    model = make_tiny_model_dir(root / "tiny-llama")
    path = root / "study.toml"
    path.write_text(SPEC.format(model=model.as_posix()), encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@contextlib.contextmanager
def _writing(argv: list[str], run: Path, lines: int = 2) -> Iterator[subprocess.Popen]:
    """A writer process, once it has written `lines` outcome lines of `run` (it holds the lock from
    before its first line), stopped there (SIGSTOP) so it cannot finish the run and release the lock
    while the block runs; SIGKILLed when the block ends."""
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        outcomes = run / OUTCOMES
        while not (outcomes.exists() and outcomes.read_bytes().count(b"\n") >= lines):
            assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        proc.send_signal(signal.SIGSTOP)
        yield proc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _local_run(spec: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--no-progress"]


def _worker(spec: Path, out: Path) -> list[str]:
    """What a Ray task or a SLURM array job executes for one run (`engine.launch.run_job`)."""
    code = (
        "import sys\nfrom engine.launch import run_job\n"
        "run_job(open(sys.argv[1]).read(), sys.argv[1], sys.argv[2], sys.argv[3], {}, None)\n"
    )
    return [sys.executable, "-c", code, str(spec), str(out), RUN]


def _finish_and_check(spec: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    run = out / RUN
    assert read_manifest(run)["status"] == "complete"
    assert validate_run(run) == []
    uids = [json.loads(x)["item_uid"] for x in (run / OUTCOMES).read_text().splitlines()]
    assert len(uids) == len(set(uids)) == 24


@pytest.mark.xdist_group("engine-runs")
def test_two_local_writers_the_second_fails_at_once_then_takes_over_after_a_kill(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with _writing(_local_run(spec, out), out / RUN) as first:
        t0 = time.time()
        rc = main(["run", str(spec), "--out", str(out), "--no-progress"])
        seconds = time.time() - t0
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert f"pid {first.pid} on {socket.gethostname()}" in err[0] and str(out / RUN) in err[0]
        assert seconds < 30  # refused before any model loads (items and checks only)
        assert main(["validate", "--repair", str(out)]) == 2  # a repair never runs beside a live writer
        assert f"pid {first.pid}" in capsys.readouterr().err
    assert read_manifest(out / RUN)["status"] == "running"  # killed mid-run
    _finish_and_check(spec, out, capsys)


@pytest.mark.xdist_group("engine-runs")
def test_local_run_and_launcher_worker_exclude_each_other(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.launch import log_path, run_job

    out = tmp_path / "out"
    # a launcher worker holds the run; a local run is refused naming it
    with _writing(_worker(spec, out), out / RUN) as worker:
        capsys.readouterr()
        assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"pid {worker.pid} on" in err, err
    # a local run holds it; a launcher worker (as Ray or submitit would start it) is refused naming it
    done = (out / RUN / OUTCOMES).read_bytes().count(b"\n")
    with _writing(_local_run(spec, out), out / RUN, lines=done + 2) as local:
        with pytest.raises(LockHeld, match=f"pid {local.pid} on"):
            run_job(spec.read_text(), str(spec), str(out), RUN, {}, None)
        assert "LockHeld" in log_path(out, RUN).read_text()  # the worker's log says why it stopped
    _finish_and_check(spec, out, capsys)


@pytest.mark.xdist_group("engine-runs")
def test_duplicated_lines_are_repaired_by_validate_and_by_resume(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    path = out / RUN / OUTCOMES
    good = path.read_bytes()
    lines = good.splitlines(keepends=True)
    # what two writers used to leave: every line twice, interleaved, the run marked complete
    path.write_bytes(b"".join(line for pair in zip(lines, lines) for line in pair))
    assert main(["validate", str(out)]) == 1
    assert "duplicate item" in capsys.readouterr().out
    assert main(["validate", "--repair", str(out)]) == 0
    report = capsys.readouterr().out
    assert "removed 24 exact duplicate lines" in report and "1 of 1 runs valid" in report
    assert path.read_bytes() == good
    assert read_manifest(out / RUN)["timings"]["removed_duplicate_lines"] == 24  # recorded, as a resume does
    # a resumed run repairs them too (and records it in the manifest)
    manifest = json.loads((out / RUN / MANIFEST).read_text())
    manifest["status"] = "running"
    (out / RUN / MANIFEST).write_text(json.dumps(manifest))
    path.write_bytes(b"".join(lines[:5]) + lines[2] + b"".join(lines[5:]) + lines[0])
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    assert path.read_bytes() == good
    assert read_manifest(out / RUN)["timings"]["removed_duplicate_lines"] == 24 + 2  # every repair so far


@pytest.mark.xdist_group("engine-runs")
def test_a_resume_stopped_while_loading_keeps_the_thread_count_and_the_repairs(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run made with 2 threads, resumed (repairing a duplicated line) and stopped while its model
    loads, then resumed on a busy machine: it keeps its 2 threads and the record of the repair."""
    import engine.models
    from engine import threads
    from engine.runner import load_study_items, run_one
    from engine.study import parse_study, plan_runs

    study = parse_study(spec)
    (plan,) = plan_runs(study)
    items = load_study_items(study)
    out = tmp_path / "out"
    run_one(out, plan, items, study.protocol, None, None, stop_after_batches=2, threads=2)
    path = out / RUN / OUTCOMES
    path.write_bytes(path.read_bytes() + path.read_bytes().splitlines(keepends=True)[0])
    (out / RUN / ".manifest.json.jw_6lx8r").write_text("{")  # a replacement a kill stopped

    def stopped(_spec: object) -> None:
        raise KeyboardInterrupt  # as ctrl-c or a kill would stop it, before the model is loaded

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.2: 0.0)  # a busy machine: auto would take 1
    with monkeypatch.context() as m:
        m.setattr(engine.models, "load_model", stopped)
        with pytest.raises(KeyboardInterrupt):
            run_one(out, plan, items, study.protocol, None, None)
    manifest = read_manifest(out / RUN)
    assert manifest["hardware"]["threads"]["threads"] == 2 and manifest["timings"]["removed_duplicate_lines"] == 1
    assert not list((out / RUN).glob(".manifest.json.*"))  # swept by the resume
    run_one(out, plan, items, study.protocol, None, None)
    manifest = read_manifest(out / RUN)
    assert manifest["status"] == "complete" and manifest["timings"]["removed_duplicate_lines"] == 1
    assert manifest["hardware"]["threads"]["threads"] == manifest["hardware"]["torch_threads"] == 2
    assert manifest["hardware"]["threads"]["source"] == "resumed run"


def test_a_lock_error_survives_pickling() -> None:
    """A worker's LockHeld is sent back to the launching process (Ray pickles it): it did not unpickle
    (`missing 'holder'`), which broke the process pool and failed every run of the study."""
    import pickle

    err = LockHeld("run folder x is being written by another prunescope (pid 7)", {"pid": 7, "host": "h"})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is LockHeld and str(back) == str(err) and back.holder == {"pid": 7, "host": "h"}


def test_two_commands_keeping_the_study_spec_at_once(tmp_path: Path) -> None:
    """Two `prunescope run` starting on one study wrote the same `study.toml.tmp`; the second rename
    found it gone (FileNotFoundError, 136 of 200 tries in processes released by one barrier)."""
    import threading

    from engine.runner import write_study_spec

    errors: list[BaseException] = []
    for k in range(40):
        study = tmp_path / f"s{k}"
        study.mkdir()
        barrier = threading.Barrier(4)

        def keep(study: Path = study, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                write_study_spec(study, 'name = "x"\n')
            except BaseException as exc:  # collected: an assertion in a thread would be lost
                errors.append(exc)

        threads = [threading.Thread(target=keep) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert (study / "study.toml").read_text(encoding="utf-8") == 'name = "x"\n'
        assert sorted(p.name for p in study.iterdir()) == ["study.toml"]
    assert not errors, errors[:3]
