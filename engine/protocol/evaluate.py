"""Per-batch evaluation: every format of every item of one planned batch, as outcome records.

The open prompt serves the greedy open generation, the gold trace, the layer trace (when asked:
`engine.protocol.lens`) and the cloze MC options (all continuations of that prompt); the shown prompt candidate-shown generation; the lettered prompt
letter choice; probes run where the config asks. The model work is a backend's (`fast` where the
model allows it, else `plain`; both give the same records up to float rounding); the records, the
matching and the categories are built here.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from engine.config import LENSES, MC_RULES, ProtocolConfig
from engine.contract.labels import category
from engine.errors import UserError
from engine.grading import demotion, generation_fields, is_correct, scoring_of
from engine.matching import AnswerKey
from engine.models import LoadedModel
from engine.prompts import LETTERS, PromptBuilder, check_item
from engine.protocol import generation as gen
from engine.protocol.fast import SlotBackend
from engine.protocol.kvcache import supports_slot_cache
from engine.protocol.lens import LayerCapture, Readout, layer_traces
from engine.protocol.plain import PlainBackend
from engine.protocol.scoring import TokenScores
from engine.protocol.session import protocol_session
from engine.protocol.work import Backend, BatchWork

SCORE_RULES = ("sum", "per_token", "per_char", "per_byte")


def check_config(config: ProtocolConfig) -> None:
    """Reject protocol settings that cannot produce valid outcomes."""
    if config.mc_rule not in MC_RULES:
        raise UserError(f"protocol.mc_rule: {config.mc_rule!r} is not one of {', '.join(MC_RULES)}")
    if config.mc_rule == "letter" and not config.letter:
        raise UserError("protocol.mc_rule = 'letter' needs protocol.letter = true")
    if config.probes not in ("failed", "all", "none"):
        raise UserError(f"protocol.probes: {config.probes!r} is not one of failed, all, none")
    if config.lens not in LENSES:
        raise UserError(f"protocol.lens: {config.lens!r} is not one of {', '.join(LENSES)}")
    if config.batch_size < 1 or config.max_new_tokens < 1:
        raise UserError("protocol: batch_size and max_new_tokens must be at least 1")
    try:
        scoring_of(config)
    except UserError as exc:
        raise UserError(f"protocol.{exc}") from None


def plan_batches(loaded: LoadedModel, items: Sequence[dict[str, Any]], config: ProtocolConfig) -> list[list[dict]]:
    """The fixed batches of the full item list: most prompt tokens over the formats first (item_uid
    breaks ties), cut into `config.batch_size`. A function of the items and tokenizer only, so a
    resumed run gets the same batches; within a batch each format's prompts are bucketed by their own
    length (`engine.protocol.rows.plan_layout`)."""
    check_config(config)
    builder = PromptBuilder(loaded.tokenizer, config)

    def tokens(it: dict[str, Any]) -> int:
        n = len(builder.open(it).ids)
        n += len(builder.shown(it).ids) if config.shown else 0
        return n + (len(builder.letter(it).ids) if config.letter else 0)

    keyed = sorted(items, key=lambda it: (-tokens(it), it["item_uid"]))
    return [keyed[i : i + config.batch_size] for i in range(0, len(keyed), config.batch_size)]


def evaluate_batches(
    loaded: LoadedModel, items: list[dict], config: ProtocolConfig, one_shot_pool: dict[str, list[dict]]
) -> Iterator[list[dict]]:
    """Outcome records, batch by batch, in the planned order."""
    with protocol_session(loaded.model):
        for batch in plan_batches(loaded, items, config):
            yield evaluate_batch(loaded, batch, config, one_shot_pool)


def item_seed(item: dict[str, Any], config: ProtocolConfig, purpose: str) -> int:
    """A 31-bit seed from the protocol seed, a purpose and the item's uid (not its batch: an item's
    draws are the same in any batch)."""
    h = hashlib.sha256(f"{config.seed}\0{purpose}\0{item['item_uid']}".encode())
    return int.from_bytes(h.digest()[:4], "big") & 0x7FFFFFFF


def position_limit(config: Any) -> tuple[int, bool] | None:
    """(positions the model was made for, whether it fails past them), or None where its config names
    none. Learned position embeddings (GPT-2, OPT) and MPT fail past the limit (an IndexError, a
    device-side assert on CUDA); rotary positions go on, outside the range the model was trained on."""
    for key in ("n_positions", "max_position_embeddings", "max_seq_len"):
        limit = getattr(config, key, None)
        if isinstance(limit, int) and limit > 0:
            rotary = any(
                getattr(config, k, None) is not None for k in ("rope_parameters", "rope_scaling", "rotary_dim")
            )
            return limit, not rotary
    return None


def check_positions(
    loaded: LoadedModel, items: Sequence[dict[str, Any]], config: ProtocolConfig, pool: dict[str, list[dict]]
) -> None:
    """Refuse, before any work, items whose longest prompt with its longest continuation (the new
    tokens, the gold answer or an option) needs more positions than a model that fails past its limit
    has; where positions are rotary, say so on stderr and go on."""
    found = position_limit(loaded.model.config)
    if found is None:
        return
    limit, hard = found
    builder = PromptBuilder(loaded.tokenizer, config)
    over: list[tuple[int, str]] = []
    for it in items:
        prompts = [builder.open(it)]
        prompts += [builder.shown(it)] if config.shown else []
        prompts += [builder.letter(it)] if config.letter else []
        example = pick_example(it, pool, config.seed) if config.one_shot and config.probes != "none" else None
        prompts += [builder.one_shot(it, example)] if example is not None else []
        answers = [it["answer"], *it["options"]]
        longest = max(
            len(ids) for ids in loaded.tokenizer([" " + a for a in answers], add_special_tokens=False)["input_ids"]
        )
        need = max(len(p.ids) for p in prompts) + max(config.max_new_tokens, longest)
        if need > limit:
            over.append((need, it["item_uid"]))
    if not over:
        return
    need, uid = max(over)
    what = (
        f"{len(over)} item(s) need more positions than the model's {limit} (the most, {need}: {uid}, its "
        f"longest prompt and up to {config.max_new_tokens} new tokens)"
    )
    if hard:
        raise UserError(f"{what}; shorten their context, lower protocol.max_new_tokens, or leave them out")
    print(
        f"prunescope: warning: {what}; rotary positions past {limit} are outside the model's trained range",
        file=sys.stderr,
    )


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


def evaluate_batch(
    loaded: LoadedModel,
    batch: list[dict],
    config: ProtocolConfig,
    one_shot_pool: dict[str, list[dict]],
    plain: bool = False,
) -> list[dict]:
    """Outcome records of one planned batch (same batch in, bit-identical records out); `plain` forces
    the plain backend (the reference the fast one is tested against)."""
    check_config(config)
    for item in batch:
        check_item(item, config)
    with torch.inference_mode(), protocol_session(loaded.model):
        return _evaluate(loaded, batch, config, one_shot_pool, plain)


def backend_for(loaded: LoadedModel, config: ProtocolConfig, plain: bool = False) -> Backend:
    """The fast backend where the model allows it (or the plain one when asked or not)."""
    stop_ids = gen.stop_token_ids(loaded.tokenizer, loaded.model)
    if not plain and supports_slot_cache(loaded.model):
        return SlotBackend(loaded.model, loaded.tokenizer, config, stop_ids)
    return PlainBackend(loaded.model, loaded.tokenizer, config, stop_ids)


def _evaluate(
    loaded: LoadedModel, batch: list[dict], config: ProtocolConfig, pool: dict[str, list[dict]], plain: bool
) -> list[dict]:
    tok = loaded.tokenizer
    builder = PromptBuilder(tok, config)
    work = BatchWork.of(builder, batch, config)
    backend = backend_for(loaded, config, plain)
    readout = Readout.of(loaded.model) if config.layer_trace else None
    capture = LayerCapture(readout.layers, readout.device) if readout is not None else None
    out = backend.formats(work, capture)
    gold = [out.scores[i][work.gold[i]] for i in range(len(batch))]
    traces = layer_traces(readout, capture.states(), gold) if readout is not None and capture is not None else None
    records = []
    for i, it in enumerate(batch):
        open_record = _generation_record(out.opens[i], it, config)
        letter = None
        if out.letter_scores is not None:
            letter = {
                "letters": list(LETTERS[: len(it["options"])]),
                "logprobs": [s.total for s in out.letter_scores[i]],
            }
        mc = _mc_record(it, [out.scores[i][c] for c in work.options[i]], letter, config)
        record = {
            "item_uid": it["item_uid"],
            "content_hash": it["content_hash"],
            "language": it["language"],
            "open": open_record,
            "shown": _generation_record(out.shown[i], it, config) if out.shown is not None else None,
            "mc": mc,
            "gold_trace": _trace_record(tok, it, gold[i], out.opens[i]),
            "category": category(open_record["correct"], mc["correct"]),
            "demotion": None,
            "probes": None,
        }
        if traces is not None:
            record["layer_trace"] = traces[i]
        records.append(record)
    todo = [
        i
        for i, r in enumerate(records)
        if config.probes == "all" or (config.probes == "failed" and not r["open"]["correct"])
    ]
    if todo:
        for i, pr in zip(todo, _probes(backend, builder, batch, todo, config, pool)):
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


def _probes(
    backend: Backend,
    builder: PromptBuilder,
    batch: list[dict],
    todo: list[int],
    config: ProtocolConfig,
    pool: dict[str, list[dict]],
) -> list[dict[str, Any]]:
    """Beam, sampling and one-shot probes of the items `todo` of the batch, as outcome fields."""
    items = [batch[i] for i in todo]
    examples = [pick_example(it, pool, config.seed) if config.one_shot else None for it in items]
    seeds = [item_seed(it, config, "sampling") for it in items]
    shots = [builder.one_shot(it, ex) if ex is not None else None for it, ex in zip(items, examples)]
    res = backend.probes(todo, shots, seeds)
    out: list[dict[str, Any]] = [{} for _ in items]
    for j, (o, it) in enumerate(zip(out, items)):
        if res.beams is not None:
            bs = [{"text": g.text, "score": sc, "correct": _correct(g.text, it, config)} for g, sc in res.beams[j]]
            o["beam"] = {
                "k": config.beam_width,
                "beams": bs,
                "hit_top": bs[0]["correct"],
                "hit_any": any(b["correct"] for b in bs),
            }
        if res.samples is not None:
            ss = [{"text": g.text, "correct": _correct(g.text, it, config)} for g in res.samples[j]]
            o["sampling"] = {
                "n": config.n_samples,
                "temperature": config.temperature,
                "top_p": config.top_p,
                "seed": seeds[j],
                "samples": ss,
                "hits": sum(s["correct"] for s in ss),
            }
        shot, ex = res.one_shot[j], examples[j]
        if shot is not None and ex is not None:
            o["one_shot"] = {
                "example_uid": ex["item_uid"],
                "text": shot.text,
                "correct": _correct(shot.text, it, config),
            }
    return out
