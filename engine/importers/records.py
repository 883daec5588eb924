"""Per-sample results of another harness turned into prunescope items and outcome lines.

An imported item was asked twice: as multiple choice (log-likelihood of each option) and as open
generation. `McSample` and `GenSample` hold what the harness logged of each; `outcome` makes the
outcome line of the contract from the two. What the harness did not record is absent (`None`), never
zero: token counts (so no per-token score), the gold trace, probes, the number of new tokens and why
generation stopped.

MC decisions use every normalisation the harness logged: the sum of log-likelihoods (lm-eval's `acc`),
per character (`acc_norm`), per UTF-8 byte (`acc_bytes`) and, when the unconditional log-likelihoods
were logged, mutual information (`acc_mutual_info`). Ties go to the first option, as numpy's argmax
(and so lm-eval) break them. A harness whose MC answer is a generated letter (Inspect's
`multiple_choice` solver) logs no option scores: its one decision is `generated_letter`, the option
the letter names, and `scores` and each option's `loglik` are null.

Open generations are graded by prunescope's matcher (`engine.matching`) and, beside it, keep the
harness task's own verdict (`harness`); `grade_by="task"` makes the task's verdict the `correct` one.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.contract.labels import TASK_METRIC, category
from engine.errors import UserError
from engine.grading import generation_fields
from engine.items.build import make_item as build_item
from engine.items.languages import FLORES_TO_LANGUAGE, LANGUAGE_NAMES
from engine.matching import AnswerKey, Scoring, only_articles, tokens
from engine.safe_text import inert

# Harness metric name -> prunescope MC rule (the key of `mc.decisions`).
MC_RULE_OF_METRIC = {"acc": "sum", "acc_norm": "per_char", "acc_bytes": "per_byte", "acc_mutual_info": "mutual_info"}
GRADE_BY = ("prunescope", "task")
LANGUAGE_KEYS = ("language", "lang", "locale")  # where a document or a sample's metadata names its language
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")
_LOCALE = re.compile(r"^([a-z]{2,3})_[A-Z]{2}(\.[\w-]+)?(@\w+)?$")  # POSIX: en_US, pt_BR.UTF-8


@dataclass(frozen=True)
class McSample:
    """One item's multiple-choice request as the harness logged it."""

    task: str
    options: list[str]
    logliks: list[float] | None  # None: the answer was a generated letter (`letter_choice`)
    is_greedy: list[bool | None]
    gold: int
    metrics: dict[str, float]  # the harness's per-sample metrics (acc, acc_norm, ...)
    unconditional: list[float] | None = None  # for mutual information
    letter_choice: int | None = None  # the option a generated letter named (None: none)


@dataclass(frozen=True)
class GenSample:
    """One item's generation as the harness logged it."""

    task: str
    text: str  # the raw response (untrusted)
    target: str  # the task's gold answer
    metric: str
    value: float
    filter: str | None = None
    response: str = ""  # the response after the harness's filter
    other_targets: list[str] = field(default_factory=list)  # a task's further gold answers (its target a list)


@dataclass
class ItemSource:
    """Where an item comes from: the parts of its uid and the fields of items.jsonl not taken from a sample."""

    dataset: str
    config: str | None
    split: str
    native_id: str
    language: str
    question: str
    aliases: list[str] = field(default_factory=list)
    parallel_id: str | None = None  # the same item in other languages
    meta: dict[str, Any] = field(default_factory=dict)


def language_code(text: str) -> str | None:
    """A language code ('en', 'pt-BR') from a code, a POSIX locale ('en_US' -> 'en'), a FLORES code
    ('eng_Latn' -> 'en') or an English name ('English' -> 'en'); None when it is none of them."""
    text = text.strip()
    if _LANGUAGE.match(text):
        return text
    locale = _LOCALE.match(text)
    return locale.group(1) if locale else FLORES_TO_LANGUAGE.get(text) or LANGUAGE_NAMES.get(text.lower())


