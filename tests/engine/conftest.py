"""Engine tests run one torch thread per process: `make test` runs two pytest workers on two cores
(the thread policy's choice when several processes share the cores; two OpenMP threads per worker
on a busy machine were several times slower)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
