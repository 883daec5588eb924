"""Fixtures for the TUI tests: small deterministic synthetic studies and a loaded app under Pilot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.synthetic import make_synthetic_study

LANGS = ("en", "de", "sw")
CONDITIONS = (("dense", 0.0, "unstructured"), ("wanda", 0.5, "unstructured"), ("wanda", 0.7, "unstructured"))
SIZE = (130, 40)


def build_study(root: Path, n: int = 8) -> Path:
    """A 3-condition × 3-language synthetic study at `root/study` (same content for the same n)."""
    study = root / "study"
    make_synthetic_study(study, n_per_language=n, languages=LANGS, conditions=CONDITIONS, seed=3)
    return study


@pytest.fixture(scope="session")
def study_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_study(tmp_path_factory.mktemp("tui-template"))


@pytest.fixture()
def study(study_template: Path, tmp_path: Path) -> Path:
    """A fresh copy per test (flags and exports write into the study's sidecar folder)."""
    dst = tmp_path / "study"
    shutil.copytree(study_template, dst)
    return dst


async def loaded(pilot) -> None:
    """Wait until the study is loaded and the tests have run (workers done, screen refreshed)."""
    app = pilot.app
    for _ in range(200):
        await pilot.pause()
        await app.workers.wait_for_complete()
        if app.study is not None and not any(w.is_running for w in app.workers):
            break
    await pilot.pause()


async def open_screen(pilot, key: str):
    """The screen of number key `key`, its data shown."""
    await pilot.press(key)
    await loaded(pilot)
    return pilot.app.screen


async def items_list(pilot):
    """Screen 2, its rows selected: the item table."""
    from tui.widgets.item_table import ItemTable

    return (await open_screen(pilot, "2")).query_one(ItemTable)
