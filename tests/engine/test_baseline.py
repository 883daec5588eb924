"""`baseline = true` in a [[models]] table: that model's dense run is the reference of every other run,
through the one pairing rule, in `prunescope stats` as in the TUI's model."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import read_manifest
from engine.errors import UserError
from engine.study import parse_study
from stats.api import StatsOptions, load
from tests.tiny import make_tiny_model_dir
from tui.model import load_study as tui_load_study

SPEC = """
name = "baseline-test"
[items]
source = "bundled"
languages = ["en", "de"]
n_per_language = 4
[[models]]
id = "{a}"
baseline = true
[[models]]
id = "{b}"
[pruning]
methods = ["magnitude"]
sparsities = [0.5]
[protocol]
batch_size = 4
max_new_tokens = 4
probes = "none"
"""


def test_a_baseline_model_pairs_every_other_run_with_its_dense_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    a = make_tiny_model_dir(tmp_path / "tiny-a", seed=0)
    b = make_tiny_model_dir(tmp_path / "tiny-b", seed=1)
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC.format(a=a.as_posix(), b=b.as_posix()), encoding="utf-8")
    out = tmp_path / "study"
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    assert read_manifest(out / "tiny-a__dense").get("baseline") is True
    assert all("baseline" not in read_manifest(out / r) for r in ("tiny-a__magnitude-s50", "tiny-b__dense"))
    _df, tr = load([out], StatsOptions())
    assert tr.attrs["baseline"] and set(tr["reference_run"].astype(str)) == {"tiny-a__dense"}
    assert set(tr["run_id"].astype(str)) == {"tiny-a__magnitude-s50", "tiny-b__dense", "tiny-b__magnitude-s50"}
    study = tui_load_study([out])
    names = [r.name for r in study.runs]
    assert study.baseline and {names[i] for i in study.reference if i >= 0} == {"tiny-a__dense"}
    # a run named on the command line replaces the manifest's baseline
    _df, tr = load([out], StatsOptions(baseline="tiny-b__dense"))
    assert set(tr["reference_run"].astype(str)) == {"tiny-b__dense"}


def test_two_baseline_models_are_refused(tmp_path: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC.format(a="x", b="y").replace('id = "y"', 'id = "y"\nbaseline = true'), encoding="utf-8")
    with pytest.raises(UserError, match="all say baseline = true; mark one"):
        parse_study(spec)
