"""What the README quotes from the repository is the repository's text."""

from __future__ import annotations

import re
from pathlib import Path

from engine.commands import DEMO_SPEC

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quotes_the_demo_spec_verbatim() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"This is `engine/data/demo_study\.toml`.*?```toml\n(.*?)```\n", text, re.S)
    assert found, "README: the block introduced as engine/data/demo_study.toml is missing"
    assert found.group(1) == DEMO_SPEC.read_text(encoding="utf-8")
