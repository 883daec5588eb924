"""The repository as a whole: one version source, and no file refers to a path that is not in it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import engine
from engine.cli import main
from tests.repo_refs import problems

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


def test_no_file_refers_to_a_path_that_is_not_in_the_repository():
    """Markdown links and anchors, docs/ section references, backticked paths, no ../shared."""
    assert list(problems(ROOT)) == []


def test_reference_check_finds_what_it_looks_for(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "## 1. One\n### 1.1 Sub\nsee §1.1 and §2, b.md §1, [x](b.md#1-one), [y](a.md#nope)\n"
        "`engine/x.py`, `docs/{a,c}.md`, `docs/b.md:f`\n"
    )
    (tmp_path / "docs" / "b.md").write_text("## 1. One\n")
    (tmp_path / "m.py").write_text(
        '"""docs/a.md §1.1, §3; research/stats.md; ../shared/x; docs/b.md §1; REPORT.md"""\n'
    )
    files = [tmp_path / "docs" / "a.md", tmp_path / "docs" / "b.md", tmp_path / "m.py"]
    assert sorted(problems(tmp_path, files)) == [
        "docs/a.md:3: docs/a.md has no section §2",
        "docs/a.md:3: link target a.md#nope: no heading with anchor #nope",
        "docs/a.md:4: docs/c.md is not in the repository",
        "docs/a.md:4: engine/x.py is not in the repository",
        "m.py:1: docs/a.md has no section §3",
        "m.py:1: refers outside the repository (../shared)",
        "m.py:1: research/stats.md is not in the repository",
    ]
