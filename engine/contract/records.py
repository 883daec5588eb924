"""Typed records of the run folder: an item (items.jsonl), an outcome (outcomes.jsonl), the manifest.

`Item` and `Outcome` mirror `engine/schema/*.schema.json` field for field (a test checks the names,
which fields are required, and that schema-valid lines decode). Unknown fields are ignored when
decoding, so a newer writer's extra fields do not break an older reader. `RunMeta` is the part of a
manifest that readers rely on (identity, condition, item set); the manifest itself stays a dict
because the Run info screen shows all of it.

Decoding errors name the JSON path of the bad field (`msgspec.ValidationError`:
"Expected `bool`, got `str` - at `$.open.correct`"); the reader adds the file and line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from engine.contract.labels import Method, condition_label

Rank = Annotated[int, Meta(ge=1)]  # 1 = argmax
Index = Annotated[int, Meta(ge=0)]

# ------------------------------------------------------------------ items.jsonl


class Source(Struct, frozen=True):
    dataset: str
    split: str
    native_id: str
    config: str | None = None
    distractors: str | None = None


class Item(Struct, frozen=True):
    """One line of items.jsonl."""

    item_uid: str
    language: str
    question: str
    answer: str
    aliases: list[str]
    options: list[str]
    gold_index: int
    source: Source
    content_hash: str
    context: str | None = None
    parallel_id: str | None = None
    meta: dict[str, Any] | None = None


# ------------------------------------------------------------------ outcomes.jsonl


class Match(Struct, frozen=True):
    rule: str
    alias: str | None
    normalizer: str
    guards: list[str] = []  # guards that denied credit (matching v2)
    degenerate: bool = False  # the output is a repetition loop (matching v2)
    other_options: list[str] = []  # options other than the gold that the output names (matching v2)


class HarnessGeneration(Struct, frozen=True):
    """An imported generation's verdict under the harness task's own metric."""

    task: str
    metric: str
    filter: str | None
    value: float
    correct: bool
    response: str


class Generation(Struct, frozen=True):
    text: str
    correct: bool
    match: Match
    em: float
    f1: float
    n_new_tokens: int | None  # None: not recorded (imported runs)
    stop: str | None
    harness: HarnessGeneration | None = None


class Option(Struct, frozen=True):
    text: str
    loglik: float | None  # None: not recorded (a generated letter answered the MC question)
    n_tokens: int | None  # None: not recorded (imported runs)
    n_chars: int
    n_bytes: int
    is_greedy: bool | None = None


class Scores(Struct, frozen=True):
    sum: list[float]
    per_token: list[float] | None  # None: token counts not recorded (imported runs)
    per_char: list[float]
    per_byte: list[float]
    mutual_info: list[float] | None = None


class Letter(Struct, frozen=True):
    letters: list[str]
    logprobs: list[float]


class HarnessMetrics(Struct, frozen=True):
    """An imported MC item's per-sample metrics as the harness logged them."""

    task: str
    metrics: dict[str, float]


class MultipleChoice(Struct, frozen=True):
    gold_index: Index
    options: list[Option]
    scores: Scores | None  # None: no option was scored (a generated letter answered)
    letter: Letter | None
    decisions: dict[str, int]
    rule: str
    choice: Index | None  # None: the answer named no option (a generated letter that is none of them)
    correct: bool
    harness: HarnessMetrics | None = None


class GoldTrace(Struct, frozen=True):
    target: str
    token_ids: list[int]
    tokens: list[str]
    logprobs: list[float]
    ranks: list[Rank]
    first_token_rank: Rank
    seq_logprob: float
    greedy_seq_logprob: float
    margin: float


class LayerTrace(Struct, frozen=True):
    """The logit lens at the open prompt's last token, one entry per layer (engine/protocol/lens.py)."""

    ranks: Annotated[list[Rank], Meta(min_length=2)]
    logprobs: list[float]
    top1: list[int]


class Beam(Struct, frozen=True):
    text: str
    score: float
    correct: bool


class BeamProbe(Struct, frozen=True):
    k: int
    beams: list[Beam]
    hit_top: bool
    hit_any: bool


class Sample(Struct, frozen=True):
    text: str
    correct: bool


class SamplingProbe(Struct, frozen=True):
    n: int
    temperature: float
    top_p: float
    seed: int
    samples: list[Sample]
    hits: int


class OneShotProbe(Struct, frozen=True):
    example_uid: str
    text: str
    correct: bool


class Probes(Struct, frozen=True):
    beam: BeamProbe | None = None
    sampling: SamplingProbe | None = None
    one_shot: OneShotProbe | None = None


class Outcome(Struct, frozen=True):
    """One line of outcomes.jsonl: every format of one item in one run."""

    item_uid: str
    content_hash: str
    language: str
    open: Generation
    mc: MultipleChoice
    gold_trace: GoldTrace | None  # None: not traced (imported runs)
    category: str
    shown: Generation | None = None
    demotion: str | None = None
    probes: Probes | None = None
    layer_trace: LayerTrace | None = None  # only when the protocol's layer_trace is on


# ------------------------------------------------------------------ manifest.json


class ModelMeta(Struct, frozen=True):
    id: str
    n_params: int = 0


class ConditionMeta(Struct, frozen=True):
    method: Method
    sparsity: Annotated[float, Meta(ge=0.0, lt=1.0)]
    pattern: Annotated[str, Meta(pattern="^(unstructured|[0-9]+:[0-9]+)$")] = "unstructured"


class ItemSetMeta(Struct, frozen=True):
    hash: str = ""
    n: int = 0


class RunMeta(Struct, frozen=True):
    """What readers take from a manifest: which model, which condition, which items, how far."""

    model: ModelMeta
    condition: ConditionMeta
    run_id: str = ""  # the folder name when the manifest has none
    status: Literal["running", "complete", "failed", "unknown"] = "unknown"  # unknown: not recorded
    items: ItemSetMeta = ItemSetMeta()
    baseline: bool = False  # the reference of every other run on its item set

    @property
    def label(self) -> str:
        """The condition label ('dense', 'wanda-s50', 'wanda-2of4')."""
        return condition_label(self.condition.method, self.condition.sparsity, self.condition.pattern)

    @property
    def is_dense(self) -> bool:
        return self.condition.method == "dense"


def run_meta(manifest: dict[str, Any], where: str) -> RunMeta:
    """The readers' view of a manifest; ValueError naming `where` and the bad key."""
    try:
        meta = msgspec.convert(manifest, RunMeta)
        meta.label  # noqa: B018 (a bad N:M pattern raises here)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    return meta
