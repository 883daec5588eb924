"""The protocol on a tiny random Llama: schema-valid, self-consistent, deterministic outcomes."""

from __future__ import annotations

import json
import random

import pytest
import torch

from engine.config import ProtocolConfig
from engine.contract.labels import category
from engine.errors import UserError
from engine.grading import recovered
from engine.protocol import evaluate_batch, evaluate_batches, plan_batches, protocol_manifest
from engine.protocol.evaluate import pick_example
from engine.protocol.generation import stop_token_ids
from engine.runfolder import dumps_line

from .conftest import ITEMS, make_item, pool_of

FAST = ProtocolConfig(max_new_tokens=6, batch_size=4, beam_width=2, n_samples=2)


def _first_argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def _run(loaded, items, config) -> list[dict]:
    return [r for batch in evaluate_batches(loaded, items, config, pool_of(items)) for r in batch]


@pytest.fixture(scope="module")
def chat_records(chat_model) -> list[dict]:
    return _run(chat_model, ITEMS, FAST)


def test_outcomes_validate_and_cover_every_item(chat_records, outcome_validator) -> None:
    assert sorted(r["item_uid"] for r in chat_records) == sorted(it["item_uid"] for it in ITEMS)
    for r in chat_records:
        errors = [e.message for e in outcome_validator.iter_errors(r)]
        assert not errors, (r["item_uid"], errors)
        dumps_line(r)  # JSON-serialisable, no NaN


def test_mc_decisions_are_argmax_of_stored_scores(chat_records) -> None:
    by_uid = {it["item_uid"]: it for it in ITEMS}
    for r in chat_records:
        mc, item = r["mc"], by_uid[r["item_uid"]]
        assert [o["text"] for o in mc["options"]] == item["options"] and mc["gold_index"] == item["gold_index"]
        for o in mc["options"]:
            assert (o["n_chars"], o["n_bytes"]) == (len(o["text"]), len(o["text"].encode()))
        lls = [o["loglik"] for o in mc["options"]]
        assert mc["scores"]["sum"] == lls
        for rule, count in (("per_token", "n_tokens"), ("per_char", "n_chars"), ("per_byte", "n_bytes")):
            assert mc["scores"][rule] == pytest.approx([o["loglik"] / o[count] for o in mc["options"]])
        for rule, values in [*mc["scores"].items(), ("letter", mc["letter"]["logprobs"])]:
            assert mc["decisions"][rule] == _first_argmax(values)
        assert mc["letter"]["letters"] == list("ABCDE"[: len(item["options"])])
        assert mc["choice"] == mc["decisions"][FAST.mc_rule] and mc["rule"] == FAST.mc_rule
        assert mc["correct"] == (mc["choice"] == item["gold_index"])
        assert r["category"] == category(r["open"]["correct"], mc["correct"])


def test_gold_trace_is_consistent(chat_model, chat_records) -> None:
    for r in chat_records:
        t = r["gold_trace"]
        assert len(t["token_ids"]) == len(t["tokens"]) == len(t["logprobs"]) == len(t["ranks"]) >= 1
        assert t["seq_logprob"] == pytest.approx(sum(t["logprobs"]), abs=1e-9)
        assert t["margin"] == pytest.approx(t["seq_logprob"] - t["greedy_seq_logprob"], abs=1e-9)
        assert t["first_token_rank"] == t["ranks"][0]
        assert all(lp <= 0 for lp in t["logprobs"])
        assert chat_model.tokenizer.decode(t["token_ids"]) == t["target"]


def _greedy_first_token(loaded, item, config) -> int:
    from engine.prompts import PromptBuilder

    ids = PromptBuilder(loaded.tokenizer, config).open(item).ids
    with torch.inference_mode():
        return int(loaded.model(torch.tensor([list(ids)])).logits[0, -1].argmax())


def _greedy_items(loaded, config) -> list[dict]:
    """Items whose gold answer starts with the model's own greedy first token (so rank 1 must occur)."""
    from engine.prompts import PromptBuilder

    builder = PromptBuilder(loaded.tokenizer, config)
    out = []
    for it in ITEMS:
        first = _greedy_first_token(loaded, it, config)
        text = loaded.tokenizer.decode([first])
        text = text[len(builder.delimiter) :] if text.startswith(builder.delimiter) else text
        if not text.strip():
            continue
        g = make_item(
            it["item_uid"] + "/g",
            it["language"],
            it["question"],
            text,
            [text, *[o for o in it["options"] if o != text]][:4],
            0,
            context=it["context"],
        )
        if builder.continuation(builder.open(g), text)[0] == first:
            out.append(g)
    return out


