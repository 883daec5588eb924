"""Teacher-forced scoring of continuations after a shared prompt pass.

A batch of prompts is run once, left-padded, with the KV cache kept (`prefix_pass`). Every
continuation of every prompt (MC options, the gold answer, letters) is then scored from that cache
(`score_continuations`): the first token from the prompt's last logits, the others from one forward
pass over the continuations with the prompt's cache rows selected per continuation. `score_full`
does the same with plain full-sequence forwards and is the reference the cached path is tested on
(and the fallback for cache layouts this module does not know).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

# continuation rows per forward pass in the cached path (bounds the copied KV cache and the logits)
ROW_CHUNK = 64


@dataclass
class PrefixState:
    """A batch of prompts after one forward pass: KV cache, mask, real lengths, last-position logits."""

    cache: Any
    mask: torch.Tensor  # [B, L] 1 for real tokens (left padding)
    lengths: torch.Tensor  # [B] number of real tokens
    last_logits: torch.Tensor  # [B, V] float32, logits after the last prompt token


@dataclass
class TokenScores:
    """Per-token log-probabilities and ranks (1 = argmax; 1 + number of strictly greater logits)."""

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]

    @property
    def total(self) -> float:
        return float(sum(self.logprobs))


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding (as transformers' generate computes them)."""
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


def forward(model: Any, cache: Any, **kwargs: Any) -> Any:
    """model(...) with `cache` passed under the keyword this transformers version uses."""
    key = _cache_keyword(model.__class__)
    return model(**kwargs, **{key: cache}, use_cache=True)


@functools.cache
def _cache_keyword(cls: type[torch.nn.Module]) -> str:
    params = inspect.signature(cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def prefix_pass(model: Any, prompts: Sequence[Sequence[int]], pad_id: int) -> PrefixState:
    """Run the prompts once with the cache kept; only the last position's logits are materialised."""
    from transformers import DynamicCache

    ids, mask = left_pad(prompts, pad_id, model.device)
    cache = DynamicCache(config=model.config)
    out = forward(model, cache, input_ids=ids, attention_mask=mask, position_ids=positions(mask), logits_to_keep=1)
    return PrefixState(cache=cache, mask=mask, lengths=mask.sum(-1), last_logits=out.logits[:, -1, :].float())


def token_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and ranks of `targets` [N] under `logits` [N, V] (float32)."""
    logits = logits.float()
    target_logit = logits.gather(-1, targets[:, None])
    logprobs = target_logit[:, 0] - torch.logsumexp(logits, dim=-1)
    ranks = 1 + (logits > target_logit).sum(-1)
    return logprobs, ranks


def cache_is_selectable(cache: Any) -> bool:
    """True when every cache layer is a plain dynamic full-attention layer (rows can be selected)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers:
        return False
    return all(type(layer) is DynamicLayer for layer in layers)


def select_cache_rows(cache: Any, rows: torch.Tensor) -> Any:
    """A new cache holding `rows` of `cache` (the original is left untouched)."""
    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in new.layers:
        layer.batch_select_indices(rows)
    return new


def fork_state(state: PrefixState, rows: Sequence[int]) -> PrefixState:
    """The state of prompts `rows` (repeats allowed) with its own cache; `state` stays a pure prefix."""
    idx = torch.tensor(list(rows), dtype=torch.long, device=state.mask.device)
    return PrefixState(
        cache=select_cache_rows(state.cache, idx),
        mask=state.mask[idx],
        lengths=state.lengths[idx],
        last_logits=state.last_logits[idx],
    )


def score_continuations(
    model: Any, state: PrefixState, rows: Sequence[tuple[int, Sequence[int]]], pad_id: int
) -> list[TokenScores]:
    """Score each (prompt index, continuation ids) from the prompt's cached pass."""
    if not cache_is_selectable(state.cache):
        raise TypeError("cache layout does not allow row selection; use score_full")
    device = state.last_logits.device
    # first tokens: from the prompts' last logits
    firsts = torch.tensor([cont[0] for _, cont in rows], dtype=torch.long, device=device)
    owners = torch.tensor([p for p, _ in rows], dtype=torch.long, device=device)
    first_lp, first_rank = (t.tolist() for t in token_scores(state.last_logits[owners], firsts))  # one copy each
    results = [TokenScores([int(t) for t in cont], [first_lp[r]], [first_rank[r]]) for r, (_, cont) in enumerate(rows)]
    longer = [r for r, (_, cont) in enumerate(rows) if len(cont) > 1]
    for start in range(0, len(longer), ROW_CHUNK):
        chunk = longer[start : start + ROW_CHUNK]
        owner = torch.tensor([rows[r][0] for r in chunk], dtype=torch.long, device=device)
        feeds = [list(rows[r][1][:-1]) for r in chunk]  # the last token is never fed
        width = max(len(f) for f in feeds)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        cmask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, f in enumerate(feeds):
            ids[i, : len(f)] = torch.tensor(f, dtype=torch.long)
            cmask[i, : len(f)] = 1
        ids, cmask = ids.to(device), cmask.to(device)
        mask = torch.cat([state.mask[owner], cmask], dim=1)
        pos = state.lengths[owner][:, None] + torch.arange(width, device=device)[None, :]
        out = forward(
            model, select_cache_rows(state.cache, owner), input_ids=ids, attention_mask=mask, position_ids=pos
        )
        logits = out.logits.float()
        for i, r in enumerate(chunk):
            cont = rows[r][1]
            n = len(cont) - 1
            lp, rk = token_scores(logits[i, :n], torch.tensor(list(cont[1:]), dtype=torch.long, device=device))
            results[r].logprobs.extend(lp.tolist())
            results[r].ranks.extend(rk.tolist())
    return results


def score_full(
    model: Any,
    prompts: Sequence[Sequence[int]],
    rows: Sequence[tuple[int, Sequence[int]]],
    pad_id: int,
    chunk: int = ROW_CHUNK,
) -> list[TokenScores]:
    """The same scores from full forward passes over prompt + continuation (no cache reuse)."""
    results: list[TokenScores] = []
    device = model.device
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        seqs = [list(prompts[p]) + list(cont[:-1]) for p, cont in part]
        ids, mask = left_pad(seqs, pad_id, device)
        # Logits of the last positions only (those of the continuations): for every position they would
        # take rows x length x vocab floats (25 GB for 64 rows of 500 tokens at a 128k vocabulary).
        keep = {"logits_to_keep": max(len(cont) for _, cont in part)} if _keeps_logits(model.__class__) else {}
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), **keep).logits.float()
        width = logits.shape[1]
        for i, (_p, cont) in enumerate(part):
            n = len(cont)
            lp, rk = token_scores(logits[i, width - n :], torch.tensor(list(cont), dtype=torch.long, device=device))
            results.append(TokenScores([int(t) for t in cont], lp.tolist(), rk.tolist()))
    return results


@functools.cache
def _keeps_logits(cls: type[torch.nn.Module]) -> bool:
    """Whether the model's forward takes `logits_to_keep` (transformers' causal LMs do)."""
    return "logits_to_keep" in inspect.signature(cls.forward).parameters


def score(
    model: Any,
    state: PrefixState,
    prompts: Sequence[Sequence[int]],
    rows: Sequence[tuple[int, Sequence[int]]],
    pad_id: int,
) -> list[TokenScores]:
    """Cached scoring when the cache allows it, else full forwards."""
    if cache_is_selectable(state.cache):
        return score_continuations(model, state, rows, pad_id)
    return score_full(model, prompts, rows, pad_id)
