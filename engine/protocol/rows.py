"""Prompts in the rows of a `SlotCache`: shared prefix once, length buckets, continuations as trees.

A group of prompts (one format of one planned batch) is laid out so that little is computed twice
or for padding:

* the longest token prefix all of them share (the system turn and the instruction of the template)
  is run once, as a batch of one, and its keys/values copied into every row;
* the rest of each prompt is right-aligned at the end of its *bucket*: rows are ordered by the
  length they still need and cut into buckets so that padded tokens plus a fixed cost per pass are
  fewest (a function of the lengths only, so a planned batch always gets the same passes); the gap
  between the prefix and a shorter remainder is masked out and positions skip it;
* continuations to score after a prompt (MC options, the gold answer, letters) are fed in the same
  pass, after the prompt, as a tree: each continuation sees the prompt and its own earlier tokens
  only, at the positions it would have as the prompt's continuation. Logits are computed for the
  prompt's last position and the tree only.

A row can hold several prompts (segments) side by side, each seeing only its own columns (a probe
row holds the open prompt and the one-shot prompt of one item). `METER`, when a benchmark sets it,
counts real and computed tokens of every pass of the fast backend.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.protocol.kvcache import SlotCache, attention_mask_4d
from engine.protocol.lens import LayerCapture
from engine.protocol.scoring import TokenScores, forward, token_scores

# a pass costs about this many padded tokens on top of its tokens (per-pass overhead)
PASS_COST_TOKENS = 64


@dataclass
class Meter:
    """Tokens, attention reads and time of the fast backend's forward passes, real and as computed."""

    passes: int = 0
    real_tokens: int = 0  # prompt, tree and live decoding tokens
    computed_tokens: int = 0  # real + padding
    real_key_reads: int = 0  # sum over real query tokens of the key columns they see (per layer)
    computed_key_reads: int = 0  # query tokens x key columns the attention computes
    real_logit_rows: int = 0  # positions whose logits are used
    computed_logit_rows: int = 0
    forward_s: float = 0.0  # wall time inside the passes
    forward_cpu_s: float = 0.0  # process CPU time inside the passes
    shapes: list[tuple[int, int]] = field(default_factory=list)  # per pass: (computed tokens, logit rows)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


METER: Meter | None = None

# shared prefixes' keys and values by (model, first column, tokens), kept within `shared_prefixes` (least recently used out)
PREFIXES: OrderedDict[tuple[int, int, tuple[int, ...]], list[tuple[torch.Tensor, torch.Tensor]]] | None = None
PREFIXES_KEPT = 32


@contextlib.contextmanager
def shared_prefixes() -> Iterator[None]:
    """Within the block, a shared prefix is run once and its keys and values reused by every later
    group starting with the same tokens (nested blocks share the outer store). The model's weights
    must not change inside the block."""
    global PREFIXES
    if PREFIXES is not None:
        yield
        return
    PREFIXES = OrderedDict()
    try:
        yield
    finally:
        PREFIXES = None


@contextlib.contextmanager
def metered() -> Iterator[Meter]:
    """Count the fast backend's work inside the block."""
    global METER
    METER = Meter()
    try:
        yield METER
    finally:
        METER = None


def run_pass(
    model: Any,
    cache: Any,
    ids: torch.Tensor,
    pos: torch.Tensor,
    allowed: torch.Tensor,
    real: torch.Tensor,
    logits_to_keep: int,
    real_logit_rows: int,
) -> torch.Tensor:
    """One forward pass of the fast backend: `ids` and `pos` [rows, queries], `allowed` [rows, queries,
    keys] (which cache columns each query sees), `real` [rows, queries] (which queries are not
    padding). Returns float32 logits of the last `logits_to_keep` queries (0: all)."""
    t0, c0 = time.perf_counter(), time.process_time()
    q = ids.shape[1]
    # the last k positions as an index (a contiguous copy of those hidden states): a sliced view
    # would make the output layer a batched matmul that reads its weight once per row
    keep: int | torch.Tensor = logits_to_keep
    if 0 < logits_to_keep < q and ids.shape[0] > 1:
        keep = torch.arange(q - logits_to_keep, q, device=ids.device)
    out = forward(
        model,
        cache,
        input_ids=ids,
        attention_mask=attention_mask_4d(allowed, model),
        position_ids=pos,
        logits_to_keep=keep,
    )
    logits = out.logits.float()
    if METER is not None:
        if logits.is_cuda:  # else the clock reads how long the kernels took to queue
            torch.cuda.synchronize(logits.device)
        m = METER
        m.forward_s += time.perf_counter() - t0
        m.forward_cpu_s += time.process_time() - c0
        tokens, logit_rows = real.numel(), logits.shape[0] * logits.shape[1]
        m.passes += 1
        m.real_tokens += int(real.sum())
        m.computed_tokens += tokens
        m.real_key_reads += int(allowed[real].sum())
        m.computed_key_reads += allowed.numel()
        m.computed_logit_rows += logit_rows
        m.real_logit_rows += real_logit_rows
        m.shapes.append((tokens, logit_rows))
    return logits


