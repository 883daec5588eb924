"""What one planned batch asks of the model, and what comes back: shared by the two backends.

`plain.PlainBackend` (a transformers DynamicCache per pass; any model) and `fast.SlotBackend`
(preallocated cache, shared prefixes, length buckets, one decoding loop; models `supports_slot_cache`
accepts) compute the same `FormatOutputs` and `ProbeOutputs` from the same `BatchWork`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from engine.config import ProtocolConfig
from engine.prompts import LETTERS, Prompt, PromptBuilder
from engine.protocol.generation import Generation
from engine.protocol.scoring import TokenScores


def unique(seqs: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """The distinct sequences (first occurrence order) and the index of each input among them."""
    out: list[list[int]] = []
    where: dict[tuple[int, ...], int] = {}
    index = []
    for s in seqs:
        key = tuple(s)
        if key not in where:
            where[key] = len(out)
            out.append(list(s))
        index.append(where[key])
    return out, index


@dataclass
class BatchWork:
    """The prompts of a batch and the continuations to score after them (deduplicated per prompt)."""

    open: list[Prompt]
    conts: list[list[list[int]]]  # per item: distinct continuations of the open prompt
    gold: list[int]  # per item: which of conts[i] is the gold answer
    options: list[list[int]]  # per item: which of conts[i] is each option
    shown: list[Prompt] | None
    letter: list[Prompt] | None
    letter_conts: list[list[list[int]]] | None  # per item: the letter continuations, in option order

    @classmethod
    def of(cls, builder: PromptBuilder, batch: list[dict[str, Any]], config: ProtocolConfig) -> BatchWork:
        opens = [builder.open(it) for it in batch]
        conts, gold, options = [], [], []
        for it, p in zip(batch, opens):
            seqs = [builder.continuation(p, it["answer"])] + [builder.continuation(p, o) for o in it["options"]]
            distinct, index = unique(seqs)
            conts.append(distinct)
            gold.append(index[0])
            options.append(index[1:])
        letters = [builder.letter(it) for it in batch] if config.letter else None
        letter_conts = (
            [[builder.continuation(p, LETTERS[j]) for j in range(len(it["options"]))] for it, p in zip(batch, letters)]
            if letters is not None
            else None
        )
        shown = [builder.shown(it) for it in batch] if config.shown else None
        return cls(opens, conts, gold, options, shown, letters, letter_conts)


@dataclass
class FormatOutputs:
    scores: list[list[TokenScores]]  # per item, per continuation of `BatchWork.conts`
    letter_scores: list[list[TokenScores]] | None
    opens: list[Generation]
    shown: list[Generation] | None


@dataclass
class ProbeOutputs:
    """Per probed item (in the order asked): beams (with scores), samples, the one-shot answer."""

    beams: list[list[tuple[Generation, float]]] | None
    samples: list[list[Generation]] | None
    one_shot: list[Generation | None]


class Backend(Protocol):
    def formats(self, work: BatchWork) -> FormatOutputs:
        """Open generation (greedy), shown generation, continuation and letter scores."""
        ...

    def probes(self, items: list[int], one_shot: list[Prompt | None], seeds: list[int]) -> ProbeOutputs:
        """Beam, sampling and one-shot probes of the batch's items `items` (after `formats`)."""
        ...
