"""A protocol session (weights laid out for the matmuls, shared prefixes kept for the run) changes no
number: packed GEMMs give exactly `linear`'s outputs, a kept prefix exactly a recomputed one, the
attention mask made once per pass exactly sdpa's own conversion."""

from __future__ import annotations

import json

import torch

from engine.config import ProtocolConfig
from engine.protocol import plan_batches
from engine.protocol.evaluate import evaluate_batch
from engine.protocol.kvcache import _packed_mask, packed_sdpa
from engine.protocol.rows import metered, shared_prefixes
from engine.protocol.session import protocol_session
from engine.protocol.weights import _mkl_packs, packed_linears, transposed_linears

from .conftest import ITEMS, pool_of

CONFIG = ProtocolConfig(max_new_tokens=5, batch_size=3, probes="all", beam_width=2, n_samples=2)


def test_packed_linears_give_exactly_what_linear_gives() -> None:
    torch.manual_seed(0)
    # 1536 inputs: a width MKL sums in another order on its packed path at some row counts (the check
    # at packing time must keep those on `linear`)
    layers = torch.nn.ModuleList(
        [torch.nn.Linear(64, 96, bias=False), torch.nn.Linear(1536, 64, bias=True), torch.nn.Linear(96, 48)]
    )
    xs = {layer: [torch.randn(m, layer.in_features) for m in range(1, 21)] for layer in layers}
    with torch.inference_mode(), transposed_linears(layers):  # the layout a run's linears have
        want = {layer: [torch.nn.functional.linear(x, layer.weight, layer.bias) for x in xs[layer]] for layer in layers}
        with packed_linears(layers, [8, 16]):
            replaced = ["forward" in layer.__dict__ for layer in layers]
            got = {layer: [layer(x) for x in xs[layer]] for layer in layers}
            got3d = layers[0](xs[layers[0]][11].reshape(3, 4, 64))
    assert all(replaced) == _mkl_packs()  # without MKL the block changes nothing
    assert not any("forward" in layer.__dict__ for layer in layers)  # restored
    for layer in layers:
        for m, (a, b) in enumerate(zip(got[layer], want[layer]), start=1):
            assert torch.equal(a, b), (layer, m)
    assert torch.equal(got3d.reshape(12, 96), want[layers[0]][11])


def test_packed_linears_keep_a_models_logits(chat_model) -> None:
    model = chat_model.model
    ids = torch.randint(0, 60, (4, 5))
    with torch.inference_mode(), transposed_linears(model):
        before = model(ids).logits
        with packed_linears(model, [4, 20]):
            during = model(ids).logits  # 20 rows through every linear layer
            single = model(ids[:, :1]).logits
        assert torch.equal(before, during)
        assert torch.equal(model(ids[:, :1]).logits, single)


def test_a_kept_prefix_gives_the_same_records_without_its_passes(chat_model) -> None:
    pool = pool_of(ITEMS)
    batch = plan_batches(chat_model, ITEMS, CONFIG)[0]
    with metered() as alone:
        first = evaluate_batch(chat_model, batch, CONFIG, pool)
    with protocol_session(chat_model.model, CONFIG):
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
