"""What the fast backend keeps for the length of a run: linear weights packed for oneDNN and the keys
and values of shared prompt prefixes. The runner and `evaluate_batches` open one session per run;
`evaluate_batch` opens its own when called alone. Each part is free when already open."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from engine.onednn import packed_linears
from engine.protocol.rows import shared_prefixes


@contextlib.contextmanager
def protocol_session(model: Any) -> Iterator[None]:
    """The block evaluates batches of `model`; the model's weights do not change inside it."""
    with packed_linears(model), shared_prefixes():
        yield
