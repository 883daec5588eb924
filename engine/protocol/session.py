"""What the fast backend keeps for the length of a run: weights laid out for its matmuls and the
keys and values of shared prompt prefixes. The runner and `evaluate_batches` open one session per
run; `evaluate_batch` opens its own when called alone (without packing: one batch does not repay
it). Each part is free when already open."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from engine.config import ProtocolConfig
from engine.protocol.rows import shared_prefixes
from engine.protocol.weights import packed_linears, transposed_linears


@contextlib.contextmanager
def protocol_weights(model: Any, config: ProtocolConfig, pack: bool = True) -> Iterator[None]:
    """`model`'s linear weights laid out for the protocol's matmuls (CPU only; the same values);
    `pack`: also packed for the decoding steps (worth its second or so over more than one batch)."""
    # decoding steps feed a batch's open lanes, or its open and shown lanes
    rows = (config.batch_size, 2 * config.batch_size) if config.shown else (config.batch_size,)
    with transposed_linears(model), packed_linears(model, rows if pack else ()):
        yield


@contextlib.contextmanager
def protocol_session(model: Any, config: ProtocolConfig, pack: bool = True) -> Iterator[None]:
    """The block evaluates batches of `model` under `config`; the model's weights do not change inside it."""
    with protocol_weights(model, config, pack), shared_prefixes():
        yield
