"""Reading Inspect AI eval logs (`.eval` archives and `.json` logs) into imported runs.

The documented log format is read directly, without the `inspect_ai` package (it installs cleanly,
but pulls dozens of packages into the environment for what is JSON): a `.json` log is one object
with `eval` (task, model, model_args, dataset), `results`, `stats` and `samples`; an `.eval` log is a
zip archive with `header.json` (the same without samples) and one `samples/<id>_epoch_<n>.json` per
sample. Recent Inspect versions compress the archive members with zstd (zip method 93), which
Python's zipfile reads only from 3.14: the `zstandard` package does it here (`pip install
zstandard`, in prunescope's `inspect` and `dev` extras).

A sample gives: `id` (the item's native id; Inspect numbers samples 1, 2, … when the dataset has no
ids, which are positions, so give ids), `input` (the question), `choices` and `target` (a letter) for
multiple choice, `target` (the answer, then aliases) for generation, `output.completion` (the
model's text), `scores` (the first scorer's value and answer) and `metadata` (`language`,
`parallel_id`, `aliases` are used when present). A task scored by `choice()` or solved by
`multiple_choice()` (or, in a log that names no scorer or solver, whose samples have `choices` and
letters as targets; `--pair` says it too) is the multiple-choice one: its answer is the letter Inspect's `choice()` scorer extracted (no option is
scored, so the MC decision is `generated_letter`). Tasks pair by name as lm-eval's do
(`engine.importers.pairs`). Only the first epoch of each sample is used; a sample that ended in an
error (no scores) is skipped, in both tasks of its pair and in every model's logs of those tasks
(the runs of a study share one item set), with a note.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.importers.folder import ImportedRun, run_id_of
from engine.importers.pairs import GEN, MC, check_explicit, model_pairs
from engine.importers.records import (
    GenSample,
    ImportOptions,
    ItemSource,
    McSample,
    join_pairs,
    language_of,
    pair_lines,
    quote,
)
from engine.runfolder import sha256_text
from engine.safe_text import inert

ZIP_ZSTD = 93  # the zip compression method number of zstandard
SCORE_VALUES = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}  # Inspect's CORRECT, INCORRECT, PARTIAL, NOANSWER
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class InspectTask:
    """One Inspect log: its header and its samples (first epoch)."""

    path: Path
    header: dict[str, Any]
    samples: list[tuple[str, dict[str, Any]]]  # (where, sample)
    errored: set[str]  # ids of samples that ended in an error (no scores), skipped in both tasks of a pair

    @property
    def eval(self) -> dict[str, Any]:
        return self.header.get("eval") or {}

    @property
    def name(self) -> str:
        return str(self.eval.get("task") or self.path.stem).split("/")[-1]

    @property
    def model(self) -> str:
        args = self.eval.get("model_args") or {}
        path = args.get("model_path") if isinstance(args, dict) else None
        return str(path or self.eval.get("model") or "?")

    @property
    def is_mc(self) -> bool:
        """Multiple choice: scored by Inspect's `choice()` or solved by `multiple_choice()`; a log naming
        another scorer or solver is generation (its samples may carry `choices` and letter targets, as an
        mmlu_generative task's do); a log naming neither is multiple choice when its samples have
        `choices` and option letters as targets."""
        scorers = {str(s.get("name")) for s in self.eval.get("scorers") or [] if isinstance(s, dict)}
        steps = ((self.header.get("plan") or {}).get("steps")) or []
        solvers = {str(s.get("solver")) for s in steps if isinstance(s, dict)}
        if "choice" in scorers or "multiple_choice" in solvers:
            return True
        if scorers or solvers:
            return False
        with_choices = [s for _, s in self.samples if s.get("choices")]
        return bool(with_choices) and all(_is_letter_target(s) for s in with_choices)


class NotALog(UserError):
    """A file that is not an Inspect log at all (rather than a damaged one)."""


def log_files(paths: Sequence[Path]) -> list[tuple[Path, bool]]:
    """`.eval` and `.json` files given, or under the given folders, in name order; each with whether
    it was given by name (a file found in a folder that is not a log is passed over)."""
    found: list[tuple[Path, bool]] = []
    for p in paths:
        if p.is_file():
            found.append((p, True))
            continue
        if not p.is_dir():
            raise UserError(f"{p}: no such file or folder")
        here = sorted(q for q in p.rglob("*") if q.suffix in (".eval", ".json") and q.is_file())
        if not here:
            raise UserError(f"{p}: no Inspect logs (.eval or .json) here")
        found += [(q, False) for q in here]
    return found


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _member(path: Path, zf: zipfile.ZipFile, name: str) -> bytes:
    """One archive member's bytes; zstd members decompressed with the `zstandard` package."""
    info = zf.getinfo(name)
    if info.compress_type != ZIP_ZSTD:
        return zf.read(name)
    try:
        import zstandard
    except ImportError:
        raise UserError(
            f"{path}: compressed with zstd, which Python's zipfile reads only from 3.14; "
            "`pip install zstandard` (or `inspect log convert --to json` the log)"
        ) from None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        raw = f.read(info.compress_size)
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True) as r:
        return r.read()


