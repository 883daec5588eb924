"""Hugging Face dataset adapters: native records -> items with an open form and a 4-option MC form.

Each `*_items` function is pure (records in, items out) and deterministic for a seed:

- **XQuAD / TyDi QA GoldP** (extractive): the open form is the question (with its passage as
  context) and the gold span; distractors are other answer spans of the same context, then (TyDi)
  of the same article, then of other contexts of the same language, in a seeded hash order.
- **MKQA** (open): the gold is the first answer's text, its aliases kept; distractors are the answers
  of other queries of the same answer type in the same language. Types `unanswerable`,
  `long_answer` and `binary` (yes/no) are skipped.
- **Global-MMLU (-Lite) / Belebele** (MC): the native options are kept; the open form drops them, so
  option-dependent questions ("Which of the following…", "All of the above", see
  `option_dependent.py`) are left out.

The gold's position among the options of a built MC form is a hash of the native id (the same in
every language of a parallel dataset). Records that cannot make a valid item (no answer, fewer than
three usable distractors, options equal after normalisation) are skipped.

`load_hf` fetches the records with `datasets.load_dataset` from the Hub, or from local files in the
native format when a path is given (`hf:xquad:/data/{config}.jsonl`, `hf:mkqa:/data/mkqa.jsonl.gz`;
`{config}` is replaced by each language's config name).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from engine.errors import UserError
from engine.items.build import gold_position, make_item, place_gold
from engine.items.distractors import SCAN_LIMIT, Picker, Ring, seeded_order
from engine.items.languages import (
    FLORES_TO_LANGUAGE,
    GLOBAL_MMLU_LANGUAGES,
    GLOBAL_MMLU_LITE_LANGUAGES,
    MKQA_KEYS,
    MKQA_LANGUAGES,
    TYDIQA_GOLDP_LANGUAGES,
    TYDIQA_NAMES,
    XQUAD_LANGUAGES,
    flores_config,
    flores_language,
    mkqa_language,
)
from engine.items.option_dependent import option_dependent
from engine.items.validate import options_problem

Record = Mapping[str, Any]
N_OPTIONS = 4
MKQA_TYPES = ("entity", "long_answer", "unanswerable", "date", "number", "number_with_unit", "short_phrase", "binary")
MKQA_SKIPPED_TYPES = frozenset({"long_answer", "unanswerable", "binary"})


def _answer_texts(record: Record) -> list[str]:
    answers = record.get("answers") or {}
    texts = answers.get("text") if isinstance(answers, Mapping) else None
    out: list[str] = []
    for t in texts or []:
        t = (t or "").strip()
        if t and t not in out:
            out.append(t)
    return out


def _mc_item(
    picker: Picker,
    *,
    dataset: str,
    config: str | None,
    split: str,
    native_id: str,
    language: str,
    question: str,
    answer: str,
    aliases: Sequence[str],
    method: str,
    seed: int,
    **extra: Any,
) -> dict[str, Any] | None:
    """An item from a gold and the picker's distractors, or None when they cannot make one."""
    if not picker.done:
        return None
    options = place_gold(answer, picker.picked, gold_position(N_OPTIONS, dataset, native_id, seed))
    if options_problem(options, language):
        return None
    return make_item(
        dataset=dataset,
        config=config,
        split=split,
        native_id=native_id,
        language=language,
        question=question,
        answer=answer,
        aliases=aliases,
        options=options,
        gold_index=options.index(answer),
        distractors=picker.describe(method, seed),
        **extra,
    )


def _span_items(
    records: Sequence[Record],
    *,
    dataset: str,
    config: str | None,
    split: str,
    language: str,
    seed: int,
    parallel: bool,
    article_key: str | None,
) -> list[dict[str, Any]]:
    """Items of an extractive QA set (SQuAD-format records of one language)."""
    usable = [(str(r["id"]), r, _answer_texts(r)) for r in records if r.get("question") and r.get("context")]
    usable = [(rid, r, golds) for rid, r, golds in usable if golds]
    by_context: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_article: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for rid, r, golds in usable:
        by_context[r["context"]].append((rid, golds[0]))
        if article_key and r.get(article_key):
            by_article[r[article_key]].append((rid, golds[0]))
    ring = Ring.build(((rid, golds[0]) for rid, _, golds in usable), seed)
    items = []
    for rid, r, golds in usable:
        picker = Picker(golds, language)
        same_ctx = [c for c in by_context[r["context"]] if c[0] != rid]
        picker.offer("same_context", seeded_order(same_ctx, "ctx", seed, rid))
        if article_key and r.get(article_key):
            same_art = [c for c in by_article[r[article_key]] if c[0] != rid and c not in same_ctx]
            picker.offer("same_article", seeded_order(same_art, "art", seed, rid))
        ctx_ids = {cid for cid, _ in by_context[r["context"]]}
        picker.offer("other_context", (c for c in ring.walk(rid) if c[0] not in ctx_ids), scan_limit=SCAN_LIMIT)
        meta = {"title": r[article_key]} if article_key and r.get(article_key) else {}
        item = _mc_item(
            picker,
            dataset=dataset,
            config=config,
            split=split,
            native_id=rid,
            language=language,
            question=r["question"].strip(),
            answer=golds[0],
            aliases=golds[1:],
            method="answer spans",
            seed=seed,
            context=r["context"],
            parallel_id=rid if parallel else None,
            meta=meta,
        )
        if item is not None:
            items.append(item)
    return items