def _without_byte_fragments(loaded):
    """A copy whose output layer never prefers a partial-UTF-8 token (their rows zeroed), so greedy
    first tokens can be written as answer text."""
    import copy

    from engine.models import LoadedModel

    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for tid in range(model.config.vocab_size):
            if "\ufffd" in loaded.tokenizer.decode([tid]):
                model.lm_head.weight[tid] = 0
    return LoadedModel(model=model, tokenizer=loaded.tokenizer, info=loaded.info)


@pytest.mark.parametrize("which", ["chat_model", "base_model"])
def test_first_token_rank_is_one_exactly_when_greedy_starts_with_gold(which, request) -> None:
    loaded = _without_byte_fragments(request.getfixturevalue(which))
    items = ITEMS[:6] + _greedy_items(loaded, FAST)
    config = ProtocolConfig(max_new_tokens=4, batch_size=5, probes="none", shown=False)
    records = _run(loaded, items, config)
    by_uid = {it["item_uid"]: it for it in items}
    ones = 0
    for r in records:
        greedy_first = _greedy_first_token(loaded, by_uid[r["item_uid"]], config)
        same = r["gold_trace"]["token_ids"][0] == greedy_first
        assert (r["gold_trace"]["first_token_rank"] == 1) == same, r["item_uid"]
        ones += same
    assert 0 < ones < len(records)


def test_same_batch_twice_gives_identical_records(chat_model) -> None:
    config = ProtocolConfig(max_new_tokens=5, batch_size=4, probes="all", beam_width=2, n_samples=3, temperature=1.0)
    pool = pool_of(ITEMS)
    batch = plan_batches(chat_model, ITEMS, config)[1]
    first = [dumps_line(r) for r in evaluate_batch(chat_model, batch, config, pool)]
    torch.manual_seed(1234)  # the global RNG state must not matter
    second = [dumps_line(r) for r in evaluate_batch(chat_model, batch, config, pool)]
    assert first == second
    assert all(json.loads(line)["probes"]["sampling"]["n"] == 3 for line in first)


def test_plan_is_a_function_of_the_item_set(chat_model) -> None:
    from engine.prompts import PromptBuilder

    shuffled = list(ITEMS)
    random.Random(3).shuffle(shuffled)
    plan = plan_batches(chat_model, ITEMS, FAST)
    assert plan == plan_batches(chat_model, shuffled, FAST)
    assert [len(b) for b in plan] == [4, 4, 2]
    builder = PromptBuilder(chat_model.tokenizer, FAST)
    tokens = [len(builder.open(it).ids) + len(builder.shown(it).ids) + len(builder.letter(it).ids) for it in ITEMS]
    keys = [(-tokens[ITEMS.index(it)], it["item_uid"]) for b in plan for it in b]
    assert keys == sorted(keys)  # most prompt tokens over the formats first


def test_probes_follow_the_mode_and_decide_demotion(chat_model) -> None:
    for mode in ("failed", "all", "none"):
        records = _run(
            chat_model,
            ITEMS[:5],
            ProtocolConfig(max_new_tokens=4, batch_size=5, probes=mode, beam_width=2, n_samples=2, demotion_max_rank=3),
        )
        for r in records:
            failed = not r["open"]["correct"]
            expect = mode == "all" or (mode == "failed" and failed)
            assert (r["probes"] is not None) == expect
            if r["probes"]:
                p = r["probes"]
                assert p["beam"]["k"] == 2 and len(p["beam"]["beams"]) == 2
                assert p["beam"]["hit_top"] == p["beam"]["beams"][0]["correct"]
                assert p["sampling"]["hits"] == sum(s["correct"] for s in p["sampling"]["samples"])
                example = pick_example(
                    next(it for it in ITEMS if it["item_uid"] == r["item_uid"]), pool_of(ITEMS[:5]), seed=0
                )
                assert ("one_shot" in p) == (example is not None)
                if example is not None:
                    assert p["one_shot"]["example_uid"] == example["item_uid"]
            if not failed:
                assert r["demotion"] is None
            else:
                near = r["gold_trace"]["first_token_rank"] <= 3
                unknown = "erased" if r["probes"] else "not_probed"  # never 'erased' without a probe
                assert r["demotion"] == ("demoted" if near or recovered(r["probes"]) else unknown)


