"""The fast backend: every pass of a planned batch in preallocated caches, with nothing computed twice.

1. One cache holds the open prompts and the shown prompts, a row each. Each format's shared prefix
   is run once, its remainders in length buckets; the gold answer and the options are scored in the
   open prompts' pass, as trees after the prompt (`engine.protocol.rows`).
2. Letter prompts and their letters, in a cache of their own, freed after.
3. The open prompts are kept aside (a copy of their columns), then open and shown generation decode
   together in one loop, finished rows dropped (`engine.protocol.lanes`).
4. Probes of the failed items: one row per item holds its kept open prompt and its one-shot prompt;
   its k beams and n samples continue the first, its one-shot answer the second, all rows in one
   loop. Items go in several rounds when their rows would not fit `KV_BUDGET_BYTES`.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.config import ProtocolConfig
from engine.prompts import Prompt
from engine.protocol import generation as gen
from engine.protocol.kvcache import packed_attention
from engine.protocol.lanes import Lane, Lanes, decode_lanes
from engine.protocol.rows import Group, fill, plan_layout
from engine.protocol.work import BatchWork, FormatOutputs, ProbeOutputs

KV_BUDGET_BYTES = 2 << 30  # keys and values of one round of probes (more items: more rounds)


class SlotBackend:
    def __init__(self, model: Any, tokenizer: Any, config: ProtocolConfig, stop_ids: list[int]) -> None:
        self.model, self.tok, self.config, self.stop_ids = model, tokenizer, config, stop_ids
        self.pad = tokenizer.pad_token_id
        self.kept: Group | None = None  # the open prompts, row i = item i
        self.open_logits: torch.Tensor | None = None  # [items, vocab] after each open prompt

    def formats(self, work: BatchWork) -> FormatOutputs:
        with packed_attention(self.model):
            return self._formats(work)

    def _formats(self, work: BatchWork) -> FormatOutputs:
        model, tok, config, pad = self.model, self.tok, self.config, self.pad
        T = config.max_new_tokens
        n = len(work.open)
        open_ids = [p.ids for p in work.open]
        open_layout = plan_layout(open_ids, work.conts)
        shown_ids = [p.ids for p in work.shown] if work.shown is not None else []
        shown_layout = plan_layout(shown_ids)
        group = Group.new(model, n + len(shown_ids), max(open_layout.columns, shown_layout.columns) + T)
        scores, open_last = fill(model, group, 0, 0, open_layout, open_ids, pad, work.conts)
        open_rows = open_layout.row_of()
        lanes = Lanes(greedy=[Lane(r, 0, open_last[i]) for i, r in enumerate(open_rows)])
        if shown_ids:
            _, shown_last = fill(model, group, n, 0, shown_layout, shown_ids, pad)
            lanes.greedy += [Lane(n + r, 0, shown_last[i]) for i, r in enumerate(shown_layout.row_of())]
        letter_scores = None
        if work.letter is not None and work.letter_conts is not None:
            letter_ids = [p.ids for p in work.letter]
            letter_layout = plan_layout(letter_ids, work.letter_conts)
            letters = Group.new(model, n, letter_layout.columns)
            letter_scores, _ = fill(model, letters, 0, 0, letter_layout, letter_ids, pad, work.letter_conts)
            del letters
        width = max(s.hi for r in open_rows for s in group.segments[r])
        self.kept = Group.new(model, n, width)
        self.kept.take_rows(open_rows, range(n), width, other=group)
        self.open_logits = open_last
        decoded = decode_lanes(model, tok, group, lanes, T, self.stop_ids)
        opens, shown = decoded.greedy[:n], decoded.greedy[n:]
        return FormatOutputs(scores, letter_scores, opens, shown if shown_ids else None)

    def probes(self, items: list[int], one_shot: list[Prompt | None], seeds: list[int]) -> ProbeOutputs:
        assert self.kept is not None, "formats() first"
        config = self.config
        k = max(config.beam_width, 0)
        n = max(config.n_samples, 0)
        lanes = k + n + 1
        width = self.kept.capacity + max([len(p.ids) for p in one_shot if p is not None], default=0)
        per_item = max(1, self.kept.cache.bytes_per_position) * (width + config.max_new_tokens * lanes)
        step = max(1, KV_BUDGET_BYTES // per_item)
        beams: list[list[tuple[gen.Generation, float]]] = []
        samples: list[list[gen.Generation]] = []
        shots: list[gen.Generation | None] = []
        with packed_attention(self.model):
            for start in range(0, len(items), step):
                part = slice(start, start + step)
                b, s, o = self._probe_round(items[part], one_shot[part], seeds[part], k, n)
                beams += b
                samples += s
                shots += o
        return ProbeOutputs(beams if k else None, samples if n else None, shots)

    def _probe_round(
        self, items: list[int], one_shot: list[Prompt | None], seeds: list[int], k: int, n: int
    ) -> tuple[list, list, list]:
        """Beams, samples and one-shot answers of `items`, one row per item, decoded in one loop."""
        model, tok, config, kept, open_logits = self.model, self.tok, self.config, self.kept, self.open_logits
        assert kept is not None and open_logits is not None
        T = config.max_new_tokens
        asked = [j for j, p in enumerate(one_shot) if p is not None]
        shot_ids = [one_shot[j].ids for j in asked]  # type: ignore[union-attr]
        shot_layout = plan_layout(shot_ids)
        # rows: items with a one-shot prompt in the order its layout wants, then the others (if they have lanes)
        order = [asked[j] for j in shot_layout.order]
        if k or n:
            order += [j for j in range(len(items)) if j not in set(asked)]
        row = {j: r for r, j in enumerate(order)}
        per_row = k + n + (1 if asked else 0)
        group = Group.new(model, len(order), kept.capacity + shot_layout.columns + T * per_row)
        group.take_rows([items[j] for j in order], range(len(order)), kept.capacity, other=kept)
        lanes = Lanes(uniforms=gen.uniforms(seeds, n, T) if n else None)
        if asked:
            _, shot_last = fill(model, group, 0, kept.capacity, shot_layout, shot_ids, self.pad)
            lanes.greedy = [Lane(row[j], 1, shot_last[a]) for a, j in enumerate(asked)]
        first = {j: open_logits[items[j]] for j in range(len(items))}
        lanes.sample = [Lane(row[j], 0, first[j]) for j in range(len(items)) for _ in range(n)]
        lanes.beams = [[Lane(row[j], 0, first[j]) for _ in range(k)] for j in range(len(items))] if k else []
        if not order:
            return [], [], [None] * len(items)
        decoded = decode_lanes(model, tok, group, lanes, T, self.stop_ids, config.temperature, config.top_p)
        shots: list[gen.Generation | None] = [None] * len(items)
        for j, g in zip(asked, decoded.greedy):
            shots[j] = g
        samples = [decoded.sample[j * n : (j + 1) * n] for j in range(len(items))] if n else []
        return decoded.beams, samples, shots