def xquad_items(
    records: Iterable[Record], language: str, split: str = "validation", seed: int = 0
) -> list[dict[str, Any]]:
    """XQuAD records of config `xquad.<language>` (fields id, context, question, answers)."""
    return _span_items(
        list(records),
        dataset="xquad",
        config=f"xquad.{language}",
        split=split,
        language=language,
        seed=seed,
        parallel=True,
        article_key=None,
    )


def tydiqa_items(
    records: Iterable[Record], language: str, split: str = "validation", seed: int = 0
) -> list[dict[str, Any]]:
    """TyDi QA GoldP (`secondary_task`) records; only those whose id names `language` are used."""
    names = {code: name for name, code in TYDIQA_NAMES.items()}
    prefix = names.get(language, language) + "-"
    mine = [r for r in records if str(r.get("id", "")).startswith(prefix)]
    return _span_items(
        mine,
        dataset="tydiqa",
        config="secondary_task",
        split=split,
        language=language,
        seed=seed,
        parallel=False,
        article_key="title",
    )


def _mkqa_type(value: Any) -> str:
    if isinstance(value, int):
        return MKQA_TYPES[value]
    return str(value)


def mkqa_items(records: Iterable[Record], language: str, split: str = "train", seed: int = 0) -> list[dict[str, Any]]:
    """MKQA records (example_id, queries{lang}, answers{lang: [{type, text, aliases}]}) in one language."""
    key = next((k for k in MKQA_KEYS if mkqa_language(k) == language), language)
    usable = []
    for r in records:
        question = (r.get("queries") or {}).get(key)
        answers = (r.get("answers") or {}).get(key) or []
        if not question or not answers:
            continue
        first = answers[0]
        atype = _mkqa_type(first.get("type"))
        text = (first.get("text") or "").strip()
        if atype in MKQA_SKIPPED_TYPES or not text:
            continue
        aliases = [a for a in (first.get("aliases") or []) if a and a.strip()]
        usable.append((str(r["example_id"]), question.strip(), text, aliases, atype))
    rings: dict[str, Ring] = {}
    for atype in {u[4] for u in usable}:
        rings[atype] = Ring.build(((rid, text) for rid, _, text, _, t in usable if t == atype), seed)
    items = []
    for rid, question, text, aliases, atype in usable:
        picker = Picker([text, *aliases], language)
        picker.offer(f"same_type[{atype}]", (c for c in rings[atype].walk(rid) if c[0] != rid), scan_limit=SCAN_LIMIT)
        item = _mc_item(
            picker,
            dataset="mkqa",
            config=None,
            split=split,
            native_id=rid,
            language=language,
            question=question,
            answer=text,
            aliases=aliases,
            method="answers of the same type",
            seed=seed,
            parallel_id=rid,
            meta={"answer_type": atype},
        )
        if item is not None:
            items.append(item)
    return items


def _native_mc_item(
    *,
    dataset: str,
    config: str,
    split: str,
    native_id: str,
    language: str,
    question: str,
    options: list[str],
    gold_index: int,
    context: str | None,
    parallel_id: str,
    meta: dict[str, Any],
) -> dict[str, Any] | None:
    options = [o.strip() for o in options]
    if not question.strip() or not 0 <= gold_index < len(options) or options_problem(options, language):
        return None
    if option_dependent(question, options):
        return None
    return make_item(
        dataset=dataset,
        config=config,
        split=split,
        native_id=native_id,
        language=language,
        question=question.strip(),
        answer=options[gold_index],
        options=options,
        gold_index=gold_index,
        context=context,
        parallel_id=parallel_id,
        distractors="native options",
        meta=meta,
    )


GLOBAL_MMLU_META = (
    "subject",
    "subject_category",
    "cultural_sensitivity_label",
    "required_knowledge",
    "time_sensitive",
    "culture",
    "region",
    "country",
)


def global_mmlu_items(
    records: Iterable[Record], language: str, split: str = "test", seed: int = 0, dataset: str = "global_mmlu"
) -> list[dict[str, Any]]:
    """Global-MMLU (or -Lite with dataset='global_mmlu_lite') records of one language config."""
    items = []
    for r in records:
        letter = str(r.get("answer") or "").strip().upper()
        if letter not in ("A", "B", "C", "D"):
            continue
        options = [str(r.get(f"option_{c}") or "") for c in "abcd"]
        meta = {k: r[k] for k in GLOBAL_MMLU_META if r.get(k) not in (None, "")}
        item = _native_mc_item(
            dataset=dataset,
            config=language,
            split=split,
            native_id=str(r["sample_id"]),
            language=language,
            question=str(r.get("question") or ""),
            options=options,
            gold_index="ABCD".index(letter),
            context=None,
            parallel_id=str(r["sample_id"]),
            meta=meta,
        )
        if item is not None:
            items.append(item)
    return items


