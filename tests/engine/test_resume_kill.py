"""A run SIGKILLed mid-way and resumed writes exactly what an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.contract.reader import OUTCOMES, read_manifest
from engine.runfolder import validate_run
from tests.tiny import make_tiny_model_dir

pytestmark = pytest.mark.xdist_group("engine-runs")

SPEC = """
name = "kill-test"
[items]
source = "bundled"
languages = ["en", "zh"]
n_per_language = 12
[[models]]
id = "{model}"
[protocol]
batch_size = 4
max_new_tokens = 6
probes = "failed"
beam_width = 2
n_samples = 2
"""


def _prunescope(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kill")
    model = make_tiny_model_dir(root / "tiny-llama")
    path = root / "study.toml"
    path.write_text(SPEC.format(model=model.as_posix()), encoding="utf-8")
    return path


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_then_resume_matches_uninterrupted(spec, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref"
    subprocess.run(
        _prunescope("run", str(spec), "--out", str(ref), "--no-progress"), check=True, env=env, capture_output=True
    )
    (run_id,) = [p.name for p in ref.iterdir() if p.is_dir()]
    expected = (ref / run_id / OUTCOMES).read_bytes()
    total = expected.count(b"\n")
    assert total == 24

    out = tmp_path / "killed"
    child = subprocess.Popen(
        _prunescope("run", str(spec), "--out", str(out), "--no-progress"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    outcomes = out / run_id / OUTCOMES
    deadline = time.time() + 300
    while _lines(outcomes) < 4 and time.time() < deadline and child.poll() is None:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = _lines(outcomes)
    assert 4 <= written < total, f"the kill landed at {written} of {total} lines"
    assert read_manifest(out / run_id)["status"] == "running"
    # A kill in the middle of a write leaves a torn line: simulate one on top of the real kill.
    with open(outcomes, "ab") as f:
        f.write(b'{"item_uid": "bundled/half-written')

    done = subprocess.run(
        _prunescope("run", str(spec), "--out", str(out), "--no-progress"), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = outcomes.read_bytes()
    assert got == expected
    uids = [json.loads(line)["item_uid"] for line in got.splitlines()]
    assert len(uids) == len(set(uids)) == total
    manifest = read_manifest(out / run_id)
    assert manifest["status"] == "complete"
    assert manifest["timings"]["repaired_torn_bytes"] == len(b'{"item_uid": "bundled/half-written')
    assert validate_run(out / run_id) == []


def test_rerun_of_complete_study_does_nothing(spec, tmp_path):
    out = tmp_path / "s"
    env = {**os.environ}
    subprocess.run(
        _prunescope("run", str(spec), "--out", str(out), "--no-progress"), check=True, env=env, capture_output=True
    )
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    before = (run / OUTCOMES).read_bytes(), (run / "manifest.json").read_bytes()
    again = subprocess.run(
        _prunescope("run", str(spec), "--out", str(out), "--no-progress"), env=env, capture_output=True, text=True
    )
    assert again.returncode == 0
    assert "already complete" in again.stderr
    assert all(f"prunescope {cmd} {out}" in again.stderr for cmd in ("validate", "stats", "tui"))
    assert ((run / OUTCOMES).read_bytes(), (run / "manifest.json").read_bytes()) == before
