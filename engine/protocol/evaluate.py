"""Per-batch evaluation: every format of every item of one planned batch, as outcome records.

Forward passes per batch: one pass over the open prompts serves the greedy open generation (its
first token), the gold trace and the cloze MC options (all continuations of that same prompt,
scored from its KV cache); one pass + decoding for candidate-shown generation; one pass over the
lettered prompts for letter choice; probes only where the config asks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from engine.config import MC_RULES, ProtocolConfig
from engine.errors import UserError
from engine.grading import demotion, generation_fields, is_correct, scoring_of
from engine.matching import AnswerKey
from engine.models import LoadedModel
from engine.prompts import LETTERS, Prompt, PromptBuilder, check_item
from engine.protocol import generation as gen
from engine.protocol.scoring import PrefixState, TokenScores, cache_is_selectable, fork_state, prefix_pass, score
from engine.runfolder import category

SCORE_RULES = ("sum", "per_token", "per_char", "per_byte")


def check_config(config: ProtocolConfig) -> None:
    """Reject protocol settings that cannot produce valid outcomes."""
    if config.mc_rule not in MC_RULES:
        raise UserError(f"protocol.mc_rule: {config.mc_rule!r} is not one of {', '.join(MC_RULES)}")
    if config.mc_rule == "letter" and not config.letter:
        raise UserError("protocol.mc_rule = 'letter' needs protocol.letter = true")
    if config.probes not in ("failed", "all", "none"):
        raise UserError(f"protocol.probes: {config.probes!r} is not one of failed, all, none")
    if config.batch_size < 1 or config.max_new_tokens < 1:
        raise UserError("protocol: batch_size and max_new_tokens must be at least 1")
    try:
        scoring_of(config)
    except UserError as exc:
        raise UserError(f"protocol.{exc}") from None


def plan_batches(loaded: LoadedModel, items: Sequence[dict[str, Any]], config: ProtocolConfig) -> list[list[dict]]:
    """The fixed batches of the full item list: longest open prompt first (item_uid breaks ties), cut
    into `config.batch_size`. A function of the items and tokenizer only, so a resumed run gets the
    same batches."""
    check_config(config)
    builder = PromptBuilder(loaded.tokenizer, config)
    keyed = sorted(items, key=lambda it: (-len(builder.open(it).ids), it["item_uid"]))
    return [keyed[i : i + config.batch_size] for i in range(0, len(keyed), config.batch_size)]


def evaluate_batches(
    loaded: LoadedModel, items: list[dict], config: ProtocolConfig, one_shot_pool: dict[str, list[dict]]
) -> Iterator[list[dict]]:
    """Outcome records, batch by batch, in the planned order."""
    for batch in plan_batches(loaded, items, config):
        yield evaluate_batch(loaded, batch, config, one_shot_pool)


def batch_seed(batch: Sequence[dict[str, Any]], config: ProtocolConfig, purpose: str) -> int:
    """A 31-bit seed from the protocol seed and the uids of the batch."""
    h = hashlib.sha256(f"{config.seed}\0{purpose}".encode())
    for it in batch:
        h.update(b"\0" + it["item_uid"].encode())
    return int.from_bytes(h.digest()[:4], "big") & 0x7FFFFFFF


def pick_example(item: dict[str, Any], pool: dict[str, list[dict]], seed: int) -> dict[str, Any] | None:
    """The one-shot example: same language, not the item nor a translation of it, chosen by a hash."""
    pid = item.get("parallel_id")
    cands = [
        c
        for c in pool.get(item["language"], [])
        if c["item_uid"] != item["item_uid"] and (pid is None or c.get("parallel_id") != pid)
    ]
    if not cands:
        return None
    key = f"{seed}\0{item['item_uid']}\0"
    return min(cands, key=lambda c: hashlib.sha256((key + c["item_uid"]).encode()).hexdigest())


def _generation_record(g: gen.Generation, item: dict[str, Any], config: ProtocolConfig) -> dict[str, Any]:
    return {
        "text": g.text,
        **generation_fields(g.text, AnswerKey.from_item(item), scoring_of(config)),
        "n_new_tokens": len(g.new_ids),
        "stop": g.stop,
    }


def _correct(text: str, item: dict[str, Any], config: ProtocolConfig) -> bool:
    return is_correct(text, AnswerKey.from_item(item), scoring_of(config))


def _argmax(values: Sequence[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


class _Rows:
    """Continuations to score after the prompts of a batch, deduplicated per prompt."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, tuple[int, ...]]] = []
        self.index: dict[tuple[int, tuple[int, ...]], int] = {}

    def add(self, prompt: int, ids: Sequence[int]) -> int:
        key = (prompt, tuple(ids))
        if key not in self.index:
            self.index[key] = len(self.rows)
            self.rows.append(key)
        return self.index[key]


