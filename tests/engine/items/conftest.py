"""Fixtures for the item tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """Keep `datasets`' cache inside the test's folder (the folder is returned)."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    return tmp_path
