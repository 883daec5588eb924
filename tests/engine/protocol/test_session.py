"""A protocol session (linear weights packed for oneDNN, shared prefixes kept for the run): a model's
logits with packed linears agree with `linear`'s to float noise; a kept prefix gives exactly a
recomputed one, the attention mask made once per pass exactly sdpa's own conversion."""

from __future__ import annotations

import json

import torch

from engine.config import ProtocolConfig
from engine.onednn import packed_linears
from engine.protocol import plan_batches
from engine.protocol.evaluate import evaluate_batch
from engine.protocol.kvcache import _packed_mask, packed_sdpa
from engine.protocol.rows import metered, shared_prefixes
from engine.protocol.session import protocol_session

from .conftest import ITEMS, pool_of

CONFIG = ProtocolConfig(max_new_tokens=5, batch_size=3, probes="all", beam_width=2, n_samples=2)


def test_packed_linears_keep_a_models_logits(chat_model) -> None:
    model = chat_model.model
    ids = torch.randint(0, 60, (4, 5))
    with torch.inference_mode():
        before = model(ids).logits
        with packed_linears(model):
            during = model(ids).logits
            single = model(ids[:1]).logits  # a row's numbers do not depend on the rows beside it
        assert torch.allclose(before, during, rtol=1e-4, atol=1e-5)
        assert torch.equal(single, during[:1])
        assert torch.equal(model(ids).logits, before)  # restored


def test_a_kept_prefix_gives_the_same_records_without_its_passes(chat_model) -> None:
    pool = pool_of(ITEMS)
    batch = plan_batches(chat_model, ITEMS, CONFIG)[0]
    with metered() as alone:
        first = evaluate_batch(chat_model, batch, CONFIG, pool)
    with protocol_session(chat_model.model):
        evaluate_batch(chat_model, batch, CONFIG, pool)
        with metered() as kept:  # every prefix of the batch (each format's, at its columns) is kept now
            again = evaluate_batch(chat_model, batch, CONFIG, pool)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert kept.passes < alone.passes and kept.real_tokens < alone.real_tokens


def test_the_prefix_store_lives_in_its_block_and_nests() -> None:
    import engine.protocol.rows as rows

    assert rows.PREFIXES is None
    with shared_prefixes():
        outer = rows.PREFIXES
        assert outer is not None
        with shared_prefixes():
            assert rows.PREFIXES is outer
        assert rows.PREFIXES is outer
    assert rows.PREFIXES is None


def test_the_packed_mask_is_made_once_per_pass_and_matches_sdpa() -> None:
    torch.manual_seed(1)
    rows, kv_heads, group, q_len, keys, dim = 2, 2, 3, 4, 7, 8
    query = torch.randn(rows, kv_heads * group, q_len, dim)
    key = torch.randn(rows, kv_heads, keys, dim)
    value = torch.randn(rows, kv_heads, keys, dim)
    mask = torch.rand(rows, 1, q_len, keys) < 0.6
    mask[..., 0] = True
    first = _packed_mask(mask, rows, group, q_len, torch.float32)
    assert _packed_mask(mask, rows, group, q_len, torch.float32) is first  # the next layer of the pass
    assert _packed_mask(mask.clone(), rows, group, q_len, torch.float32) is not first  # a new pass
    got, _ = packed_sdpa(None, query, key, value, mask, scaling=0.5)
    want = torch.nn.functional.scaled_dot_product_attention(
        query,
        key.repeat_interleave(group, dim=1),
        value.repeat_interleave(group, dim=1),
        attn_mask=mask,
        scale=0.5,
    ).transpose(1, 2)
    assert torch.allclose(got, want, atol=1e-6)
