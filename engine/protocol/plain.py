"""The plain backend: a transformers DynamicCache per pass, every row decoded until its batch stops.

Works for any causal LM (sliding-window and hybrid caches included). One pass over the open prompts
serves open generation, the gold trace and the cloze options (scored from its cache; full forwards
where the cache rows cannot be selected); shown, letter and one-shot prompts get a pass each; beams
and samples continue copies of the open prompts' cache. It is also the reference the fast backend
(`engine.protocol.fast`) is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.config import ProtocolConfig
from engine.prompts import Prompt
from engine.protocol import generation as gen
from engine.protocol.scoring import PrefixState, cache_is_selectable, fork_state, prefix_pass, score
from engine.protocol.work import BatchWork, FormatOutputs, ProbeOutputs


class PlainBackend:
    def __init__(self, model: Any, tokenizer: Any, config: ProtocolConfig, stop_ids: list[int]) -> None:
        self.model, self.tok, self.config, self.stop_ids = model, tokenizer, config, stop_ids
        self.pad = tokenizer.pad_token_id

    def formats(self, work: BatchWork) -> FormatOutputs:
        model, tok, config, pad = self.model, self.tok, self.config, self.pad
        self.open_prompts = work.open
        self.state = prefix_pass(model, [p.ids for p in work.open], pad)
        rows = [(i, c) for i, conts in enumerate(work.conts) for c in conts]
        flat = iter(score(model, self.state, [p.ids for p in work.open], rows, pad))
        scores = [[next(flat) for _ in conts] for conts in work.conts]
        opens = gen.greedy_decode(
            model, tok, self._open_rows(range(len(work.open))), config.max_new_tokens, self.stop_ids
        )
        shown = None
        if work.shown is not None:
            state = prefix_pass(model, [p.ids for p in work.shown], pad)
            shown = gen.greedy_decode(model, tok, state, config.max_new_tokens, self.stop_ids)
        letter_scores = None
        if work.letter is not None and work.letter_conts is not None:
            lids = [p.ids for p in work.letter]
            lstate = prefix_pass(model, lids, pad)
            lrows = [(i, c) for i, conts in enumerate(work.letter_conts) for c in conts]
            lflat = iter(score(model, lstate, lids, lrows, pad))
            letter_scores = [[next(lflat) for _ in conts] for conts in work.letter_conts]
        return FormatOutputs(scores, letter_scores, opens, shown)

    def _open_rows(self, rows: Sequence[int]) -> PrefixState:
        """A decodable state for open prompts `rows` (repeats allowed) that leaves the open state a pure
        prefix: cache rows copied when the cache layout allows it, else a fresh prompt pass."""
        if cache_is_selectable(self.state.cache):
            return fork_state(self.state, list(rows))
        return prefix_pass(self.model, [self.open_prompts[r].ids for r in rows], self.pad)

    def probes(self, items: list[int], one_shot: list[Prompt | None], seeds: list[int]) -> ProbeOutputs:
        model, tok, config = self.model, self.tok, self.config
        T = config.max_new_tokens
        beams = samples = None
        if config.beam_width >= 1:
            beams = gen.beam_decode(model, tok, self._open_rows(items), config.beam_width, T, self.stop_ids)
        if config.n_samples >= 1:
            n = config.n_samples
            u = gen.uniforms(seeds, n, T)
            sub = self._open_rows([i for i in items for _ in range(n)])
            flat = gen.sample_decode(model, tok, sub, T, self.stop_ids, config.temperature, config.top_p, u)
            samples = [flat[k * n : (k + 1) * n] for k in range(len(items))]
        shots: list[gen.Generation | None] = [None] * len(items)
        asked = [k for k, p in enumerate(one_shot) if p is not None]
        if asked:
            state = prefix_pass(model, [one_shot[k].ids for k in asked], self.pad)  # type: ignore[union-attr]
            for k, g in zip(asked, gen.greedy_decode(model, tok, state, T, self.stop_ids)):
                shots[k] = g
        return ProbeOutputs(beams, samples, shots)
