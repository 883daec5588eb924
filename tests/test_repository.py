"""The repository as a whole: one version source, and no file refers to a path that is not in it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import engine
from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_source(capsys):
    """pyproject.toml holds the version; the package and `prunescope --version` report that one."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert engine.__version__ == declared
    assert "__version__ =" not in (ROOT / "engine" / "__init__.py").read_text()
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"prunescope {declared}"


def test_importing_engine_does_not_read_package_metadata():
    """The version is read lazily, so importing `engine` (as stats and tui do) stays cheap."""
    code = "import sys, engine; print('importlib.metadata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
