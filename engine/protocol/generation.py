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


Chooser = Callable[[torch.Tensor, int], torch.Tensor]  # (logits [rows, vocab], step) -> next ids [rows]


def stop_reason(tokenizer: Any, ids: Sequence[int], stops: set[int]) -> str | None:
    """Why decoding stops after `ids` (the new tokens so far): 'eos', 'stop_string' (a newline after
    answer text), or None to go on."""
    if ids and ids[-1] in stops:
        return "eos"
    if "\n" in tokenizer.decode(list(ids), skip_special_tokens=True).lstrip():
        return "stop_string"
    return None


def greedy(logits: torch.Tensor, step: int) -> torch.Tensor:
    return logits.argmax(-1)


def sampler(temperature: float, top_p: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Sampling at `temperature` from the smallest top-probability set holding `top_p` (no top-k), by
    inverse CDF: the token is the first whose cumulative probability (float64) exceeds u x the total,
    for one uniform u in [0, 1) per row. The distribution is torch.multinomial's; the cost is a
    softmax, block sums and one block's cumulative sum (multinomial over a 49k vocabulary was ~5x
    slower on CPU), and the draws are the caller's, so a row's tokens do not depend on its batch."""

    def sample(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        order = None
        if top_p < 1.0:
            probs, order = probs.sort(dim=-1, descending=True)
            beyond = (probs.cumsum(-1) - probs) > top_p  # tokens entirely outside the nucleus
            probs = probs.masked_fill(beyond, 0.0)
        pick = inverse_cdf(probs, u)
        return pick if order is None else order.gather(-1, pick[:, None])[:, 0]

    return sample


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """For each row of `probs` [rows, vocab] (unnormalised, >= 0), the first index whose cumulative sum
    exceeds u x the row's total. The block holding it is found from float32 block sums accumulated in
    float64, the index from that block's float64 cumulative sum; an index of probability 0 is never
    returned (when rounding puts the crossing past the block's end, its last positive index is)."""
    rows, vocab = probs.shape
    block = min(block, vocab)
    nb = -(-vocab // block)
    if nb * block != vocab:
        probs = torch.nn.functional.pad(probs, (0, nb * block - vocab))
    blocks = probs.view(rows, nb, block)
    sums = blocks.sum(-1).double().cumsum(-1)  # [rows, blocks]
    target = u.to(device=probs.device, dtype=torch.float64) * sums[:, -1]
    blk = torch.searchsorted(sums, target[:, None], right=True)[:, 0].clamp_(max=nb - 1)
    before = torch.where(blk > 0, sums.gather(-1, (blk - 1).clamp(min=0)[:, None])[:, 0], 0.0)
    inner = blocks[torch.arange(rows, device=probs.device), blk].double()  # [rows, block]
    idx = torch.searchsorted(inner.cumsum(-1), (target - before)[:, None], right=True)[:, 0]
    last = block - 1 - (inner.flip(-1) > 0).int().argmax(-1)
    return blk * block + torch.minimum(idx, last)


def uniforms(seeds: Sequence[int], n: int, steps: int) -> torch.Tensor:
    """The uniforms of the n samples of each seed, [len(seeds) * n, steps]: sample j of seed s draws
    its token at step t with row s * n + j, column t (drawn on the CPU in float64, so every device and
    every batch composition gets the same numbers; u < 1 exactly)."""
    return torch.cat(
        [torch.rand((n, steps), generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in seeds]
    )


def decode(
    model: Any, tokenizer: Any, state: PrefixState, max_new_tokens: int, stop_ids: Sequence[int], choose: Chooser
) -> list[Generation]:
    """Token-by-token decoding from `state` with `choose(logits, step) -> next ids` (cache extended in place;
    finished rows are fed padding until every row has stopped)."""
    batch = state.last_logits.shape[0]
    device = state.last_logits.device
    stops = set(stop_ids)
    pad_id = tokenizer.pad_token_id
    new_ids: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    reason: list[str | None] = [None] * batch
    logits, mask, pos, cache = state.last_logits, state.mask, state.lengths.clone(), state.cache
    for step in range(max_new_tokens):
        chosen = choose(logits, step)
        lps = (logits.gather(-1, chosen[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)).tolist()
        nxt = chosen.tolist()  # one copy from the device per step, not one per row
        for b in range(batch):
            if reason[b] is not None:
                continue
            new_ids[b].append(nxt[b])
            logprobs[b].append(lps[b])
            reason[b] = stop_reason(tokenizer, new_ids[b], stops)
        if all(r is not None for r in reason) or step == max_new_tokens - 1:
            break
        feed = torch.tensor(
            [nxt[b] if reason[b] is None else pad_id for b in range(batch)], dtype=torch.long, device=device
        )
        mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
        out = forward(model, cache, input_ids=feed[:, None], attention_mask=mask, position_ids=pos[:, None])
        pos = pos + 1
        logits = out.logits[:, -1, :].float()
    return [finish(tokenizer, new_ids[b], reason[b] or "max_new_tokens", logprobs[b]) for b in range(batch)]


def greedy_decode(
    model: Any, tokenizer: Any, state: PrefixState, max_new_tokens: int, stop_ids: Sequence[int]
) -> list[Generation]:
    """Greedy decoding continuing from `state` (its cache is extended in place)."""
    return decode(model, tokenizer, state, max_new_tokens, stop_ids, greedy)


def sample_decode(
    model: Any,
    tokenizer: Any,
    state: PrefixState,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    temperature: float,
    top_p: float,
    u: torch.Tensor,
) -> list[Generation]:
    """Sampling from `state`, row r drawing its token at step t with uniform u[r, t]."""
    sample = sampler(temperature, top_p)
    return decode(model, tokenizer, state, max_new_tokens, stop_ids, lambda logits, step: sample(logits, u[:, step]))


@dataclass
class BeamSet:
    """The k beams of one prompt: live scores and tokens, finished hypotheses (score, ids)."""

    k: int
    scores: list[float]
    tokens: list[list[int]]
    finished: list[tuple[float, list[int]]]
    done: bool = False

    @classmethod
    def start(cls, k: int) -> BeamSet:
        return cls(k, [0.0] + [float("-inf")] * (k - 1), [[] for _ in range(k)], [])

    def step(
        self, vals: list[float], idx: list[int], vocab: int, tokenizer: Any, stops: set[int], pad_id: int, last: bool
    ) -> list[int]:
        """Advance with the top-2k candidates (values and flat beam*vocab indices, best first); returns
        the parent beam of each of the k new beams (their tokens and scores are updated)."""
        chosen: list[tuple[int, int, float]] = []
        if not self.done:
            for rank, (v, i) in enumerate(zip(vals, idx)):
                if v == float("-inf") or len(chosen) == self.k:
                    break
                beam, tok = divmod(i, vocab)
                seq = [*self.tokens[beam], tok]
                if stop_reason(tokenizer, seq, stops) is not None or last:
                    if rank < self.k:  # a stop counts only within the top k of its step
                        self.finished.append((v / len(seq), seq))
                else:
                    chosen.append((beam, tok, v))
            self.done = len(self.finished) >= self.k or last
        chosen += [(0, pad_id, float("-inf"))] * (self.k - len(chosen))
        self.scores = [v for _, _, v in chosen]
        self.tokens = [[*self.tokens[beam], tok] for beam, tok, _ in chosen]
        return [beam for beam, _, _ in chosen]

    def result(self, tokenizer: Any, stops: set[int]) -> list[tuple[Generation, float]]:
        """The k best finished hypotheses, best first, each with its score."""
        best = sorted(self.finished, key=lambda h: -h[0])[: self.k]
        return [(finish(tokenizer, seq, _stop_of(seq, stops)), float(score)) for score, seq in best]


def beam_candidates(scores: torch.Tensor, logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top 2k of beam score + log-softmax over (beam, token) for each prompt: scores [n, k], logits [n, k, vocab]."""
    n, _, vocab = logits.shape
    cand = (scores[:, :, None] + torch.log_softmax(logits, dim=-1)).view(n, k * vocab)
    return cand.topk(2 * k, dim=-1)


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
    sub = fork_state(state, [b for b in range(batch) for _ in range(k)])
    cache, mask, pos, logits = sub.cache, sub.mask, sub.lengths.clone(), sub.last_logits
    sets = [BeamSet.start(k) for _ in range(batch)]
    for step in range(max_new_tokens):
        vocab = logits.shape[-1]
        scores = torch.tensor([s.scores for s in sets], device=device)
        vals, idx = beam_candidates(scores, logits.view(batch, k, vocab), k)
        last = step == max_new_tokens - 1
        parents = [
            s.step(v, i, vocab, tokenizer, stops, pad_id, last) for s, v, i in zip(sets, vals.tolist(), idx.tolist())
        ]
        if all(s.done for s in sets):
            break
        src_t = torch.tensor([b * k + p for b, ps in enumerate(parents) for p in ps], dtype=torch.long, device=device)
        feed = torch.tensor([s.tokens[j][-1] for s in sets for j in range(k)], device=device)
        cache = select_cache_rows(cache, src_t)
        mask = torch.cat([mask[src_t], torch.ones((batch * k, 1), dtype=mask.dtype, device=device)], dim=1)
        pos = pos[src_t]
        out = forward(model, cache, input_ids=feed[:, None], attention_mask=mask, position_ids=pos[:, None])
        pos = pos + 1
        logits = out.logits[:, -1, :].float()
    return [s.result(tokenizer, stops) for s in sets]


def _stop_of(ids: list[int], stops: set[int]) -> str:
    return "eos" if ids and ids[-1] in stops else "max_new_tokens"