def evaluate_batch(
    loaded: LoadedModel, batch: list[dict], config: ProtocolConfig, one_shot_pool: dict[str, list[dict]]
) -> list[dict]:
    """Outcome records of one planned batch (same batch in, bit-identical records out)."""
    check_config(config)
    for item in batch:
        check_item(item, config)
    with torch.inference_mode():
        return _evaluate(loaded, batch, config, one_shot_pool)


def _evaluate(
    loaded: LoadedModel, batch: list[dict], config: ProtocolConfig, pool: dict[str, list[dict]]
) -> list[dict]:
    model, tok = loaded.model, loaded.tokenizer
    builder = PromptBuilder(tok, config)
    stop_ids = gen.stop_token_ids(tok, model)
    pad = tok.pad_token_id

    # 1. open prompts: one pass for open generation, gold trace and cloze options
    open_prompts = [builder.open(it) for it in batch]
    state = prefix_pass(model, [p.ids for p in open_prompts], pad)
    rows = _Rows()
    gold_rows, option_rows = [], []
    for i, (it, p) in enumerate(zip(batch, open_prompts)):
        gold_rows.append(rows.add(i, builder.continuation(p, it["answer"])))
        option_rows.append([rows.add(i, builder.continuation(p, o)) for o in it["options"]])
    scored = score(model, state, [p.ids for p in open_prompts], rows.rows, pad)
    opens = gen.greedy_decode(
        model, tok, _rows_of(model, state, open_prompts, range(len(batch)), pad), config.max_new_tokens, stop_ids
    )

    # 2. candidate-shown generation
    shown: list[gen.Generation | None] = [None] * len(batch)
    if config.shown:
        sp = [builder.shown(it).ids for it in batch]
        shown = list(gen.greedy_decode(model, tok, prefix_pass(model, sp, pad), config.max_new_tokens, stop_ids))

    # 3. letter choice
    letters: list[dict[str, Any] | None] = [None] * len(batch)
    if config.letter:
        lp = [builder.letter(it) for it in batch]
        lstate = prefix_pass(model, [p.ids for p in lp], pad)
        lrows = _Rows()
        lidx = [
            [lrows.add(i, builder.continuation(p, LETTERS[j])) for j in range(len(it["options"]))]
            for i, (it, p) in enumerate(zip(batch, lp))
        ]
        lscored = score(model, lstate, [p.ids for p in lp], lrows.rows, pad)
        del lstate
        letters = [
            {"letters": list(LETTERS[: len(it["options"])]), "logprobs": [lscored[r].total for r in idx]}
            for it, idx in zip(batch, lidx)
        ]

    open_records = [_generation_record(g, it, config) for g, it in zip(opens, batch)]
    records = []
    for i, it in enumerate(batch):
        mc = _mc_record(it, [scored[r] for r in option_rows[i]], letters[i], config)
        trace = _trace_record(tok, it, scored[gold_rows[i]], opens[i])
        shown_i = shown[i]
        records.append(
            {
                "item_uid": it["item_uid"],
                "content_hash": it["content_hash"],
                "language": it["language"],
                "open": open_records[i],
                "shown": _generation_record(shown_i, it, config) if shown_i is not None else None,
                "mc": mc,
                "gold_trace": trace,
                "category": category(open_records[i]["correct"], mc["correct"]),
                "demotion": None,
                "probes": None,
            }
        )

    # 4. recovery probes
    todo = [
        i
        for i, r in enumerate(records)
        if config.probes == "all" or (config.probes == "failed" and not r["open"]["correct"])
    ]
    if todo:
        probes = _probes(
            loaded,
            builder,
            [batch[i] for i in todo],
            config,
            pool,
            stop_ids,
            lambda rows: _rows_of(model, state, open_prompts, [todo[r] for r in rows], pad),
        )
        for i, pr in zip(todo, probes):
            records[i]["probes"] = pr
    for r in records:
        r["demotion"] = demotion(r, config.demotion_max_rank)
    return records