def read_log(path: Path) -> InspectTask:
    """One log file (see the module docstring)."""
    if path.suffix == ".json":
        data = _json(path.read_bytes(), str(path))
        if not isinstance(data, dict) or "eval" not in data:
            raise NotALog(f"{path}: key 'eval' missing (not an Inspect log)")
        samples = data.get("samples")
        if not isinstance(samples, list):
            raise UserError(f"{path}: key 'samples' missing (the eval was run without logging samples?)")
        listed = [(f"{path}: samples[{k}]", s) for k, s in enumerate(samples)]
        header = data
    else:
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise UserError(f"{path}: not an Inspect .eval log (not a zip archive)") from None
        with zf:
            names = zf.namelist()
            if "header.json" not in names:
                raise UserError(f"{path}: header.json missing (an unfinished eval? finish it or pass its .json)")
            header = _json(_member(path, zf, "header.json"), f"{path}:header.json")
            listed = [
                (f"{path}:{n}", _json(_member(path, zf, n), f"{path}:{n}"))
                for n in sorted(names)
                if n.startswith("samples/") and n.endswith(".json")
            ]
    if not isinstance(header, dict) or not isinstance(header.get("eval"), dict):
        raise UserError(f"{path}: key 'eval' missing or not an object (not an Inspect log)")
    if header.get("status") != "success":
        raise UserError(f"{path}: status {header.get('status')!r}: only finished evals (status 'success') are imported")
    samples, errored = [], []
    for where, s in listed:
        if not isinstance(s, dict):
            raise UserError(f"{where}: expected a JSON object (a sample)")
        if s.get("error") and "scores" not in s and "id" in s:  # failed, within the eval's fail_on_error
            if s.get("epoch", 1) == 1:
                errored.append(str(s["id"]))
            continue
        for key in ("id", "input", "target", "scores"):
            if key not in s:
                raise UserError(f"{where}: key {key!r} missing (not an Inspect sample?)")
        if s.get("epoch", 1) == 1:
            samples.append((where, s))
    if errored:
        ids = ", ".join(errored[:5]) + (" …" if len(errored) > 5 else "")
        print(
            inert(
                f"prunescope import: skipped {len(errored)} sample(s) of {path} that ended in an error (id {ids}), "
                "in both tasks of its pair"
            ),
            file=sys.stderr,
        )
    if not samples:
        raise UserError(f"{path}: no samples (run the eval with samples logged)")
    order = {str(i): k for k, i in enumerate((header["eval"].get("dataset") or {}).get("sample_ids") or [])}
    samples.sort(key=lambda ws: order.get(str(ws[1]["id"]), len(order)))  # the dataset's order
    return InspectTask(path, header, samples, set(errored))


