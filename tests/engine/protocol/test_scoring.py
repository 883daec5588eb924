"""The cached continuation scoring equals plain full-sequence forwards, and greedy decoding equals
transformers' greedy generate."""

from __future__ import annotations

import torch

from engine.config import ProtocolConfig
from engine.prompts import PromptBuilder
from engine.protocol.generation import greedy_decode, stop_token_ids
from engine.protocol.scoring import prefix_pass, score_continuations, score_full, select_cache_rows

from .conftest import ITEMS


def _rows(builder: PromptBuilder, prompts, items):
    rows = []
    for i, (p, it) in enumerate(zip(prompts, items)):
        for text in [it["answer"], *it["options"], "A", "a much longer continuation with several tokens"]:
            rows.append((i, builder.continuation(p, text)))
    return rows


def test_cached_scoring_equals_full_forward(chat_model) -> None:
    model, tok = chat_model.model, chat_model.tokenizer
    builder = PromptBuilder(tok, ProtocolConfig())
    items = ITEMS[:6]
    prompts = [builder.open(it) for it in items]
    assert len({len(p.ids) for p in prompts}) > 1  # left padding is exercised
    rows = _rows(builder, prompts, items)
    assert any(len(c) == 1 for _, c in rows) and any(len(c) > 3 for _, c in rows)
    ids = [p.ids for p in prompts]
    with torch.inference_mode():
        cached = score_continuations(model, prefix_pass(model, ids, tok.pad_token_id), rows, tok.pad_token_id)
        plain = score_full(model, ids, rows, tok.pad_token_id, chunk=1)  # one unpadded sequence at a time
        batched = score_full(model, ids, rows, tok.pad_token_id, chunk=len(rows))
    assert len(cached) == len(plain) == len(rows)
    for c, p, b, (_, cont) in zip(cached, plain, batched, rows):
        assert c.token_ids == p.token_ids == list(cont)
        assert len(c.logprobs) == len(cont)
        assert max(abs(x - y) for x, y in zip(c.logprobs, p.logprobs)) < 1e-5
        assert max(abs(x - y) for x, y in zip(b.logprobs, p.logprobs)) < 1e-5
        assert c.ranks == p.ranks


def test_cache_row_selection_leaves_the_original_untouched(chat_model) -> None:
    model, tok = chat_model.model, chat_model.tokenizer
    builder = PromptBuilder(tok, ProtocolConfig())
    ids = [builder.open(it).ids for it in ITEMS[:3]]
    with torch.inference_mode():
        state = prefix_pass(model, ids, tok.pad_token_id)
        before = [layer.keys.clone() for layer in state.cache.layers]
        picked = select_cache_rows(state.cache, torch.tensor([2, 0, 0, 1]))
    assert picked.layers[0].keys.shape[0] == 4
    assert torch.equal(picked.layers[0].keys[1], state.cache.layers[0].keys[0])
    assert all(torch.equal(b, layer.keys) for b, layer in zip(before, state.cache.layers))


def test_greedy_decode_equals_transformers_generate(base_model) -> None:
    model, tok = base_model.model, base_model.tokenizer
    builder = PromptBuilder(tok, ProtocolConfig())
    prompts = [builder.open(it).ids for it in ITEMS[:5]]
    stops = stop_token_ids(tok, model)
    with torch.inference_mode():
        ours = greedy_decode(model, tok, prefix_pass(model, prompts, tok.pad_token_id), 12, stops)
        for p, g in zip(prompts, ours):
            ref = model.generate(
                torch.tensor([list(p)]),
                max_new_tokens=len(g.new_ids),
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=tok.pad_token_id,
            )
            assert ref[0, len(p) :].tolist() == g.new_ids
            if g.stop == "max_new_tokens":
                assert len(g.new_ids) == 12


def test_beam_scores_are_length_normalised_log_probs(base_model) -> None:
    from engine.protocol.generation import beam_decode

    model, tok = base_model.model, base_model.tokenizer
    builder = PromptBuilder(tok, ProtocolConfig())
    prompts = [builder.open(it).ids for it in ITEMS[:3]]
    stops = stop_token_ids(tok, model)
    with torch.inference_mode():
        state = prefix_pass(model, prompts, tok.pad_token_id)
        beams = beam_decode(model, tok, state, 3, 6, stops)
        greedy = greedy_decode(model, tok, prefix_pass(model, prompts, tok.pad_token_id), 6, stops)
        one = beam_decode(model, tok, state, 1, 6, stops)
        for p, (prompt, hyps) in enumerate(zip(prompts, beams)):
            assert len(hyps) == 3
            assert [s for _, s in hyps] == sorted((s for _, s in hyps), reverse=True)
            rescored = score_full(model, [prompt], [(0, g.new_ids) for g, _ in hyps], tok.pad_token_id)
            for (g, s), r in zip(hyps, rescored):
                assert abs(r.total / len(g.new_ids) - s) < 1e-4
            assert one[p][0][0].new_ids == greedy[p].new_ids  # width 1 is greedy


def test_near_zero_temperature_sampling_is_greedy(base_model) -> None:
    from engine.protocol.generation import sample_decode, uniforms

    model, tok = base_model.model, base_model.tokenizer
    builder = PromptBuilder(tok, ProtocolConfig())
    prompts = [builder.open(it).ids for it in ITEMS[:3]]
    stops = stop_token_ids(tok, model)
    u = uniforms([0, 1, 2], 1, 6)
    with torch.inference_mode():
        greedy = greedy_decode(model, tok, prefix_pass(model, prompts, tok.pad_token_id), 6, stops)
        cold = sample_decode(model, tok, prefix_pass(model, prompts, tok.pad_token_id), 6, stops, 1e-4, 1.0, u)
        nucleus = sample_decode(model, tok, prefix_pass(model, prompts, tok.pad_token_id), 6, stops, 1.0, 1e-6, u)
    assert [g.new_ids for g in cold] == [g.new_ids for g in greedy] == [g.new_ids for g in nucleus]


def test_full_scoring_computes_only_the_continuations_logits(chat_model, monkeypatch) -> None:
    """The plain backend's full forwards ask the model for the continuations' logits only (a 128k
    vocabulary at every prompt position would not fit on a GPU); the scores are those of all positions."""
    import engine.protocol.scoring as scoring

    model, tok = chat_model.model, chat_model.tokenizer
    builder = PromptBuilder(tok, ProtocolConfig())
    items = ITEMS[:4]
    prompts = [builder.open(it) for it in items]
    rows, ids = _rows(builder, prompts, items), [p.ids for p in prompts]
    widths: list[int] = []
    forward = type(model).forward

    def spy(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        widths.append(out.logits.shape[1])
        return out

    with torch.inference_mode():
        monkeypatch.setattr(type(model), "forward", spy)
        kept = score_full(model, ids, rows, tok.pad_token_id)
        assert widths == [max(len(c) for _, c in rows)]
        monkeypatch.setattr(scoring, "_keeps_logits", lambda cls: False)
        every = score_full(model, ids, rows, tok.pad_token_id)
        assert widths[1] > widths[0]
    for k, e in zip(kept, every):
        assert k.token_ids == e.token_ids and k.ranks == e.ranks
        assert max(abs(x - y) for x, y in zip(k.logprobs, e.logprobs)) < 1e-5