def language_of(fields: Mapping[str, Any], given: str | None, where: str) -> str:
    """An item's language: `given` (`--language`) when set, else the one its document (or sample metadata)
    names (`language_code`), else 'en'; a name that is no language is a UserError naming `where`."""
    if given is not None:
        return given
    named = next((fields[k] for k in LANGUAGE_KEYS if isinstance(fields.get(k), str)), None)
    if named is None:
        return "en"
    code = language_code(named)
    if code is None:
        raise UserError(
            f"{where}: language {quote(named)} is not a language code like 'en' or 'pt-BR', a locale like 'en_US', "
            "a FLORES code or a language name prunescope knows; give --language"
        )
    return code


def quote(value: Any) -> str:
    """A logged value quoted in an error message: its repr, inert and bounded."""
    return inert(repr(value), max_len=80)


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value, the first on ties."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def join_pairs(model: str, parts: Sequence[tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> tuple[list, list]:
    """(items, outcome lines) of every task pair of one model, in order; an item asked by two pairs is an error."""
    items: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    seen: set[str] = set()
    for got_items, got_outcomes in parts:
        for item, rec in zip(got_items, got_outcomes):
            if item["item_uid"] in seen:
                raise UserError(f"item {item['item_uid']!r} is asked by two task pairs of model {model!r}")
            seen.add(item["item_uid"])
            items.append(item)
            outcomes.append(rec)
    return items, outcomes


def make_item(src: ItemSource, mc: McSample, gen: GenSample) -> dict[str, Any]:
    """The items.jsonl record: options and gold from the MC request, the answer from the generation's target."""
    return build_item(
        dataset=src.dataset,
        config=src.config,
        split=src.split,
        native_id=src.native_id,
        language=src.language,
        question=src.question,
        answer=gen.target.strip() or mc.options[mc.gold],
        aliases=[*src.aliases, mc.options[mc.gold].strip()],
        options=mc.options,
        gold_index=mc.gold,
        parallel_id=src.parallel_id,
        meta=src.meta,
    )


def mc_record(mc: McSample, rule: str) -> dict[str, Any]:
    """The outcome's `mc` block from logged log-likelihoods or a generated letter (see the module docstring)."""
    n_chars = [len(o) for o in mc.options]
    n_bytes = [len(o.encode("utf-8")) for o in mc.options]
    scores: dict[str, list[float] | None] | None = None
    choice: int | None
    if mc.logliks is None:
        choice, rule = mc.letter_choice, "generated_letter"
        decisions = {} if choice is None else {rule: choice}
    else:
        scores = {
            "sum": list(mc.logliks),
            "per_token": None,
            "per_char": [ll / n for ll, n in zip(mc.logliks, n_chars)],
            "per_byte": [ll / n for ll, n in zip(mc.logliks, n_bytes)],
        }
        if mc.unconditional is not None:
            scores["mutual_info"] = [c - u for c, u in zip(mc.logliks, mc.unconditional)]
        decisions = {name: argmax(vals) for name, vals in scores.items() if vals is not None}
        if rule not in decisions:
            raise UserError(f"MC rule {rule!r}: not available for task {mc.task!r} (it has {', '.join(decisions)})")
        choice = decisions[rule]
    logliks: list[float | None] = list(mc.logliks) if mc.logliks is not None else [None] * len(mc.options)
    options = [
        {"text": o, "loglik": ll, "n_tokens": None, "n_chars": c, "n_bytes": b, "is_greedy": g}
        for o, ll, c, b, g in zip(mc.options, logliks, n_chars, n_bytes, mc.is_greedy)
    ]
    for o in options:
        if o["is_greedy"] is None:
            del o["is_greedy"]
    return {
        "gold_index": mc.gold,
        "options": options,
        "scores": scores,
        "letter": None,
        "decisions": decisions,
        "rule": rule,
        "choice": choice,
        "correct": choice == mc.gold,
        "harness": {"task": mc.task, "metrics": dict(mc.metrics)},
    }