@dataclass(frozen=True)
class Segment:
    """A prompt held in columns [lo, hi) of a row (its `valid` columns there), `length` tokens long."""

    lo: int
    hi: int
    length: int


@dataclass
class Group:
    """Rows of one `SlotCache`, which columns hold tokens, and the prompts (segments) of each row."""

    cache: Any
    valid: torch.Tensor  # [rows, capacity] bool
    segments: list[list[Segment]]

    @classmethod
    def new(cls, model: Any, rows: int, capacity: int) -> Group:
        return cls(
            cache=SlotCache(model.config.num_hidden_layers, rows, capacity),
            valid=torch.zeros((rows, capacity), dtype=torch.bool, device=model.device),
            segments=[[] for _ in range(rows)],
        )

    @property
    def capacity(self) -> int:
        return int(self.valid.shape[1])

    @property
    def end(self) -> int:
        """First column after every segment of every row."""
        return max((s.hi for segs in self.segments for s in segs), default=0)

    def take_rows(self, src: Sequence[int], dst: Sequence[int], n_cols: int, other: Group | None = None) -> None:
        """Rows `dst` become copies of the first `n_cols` columns of rows `src` of `other` (default: this
        group): keys, values, valid columns and segments."""
        other = self if other is None else other
        if not len(src):
            return
        s = torch.tensor(list(src), device=self.valid.device)
        d = torch.tensor(list(dst), device=self.valid.device)
        self.cache.copy_rows(s, d, n_cols, source=other.cache)
        self.valid[d] = False
        self.valid[d, :n_cols] = other.valid[s, :n_cols]
        segs = [list(other.segments[r]) for r in src]
        for r, sg in zip(dst, segs):
            self.segments[r] = sg


@dataclass
class Layout:
    """Where each prompt of a group goes: shared prefix length, row order, buckets and their widths."""

    prefix: int
    order: list[int]  # order[j] = the prompt in the group's j-th row
    buckets: list[tuple[int, int, int, int]] = field(default_factory=list)  # (first row, end row, width, tree width)

    @property
    def columns(self) -> int:
        """Columns the group's prompts and trees need."""
        return self.prefix + max((w + t for _, _, w, t in self.buckets), default=0)

    def row_of(self) -> list[int]:
        """row_of()[i] = the row (counted from the group's first row) holding prompt i."""
        rows = [0] * len(self.order)
        for j, i in enumerate(self.order):
            rows[i] = j
        return rows


