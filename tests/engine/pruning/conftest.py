"""Fixtures shared by the pruning tests that run `prune_model` end to end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.config import CalibrationSpec
from engine.pruning.calibration import bundled_texts
from tests.engine.pruning.prune_fixtures import one_thread, train_tokenizer

CALIB = CalibrationSpec(source="bundled", nsamples=4, seqlen=32, seed=0)  # small bundled calibration


@pytest.fixture
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A byte-level BPE tokenizer trained on the bundled calibration text."""
    return train_tokenizer(tmp_path_factory.mktemp("tok"), bundled_texts())