def _mc_record(
    item: dict[str, Any], opts: list[TokenScores], letter: dict[str, Any] | None, config: ProtocolConfig
) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    scores: dict[str, list[float]] = {k: [] for k in SCORE_RULES}
    for text, s in zip(item["options"], opts):
        ll = s.total
        n_tok, n_chr, n_byt = len(s.token_ids), len(text), len(text.encode("utf-8"))
        options.append(
            {
                "text": text,
                "loglik": ll,
                "n_tokens": n_tok,
                "n_chars": n_chr,
                "n_bytes": n_byt,
                "is_greedy": all(r == 1 for r in s.ranks),
            }
        )
        scores["sum"].append(ll)
        scores["per_token"].append(ll / n_tok)
        scores["per_char"].append(ll / n_chr)
        scores["per_byte"].append(ll / n_byt)
    decisions = {k: _argmax(v) for k, v in scores.items()}
    if letter is not None:
        decisions["letter"] = _argmax(letter["logprobs"])
    choice = decisions[config.mc_rule]
    return {
        "gold_index": item["gold_index"],
        "options": options,
        "scores": scores,
        "letter": letter,
        "decisions": decisions,
        "rule": config.mc_rule,
        "choice": choice,
        "correct": choice == item["gold_index"],
    }


def _trace_record(tok: Any, item: dict[str, Any], s: TokenScores, greedy: gen.Generation) -> dict[str, Any]:
    seq = s.total
    greedy_lp = greedy.answer_logprob
    return {
        "target": item["answer"],
        "token_ids": s.token_ids,
        "tokens": [tok.decode([t]) for t in s.token_ids],
        "logprobs": s.logprobs,
        "ranks": s.ranks,
        "first_token_rank": s.ranks[0],
        "seq_logprob": seq,
        "greedy_seq_logprob": greedy_lp,
        "margin": seq - greedy_lp,
    }


def _rows_of(model: Any, state: PrefixState, prompts: Sequence[Prompt], rows: Sequence[int], pad: int) -> PrefixState:
    """A decodable state for prompts `rows` (repeats allowed) that leaves `state` a pure prefix: cache
    rows copied when the cache layout allows it, else a fresh prompt pass."""
    if cache_is_selectable(state.cache):
        return fork_state(state, list(rows))
    return prefix_pass(model, [prompts[r].ids for r in rows], pad)


def _probes(
    loaded: LoadedModel,
    builder: PromptBuilder,
    items: list[dict],
    config: ProtocolConfig,
    pool: dict[str, list[dict]],
    stop_ids: list[int],
    open_state: Callable[[Sequence[int]], PrefixState],
) -> list[dict[str, Any]]:
    """Beam, sampling and one-shot probes; beams and samples continue the shared open-prompt pass."""
    model, tok = loaded.model, loaded.tokenizer
    out: list[dict[str, Any]] = [{} for _ in items]
    if config.beam_width >= 1:
        beams_all = gen.beam_decode(
            model, tok, open_state(range(len(items))), config.beam_width, config.max_new_tokens, stop_ids
        )
        for o, it, beams in zip(out, items, beams_all):
            bs = [{"text": g.text, "score": sc, "correct": _correct(g.text, it, config)} for g, sc in beams]
            o["beam"] = {
                "k": config.beam_width,
                "beams": bs,
                "hit_top": bs[0]["correct"],
                "hit_any": any(b["correct"] for b in bs),
            }
    if config.n_samples >= 1:
        seed = batch_seed(items, config, "sampling")
        n = config.n_samples
        sub = open_state([k for k in range(len(items)) for _ in range(n)])
        generator = torch.Generator(device=sub.last_logits.device).manual_seed(seed)
        samples_all = gen.decode(
            model, tok, sub, config.max_new_tokens, stop_ids, gen.sampler(config.temperature, config.top_p, generator)
        )
        groups = [samples_all[k * n : (k + 1) * n] for k in range(len(items))]
        for o, it, samples in zip(out, items, groups):
            ss = [{"text": g.text, "correct": _correct(g.text, it, config)} for g in samples]
            o["sampling"] = {
                "n": config.n_samples,
                "temperature": config.temperature,
                "top_p": config.top_p,
                "seed": seed,
                "samples": ss,
                "hits": sum(s["correct"] for s in ss),
            }
    if config.one_shot:
        pairs = [(k, ex) for k, it in enumerate(items) if (ex := pick_example(it, pool, config.seed)) is not None]
        if pairs:
            shot_prompts = [builder.one_shot(items[k], ex).ids for k, ex in pairs]
            state = prefix_pass(model, shot_prompts, tok.pad_token_id)
            gens = gen.greedy_decode(model, tok, state, config.max_new_tokens, stop_ids)
            for (k, ex), g in zip(pairs, gens):
                out[k]["one_shot"] = {
                    "example_uid": ex["item_uid"],
                    "text": g.text,
                    "correct": _correct(g.text, items[k], config),
                }
    return out
