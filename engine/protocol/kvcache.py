"""A preallocated key/value cache of fixed rows and columns, written in place (no per-step concatenation).

`SlotCache` holds, for every attention layer, keys and values of shape [rows, kv_heads, capacity,
head_dim], allocated on the first write. Before each forward pass the caller says where the new
positions go: a *slab* (a range of rows, a range of columns: prompt passes) or a *step* (a column of
its own for each query of each row: decoding). The attention reads the rows of the pass and the
columns up to the last one written; which of those a query may see is the caller's 4D mask
(`engine.protocol.rows`, `engine.protocol.lanes`), so a row can hold a shared prefix, a gap, its
prompts and the decoded tokens of several continuations, each query seeing only its own. Rows are
copied only on request (`copy_rows`: a shared prefix into every row, kept prompts into probe rows,
live rows over finished ones).

Only decoder-only models with full attention in every layer, updated through `cache.update`, an
attention that takes a prepared 4D mask (sdpa, eager), and positions taken from `position_ids` can
use it; `supports_slot_cache` says which. ALiBi models (BLOOM, MPT, Falcon with `alibi`) derive their
position biases from key columns, which the gaps and shared prefixes of this layout would move.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

ATTENTION_KINDS = ("sdpa", "eager")
ALIBI_MODEL_TYPES = ("bloom", "mpt")  # ALiBi always; Falcon has it where `config.alibi` is set


def supports_slot_cache(model: Any) -> bool:
    """True for decoder-only models with full attention in every layer, sdpa or eager attention, and
    positions from `position_ids` (not ALiBi)."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "model_type", None) in ALIBI_MODEL_TYPES or getattr(config, "alibi", False) is True:
        return False
    if getattr(config, "_attn_implementation", None) not in ATTENTION_KINDS:
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types and any(t != "full_attention" for t in layer_types):
        return False
    window = getattr(config, "sliding_window", None)
    return not (isinstance(window, int) and getattr(config, "use_sliding_window", True) is not False)


class _Plan:
    """Where the next forward pass writes, and which rows and columns its attention reads."""

    def __init__(self) -> None:
        self.rows = slice(0, 0)
        self.col0 = 0  # slab: first column written
        self.step_cols: torch.Tensor | None = None  # step: [rows, queries] the column each query writes
        self.step_span: int | None = None  # step: first column, when every row writes the same columns
        self.read_cols = 0  # attention reads columns [0, read_cols)


class SlotLayer(CacheLayerMixin):
    """One layer's preallocated keys and values, written where the owning cache's plan says."""

    is_compileable = False
    is_sliding = False

    def __init__(self, owner: SlotCache) -> None:
        super().__init__()
        self.owner = owner

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        shape = (self.owner.rows, key_states.shape[1], self.owner.capacity)
        self.keys = key_states.new_zeros((*shape, key_states.shape[-1]))
        self.values = value_states.new_zeros((*shape, value_states.shape[-1]))
        self.device = key_states.device
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self.keys is not None and self.values is not None
        plan = self.owner.plan
        rows = plan.rows
        if plan.step_cols is None:
            cols = slice(plan.col0, plan.col0 + key_states.shape[2])
            self.keys[rows, :, cols] = key_states
            self.values[rows, :, cols] = value_states
        elif plan.step_span is not None:  # every row writes the same columns: a slice
            cols = slice(plan.step_span, plan.step_span + key_states.shape[2])
            self.keys[rows, :, cols] = key_states
            self.values[rows, :, cols] = value_states
        else:
            idx = torch.arange(rows.start, rows.stop, device=self.keys.device)[:, None]
            at = plan.step_cols.to(self.keys.device)
            self.keys[idx, :, at] = key_states.transpose(1, 2)
            self.values[idx, :, at] = value_states.transpose(1, 2)
        return self.keys[rows, :, : plan.read_cols], self.values[rows, :, : plan.read_cols]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.plan.read_cols, 0

    def get_seq_length(self) -> int:
        return self.owner.plan.read_cols

    def get_max_length(self) -> int:
        return self.owner.capacity


