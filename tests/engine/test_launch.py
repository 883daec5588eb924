"""Scale-out: Ray (local mode, two workers) and submitit's local executor make the same study as the
local launcher; a worker killed mid-run is retried and its run resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.contract.reader import ITEMS, OUTCOMES, read_manifest
from engine.runfolder import validate_run
from tests.tiny import make_tiny_model_dir

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engine-runs")]

SPEC = """
name = "launch-test"
[items]
source = "bundled"
languages = ["en", "de"]
n_per_language = {n}
[[models]]
id = "{model}"
[pruning]
methods = ["wanda", "magnitude"]
sparsities = [0.5]
[[conditions]]
method = "sparsegpt"
pattern = "2:4"
[calibration]
nsamples = 4
seqlen = 32
[protocol]
batch_size = 4
max_new_tokens = 4
probes = "none"
"""
RUNS = ["tiny-llama__dense", "tiny-llama__wanda-s50", "tiny-llama__magnitude-s50", "tiny-llama__sparsegpt-2of4"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("launch")
    model = make_tiny_model_dir(root / "tiny-llama")
    spec = root / "study.toml"
    spec.write_text(SPEC.format(model=model.as_posix(), n=6), encoding="utf-8")
    # One thread everywhere: CPU float reductions are then identical across processes.
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PRUNESCOPE_CACHE": str(root / "cache"),
        "RAY_DISABLE_USAGE_STATS": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    local = root / "local"
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(local), "--no-progress"],
        check=True,
        env=env,
        capture_output=True,
    )
    return spec, env, local


def _run(spec: Path, out: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--no-progress", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _same_study(a: Path, b: Path) -> None:
    for run in RUNS:
        assert (a / run / ITEMS).read_bytes() == (b / run / ITEMS).read_bytes()
        assert (a / run / OUTCOMES).read_bytes() == (b / run / OUTCOMES).read_bytes(), run
        assert read_manifest(b / run)["status"] == "complete"
        assert validate_run(b / run) == []


def test_local_launcher_makes_the_four_runs(setup):
    _spec, _env, local = setup
    assert sorted(p.name for p in local.iterdir() if p.is_dir() and not p.name.startswith(".")) == sorted(RUNS)


def test_local_worker_processes_match_local(setup, tmp_path):
    """--workers 2: each run in its own process, one torch thread each by the default policy."""
    spec, env, local = setup
    auto = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    res = _run(spec, tmp_path / "workers", auto, "--workers", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    _same_study(local, tmp_path / "workers")
    pids = set()
    for run in RUNS:
        hw = read_manifest(tmp_path / "workers" / run)["hardware"]
        assert hw["threads"]["source"] == "auto" and hw["threads"]["processes"] == 2
        assert hw["torch_threads"] == hw["threads"]["threads"] == max(1, hw["threads"]["physical_cores"] // 2)
        pids.add(hw["pid"])
    assert len(pids) > 1 and os.getpid() not in pids  # worker processes, not this one


def test_ray_two_workers_matches_local(setup, tmp_path):
    spec, env, local = setup
    res = _run(spec, tmp_path / "ray", env, "--launcher", "ray", "--num-workers", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    _same_study(local, tmp_path / "ray")


def test_submitit_local_executor_matches_local(setup, tmp_path):
    spec, env, local = setup
    text = spec.read_text() + '\n[launcher]\nkind = "slurm"\nslurm_extra = { cluster = "local" }\ntime_min = 10\n'
    spec2 = tmp_path / "study.toml"
    spec2.write_text(text)
    res = _run(spec2, tmp_path / "slurm", env)
    assert res.returncode == 0, res.stderr[-3000:]
    _same_study(local, tmp_path / "slurm")


def test_killed_ray_worker_is_retried_and_resumed(setup, tmp_path):
    spec, env, local = setup
    out = tmp_path / "ray-kill"
    target = out / "tiny-llama__wanda-s50"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            str(spec),
            "--out",
            str(out),
            "--no-progress",
            "--launcher",
            "ray",
            "--num-workers",
            "2",
            "--max-retries",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    deadline = time.time() + 600
    while killed is None and time.time() < deadline and proc.poll() is None:
        outcomes = target / OUTCOMES
        if outcomes.exists() and outcomes.read_bytes().count(b"\n") >= 4:
            pid = read_manifest(target).get("hardware", {}).get("pid")
            if pid:
                os.kill(pid, signal.SIGKILL)
                killed = pid
        time.sleep(0.02)
    _stdout, stderr = proc.communicate(timeout=900)
    assert killed is not None, "the run finished before the worker could be killed"
    assert proc.returncode == 0, stderr[-3000:]
    assert read_manifest(target)["hardware"]["pid"] != killed  # a new worker finished it
    _same_study(local, out)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_workers_end_with_a_killed_or_interrupted_parent(setup, tmp_path, sig):
    """`--workers 2` killed (or interrupted by a signal to it alone) leaves no worker running, writing
    on and holding its run's lock; the same command then resumes the study to the local launcher's."""
    spec, env, local = setup
    out = tmp_path / "workers-kill"
    auto = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    cmd = [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--no-progress", "--workers", "2"]
    proc = subprocess.Popen(cmd, env=auto, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    deadline = time.time() + 600
    while not workers and time.time() < deadline and proc.poll() is None:
        for run in RUNS:
            outcomes = out / run / OUTCOMES
            if outcomes.exists() and outcomes.read_bytes().count(b"\n") >= 1:
                workers |= {p for p in [read_manifest(out / run).get("hardware", {}).get("pid")] if p}
        time.sleep(0.02)
    assert workers and proc.poll() is None, "the study finished before its parent could be stopped"
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    deadline = time.time() + 30
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
    res = _run(spec, out, auto, "--workers", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    _same_study(local, out)


def test_a_killed_worker_fails_its_run_alone(setup, tmp_path):
    """One worker killed as the OOM killer would: its run is reported failed, naming the signal, and the
    other runs finish (all four were failed, the healthy ones stopped, by a broken process pool)."""
    spec, env, local = setup
    out = tmp_path / "worker-kill"
    auto = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    cmd = [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--no-progress", "--workers", "2"]
    proc = subprocess.Popen(cmd, env=auto, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.time() + 600
    while victim is None and time.time() < deadline and proc.poll() is None:
        for run in RUNS:
            outcomes = out / run / OUTCOMES
            if outcomes.exists() and outcomes.read_bytes().count(b"\n") >= 1:
                manifest = read_manifest(out / run)
                if manifest.get("status") == "running" and manifest.get("hardware", {}).get("pid"):
                    victim = (run, manifest["hardware"]["pid"])
                    break
        time.sleep(0.02)
    assert victim is not None and proc.poll() is None, "no run was caught mid-way"
    os.kill(victim[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-3000:]
    assert f"{victim[0]}: FAILED: the worker process was ended by SIGKILL (out of memory?)" in err
    assert "run the same command again to resume the failed runs" in err
    others = [r for r in RUNS if r != victim[0]]
    assert all(read_manifest(out / r)["status"] == "complete" for r in others), err[-3000:]
    res = _run(spec, out, auto, "--workers", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    _same_study(local, out)


def test_a_run_folder_in_use_fails_that_run_alone(setup, tmp_path):
    """Another prunescope writing one run folder: that run's lock error is reported as itself, and the
    other runs finish (the error did not unpickle, which broke the pool and failed every run)."""
    from engine.runfolder import writer_lock

    spec, env, local = setup
    out = tmp_path / "busy"
    (out / RUNS[0]).mkdir(parents=True)
    with writer_lock(out / RUNS[0]):
        res = _run(spec, out, env, "--workers", "2")
    assert res.returncode == 1
    assert f"{RUNS[0]}: FAILED: LockHeld: run folder {out / RUNS[0]} is being written by another" in res.stderr
    assert all(read_manifest(out / r)["status"] == "complete" for r in RUNS[1:]), res.stderr[-3000:]
    res = _run(spec, out, env, "--workers", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    _same_study(local, out)


def test_more_workers_than_runs_share_the_cores_among_the_runs(setup, tmp_path):
    """--workers 8 on two runs: two processes, each with half the cores (it recorded 8 and took an
    eighth of the cores each)."""
    spec, env, _ = setup
    auto = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    two = f"{RUNS[0]},{RUNS[2]}"
    res = _run(spec, tmp_path / "few", auto, "--workers", "8", "--only", two)
    assert res.returncode == 0, res.stderr[-3000:]
    for run in (RUNS[0], RUNS[2]):
        threads = read_manifest(tmp_path / "few" / run)["hardware"]["threads"]
        assert threads["processes"] == 2 and threads["threads"] == max(1, threads["physical_cores"] // 2)
