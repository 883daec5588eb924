"""Reading lm-evaluation-harness output folders (0.4.3 and later, `--log_samples`) into imported runs.

lm-eval writes, per model, `results_<timestamp>.json` (aggregate metrics, the model config, every
task's config) and one `samples_<task>_<timestamp>.jsonl` per task (one line per document and
filter: the document, the requests' arguments, the responses, the per-sample metrics). A PATH given
to `prunescope import lm-eval` is such a folder, a folder above several (one per model), or a
results file.

Items are keyed by a stable uid `dataset/config/split/native_id/language` (`engine.items.build.make_uid`):
the dataset, config and split from the MC task's config (a local `json`/`csv`/`parquet` dataset is
named by its data file), the native id from the document's own id field (`ID_KEYS`) or, when it has
none, from the SHA-256 of the document, never the positional `doc_id` alone; the language from the
`--language`, else the document (`language`, `lang`, `locale`; `records.language_of`), else en. The
MC gold is resolved from the logged target and checked against lm-eval's per-sample metrics (`_gold`).

A run needs both formats of an item, so tasks are imported in pairs that ask the same documents as
multiple choice and as generation (`engine.importers.pairs`: recognised names, `--pair`). Tasks
without a twin are skipped with a warning. For a generation task with several filters, the first of its `filter_list` is used.
The two tasks of a pair are joined by document id; one id on two different documents is an error.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.importers.folder import ImportedRun, run_id_of
from engine.importers.pairs import check_explicit, model_pairs
from engine.importers.records import (
    MC_RULE_OF_METRIC,
    GenSample,
    ImportOptions,
    ItemSource,
    McSample,
    join_pairs,
    language_of,
    mc_record,
    pair_lines,
    quote,
)
from engine.runfolder import dumps_line, sha256_text

ID_KEYS = ("id", "idx", "question_id", "qid", "uid", "example_id", "_id")
FILE_DATASETS = ("json", "csv", "parquet", "text", "arrow")
GEN_METRICS = ("exact_match", "acc", "em", "correct")  # a generation's correctness metric, in this order
# The document fields holding what is asked: the two documents of one id in a task pair must agree on them.
QUESTION_KEYS = ("question", "sentence", "ctx", "goal", "premise", "passage", "context", "problem")


@dataclass
class TaskLog:
    """One task of one lm-eval results file."""

    name: str
    config: dict[str, Any]
    results_path: Path
    samples_path: Path
    results: dict[str, Any]  # the whole results file

    @property
    def output_type(self) -> str:
        return str(self.config.get("output_type", ""))

    @property
    def model(self) -> str:
        name = self.results.get("model_name")
        if isinstance(name, str) and name:
            return name
        args = model_args(self.results)
        return str(args.get("pretrained") or args.get("model") or self.results_path.parent.name)


def model_args(results: dict[str, Any]) -> dict[str, Any]:
    """The `model_args` of a results file's config, as a dict (older versions log a 'k=v,k=v' string)."""
    args = (results.get("config") or {}).get("model_args") or {}
    if isinstance(args, str):
        return dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv)
    return args if isinstance(args, dict) else {}


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object (an lm-eval results file)")
    return data


def results_files(paths: Sequence[Path]) -> list[Path]:
    """`results_*.json` files given or under the given folders, in name order."""
    found: list[Path] = []
    for p in paths:
        if p.is_file():
            here = [p]
        elif p.is_dir():
            here = sorted(p.rglob("results_*.json"))
        else:
            raise UserError(f"{p}: no such file or folder")
        if not here:
            raise UserError(f"{p}: no lm-eval results_*.json here (run lm-eval with --output_path and --log_samples)")
        found += here
    return found