class SlotCache(Cache):
    """A transformers `Cache` of `n_layers` preallocated layers, `rows` x `capacity` positions each."""

    def __init__(self, n_layers: int, rows: int, capacity: int) -> None:
        self.rows, self.capacity, self.plan = rows, capacity, _Plan()
        super().__init__(layers=[SlotLayer(self) for _ in range(n_layers)])

    def slab(self, rows: slice, col0: int, width: int) -> None:
        """The next pass writes `width` columns from `col0` in `rows` and reads every column before their end."""
        self.plan.rows, self.plan.col0, self.plan.step_cols = rows, col0, None
        self.plan.read_cols = col0 + width

    def step(self, cols: torch.Tensor) -> None:
        """The next pass writes, in rows 0..len(cols)-1, query j of row r at column cols[r, j], and reads
        every column up to the last written."""
        self.plan.rows, self.plan.step_cols = slice(0, cols.shape[0]), cols
        self.plan.read_cols = int(cols.max()) + 1
        run = cols[0, 0] + torch.arange(cols.shape[1], device=cols.device)
        self.plan.step_span = int(cols[0, 0]) if bool((cols == run).all()) else None

    def copy_rows(
        self, src: torch.Tensor, dst: torch.Tensor, hi: int, lo: int = 0, source: SlotCache | None = None
    ) -> None:
        """Rows `dst` take columns [lo, hi) of rows `src` of `source` (default: this cache), in every layer
        (the source rows are read before any is written)."""
        source = self if source is None else source
        for mine, theirs in zip(self.layers, source.layers):
            if not theirs.is_initialized:
                continue
            if not mine.is_initialized:
                mine.lazy_initialization(theirs.keys[:1], theirs.values[:1])
            s, d = src.to(theirs.keys.device), dst.to(mine.keys.device)
            mine.keys[d, :, lo:hi] = theirs.keys[s, :, lo:hi].to(mine.keys.device)
            mine.values[d, :, lo:hi] = theirs.values[s, :, lo:hi].to(mine.keys.device)

    def read_columns(self, row: int, lo: int, hi: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Copies of every layer's keys and values of columns [lo, hi) of `row` ([kv_heads, hi - lo, dim])."""
        return [(layer.keys[row, :, lo:hi].clone(), layer.values[row, :, lo:hi].clone()) for layer in self.layers]

    def write_columns(self, rows: slice, lo: int, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Every row of `rows` takes, from column `lo`, the keys and values `read_columns` gave."""
        for layer, (k, v) in zip(self.layers, kv):
            if not layer.is_initialized:
                layer.lazy_initialization(k[None], v[None])
            hi = lo + k.shape[1]
            layer.keys[rows, :, lo:hi] = k
            layer.values[rows, :, lo:hi] = v

    @property
    def bytes_per_position(self) -> int:
        """Bytes of keys and values one row and column take over all layers (0 before the first write)."""
        return sum(
            layer.keys[0, :, 0].numel() * layer.keys.element_size() * 2 for layer in self.layers if layer.is_initialized
        )


def attention_mask_4d(allowed: torch.Tensor, model: Any) -> torch.Tensor:
    """`allowed` [rows, queries, keys] as the [rows, 1, queries, keys] mask the model's attention takes
    (bool for sdpa, additive float for eager)."""
    mask = allowed[:, None]
    if model.config._attn_implementation == "eager":
        dtype = next(model.parameters()).dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask


PACKED = "prunescope_packed_sdpa"


def packed_sdpa(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """sdpa with the query heads of a key/value head packed into the query length ([rows, kv_heads,
    group * queries, dim]), so grouped-query attention reads each key/value head once and never
    repeats it, for any number of queries (transformers packs only single-token queries)."""
    rows, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    if group > 1:
        query = query.reshape(rows, kv_heads, group * q_len, dim)
    if attention_mask is not None:
        attention_mask = _packed_mask(attention_mask, rows, group, q_len, query.dtype)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )
    return out.reshape(rows, heads, q_len, dim).transpose(1, 2).contiguous(), None


_MASK: list[torch.Tensor] = []  # [the mask a pass gave its layers, that mask as packed_sdpa uses it]


def _packed_mask(mask: torch.Tensor, rows: int, group: int, q_len: int, dtype: torch.dtype) -> torch.Tensor:
    """`mask` [rows, 1, q_len, keys] repeated for the `group` query heads packed into the query length and,
    if boolean, made additive (0 / -inf: what sdpa does with a boolean mask, so the same numbers). Every
    layer of a pass gets the same mask object, so it is made once per pass."""
    if _MASK and _MASK[0] is mask:
        return _MASK[1]
    out = mask
    if group > 1 and mask.shape[2] > 1:
        out = mask.expand(rows, 1, q_len, mask.shape[-1])
        out = out[:, :, None].expand(rows, 1, group, q_len, mask.shape[-1]).reshape(rows, 1, group * q_len, -1)
    if out.dtype == torch.bool:
        out = torch.zeros(out.shape, dtype=dtype, device=out.device).masked_fill_(~out, float("-inf"))
    _MASK[:] = [mask, out]
    return out


@contextlib.contextmanager
def packed_attention(model: Any) -> Iterator[None]:
    """Within the block, a model on sdpa attention uses `packed_sdpa` (registered with transformers'
    AttentionInterface); other models are left as they are."""
    from transformers import AttentionInterface

    before = model.config._attn_implementation
    if before != "sdpa" or not getattr(model, "_can_set_attn_implementation", lambda: False)():
        yield
        return
    if PACKED not in AttentionInterface._global_mapping:
        AttentionInterface.register(PACKED, packed_sdpa)
    model.set_attn_implementation(PACKED)
    try:
        yield
    finally:
        _MASK.clear()
        model.set_attn_implementation(before)