def gen_record(gen: GenSample, key: AnswerKey, scoring: Scoring, grade_by: str) -> dict[str, Any]:
    """The outcome's `open` block: prunescope's match of the raw response, the task's verdict beside it."""
    task_correct = math.isclose(gen.value, 1.0)
    fields = generation_fields(gen.text, key, scoring)
    if grade_by == "task":
        fields["correct"] = task_correct
    return {
        "text": gen.text,
        **fields,
        "n_new_tokens": None,
        "stop": None,
        "harness": {
            "task": gen.task,
            "metric": gen.metric,
            "filter": gen.filter,
            "value": float(gen.value),
            "correct": task_correct,
            "response": gen.response,
        },
    }


def outcome(item: Mapping[str, Any], mc: McSample, gen: GenSample, options: ImportOptions) -> dict[str, Any]:
    """One outcome line: both formats of the item, its category; no gold trace, probes or demotion verdict."""
    mc_block = mc_record(mc, options.mc_rule)
    open_block = gen_record(gen, AnswerKey.from_item(item), options.scoring, options.grade_by)
    return {
        "item_uid": item["item_uid"],
        "content_hash": item["content_hash"],
        "language": item["language"],
        "open": open_block,
        "shown": None,
        "mc": mc_block,
        "gold_trace": None,
        "category": category(open_block["correct"], mc_block["correct"]),
        "demotion": None,
        "probes": None,
    }


def pair_lines(
    harness: str,
    tasks: tuple[str, str],
    samples: Iterable[tuple[ItemSource, McSample, GenSample]],
    options: ImportOptions,
    gen_log: Path,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Items and outcome lines of one (MC task, generation task) pair, from each item's source, MC request
    and generation, in order; each item's `meta` names the harness and the two tasks (`gen_log`: the
    generation task's log, named in warnings)."""
    items: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    for src, mc, gen in samples:
        src.meta = {"harness": harness, "tasks": {"mc": tasks[0], "open": tasks[1]}}
        item = make_item(src, mc, gen)
        items.append(item)
        outcomes.append(outcome(item, mc, gen, options))
    if options.grade_by == "prunescope":
        _warn_article_answers(f"task {tasks[1]} ({gen_log})", items)
    return items, outcomes


def _warn_article_answers(what: str, items: Sequence[Mapping[str, Any]]) -> None:
    """Say on stderr how many answers are only articles (generative MMLU's letter `A` in English): the
    matcher finds such an answer only where it stands alone ("The answer is A.", not "A is right")."""
    hit = [i for i in items if only_articles(tokens(i["answer"], i["language"]), i["language"])]
    if hit:
        print(
            inert(
                f"prunescope import: warning: {what}: {len(hit)} of {len(items)} answers are only an article "
                f"to the matcher (e.g. {hit[0]['answer']!r}, {hit[0]['language']}), which it finds in an output "
                "only where it stands alone (before punctuation or at the end: 'The answer is A.', not "
                "'A is right'); for letter answers use --grade task"
            ),
            file=sys.stderr,
        )


@dataclass(frozen=True)
class ImportOptions:
    """How imported samples are graded."""

    mc_rule: str = "sum"  # which MC decision is the MC answer (lm-eval's `acc`)
    grade_by: str = "prunescope"  # who decides `open.correct`: prunescope's matcher or the task's metric
    scoring: Scoring = field(default_factory=Scoring)
    language: str | None = None  # `--language`: every item's language, whatever its document says

    def describe(self) -> dict[str, Any]:
        """The manifest's note on grading."""
        return {
            "mc_rule": self.mc_rule,
            "open_correct": "prunescope matching (engine.matching)"
            if self.grade_by == "prunescope"
            else f"{TASK_METRIC} (== 1)",
            "language": self.language or "from the documents (else en)",
        }
