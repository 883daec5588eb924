"""Decoding many continuations at once in a `Group`: greedy, sampled and beam lanes in one loop.

A lane continues one prompt (a segment of a row). Lanes of the same row share the row's prompt
keys and values: each lane has a slot, its token of step t goes to column G + t * S + slot (G: the
first column after every prompt, S: the most lanes of a row), and it sees only its prompt and its own
earlier columns. Every step feeds all live lanes in one forward pass ([rows, queries]). Beams copy
nothing: a beam that continues another takes the other's visible columns (a boolean row), not its
cache. A lane that stops is no longer fed; a row whose lanes have all stopped is dropped (a live row
from the end moves into its place, its keys and values copied once), so finished rows cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.protocol.generation import BeamSet, Generation, beam_candidates, finish, sampler, stop_reason
from engine.protocol.kvcache import packed_attention
from engine.protocol.rows import Group, run_pass


@dataclass
class Lane:
    """A continuation of segment `segment` of row `row`, starting from `logits` (after its prompt)."""

    row: int
    segment: int
    logits: torch.Tensor  # [vocab]


@dataclass
class Lanes:
    """What to decode: greedy lanes, sampled lanes (with their uniforms), beam sets (k lanes each, one prompt)."""

    greedy: list[Lane] = field(default_factory=list)
    sample: list[Lane] = field(default_factory=list)
    uniforms: torch.Tensor | None = None  # [len(sample), max_new_tokens]
    beams: list[list[Lane]] = field(default_factory=list)

    def all(self) -> list[Lane]:
        return self.greedy + self.sample + [lane for bs in self.beams for lane in bs]

    def slots(self) -> int:
        """The most lanes any row has (columns per step)."""
        per_row: dict[int, int] = {}
        for lane in self.all():
            per_row[lane.row] = per_row.get(lane.row, 0) + 1
        return max(per_row.values(), default=0)


@dataclass
class Decoded:
    greedy: list[Generation]
    sample: list[Generation]
    beams: list[list[tuple[Generation, float]]]


def decode_lanes(
    model: Any,
    tokenizer: Any,
    group: Group,
    lanes: Lanes,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> Decoded:
    """Decode every lane (each row 0..R-1 of `group` must have at least one; the group needs
    `group.end + max_new_tokens * lanes.slots()` columns)."""
    with packed_attention(model):
        return _Decoder(model, tokenizer, group, lanes, max_new_tokens, stop_ids, temperature, top_p).run()


class _Decoder:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        group: Group,
        lanes: Lanes,
        max_new_tokens: int,
        stop_ids: Sequence[int],
        temperature: float,
        top_p: float,
    ) -> None:
        self.model, self.tok, self.group, self.lanes = model, tokenizer, group, lanes
        self.T = max_new_tokens
        self.stops = set(stop_ids)
        self.pad_id = tokenizer.pad_token_id
        self.sample_fn = sampler(temperature, top_p)
        device = self.device = group.valid.device
        every = lanes.all()
        self.n = n = len(every)
        rows_used = sorted({lane.row for lane in every})
        if rows_used != list(range(group.valid.shape[0])):
            raise ValueError("every row of the group needs a lane, and lanes only rows of the group")
        self.S = lanes.slots()
        self.G = group.end
        if group.capacity < self.G + self.T * self.S:
            raise ValueError(f"group has {group.capacity} columns, decoding needs {self.G + self.T * self.S}")
        self.row_of = [lane.row for lane in every]
        taken: dict[int, int] = {}
        self.slot = []
        for lane in every:
            self.slot.append(taken.get(lane.row, 0))
            taken[lane.row] = self.slot[-1] + 1
        segs = [group.segments[lane.row][lane.segment] for lane in every]
        cols = torch.arange(group.capacity, device=device)
        lo = torch.tensor([s.lo for s in segs], device=device)[:, None]
        hi = torch.tensor([s.hi for s in segs], device=device)[:, None]
        rows = torch.tensor(self.row_of, device=device)
        self.seen = group.valid[rows] & (cols[None, :] >= lo) & (cols[None, :] < hi)  # [lanes, capacity]
        self.pos0 = [s.length for s in segs]
        self.logits = torch.stack([lane.logits for lane in every]).float()  # by lane
        self.ids: list[list[int]] = [[] for _ in range(n)]
        self.lps: list[list[float]] = [[] for _ in range(n)]
        self.reason: list[str | None] = [None] * n
        self.alive = [True] * n
        g, s = len(lanes.greedy), len(lanes.sample)
        self.greedy_lanes = list(range(g))
        self.sample_lanes = list(range(g, g + s))
        k = len(lanes.beams[0]) if lanes.beams else 0
        self.beam_lanes = [list(range(g + s + b * k, g + s + (b + 1) * k)) for b in range(len(lanes.beams))]
        self.sets = [BeamSet.start(k) for _ in lanes.beams]
        self.k = k

    def run(self) -> Decoded:
        feed = [self.pad_id] * self.n
        for step in range(self.T):
            last = step == self.T - 1
            self._greedy(feed)
            self._sample(feed, step)
            self._beams(feed, step, last)
            if last:
                break
            for lane in self.greedy_lanes + self.sample_lanes:
                self.alive[lane] = self.alive[lane] and self.reason[lane] is None
            for b, lanes in enumerate(self.beam_lanes):
                for lane in lanes:
                    self.alive[lane] = not self.sets[b].done
            if not any(self.alive):
                break
            self._forward(feed, step)
        return Decoded(
            greedy=[
                finish(self.tok, self.ids[i], self.reason[i] or "max_new_tokens", self.lps[i])
                for i in self.greedy_lanes
            ],
            sample=[finish(self.tok, self.ids[i], self.reason[i] or "max_new_tokens") for i in self.sample_lanes],
            beams=[st.result(self.tok, self.stops) for st in self.sets],
        )

    def _greedy(self, feed: list[int]) -> None:
        live = [i for i in self.greedy_lanes if self.alive[i]]
        if not live:
            return
        lg = self.logits[torch.tensor(live, device=self.device)]
        nxt = lg.argmax(-1)
        lp = (lg.gather(-1, nxt[:, None])[:, 0] - torch.logsumexp(lg, dim=-1)).tolist()
        for i, t, p in zip(live, nxt.tolist(), lp):
            self.ids[i].append(int(t))
            self.lps[i].append(float(p))
            self.reason[i] = stop_reason(self.tok, self.ids[i], self.stops)
            feed[i] = int(t)

    def _sample(self, feed: list[int], step: int) -> None:
        live = [(j, i) for j, i in enumerate(self.sample_lanes) if self.alive[i]]
        if not live:
            return
        assert self.lanes.uniforms is not None
        u = self.lanes.uniforms[torch.tensor([j for j, _ in live]), step]
        picks = self.sample_fn(self.logits[torch.tensor([i for _, i in live], device=self.device)], u)
        for (_, i), t in zip(live, picks.tolist()):
            self.ids[i].append(int(t))
            self.reason[i] = stop_reason(self.tok, self.ids[i], self.stops)
            feed[i] = int(t)

    def _beams(self, feed: list[int], step: int, last: bool) -> None:
        live = [b for b, st in enumerate(self.sets) if not st.done]
        if not live:
            return
        k = self.k
        at = torch.tensor([i for b in live for i in self.beam_lanes[b]], device=self.device)
        vocab = self.logits.shape[-1]
        scores = torch.tensor([self.sets[b].scores for b in live], device=self.device)
        vals, idx = beam_candidates(scores, self.logits[at].view(len(live), k, vocab), k)
        src, dst = [], []
        for b, v, i in zip(live, vals.tolist(), idx.tolist()):
            parents = self.sets[b].step(v, i, vocab, self.tok, self.stops, self.pad_id, last)
            for j, p in enumerate(parents):
                lane = self.beam_lanes[b][j]
                feed[lane] = self.sets[b].tokens[j][-1]
                if p != j:
                    src.append(self.beam_lanes[b][p])
                    dst.append(lane)
        if src:  # a beam continuing another sees what the other saw (no cache is copied)
            self.seen[torch.tensor(dst, device=self.device)] = self.seen[torch.tensor(src, device=self.device)]

    def _forward(self, feed: list[int], step: int) -> None:
        """Feed this step's token of every live lane; their logits become the next step's."""
        self._compact(step)
        device, S = self.device, self.S
        by_row: dict[int, list[int]] = {}
        for i in range(self.n):
            if self.alive[i]:
                by_row.setdefault(self.row_of[i], []).append(i)
        R = len(by_row)
        Q = max(len(v) for v in by_row.values())
        base = self.G + step * S
        ids, pos, cols, who = [], [], [], []
        for r in range(R):
            lanes = sorted(by_row[r], key=lambda i: self.slot[i])
            free = sorted(set(range(S)) - {self.slot[i] for i in lanes})[: Q - len(lanes)]
            ids.append([feed[i] for i in lanes] + [self.pad_id] * len(free))
            pos.append([self.pos0[i] + step for i in lanes] + [0] * len(free))
            cols.append([base + self.slot[i] for i in lanes] + [base + f for f in free])  # padding: a free slot
            who.append(lanes + [-1] * len(free))
        who_t = torch.tensor(who, device=device)
        cols_t = torch.tensor(cols, device=device)
        real = who_t >= 0
        live = who_t[real]
        self.seen[live, cols_t[real]] = True
        read = max(max(c) for c in cols) + 1
        allowed = torch.zeros((R, Q, read), dtype=torch.bool, device=device)
        allowed[real] = self.seen[live, :read]
        pad_r, pad_q = (~real).nonzero(as_tuple=True)
        allowed[pad_r, pad_q, cols_t[pad_r, pad_q]] = True  # padding sees itself only
        self.group.cache.step(cols_t)
        ids_t = torch.tensor(ids, dtype=torch.long, device=device)
        pos_t = torch.tensor(pos, dtype=torch.long, device=device)
        logits = run_pass(self.model, self.group.cache, ids_t, pos_t, allowed, real, 0, len(live))
        self.logits[live] = logits[real]

    def _compact(self, step: int) -> None:
        """Move live rows into the first rows, over rows whose lanes have all stopped."""
        live_rows = sorted({self.row_of[i] for i in range(self.n) if self.alive[i]})
        R = len(live_rows)
        holes = [r for r in range(R) if r not in set(live_rows)]
        movers = [r for r in live_rows if r >= R]
        if not movers:
            return
        src = torch.tensor(movers, device=self.device)
        dst = torch.tensor(holes, device=self.device)
        self.group.cache.copy_rows(src, dst, self.G + step * self.S)
        moved = dict(zip(movers, holes))
        for i in range(self.n):
            if self.alive[i] and self.row_of[i] in moved:
                self.row_of[i] = moved[self.row_of[i]]
