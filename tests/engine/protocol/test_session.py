"""A protocol session (linear weights packed for oneDNN, shared prefixes kept for the run): packed
linears agree with `linear` to float noise and leave the layers as they were; a kept prefix gives
exactly a recomputed one, the attention mask made once per pass exactly sdpa's own conversion."""

from __future__ import annotations

import json

import pytest
import torch

from engine.config import ProtocolConfig
from engine.protocol import plan_batches, weights
from engine.protocol.evaluate import evaluate_batch
from engine.protocol.kvcache import _packed_mask, packed_sdpa
from engine.protocol.rows import metered, shared_prefixes
from engine.protocol.session import protocol_session
from engine.protocol.weights import onednn_enabled, packed_linears

from .conftest import ITEMS, pool_of

CONFIG = ProtocolConfig(max_new_tokens=5, batch_size=3, probes="all", beam_width=2, n_samples=2)


def test_packed_linears_match_linear_and_restore_the_layers() -> None:
    torch.manual_seed(0)
    layers = torch.nn.ModuleList(
        [torch.nn.Linear(64, 96, bias=False), torch.nn.Linear(1536, 64, bias=True), torch.nn.Linear(96, 48)]
    )
    xs = {layer: [torch.randn(m, layer.in_features) for m in (1, 2, 7, 16, 33)] for layer in layers}
    with torch.inference_mode():
        want = {layer: [torch.nn.functional.linear(x, layer.weight, layer.bias) for x in xs[layer]] for layer in layers}
        with packed_linears(layers):
            replaced = ["forward" in layer.__dict__ for layer in layers]
            with packed_linears(layers):  # nested: nothing more to do
                pass
            assert ["forward" in layer.__dict__ for layer in layers] == replaced
            got = {layer: [layer(x) for x in xs[layer]] for layer in layers}
            got3d = layers[0](xs[layers[0]][4].reshape(3, 11, 64))
    assert all(replaced) == onednn_enabled()  # without oneDNN the block changes nothing
    assert not any("forward" in layer.__dict__ for layer in layers)  # restored
    for layer in layers:
        for a, b in zip(got[layer], want[layer]):
            assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5), layer
    assert torch.equal(got3d.reshape(33, 96), got[layers[0]][4])


def test_packed_linears_leave_autograd_and_other_dtypes_to_linear() -> None:
    layer = torch.nn.Linear(32, 8)
    x = torch.randn(4, 32)
    with packed_linears(layer):
        with torch.enable_grad():
            y = layer(x)
        assert torch.equal(y, torch.nn.functional.linear(x, layer.weight, layer.bias))
        y.sum().backward()  # a graph was built: the packed path is inference-only
    assert layer.weight.grad is not None
    half = torch.nn.Linear(32, 8).to(torch.bfloat16)
    with torch.inference_mode(), packed_linears(half):
        assert "forward" not in half.__dict__


def test_packed_linears_warn_and_do_nothing_without_the_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "_available_bytes", lambda: 1000)
    layer = torch.nn.Linear(32, 8)
    with pytest.warns(UserWarning, match="more than half the memory"), packed_linears(layer):
        assert "forward" not in layer.__dict__


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