def test_one_shot_example_is_same_language_and_not_a_translation() -> None:
    pool = pool_of(ITEMS)
    for it in ITEMS:
        ex = pick_example(it, pool, seed=0)
        assert ex is not None and ex["language"] == it["language"] and ex["item_uid"] != it["item_uid"]
        assert ex["parallel_id"] != it["parallel_id"]
        assert pick_example(it, pool, seed=0) is ex
    lonely = make_item("t/fi/1", "fi", "Mikä?", "Helsinki", ["Helsinki", "Oslo"], 0)
    assert pick_example(lonely, pool, seed=0) is None


def test_chat_and_plain_prompts(chat_model, base_model) -> None:
    from engine.prompts import PromptBuilder

    item = ITEMS[4]  # has a context
    chat = PromptBuilder(chat_model.tokenizer, ProtocolConfig())
    assert chat.chat and chat.open(item).text.endswith("<|assistant|>") and chat.delimiter == ""
    assert "Context: Berlin is the capital" in chat.open(item).text
    assert "Context:" not in PromptBuilder(chat_model.tokenizer, ProtocolConfig(with_context=False)).open(item).text
    plain = PromptBuilder(chat_model.tokenizer, ProtocolConfig(use_chat_template=False))
    assert not plain.chat and plain.open(item).text.endswith("\nAnswer:") and plain.delimiter == " "
    base = PromptBuilder(base_model.tokenizer, ProtocolConfig())
    assert not base.chat and "<|user|>" not in base.open(item).text
    with pytest.raises(UserError, match="no chat template"):
        PromptBuilder(base_model.tokenizer, ProtocolConfig(use_chat_template=True))
    shot = chat.one_shot(item, ITEMS[0])
    assert shot.text.count("<|user|>") == 2 and "Paris<|end|>" in shot.text
    letter = plain.letter(item).text
    assert "A. Berlin\nB. Madrid" in letter and letter.endswith("\nAnswer:")
    # the end-of-turn token of the chat template stops generation
    assert chat_model.tokenizer.convert_tokens_to_ids("<|end|>") in stop_token_ids(
        chat_model.tokenizer, chat_model.model
    )


def test_base_model_outcomes_validate(base_model, outcome_validator) -> None:
    records = _run(
        base_model,
        ITEMS[:4],
        ProtocolConfig(max_new_tokens=4, batch_size=3, probes="none", letter=False, shown=False, mc_rule="sum"),
    )
    for r in records:
        assert not list(outcome_validator.iter_errors(r))
        assert r["shown"] is None and r["mc"]["letter"] is None and "letter" not in r["mc"]["decisions"]


def test_manifest_sections(chat_model, base_model) -> None:
    m = protocol_manifest(chat_model, FAST)
    assert set(m) == {"prompts", "decoding", "probes", "matching", "demotion_rule"}
    assert m["prompts"]["chat_template"] == chat_model.tokenizer.chat_template and m["prompts"]["mode"] == "chat"
    assert set(m["prompts"]["hashes"]) == set(m["prompts"]["templates"]) | {"chat_template"}
    assert m["decoding"]["max_new_tokens"] == FAST.max_new_tokens
    json.dumps(m, allow_nan=False)
    assert protocol_manifest(base_model, FAST)["prompts"]["chat_template"] is None


def test_bad_settings_are_user_errors(chat_model) -> None:
    with pytest.raises(UserError, match="mc_rule"):
        plan_batches(chat_model, ITEMS, ProtocolConfig(mc_rule="best"))
    with pytest.raises(UserError, match="letter"):
        plan_batches(chat_model, ITEMS, ProtocolConfig(mc_rule="letter", letter=False))
    with pytest.raises(UserError, match=r"protocol\.guards: unknown 'loops'"):
        plan_batches(chat_model, ITEMS, ProtocolConfig(guards=("loops",)))
    bad = dict(ITEMS[0], gold_index=7)
    with pytest.raises(UserError, match="gold_index"):
        evaluate_batch(chat_model, [bad], FAST, {})