def belebele_items(
    records: Iterable[Record], language: str, split: str = "test", seed: int = 0
) -> list[dict[str, Any]]:
    """Belebele records of one FLORES config (passage, question, mc_answer1..4, 1-based correct_answer_num)."""
    config = flores_config(language)
    items = []
    for r in records:
        try:
            gold = int(str(r.get("correct_answer_num")).strip()) - 1
        except ValueError:
            continue
        link = str(r.get("link") or "")
        native = f"{sha256(link.encode('utf-8')).hexdigest()[:12]}-q{r.get('question_number')}"
        item = _native_mc_item(
            dataset="belebele",
            config=config,
            split=split,
            native_id=native,
            language=flores_language(config),
            question=str(r.get("question") or ""),
            options=[str(r.get(f"mc_answer{i}") or "") for i in range(1, 5)],
            gold_index=gold,
            context=r.get("flores_passage") or None,
            parallel_id=native,
            meta={"link": link, "question_number": r.get("question_number")},
        )
        if item is not None:
            items.append(item)
    return items


@dataclass(frozen=True)
class HFSource:
    """How one dataset is fetched: hub path, config per language, default split, adapter."""

    path: str
    languages: tuple[str, ...]
    default_split: str
    convert: Callable[..., list[dict[str, Any]]]
    config: Callable[[str], str | None]  # language -> hub config (None: one config for all)
    open_languages: bool = False  # any language the hub has may be asked for


HF_SOURCES: dict[str, HFSource] = {
    "xquad": HFSource("google/xquad", XQUAD_LANGUAGES, "validation", xquad_items, lambda lang: f"xquad.{lang}"),
    "tydiqa": HFSource(
        "google-research-datasets/tydiqa",
        TYDIQA_GOLDP_LANGUAGES,
        "validation",
        tydiqa_items,
        lambda lang: "secondary_task",
    ),
    "mkqa": HFSource("apple/mkqa", MKQA_LANGUAGES, "train", mkqa_items, lambda lang: None),
    "global_mmlu": HFSource(
        "CohereLabs/Global-MMLU", GLOBAL_MMLU_LANGUAGES, "test", global_mmlu_items, lambda lang: lang
    ),
    "global_mmlu_lite": HFSource(
        "CohereLabs/Global-MMLU-Lite",
        GLOBAL_MMLU_LITE_LANGUAGES,
        "test",
        lambda recs, lang, split, seed: global_mmlu_items(recs, lang, split, seed, dataset="global_mmlu_lite"),
        lambda lang: lang,
    ),
    "belebele": HFSource(
        "facebook/belebele",
        tuple(sorted(FLORES_TO_LANGUAGE.values())),
        "test",
        belebele_items,
        flores_config,
        open_languages=True,
    ),
}


def parse_hf_source(source: str) -> tuple[str, str | None]:
    """'hf:NAME' or 'hf:NAME:PATH' -> (NAME, PATH or None)."""
    name, _, path = source[3:].partition(":")
    if name not in HF_SOURCES:
        raise UserError(
            f"items source {source!r}: unknown dataset {name!r} (known: {', '.join('hf:' + n for n in HF_SOURCES)})"
        )
    return name, path or None


def _builder_for(path: str) -> str:
    lower = path.lower()
    if ".parquet" in lower:
        return "parquet"
    if ".csv" in lower:
        return "csv"
    return "json"


def _fetch(src: HFSource, name: str, config: str | None, split: str, local: str | None) -> list[Record]:
    import datasets

    try:
        if local is not None:
            files = local.replace("{config}", config or "")
            ds = datasets.load_dataset(_builder_for(files), data_files=files, split="train")
        else:
            ds = datasets.load_dataset(src.path, config, split=split)
    except FileNotFoundError as exc:
        raise UserError(f"hf:{name}: {exc}") from None
    except Exception as exc:  # datasets raises many types (network, missing config, script repos)
        hint = ""
        if name == "mkqa" and local is None:
            hint = (
                "; the hub's MKQA is a loading script that recent `datasets` refuse: download mkqa.jsonl.gz "
                "from github.com/apple/ml-mkqa and use source 'hf:mkqa:/path/to/mkqa.jsonl.gz'"
            )
        where = local or f"{src.path} config {config!r} split {split!r}"
        raise UserError(f"hf:{name}: cannot load {where} ({exc.__class__.__name__}: {str(exc)[:200]}){hint}") from None
    return list(ds)


def load_hf(
    name: str, languages: Sequence[str], split: str | None, seed: int, local: str | None = None
) -> list[dict[str, Any]]:
    """Items of dataset `name` for `languages` (already checked), fetched with `datasets.load_dataset`."""
    src = HF_SOURCES[name]
    split = split or src.default_split
    items: list[dict[str, Any]] = []
    cache: dict[str | None, list[Record]] = {}
    for lang in languages:
        config = src.config(lang)
        if config not in cache:
            cache[config] = _fetch(src, name, config, split, local)
        items.extend(src.convert(cache[config], lang, split, seed))
    return items
