"""Generation: greedy decoding from a shared prompt pass, and the beam / sampling probes.

Stop rules, the same for every format: an EOS or chat end-of-turn token, or a newline once some
answer text has been produced (leading newlines are skipped), or the new-token bound. The kept text
is what precedes the stop, stripped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engine.protocol.scoring import PrefixState, fork_state, forward, select_cache_rows

# end-of-turn markers of common chat templates; the ones a tokenizer knows become stop tokens
END_OF_TURN = (
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "</s>",
    "<|eom_id|>",
)


@dataclass
class Generation:
    """One generated answer: kept text, all new token ids, why it stopped, the answer's tokens and
    their log-probabilities (greedy only)."""

    text: str
    new_ids: list[int]
    stop: str  # 'eos' | 'stop_string' | 'max_new_tokens'
    answer_ids: list[int]
    answer_logprobs: list[float]

    @property
    def answer_logprob(self) -> float:
        return float(sum(self.answer_logprobs))


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """EOS ids of tokenizer and generation config, plus the chat end-of-turn tokens the vocabulary has."""
    ids: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(int(x) for x in source)
    specials = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    for tok in END_OF_TURN:
        if tok in specials:
            tid = tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id:
                ids.add(tid)
    return sorted(ids)


def cut_answer(text: str) -> tuple[str, bool]:
    """The answer part of raw generated text and whether a newline ended it."""
    body = text.lstrip()
    nl = body.find("\n")
    if nl >= 0:
        return body[:nl].strip(), True
    return body.strip(), False


def _answer_length(tokenizer: Any, body_ids: list[int], text: str) -> int:
    """The fewest leading tokens whose decoded answer part is already `text` (stop and trailing
    whitespace tokens excluded)."""
    if not text:
        return 0
    for n in range(1, len(body_ids) + 1):
        if cut_answer(tokenizer.decode(body_ids[:n], skip_special_tokens=True))[0] == text:
            return n
    return len(body_ids)


def finish(tokenizer: Any, ids: list[int], stop: str, logprobs: list[float] | None = None) -> Generation:
    """Build a Generation from new token ids and the reason they ended."""
    body_ids = ids[:-1] if stop == "eos" else ids
    raw = tokenizer.decode(body_ids, skip_special_tokens=True)
    text, newline = cut_answer(raw)
    if stop != "eos" and newline:
        stop = "stop_string"
    n = _answer_length(tokenizer, body_ids, text)
    lps = list(logprobs[:n]) if logprobs is not None else []
    return Generation(text=text, new_ids=list(ids), stop=stop, answer_ids=list(ids[:n]), answer_logprobs=lps)


Chooser = Callable[[torch.Tensor], torch.Tensor]


def greedy_decode(
    model: Any, tokenizer: Any, state: PrefixState, max_new_tokens: int, stop_ids: Sequence[int]
) -> list[Generation]:
    """Greedy decoding continuing from `state` (its cache is extended in place)."""
    return decode(model, tokenizer, state, max_new_tokens, stop_ids, lambda logits: logits.argmax(-1))


def sampler(temperature: float, top_p: float, generator: torch.Generator) -> Chooser:
    """Sampling at `temperature` from the smallest top-probability set holding `top_p` (no top-k)."""

    def choose(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits / temperature, dim=-1)
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            beyond = (sorted_p.cumsum(-1) - sorted_p) > top_p  # tokens entirely outside the nucleus
            sorted_p = sorted_p.masked_fill(beyond, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return choose


def decode(
    model: Any, tokenizer: Any, state: PrefixState, max_new_tokens: int, stop_ids: Sequence[int], choose: Chooser
) -> list[Generation]:
    """Token-by-token decoding from `state` with `choose(logits) -> next ids` (cache extended in place)."""
    batch = state.last_logits.shape[0]
    device = state.last_logits.device
    stops = set(stop_ids)
    pad_id = tokenizer.pad_token_id
    new_ids: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    reason: list[str | None] = [None] * batch
    logits, mask, pos, cache = state.last_logits, state.mask, state.lengths.clone(), state.cache
    for step in range(max_new_tokens):
        nxt = choose(logits)
        lps = logits.gather(-1, nxt[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
        for b in range(batch):
            if reason[b] is not None:
                continue
            tok = int(nxt[b])
            new_ids[b].append(tok)
            logprobs[b].append(float(lps[b]))
            if tok in stops:
                reason[b] = "eos"
            elif "\n" in tokenizer.decode(new_ids[b], skip_special_tokens=True).lstrip():
                reason[b] = "stop_string"
        if all(r is not None for r in reason) or step == max_new_tokens - 1:
            break
        feed = torch.tensor(
            [int(nxt[b]) if reason[b] is None else pad_id for b in range(batch)], dtype=torch.long, device=device
        )
        mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
        out = forward(model, cache, input_ids=feed[:, None], attention_mask=mask, position_ids=pos[:, None])
        pos = pos + 1
        logits = out.logits[:, -1, :].float()
    return [finish(tokenizer, new_ids[b], reason[b] or "max_new_tokens", logprobs[b]) for b in range(batch)]


def beam_decode(
    model: Any, tokenizer: Any, state: PrefixState, k: int, max_new_tokens: int, stop_ids: Sequence[int]
) -> list[list[tuple[Generation, float]]]:
    """Beam search of width k from `state` (one row per prompt), with the greedy stop rules.

    Scores are summed log-probabilities divided by the hypothesis length (stop token included), as
    transformers' beam search with length_penalty 1.0; a stop candidate counts only within the top k
    of its step, and a prompt is done once k hypotheses have finished (early stopping).
    Returns the k best finished hypotheses per prompt, best first, each with its score.
    """
    batch = state.last_logits.shape[0]
    device = state.last_logits.device
    stops = set(stop_ids)
    pad_id = tokenizer.pad_token_id
    rows = [b for b in range(batch) for _ in range(k)]
    sub = fork_state(state, rows)
    cache, mask, pos, logits = sub.cache, sub.mask, sub.lengths.clone(), sub.last_logits
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live beam per prompt at the start
    tokens: list[list[list[int]]] = [[[] for _ in range(k)] for _ in range(batch)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    for step in range(max_new_tokens):
        vocab = logits.shape[-1]
        cand = (scores[:, :, None] + torch.log_softmax(logits, dim=-1).view(batch, k, vocab)).view(batch, -1)
        vals, idx = cand.topk(2 * k, dim=-1)
        src, feed, new_scores, new_tokens = [], [], [], []
        last = step == max_new_tokens - 1
        for b in range(batch):
            chosen: list[tuple[int, int, float]] = []
            if not done[b]:
                for rank, (v, i) in enumerate(zip(vals[b].tolist(), idx[b].tolist())):
                    if v == float("-inf") or len(chosen) == k:
                        break
                    beam, tok = divmod(i, vocab)
                    seq = tokens[b][beam] + [tok]
                    ends = tok in stops or "\n" in tokenizer.decode(seq, skip_special_tokens=True).lstrip()
                    if ends or last:
                        if rank < k:
                            finished[b].append((v / len(seq), seq))
                    else:
                        chosen.append((beam, tok, v))
                done[b] = len(finished[b]) >= k or last
            chosen += [(0, pad_id, float("-inf"))] * (k - len(chosen))
            for beam, tok, v in chosen:
                src.append(b * k + beam)
                feed.append(tok)
                new_scores.append(v)
                new_tokens.append(tokens[b][beam] + [tok])
        if all(done):
            break
        scores = torch.tensor(new_scores, device=device).view(batch, k)
        tokens = [new_tokens[b * k : (b + 1) * k] for b in range(batch)]
        src_t = torch.tensor(src, dtype=torch.long, device=device)
        cache = select_cache_rows(cache, src_t)
        mask = torch.cat([mask[src_t], torch.ones((batch * k, 1), dtype=mask.dtype, device=device)], dim=1)
        pos = pos[src_t]
        out = forward(
            model,
            cache,
            input_ids=torch.tensor(feed, device=device)[:, None],
            attention_mask=mask,
            position_ids=pos[:, None],
        )
        pos = pos + 1
        logits = out.logits[:, -1, :].float()
    result = []
    for b in range(batch):
        best = sorted(finished[b], key=lambda h: -h[0])[:k]
        result.append([(finish(tokenizer, seq, _stop_of(seq, stops)), float(score)) for score, seq in best])
    return result


def _stop_of(ids: list[int], stops: set[int]) -> str:
    return "eos" if ids and ids[-1] in stops else "max_new_tokens"