def _text(value: Any) -> str:
    """A sample input or message content as text (the last user message of a chat input)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        last = next((m for m in reversed(value) if isinstance(m, dict) and m.get("role") == "user"), value[-1])
        content = last.get("content") if isinstance(last, dict) else last
        if isinstance(content, list):
            return "".join(c.get("text", "") for c in content if isinstance(c, dict))
        return str(content or "")
    return ""


def _score(sample: dict[str, Any], where: str) -> tuple[str, float, str]:
    """(scorer name, value as a number, the scorer's answer) of the sample's first scorer."""
    scores = sample.get("scores")
    if not isinstance(scores, dict) or not scores:
        raise UserError(f"{where}: key 'scores' holds no score (was the eval scored?)")
    name, score = next(iter(scores.items()))
    value = score.get("value") if isinstance(score, dict) else None
    if isinstance(value, (int, float)):  # bool is an int
        number = float(value)
    elif isinstance(value, str) and value in SCORE_VALUES:
        number = SCORE_VALUES[value]
    else:
        raise UserError(f"{where}: scores.{name}.value {value!r} is not a number or one of C, I, P, N")
    return str(name), number, str(score.get("answer") or "")


def _targets(sample: dict[str, Any]) -> list[str]:
    target = sample.get("target")
    return [str(t) for t in target] if isinstance(target, list) else [str(target)]


def _is_letter_target(sample: dict[str, Any]) -> bool:
    target = _targets(sample)
    return len(target) == 1 and target[0] in LETTERS[: len(sample.get("choices") or [])]


def _source(task: InspectTask, sample: dict[str, Any], where: str, options: ImportOptions) -> ItemSource:
    meta: dict[str, Any] = sample["metadata"] if isinstance(sample.get("metadata"), dict) else {}
    aliases = meta.get("aliases")
    dataset = (task.eval.get("dataset") or {}).get("name") or task.name
    return ItemSource(
        dataset=str(dataset),
        config=None,
        split="test",
        native_id=str(sample["id"]),
        language=language_of(meta, options.language, where),
        question=_text(sample.get("input")).strip(),
        aliases=[a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else [],
        parallel_id=str(meta["parallel_id"]) if isinstance(meta.get("parallel_id"), (str, int)) else None,
    )


def _mc(task: InspectTask, sample: dict[str, Any], where: str) -> McSample:
    options = sample.get("choices")
    if not isinstance(options, list) or len(options) < 2 or len(options) > len(LETTERS):
        raise UserError(f"{where}: key 'choices' must list 2 to 26 options")
    letters = LETTERS[: len(options)]
    target = _targets(sample)
    if len(target) != 1 or target[0] not in letters:
        raise UserError(
            f"{where}: target {sample.get('target')!r} is not one option letter ({letters[0]}..{letters[-1]})"
        )
    name, value, answer = _score(sample, where)
    answer = answer.strip().rstrip(".)").strip()
    return McSample(
        task=task.name,
        options=[str(o) for o in options],
        logliks=None,
        is_greedy=[None] * len(options),
        gold=letters.index(target[0]),
        metrics={name: value},
        letter_choice=letters.index(answer) if len(answer) == 1 and answer in letters else None,
    )


def _gen(task: InspectTask, sample: dict[str, Any], where: str) -> GenSample:
    output: dict[str, Any] = sample["output"] if isinstance(sample.get("output"), dict) else {}
    text = output.get("completion")
    if not isinstance(text, str):
        choices = output.get("choices") or []
        text = _text([choices[0].get("message")]) if choices and isinstance(choices[0], dict) else ""
    name, value, answer = _score(sample, where)
    targets = _targets(sample)
    if not targets:
        raise UserError(f"{where}: target is an empty list (no gold answer for sample {quote(sample['id'])})")
    return GenSample(task=task.name, text=text, target=targets[0], metric=name, value=value, response=answer or text)


def pair_items(mc: InspectTask, gen: InspectTask, options: ImportOptions) -> tuple[list[dict], list[dict]]:
    """Items and outcome lines of one (MC task, generation task) pair, in the MC log's sample order."""
    skip = mc.errored | gen.errored
    mc_samples = [(where, s) for where, s in mc.samples if str(s["id"]) not in skip]
    gen_by = {str(s["id"]): (where, s) for where, s in gen.samples if str(s["id"]) not in skip}
    mc_ids = [str(s["id"]) for _, s in mc_samples]
    in_mc = set(mc_ids)
    only_mc, only_gen = [i for i in mc_ids if i not in gen_by], [i for i in gen_by if i not in in_mc]
    if only_mc or only_gen:
        raise UserError(
            f"tasks {mc.name} ({mc.path.name}) and {gen.name} ({gen.path.name}) do not ask the same sample ids: "
            f"{len(only_mc)} only in the first, {len(only_gen)} only in the second (e.g. {(only_mc or only_gen)[:3]})"
        )
    samples = []
    for where, s in mc_samples:
        src = _source(mc, s, where, options)
        if not src.question:
            raise UserError(f"{where}: key 'input' holds no question")
        gwhere, g = gen_by[str(s["id"])]
        mc_sample, gen_sample = _mc(mc, s, where), _gen(gen, g, gwhere)
        src.aliases = [*src.aliases, *_targets(g)[1:]]
        samples.append((src, mc_sample, gen_sample))
    return pair_lines("inspect", (mc.name, gen.name), samples, options, gen.path)


def _run(model: str, pairs: list[tuple[InspectTask, InspectTask]], options: ImportOptions) -> ImportedRun:
    items, outcomes = join_pairs(model, [pair_items(m, g, options) for m, g in pairs])
    logs = [t for pair in pairs for t in pair]
    first = logs[0].eval
    plans = {t.name: t.header.get("plan") for t in logs}
    manifest = {
        "prompts": {
            "templates": plans,
            "hashes": {name: sha256_text(json.dumps(p, sort_keys=True)) for name, p in plans.items()},
        },
        "decoding": {t.name: t.eval.get("model_generate_config") for t in logs},
        "matching": options.scoring.to_dict(),
        "seeds": {"seed": (first.get("model_generate_config") or {}).get("seed")},
        "versions": {"inspect_ai": (first.get("packages") or {}).get("inspect_ai")},
        "git": None,
        "hardware": {},
        "timings": {t.name: t.header.get("stats", {}).get("completed_at") for t in logs},
        "imported": {
            "harness": "inspect",
            "version": (first.get("packages") or {}).get("inspect_ai"),
            "files": [str(t.path.resolve()) for t in logs],  # absolute: the study may be read from anywhere
            "tasks": {t.name: t.eval for t in logs},
            "pairs": [{"mc": m.name, "open": g.name} for m, g in pairs],
            "results": {t.name: t.header.get("results") for t in logs},
            **options.describe(),
            "mc_rule": "generated_letter",
        },
    }
    return ImportedRun(
        run_id=run_id_of(model),
        model={
            "id": model,
            "revision": None,
            "n_params": 0,
            "source": f"inspect {first.get('model', '')}".strip(),
            "architecture": None,
        },
        items=items,
        outcomes=outcomes,
        manifest=manifest,
    )


def read_inspect(
    paths: Sequence[Path], options: ImportOptions, explicit_pairs: Sequence[tuple[str, str]] = ()
) -> list[ImportedRun]:
    """One imported run per model found in the logs under `paths` (see the module docstring)."""
    by_model: dict[str, dict[str, InspectTask]] = {}
    passed_over: list[Path] = []
    for path, named in log_files(paths):
        try:
            task = read_log(path)
        except NotALog:
            if named:
                raise
            passed_over.append(path)  # e.g. eval-set's logs.json, or a study's manifests in the folder
            continue
        tasks = by_model.setdefault(task.model, {})
        if task.name in tasks:
            raise UserError(
                f"task {task.name!r} of model {task.model!r} is in {tasks[task.name].path} and in {path}: give one"
            )
        tasks[task.name] = task
    if passed_over:
        print(
            inert(
                f"prunescope import: passed over {len(passed_over)} .json file(s) that are not Inspect logs "
                f"(e.g. {passed_over[0]})"
            ),
            file=sys.stderr,
        )
    if not by_model:
        raise UserError(f"{', '.join(map(str, paths))}: no Inspect logs here (only other .json files)")
    check_explicit(explicit_pairs, {n for tasks in by_model.values() for n in tasks})
    planned: list[tuple[str, list[tuple[InspectTask, InspectTask]]]] = []
    for model, tasks in by_model.items():
        kinds = {n: MC if t.is_mc else GEN for n, t in tasks.items()}
        for a, b in explicit_pairs:  # --pair says which is which, whatever the logs suggest
            if a in kinds and b in kinds:
                kinds[a], kinds[b] = MC, GEN
        names = model_pairs(model, kinds, explicit_pairs)
        planned.append((model, [(tasks[a], tasks[b]) for a, b in names]))
    _skip_in_every_model([pair for _, pairs in planned for pair in pairs])
    return [_run(model, pairs, options) for model, pairs in planned]


def _skip_in_every_model(pairs: list[tuple[InspectTask, InspectTask]]) -> None:
    """A sample that ended in an error in one model's log is skipped in every model's pair of the same
    tasks, with a note: the runs of one study share one item set."""
    errored: dict[tuple[str, str], set[str]] = {}
    for mc, gen in pairs:
        errored.setdefault((mc.name, gen.name), set()).update(mc.errored | gen.errored)
    for mc, gen in pairs:
        skip = errored[(mc.name, gen.name)]
        present = {str(s["id"]) for _, s in mc.samples} | {str(s["id"]) for _, s in gen.samples}
        also = sorted((skip - mc.errored - gen.errored) & present)
        if also:
            ids = ", ".join(also[:5]) + (" …" if len(also) > 5 else "")
            print(
                inert(
                    f"prunescope import: skipped {len(also)} sample(s) of model {mc.model!r} in tasks {mc.name} and "
                    f"{gen.name} (id {ids}) too: they ended in an error in another model's log, and the runs of "
                    "one study share one item set"
                ),
                file=sys.stderr,
            )
        mc.errored = gen.errored = skip