def _common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix every prompt starts with."""
    if not prompts:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts)
    for j in range(n):
        if any(p[j] != first[j] for p in prompts):
            return j
    return n


def _buckets(widths: Sequence[tuple[int, int]], cost: int) -> list[tuple[int, int, int, int]]:
    """Cut rows (sorted by need, longest first) into contiguous buckets minimising padded tokens + cost per pass."""
    n = len(widths)
    best = [0] + [1 << 62] * n  # best[e]: cheapest cover of rows [0, e)
    cut = [0] * (n + 1)
    for e in range(1, n + 1):
        w = t = 0
        for s in range(e - 1, -1, -1):  # bucket [s, e)
            w, t = max(w, widths[s][0]), max(t, widths[s][1])
            c = best[s] + (e - s) * (w + t) + cost
            if c < best[e]:
                best[e], cut[e] = c, s
    out = []
    e = n
    while e > 0:
        s = cut[e]
        out.append((s, e, max(x[0] for x in widths[s:e]), max(x[1] for x in widths[s:e])))
        e = s
    return out[::-1]


def _tree(conts: Sequence[Sequence[int]]) -> tuple[list[int], list[int], list[int]]:
    """Fed tokens of continuations laid out one after another: (tokens, owner continuation, offset)."""
    tokens, owner, offset = [], [], []
    for c, cont in enumerate(conts):
        for o, t in enumerate(cont[:-1]):  # the last token of a continuation is scored, never fed
            tokens.append(int(t))
            owner.append(c)
            offset.append(o)
    return tokens, owner, offset


def plan_layout(
    prompts: Sequence[Sequence[int]],
    trees: Sequence[Sequence[Sequence[int]]] | None = None,
    cost: int = PASS_COST_TOKENS,
) -> Layout:
    """The layout of a group of prompts (and their continuation trees): a function of the token ids only."""
    if not prompts:
        return Layout(0, [])
    prefix = min(_common_prefix(prompts), min(len(p) for p in prompts) - 1)
    tree_w = [len(_tree(t)[0]) for t in trees] if trees is not None else [0] * len(prompts)
    need = [(len(p) - prefix, tw) for p, tw in zip(prompts, tree_w)]
    order = sorted(range(len(prompts)), key=lambda i: (-(need[i][0] + need[i][1]), i))
    return Layout(prefix, order, _buckets([need[i] for i in order], cost))


def fill(
    model: Any,
    group: Group,
    row0: int,
    col0: int,
    layout: Layout,
    prompts: Sequence[Sequence[int]],
    pad_id: int,
    trees: Sequence[Sequence[Sequence[int]]] | None = None,
    capture: LayerCapture | None = None,
) -> tuple[list[list[TokenScores]], torch.Tensor]:
    """Run the prompts (and trees) into rows row0.. of `group`, from column `col0`, as `layout` says.
    Returns the scores of every continuation of every prompt and the logits after each prompt's last
    token [prompts, vocab] (both in prompt order); each row gets a segment. `capture`, when given,
    keeps every layer's residual stream at each prompt's last token."""
    n = len(prompts)
    P = layout.prefix
    if P > 0:
        _prefix(model, group, row0, n, col0, prompts[0][:P])
    group.valid[row0 : row0 + n, col0:] = False
    group.valid[row0 : row0 + n, col0 : col0 + P] = True
    scores: list[list[TokenScores]] = [[] for _ in range(n)]
    last = torch.empty(0)
    for start, stop, width, tree_width in layout.buckets:
        members = layout.order[start:stop]
        # a bucket's prompts are right-aligned: query width - 1 is every prompt's last token
        with capture.one_pass(width - 1, members) if capture is not None else contextlib.nullcontext():
            bucket_last = _fill_bucket(
                model, group, row0 + start, col0, members, P, width, tree_width, prompts, pad_id, trees, scores
            )
        if last.numel() == 0:
            last = bucket_last.new_empty((n, bucket_last.shape[-1]))
        last[torch.tensor(members, device=last.device)] = bucket_last
    return scores, last


def _prefix(model: Any, group: Group, row0: int, n: int, col0: int, prefix: Sequence[int]) -> None:
    """Keys and values of the shared prefix in columns col0.. of rows row0..row0+n-1: run once, as a
    batch of one, and copied to every row; within `shared_prefixes` taken from an earlier pass over the
    same tokens at the same column (the same numbers: such a pass depends on its tokens and on how many
    columns its attention reads, masked ones included, which sets the blocks sdpa sums in)."""
    device = group.valid.device
    P = len(prefix)
    rows = slice(row0, row0 + n)
    store = PREFIXES
    key = (id(model), col0, tuple(int(t) for t in prefix))
    kept = store.get(key) if store is not None else None
    if kept is not None:
        store.move_to_end(key)  # type: ignore[union-attr]
        group.cache.write_columns(rows, col0, kept)
        return
    group.cache.slab(slice(row0, row0 + 1), col0, P)
    allowed = torch.zeros((1, P, col0 + P), dtype=torch.bool, device=device)
    allowed[0, :, col0:] = torch.ones((P, P), dtype=torch.bool, device=device).tril()
    ids = torch.tensor([list(prefix)], dtype=torch.long, device=device)
    real = torch.ones((1, P), dtype=torch.bool, device=device)
    run_pass(model, group.cache, ids, torch.arange(P, device=device)[None], allowed, real, 1, 0)
    if n > 1:
        others = torch.arange(row0 + 1, row0 + n, device=device)
        group.cache.copy_rows(torch.full_like(others, row0), others, col0 + P, lo=col0)
    if store is not None:
        store[key] = group.cache.read_columns(row0, col0, col0 + P)
        while len(store) > PREFIXES_KEPT:
            store.popitem(last=False)


def _fill_bucket(
    model: Any,
    group: Group,
    row0: int,
    col0: int,
    members: list[int],
    P: int,
    width: int,
    tree_width: int,
    prompts: Sequence[Sequence[int]],
    pad_id: int,
    trees: Sequence[Sequence[Sequence[int]]] | None,
    scores: list[list[TokenScores]],
) -> torch.Tensor:
    """One pass over the remainders (and trees) of `members`; returns their last-token logits."""
    device = group.valid.device
    m, q = len(members), width + tree_width
    base = col0 + P  # first column of the pass
    ids = torch.full((m, q), pad_id, dtype=torch.long)
    pos = torch.zeros((m, q), dtype=torch.long)
    # keys a query may see: the prefix, its prompt's tokens up to itself, its continuation's earlier tokens
    allowed = torch.zeros((m, q, base + q), dtype=torch.bool)
    allowed[:, :, col0:base] = True
    real = torch.zeros((m, q), dtype=torch.bool)
    tree_info = []
    for j, i in enumerate(members):
        rest = list(prompts[i][P:])
        r = len(rest)
        a = width - r  # first real query column of the remainder
        ids[j, a:width] = torch.tensor(rest, dtype=torch.long)
        pos[j, a:width] = torch.arange(P, P + r)
        allowed[j, a:width, base + a : base + width] = torch.ones((r, r), dtype=torch.bool).tril()
        real[j, a:width] = True
        conts = trees[i] if trees is not None else []
        tokens, owner, offset = _tree(conts)
        if tokens:
            t = len(tokens)
            own, off = torch.tensor(owner), torch.tensor(offset)
            ids[j, width : width + t] = torch.tensor(tokens, dtype=torch.long)
            pos[j, width : width + t] = off + P + r
            allowed[j, width : width + t, base + a : base + width] = True
            allowed[j, width : width + t, base + width : base + width + t] = (own[:, None] == own[None, :]) & (
                off[None, :] <= off[:, None]
            )
            real[j, width : width + t] = True
        tree_info.append((i, conts, owner, offset))
    pad_r, pad_q = (~real).nonzero(as_tuple=True)
    allowed[pad_r, pad_q, base + pad_q] = True  # padding sees itself only (finite, seen by no one)
    allowed = allowed.to(device)
    group.cache.slab(slice(row0, row0 + m), base, q)
    used = m + sum(len(t[2]) for t in tree_info)
    # [m, tree_width + 1, vocab]: the last prompt position, then the tree
    logits = run_pass(
        model, group.cache, ids.to(device), pos.to(device), allowed, real.to(device), tree_width + 1, used
    )
    for j, i in enumerate(members):
        r = len(prompts[i]) - P
        group.valid[row0 + j, base + width - r : base + width] = True
        group.segments[row0 + j].append(Segment(col0, base + width, len(prompts[i])))
    for j, (i, conts, owner, offset) in enumerate(tree_info):
        scores[i] = _tree_scores(logits[j], conts, owner, offset)
    return logits[:, 0]


def _tree_scores(
    logits: torch.Tensor, conts: Sequence[Sequence[int]], owner: list[int], offset: list[int]
) -> list[TokenScores]:
    """Scores of each continuation: token 0 from the prompt's last logits (row 0), token k from the tree
    position of token k-1 (row 1 + its index in the tree)."""
    if not conts:
        return []
    where = {(c, o): 1 + k for k, (c, o) in enumerate(zip(owner, offset))}
    rows, targets = [], []
    for c, cont in enumerate(conts):
        for k, t in enumerate(cont):
            rows.append(0 if k == 0 else where[(c, k - 1)])
            targets.append(int(t))
    device = logits.device
    lp, rk = token_scores(logits[torch.tensor(rows, device=device)], torch.tensor(targets, device=device))
    lps, rks = lp.tolist(), rk.tolist()
    out, k = [], 0
    for cont in conts:
        n = len(cont)
        out.append(TokenScores([int(t) for t in cont], lps[k : k + n], [int(x) for x in rks[k : k + n]]))
        k += n
    return out
