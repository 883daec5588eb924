"""An import killed while writing a run leaves no half run in the study, and the next import there works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.cli import main
from engine.contract.reader import discover_runs
from engine.runfolder import validate_study

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval" / "runs"
DENSE = "SmolLM2-135M-Instruct"
PRUNED = "SmolLM2-135M-Instruct-wanda-s50"
ROOT = Path(__file__).resolve().parents[3]

KILLED = """
import os, sys
import engine.importers.folder as folder
from engine.cli import main
append = folder.OutcomeWriter.append
calls = []
def dying(self, records):
    calls.append(1)
    if len(calls) == 2:  # the second run: 5 of its lines written, then the process dies
        append(self, records[:5])
        os._exit(137)
    append(self, records)
folder.OutcomeWriter.append = dying
sys.exit(main(["import", "lm-eval", sys.argv[1], "--out", sys.argv[2]]))
"""


def test_a_killed_import_leaves_whole_runs_only_and_the_next_import_works(tmp_path: Path) -> None:
    out = tmp_path / "study"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED, str(FIXTURES), str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert killed.returncode == 137, killed.stderr
    assert discover_runs(out) == [out / DENSE] and validate_study([out / DENSE]) == []
    assert main(["import", "lm-eval", str(FIXTURES / f"__tmp__i16__models__{PRUNED}"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [DENSE, PRUNED]  # the killed import's staged folder is gone
    assert validate_study(discover_runs(out)) == []
