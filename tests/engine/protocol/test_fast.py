"""The fast backend (preallocated cache, shared prefixes, length buckets, trees, one decoding loop) gives
the records of the plain backend: the same texts, token ids, ranks, decisions and categories, floats
within the determinism contract's tolerance (engine.reproducibility). Its parts: bucket cuts, tree scores, the inverse-CDF sampler, dropped rows."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from engine.config import ProtocolConfig
from engine.models import LoadedModel
from engine.protocol import plan_batches
from engine.protocol.evaluate import backend_for, evaluate_batch
from engine.protocol.fast import SlotBackend
from engine.protocol.generation import inverse_cdf, sampler, uniforms
from engine.protocol.kvcache import supports_slot_cache
from engine.protocol.rows import Group, _buckets, fill, metered, plan_layout
from engine.protocol.scoring import score_full
from engine.reproducibility import outcome_differences
from tests.tiny import make_tokenizer

from .conftest import ITEMS, pool_of

PROBING = ProtocolConfig(max_new_tokens=6, batch_size=4, probes="all", beam_width=3, n_samples=3, temperature=1.0)


def _both(loaded, items, config) -> tuple[list[dict], list[dict]]:
    pool = pool_of(items)
    plain, fast = [], []
    for batch in plan_batches(loaded, items, config):
        plain += evaluate_batch(loaded, batch, config, pool, plain=True)
        fast += evaluate_batch(loaded, batch, config, pool)
    return plain, fast


@pytest.mark.parametrize("which", ["chat_model", "base_model"])
@pytest.mark.parametrize(
    "config",
    [PROBING, ProtocolConfig(max_new_tokens=5, batch_size=3, probes="failed", beam_width=0, n_samples=2, top_p=0.8)],
    ids=["probes-all", "samples-nucleus"],
)
def test_fast_backend_records_equal_plain(which, config, request) -> None:
    loaded = request.getfixturevalue(which)
    assert isinstance(backend_for(loaded, config), SlotBackend)
    plain, fast = _both(loaded, ITEMS, config)
    assert [r["item_uid"] for r in plain] == [r["item_uid"] for r in fast]
    for a, b in zip(plain, fast):
        assert outcome_differences(a, b, same_config=False) == [], a["item_uid"]


def test_models_outside_the_slot_cache_use_the_plain_backend(chat_model) -> None:
    config = chat_model.model.config
    saved = getattr(config, "sliding_window", None)
    config.sliding_window = 16
    try:
        assert not supports_slot_cache(chat_model.model)
        assert not isinstance(backend_for(chat_model, PROBING), SlotBackend)
    finally:
        config.sliding_window = saved


@pytest.mark.parametrize("arch", ["bloom", "mpt", "falcon-alibi"])
def test_alibi_models_use_the_plain_backend(arch: str) -> None:
    """ALiBi takes positions from key columns, which the slot layout's gaps and shared prefixes move:
    such models (found giving other log-probs and texts than the plain backend) are evaluated plainly."""
    import transformers as tf

    tok = make_tokenizer(chat=False)
    small = {"vocab_size": len(tok)}
    config = {
        "bloom": lambda: tf.BloomConfig(hidden_size=32, n_layer=1, n_head=2, **small),
        "mpt": lambda: tf.MptConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=64, **small),
        "falcon-alibi": lambda: tf.FalconConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, alibi=True, **small
        ),
    }[arch]()
    model = tf.AutoModelForCausalLM.from_config(config).eval()
    assert not supports_slot_cache(model)
    assert not isinstance(backend_for(LoadedModel(model, tok), PROBING), SlotBackend)
    config.alibi = False  # Falcon without ALiBi (rotary positions) keeps the fast backend
    assert supports_slot_cache(model) == (arch == "falcon-alibi")


def _cost(widths: list[tuple[int, int]], edges: list[int], per_pass: int) -> int:
    """Padded tokens plus pass cost of cutting `widths` at `edges` (first and last included)."""
    return sum(
        (e - s) * (max(w for w, _ in widths[s:e]) + max(t for _, t in widths[s:e])) + per_pass
        for s, e in itertools.pairwise(edges)
    )


def test_buckets_minimise_padding_plus_pass_cost() -> None:
    rng = random.Random(0)
    for _ in range(40):
        n = rng.randint(1, 7)
        widths = sorted(((rng.randint(1, 60), rng.randint(0, 12)) for _ in range(n)), key=lambda w: -(w[0] + w[1]))
        per_pass = rng.choice([0, 16, 64])
        got = _buckets(widths, per_pass)
        assert got[0][0] == 0 and got[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(got))
        best = min(
            _cost(widths, [0, *c, n], per_pass) for k in range(n) for c in itertools.combinations(range(1, n), k)
        )
        assert _cost(widths, [0, *[b[0] for b in got[1:]], n], per_pass) == best


def test_layout_is_a_function_of_the_prompts() -> None:
    prompts = [[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 7, 7, 7, 7, 7]]
    layout = plan_layout(prompts, [[[4, 4]], [], [[5], [6, 6, 6]]])
    assert layout.prefix == 2 and sorted(layout.order) == [0, 1, 2]
    assert layout == plan_layout([list(p) for p in prompts], [[[4, 4]], [], [[5], [6, 6, 6]]])
    assert plan_layout([[5, 6]] * 3).prefix == 1  # every row keeps a token of its own


def test_tree_scores_equal_full_forwards(chat_model) -> None:
    from engine.prompts import PromptBuilder

    model, tok = chat_model.model, chat_model.tokenizer
    builder = PromptBuilder(tok, ProtocolConfig())
    prompts = [builder.open(it) for it in ITEMS[:6]]
    trees = [
        [builder.continuation(p, t) for t in [it["answer"], *it["options"], "a longer answer here"]]
        for p, it in zip(prompts, ITEMS)
    ]
    ids = [p.ids for p in prompts]
    with torch.inference_mode():
        layout = plan_layout(ids, trees)
        group = Group.new(model, len(ids), layout.columns)
        scores, last = fill(model, group, 0, 0, layout, ids, tok.pad_token_id, trees)
        rows = [(i, c) for i, t in enumerate(trees) for c in t]
        ref = iter(score_full(model, ids, rows, tok.pad_token_id, chunk=1))
        plain_last = model(torch.tensor([list(ids[2])])).logits[0, -1]
    assert torch.allclose(last[2], plain_last, atol=1e-5)
    for conts, got in zip(trees, scores):
        for c, s in zip(conts, got):
            r = next(ref)
            assert s.token_ids == r.token_ids == list(c) and s.ranks == r.ranks
            assert max(abs(x - y) for x, y in zip(s.logprobs, r.logprobs)) < 1e-5


def test_finished_rows_are_not_computed(chat_model) -> None:
    from engine.prompts import PromptBuilder
    from engine.protocol.lanes import Lane, Lanes, decode_lanes

    model, tok = chat_model.model, chat_model.tokenizer
    ids = [PromptBuilder(tok, ProtocolConfig()).open(it).ids for it in ITEMS]
    T = 12
    with torch.inference_mode():
        layout = plan_layout(ids)
        group = Group.new(model, len(ids), layout.columns + T)
        _, last = fill(model, group, 0, 0, layout, ids, tok.pad_token_id)
        # hot sampling with a third of the vocabulary as stop tokens: rows stop at different steps
        lanes = Lanes(
            sample=[Lane(r, 0, last[i]) for i, r in enumerate(layout.row_of())],
            uniforms=uniforms(list(range(len(ids))), 1, T),
        )
        stops = list(range(0, len(tok), 3))
        with metered() as meter:
            out = decode_lanes(model, tok, group, lanes, T, stops, temperature=50.0)
    lengths = [len(g.new_ids) for g in out.sample]
    assert min(lengths) < max(lengths)  # rows stop at different steps
    fed = sum(n - 1 for n in lengths)  # every token but the last of each answer is fed back
    assert meter.real_tokens == meter.computed_tokens == fed < len(ids) * (max(lengths) - 1)
    assert meter.passes == max(lengths) - 1
    assert len(meter.shapes) == meter.passes and sum(t for t, _ in meter.shapes) == meter.computed_tokens


def test_inverse_cdf_draws_the_softmax_distribution() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 12, generator=g) * 2
    logits[0, 3] = float("-inf")  # probability 0: never drawn
    p = torch.softmax(logits, -1)[0].double()
    n = 200_000
    u = torch.rand(n, generator=g, dtype=torch.float64)
    draws = inverse_cdf(torch.softmax(logits, -1).expand(n, -1), u)
    counts = torch.bincount(draws, minlength=12).double()
    assert counts[3] == 0
    keep = p > 0
    chi2 = float((((counts - n * p) ** 2) / (n * p))[keep].sum())
    assert chi2 < 35.0  # 10 degrees of freedom: P(chi2 > 35) < 2e-4
    # the same draws as a float64 cumulative sum over the whole vocabulary, on a large vocabulary
    big = torch.softmax(torch.randn(64, 50_000, generator=g) * 3, -1)
    v = torch.rand(64, generator=g, dtype=torch.float64)
    full = torch.searchsorted(big.double().cumsum(-1), (v * big.double().sum(-1))[:, None], right=True)[:, 0]
    assert torch.equal(inverse_cdf(big, v), full)


def test_nucleus_sampling_stays_in_the_nucleus() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    probs = torch.softmax(logits, -1)[0]
    top_p = float(probs[:2].sum()) - 1e-3  # the nucleus is the two most likely tokens
    draws = sampler(1.0, top_p)(logits.expand(5000, -1), uniforms([7], 5000, 1)[:, 0])
    assert set(draws.tolist()) == {0, 1}


def test_an_items_samples_do_not_depend_on_its_batch(chat_model) -> None:
    config = ProtocolConfig(max_new_tokens=6, batch_size=4, probes="all", beam_width=0, n_samples=3, temperature=1.0)
    pool = pool_of(ITEMS)
    alone = evaluate_batch(chat_model, [ITEMS[5]], config, pool)[0]
    together = next(
        r for r in evaluate_batch(chat_model, ITEMS[2:8], config, pool) if r["item_uid"] == ITEMS[5]["item_uid"]
    )
    assert alone["probes"]["sampling"] == together["probes"]["sampling"]


@pytest.mark.slow
@pytest.mark.xdist_group("demo-model")
def test_fast_equals_plain_on_the_demo_model_and_bundled_items() -> None:
    """On SmolLM2-135M-Instruct and 16 bundled items of 8 languages (every format, probes on failures,
    the layer trace), the two backends agree on every text, token, rank, decision and category."""
    from engine.config import ItemsSpec, ModelSpec
    from engine.items.loader import load_items
    from engine.models import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = load_model(ModelSpec("demo", device="cpu"))
        items = load_items(ItemsSpec(source="bundled", n_per_language=2, seed=0))
        config = ProtocolConfig(max_new_tokens=12, batch_size=8, beam_width=3, n_samples=3, layer_trace=True)
        plain, fast = _both(loaded, items, config)
    finally:
        torch.set_num_threads(threads)
    assert len({r["language"] for r in fast}) == 8 and any(r["probes"] for r in fast)
    assert all(len(r["layer_trace"]["ranks"]) == 31 for r in fast)
    for a, b in zip(plain, fast):
        assert outcome_differences(a, b, same_config=False) == [], a["item_uid"]