def task_logs(path: Path) -> list[TaskLog]:
    """The tasks of one results file, each with its samples file."""
    results = _load_json(path)
    configs = results.get("configs")
    if not isinstance(configs, dict):
        raise UserError(f"{path}: key 'configs' missing or not an object (not an lm-eval 0.4 results file?)")
    stamp = path.stem.removeprefix("results_")
    out = []
    for name, config in sorted(configs.items()):
        if not isinstance(config, dict):
            raise UserError(f"{path}: configs.{name} is not an object")
        samples = path.parent / f"samples_{name}_{stamp}.jsonl"
        if not samples.exists():
            raise UserError(f"{path}: task {name!r} has no {samples.name} beside it (run lm-eval with --log_samples)")
        out.append(TaskLog(name, config, path, samples, results))
    return out


def tasks_by_model(paths: Sequence[Path]) -> dict[str, dict[str, TaskLog]]:
    """Every task log found, grouped by model (a task twice for one model is refused)."""
    models: dict[str, dict[str, TaskLog]] = {}
    for path in results_files(paths):
        for log in task_logs(path):
            tasks = models.setdefault(log.model, {})
            if log.name in tasks:
                raise UserError(
                    f"task {log.name!r} of model {log.model!r} is in {tasks[log.name].results_path} and in "
                    f"{log.results_path}: give one of the two"
                )
            tasks[log.name] = log
    return models


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}:{n}: not UTF-8 text (byte {exc.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise UserError(f"{path}:{n}: expected a JSON object")
            yield n, rec


def _key(rec: dict[str, Any], key: str, where: str) -> Any:
    if key not in rec:
        raise UserError(f"{where}: key {key!r} missing (not an lm-eval --log_samples line?)")
    return rec[key]


def _number(value: Any, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise UserError(f"{where}: expected a finite number, got {value!r}")
    return out


def _greedy(value: Any) -> bool | None:
    return {True: True, False: False, "True": True, "False": False}.get(value)


def _arguments(rec: dict[str, Any], where: str) -> list[list[Any]]:
    """The requests' arguments as lists ([context, continuation] for log-likelihoods)."""
    args = _key(rec, "arguments", where)
    if isinstance(args, dict):  # 0.4.5+: {"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}
        keys = sorted(args, key=lambda k: int(k.rsplit("_", 1)[-1]) if k.rsplit("_", 1)[-1].isdigit() else 0)
        return [[a[k] for k in sorted(a)] if isinstance(a, dict) else list(a) for a in (args[k] for k in keys)]
    if isinstance(args, list):
        return [list(a) if isinstance(a, (list, tuple)) else [a] for a in args]
    raise UserError(f"{where}: key 'arguments' is neither a list nor an object")


def _samples(log: TaskLog, filter_name: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, sample) of the lines of one filter (the first filter seen when `filter_name` is None)."""
    chosen = filter_name
    for n, rec in _lines(log.samples_path):
        where = f"{log.samples_path}:{n}"
        got = rec.get("filter", "none")
        if chosen is None:
            chosen = got
        if got == chosen:
            yield where, rec


def _gen_filter(log: TaskLog) -> str | None:
    filters = log.config.get("filter_list")
    if isinstance(filters, list) and filters and isinstance(filters[0], dict):
        return str(filters[0].get("name"))
    return None


def _item_source(log: TaskLog, doc: Any, where: str, language: str | None) -> ItemSource:
    if not isinstance(doc, dict):
        raise UserError(f"{where}: key 'doc' is not an object")
    cfg = log.config
    dataset = str(cfg.get("dataset_path") or log.name)
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if dataset in FILE_DATASETS and files:
        first = next(iter(files.values())) if isinstance(files, dict) else files
        first = first[0] if isinstance(first, list) and first else first
        dataset = Path(str(first)).stem
    split = str(cfg.get("test_split") or cfg.get("validation_split") or "test")
    native = next((str(doc[k]) for k in ID_KEYS if isinstance(doc.get(k), (str, int)) and str(doc[k])), None)
    if native is None:
        native = "doc-" + hashlib.sha256(dumps_line(doc).encode("utf-8")).hexdigest()[:16]
    question = doc.get("question")
    aliases = doc.get("aliases")
    return ItemSource(
        dataset=dataset,
        config=cfg.get("dataset_name") if isinstance(cfg.get("dataset_name"), str) else None,
        split=split,
        native_id=native,
        language=language_of(doc, language, where),
        question=question.strip() if isinstance(question, str) else "",
        aliases=[a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else [],
        parallel_id=str(doc["parallel_id"]) if isinstance(doc.get("parallel_id"), (str, int)) else None,
    )


def _mc_sample(log: TaskLog, rec: dict[str, Any], where: str) -> tuple[McSample, str]:
    """The MC request of one sample line, and its context (the prompt)."""
    args = _arguments(rec, where)
    resps = rec.get("filtered_resps", _key(rec, "resps", where))
    if not isinstance(resps, list) or len(resps) != len(args) or not resps:
        raise UserError(f"{where}: 'filtered_resps' must hold one [loglik, is_greedy] per request in 'arguments'")
    pairs = [r[0] if isinstance(r, list) and r and isinstance(r[0], list) else r for r in resps]
    for k, r in enumerate(pairs):
        if not isinstance(r, list) or len(r) != 2:
            raise UserError(f"{where}: filtered_resps[{k}] is not a [loglik, is_greedy] pair")
    logliks = [_number(r[0], f"{where}: filtered_resps[{k}][0]") for k, r in enumerate(pairs)]
    greedy = [_greedy(r[1]) for r in pairs]
    metrics = {
        m: _number(rec[m], f"{where}: {m}") for m in rec.get("metrics", []) if isinstance(rec.get(m), (int, float))
    }
    unconditional = None
    n = len(args)
    if "acc_mutual_info" in metrics and n % 2 == 0 and all(a[0] == "" for a in args[n // 2 :]):
        n //= 2
        unconditional = logliks[n:]
    delim = str(log.config.get("target_delimiter", " "))
    for k, a in enumerate(args[:n]):
        if len(a) < 2 or not isinstance(a[0], str) or not isinstance(a[1], str):
            raise UserError(f"{where}: arguments[{k}] is not a [context, continuation] pair")
    contexts = [a[0] for a in args[:n]]
    multiple_input = n > 1 and len({a[1] for a in args[:n]}) == 1 and len(set(contexts)) > 1
    if multiple_input:
        options, prompt = _multiple_input(contexts, args[0][1])
    else:
        options = [a[1][len(delim) :] if delim and a[1].startswith(delim) else a[1] for a in args[:n]]
        prompt = contexts[0]
    mc = McSample(log.name, options, logliks[:n], greedy[:n], 0, metrics, unconditional)
    return replace(mc, gold=_gold(log, rec, mc, multiple_input, where)), prompt


def _multiple_input(contexts: list[str], continuation: str) -> tuple[list[str], str]:
    """Options and prompt of lm-eval's `multiple_input` requests (winogrande: one context per option, one
    shared continuation): each option is its context past their common prefix (cut after a space or line
    break); the prompt is that prefix, a blank and the continuation."""
    same = (i for i, chars in enumerate(zip(*contexts)) if len(set(chars)) > 1)
    common = contexts[0][: next(same, min(map(len, contexts)))]
    cut = max(common.rfind(" "), common.rfind("\n")) + 1
    return [c[cut:] for c in contexts], f"{contexts[0][:cut]}___{continuation}"


def _gold(log: TaskLog, rec: dict[str, Any], mc: McSample, multiple_input: bool, where: str) -> int:
    """The gold option as lm-eval had it, checked against the logged per-sample metrics.

    The target is logged as text: "2" is the option whose text is "2" (lm-eval's `choices.index`) or
    option 2. The readings that agree with every logged metric (`acc` is correct iff the argmax of the
    log-likelihoods is the gold) are kept; when two remain, the task's `doc_to_target` decides. A
    `multiple_input` task logs its shared continuation as target: its gold is the option `acc` allows."""
    target = _key(rec, "target", where)
    n = len(mc.options)
    readings: dict[int, str] = {}
    if multiple_input:
        readings = dict.fromkeys(range(n), "option")
    else:
        if isinstance(target, str) and target in mc.options:
            readings[mc.options.index(target)] = "text"
        text = target.strip() if isinstance(target, str) else None
        index = target if type(target) is int else int(text) if text and text.lstrip("-").isdigit() else None
        if index is not None and 0 <= index < n:
            readings.setdefault(index, "index")
        if not readings:
            raise UserError(f"{where}: target {quote(target)} is not an option index (0..{n - 1}) or an option text")
    decisions = mc_record(mc, "sum")["decisions"]
    checked = {
        m: v
        for m, v in mc.metrics.items()
        if MC_RULE_OF_METRIC.get(m) in decisions and (m == "acc" or not multiple_input)
    }
    agree = [
        g
        for g in readings
        if all((decisions[MC_RULE_OF_METRIC[m]] == g) == math.isclose(v, 1.0) for m, v in checked.items())
    ]
    logged = ", ".join(f"{m}={v:g}" for m, v in checked.items())
    if not agree:
        raise UserError(
            f"{where}: no reading of target {quote(target)} (option {', '.join(map(str, readings))}) agrees with "
            f"the logged {logged} (the log-likelihoods pick option {decisions['sum']})"
        )
    if len(agree) > 1 and not multiple_input:
        kind = _target_kind(log, rec.get("doc"))
        agree = [g for g in agree if readings[g] == kind] or agree
    if len(agree) > 1:
        raise UserError(
            f"{where}: target {quote(target)} may be option {' or '.join(map(str, agree))} and the logged "
            f"{logged or 'metrics'} cannot tell which (lm-eval logs no gold index for this task)"
        )
    return agree[0]


def _target_kind(log: TaskLog, doc: Any) -> str | None:
    """'index' or 'text': what the task's `doc_to_target` gives (a document field's type; a template that
    renders digits is an index in lm-eval); None when the config does not say (a function)."""
    spec = log.config.get("doc_to_target")
    if type(spec) is int:
        return "index"
    if isinstance(spec, str) and isinstance(doc, dict) and spec in doc:
        value = doc[spec]
        return "index" if type(value) is int else "text" if isinstance(value, str) else None
    if isinstance(spec, str) and "{{" in spec:
        return "index"
    return None


def _gen_sample(log: TaskLog, rec: dict[str, Any], where: str) -> GenSample:
    resps = _key(rec, "resps", where)
    try:
        text = resps[0][0] if isinstance(resps[0], list) else resps[0]
    except (IndexError, TypeError, KeyError):
        raise UserError(f"{where}: key 'resps' holds no response") from None
    filtered = rec.get("filtered_resps", text)
    response = filtered[0] if isinstance(filtered, list) and filtered else filtered
    target = _key(rec, "target", where)
    others: list[str] = []
    if isinstance(target, str):  # lm-eval 0.4.3+ logs str(target): a list of answers as its repr
        target = _list_literal(target) or target
    if isinstance(target, list):  # several gold answers (triviaqa, nq_open): the first, then aliases
        target, others = (target[0], [str(t) for t in target[1:]]) if target else ("", [])
    names = [m for m in GEN_METRICS if isinstance(rec.get(m), (int, float))] or [
        m for m in rec.get("metrics", []) if isinstance(rec.get(m), (int, float))
    ]
    if not names:
        raise UserError(f"{where}: no numeric per-sample metric (keys {', '.join(map(repr, rec.get('metrics', [])))})")
    return GenSample(
        task=log.name,
        text=str(text),
        target=str(target),
        metric=names[0],
        value=_number(rec[names[0]], f"{where}: {names[0]}"),
        filter=rec.get("filter"),
        response=str(response),
        other_targets=others,
    )


def _list_literal(text: str) -> list[str] | None:
    """The strings of a Python list or tuple literal of strings ("['a', 'b']"), else None (never eval)."""
    text = text.strip()
    if (text[:1], text[-1:]) not in (("[", "]"), ("(", ")")):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


@dataclass
class _Asked:
    """One sample line: the item it asks, its request (MC or generation), where it is, its document."""

    src: ItemSource
    sample: Any
    where: str
    doc: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return self.src.native_id, self.src.language


def _keyed(lines: list[_Asked]) -> dict[tuple[str, str], _Asked]:
    """By (native id, language). One id on two different documents of a task is an error; the same
    document repeated gets '#2', '#3'… in order, the same on both sides of a pair."""
    out: dict[tuple[str, str], _Asked] = {}
    for line in lines:
        base, k = line.src.native_id, 1
        first = out.get(line.key)
        if first is not None and dumps_line(first.doc) != dumps_line(line.doc):
            raise UserError(
                f"{line.where}: document id {quote(base)} ({line.src.language}) is also at {first.where} on "
                "another document; the ids of a task must be unique"
            )
        while line.key in out:
            k += 1
            line.src.native_id = f"{base}#{k}"
        out[line.key] = line
    return out


def _check_repeats(a: TaskLog, a_lines: list[_Asked], b: TaskLog, b_lines: list[_Asked]) -> None:
    """A document asked more often in one task than in its twin is named at its extra line (the pairing
    by id would otherwise report a '#2' item that exists on one side only)."""
    ca, cb = Counter(x.key for x in a_lines), Counter(x.key for x in b_lines)
    for key in dict.fromkeys(x.key for x in a_lines + b_lines):
        if ca[key] and cb[key] and ca[key] != cb[key]:
            lines = a_lines if ca[key] > cb[key] else b_lines
            extra = [x.where for x in lines if x.key == key][min(ca[key], cb[key])]
            raise UserError(
                f"{extra}: document {key[0]!r} ({key[1]}) is asked {ca[key]} time(s) in {a.samples_path.name} and "
                f"{cb[key]} in {b.samples_path.name}; a document must be asked as often in both tasks"
            )


def _check_same_document(mc: _Asked, gen: _Asked) -> None:
    """The two documents paired by one id ask the same thing: for each `QUESTION_KEYS` field both have,
    one text holds the other, spaces and case aside (a twin's `process_docs` may wrap the question,
    "Question: ... Answer:", or append its options)."""
    for field in QUESTION_KEYS:
        a, b = mc.doc.get(field), gen.doc.get(field)
        if isinstance(a, str) and isinstance(b, str):
            x, y = (" ".join(t.casefold().split()) for t in (a, b))
            if x not in y and y not in x:
                raise UserError(
                    f"{mc.where} and {gen.where}: document id {quote(mc.src.native_id)} ({mc.src.language}) has "
                    f"{field} {quote(a)} in one task and {quote(b)} in the other; a pair's tasks are joined by id, "
                    "so it must name one document"
                )


def pair_items(mc_log: TaskLog, gen_log: TaskLog, options: ImportOptions) -> tuple[list[dict], list[dict]]:
    """Items and outcome lines of one (MC task, generation task) pair, in the MC task's document order."""
    mc_lines = []
    for where, rec in _samples(mc_log, None):
        doc = _key(rec, "doc", where)
        src = _item_source(mc_log, doc, where, options.language)
        mc, prompt = _mc_sample(mc_log, rec, where)
        src.question = src.question or prompt.strip()
        if not src.question:
            raise UserError(f"{where}: no question (the doc has no 'question' and the prompt is empty)")
        mc_lines.append(_Asked(src, mc, where, doc))
    gen_lines = []
    for where, rec in _samples(gen_log, _gen_filter(gen_log)):
        doc = _key(rec, "doc", where)
        src = _item_source(gen_log, doc, where, options.language)
        gen_lines.append(_Asked(src, _gen_sample(gen_log, rec, where), where, doc))
    for log, got in ((mc_log, mc_lines), (gen_log, gen_lines)):
        if not got:
            raise UserError(
                f"{log.samples_path}: no samples (task {log.name}); its twin has {len(mc_lines or gen_lines)}"
            )
    _check_repeats(mc_log, mc_lines, gen_log, gen_lines)
    mc_by, gen_by = _keyed(mc_lines), _keyed(gen_lines)
    only_mc = [k for k in mc_by if k not in gen_by]
    only_gen = [k for k in gen_by if k not in mc_by]
    if only_mc or only_gen:
        ex = ", ".join(f"{a}/{b}" for a, b in (only_mc or only_gen)[:3])
        raise UserError(
            f"tasks {mc_log.name} and {gen_log.name} do not ask the same documents: {len(only_mc)} only in "
            f"{mc_log.samples_path.name}, {len(only_gen)} only in {gen_log.samples_path.name} (e.g. {ex})"
        )
    samples = []
    for key, mc_line in mc_by.items():
        gen_line = gen_by[key]
        _check_same_document(mc_line, gen_line)
        src = mc_line.src
        src.aliases = [*src.aliases, *gen_line.sample.other_targets]
        samples.append((src, mc_line.sample, gen_line.sample))
    return pair_lines("lm-eval", (mc_log.name, gen_log.name), samples, options, gen_log.samples_path)


def _run(model: str, pairs: list[tuple[TaskLog, TaskLog]], options: ImportOptions) -> ImportedRun:
    items, outcomes = join_pairs(model, [pair_items(m, g, options) for m, g in pairs])
    logs = [t for pair in pairs for t in pair]
    results = logs[0].results
    cfg = results.get("config") or {}
    files = sorted({str(p.resolve()) for t in logs for p in (t.results_path, t.samples_path)})  # absolute
    tasks = {t.name: t.config for t in logs}
    manifest = {
        "prompts": {
            "templates": {t.name: t.config.get("doc_to_text") for t in logs},
            "hashes": {t.name: sha256_text(str(t.config.get("doc_to_text"))) for t in logs},
        },
        "decoding": {g.name: g.config.get("generation_kwargs") for _, g in pairs},
        "matching": options.scoring.to_dict(),
        "seeds": {k: cfg[k] for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed") if k in cfg},
        "versions": {
            k: results[v]
            for k, v in (("lm_eval", "lm_eval_version"), ("transformers", "transformers_version"))
            if results.get(v)
        },
        "git": None,
        "hardware": {"device": cfg.get("device")},
        "timings": {"evaluation_s": results.get("total_evaluation_time_seconds")},
        "imported": {
            "harness": "lm-eval",
            "version": results.get("lm_eval_version"),
            "files": files,
            "model_config": cfg,
            "tasks": tasks,
            "pairs": [{"mc": m.name, "open": g.name} for m, g in pairs],
            "results": {t.name: (t.results.get("results") or {}).get(t.name) for t in logs},
            "chat_template_sha": results.get("chat_template_sha"),
            "system_instruction": results.get("system_instruction"),
            **options.describe(),
        },
    }
    n_params = cfg.get("model_num_parameters")
    return ImportedRun(
        run_id=run_id_of(model),
        model={
            "id": model,
            "revision": cfg.get("model_revision"),
            "n_params": int(n_params) if isinstance(n_params, int) and n_params > 0 else 0,
            "source": f"lm-eval {cfg.get('model', '')}".strip(),
            "architecture": None,
            "dtype": str(cfg.get("model_dtype") or ""),
        },
        items=items,
        outcomes=outcomes,
        manifest=manifest,
    )


def read_lm_eval(
    paths: Sequence[Path], options: ImportOptions, explicit_pairs: Sequence[tuple[str, str]] = ()
) -> list[ImportedRun]:
    """One imported run per model found under `paths` (see the module docstring)."""
    runs = []
    by_model = tasks_by_model(paths)
    check_explicit(explicit_pairs, {n for tasks in by_model.values() for n in tasks})
    for model, tasks in by_model.items():
        names = model_pairs(model, {n: t.output_type for n, t in tasks.items()}, explicit_pairs)
        runs.append(_run(model, [(tasks[a], tasks[b]) for a, b in names], options))
    return runs
