"""Every user mistake is named: a corpus of bad inputs across the commands.

Each case runs `prunescope …` (in-process through `engine.cli.main`, as the console script does; a few
through a real subprocess) and must exit non-zero with one line naming the file and the key or line,
without a traceback or "internal error", and leave every file that existed before byte-identical. Cases
that fail before a run starts leave no new file at all (a refused spec leaves no trace in --out).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import ITEMS, MANIFEST, OUTCOMES
from engine.runfolder import dumps_line
from tests.synthetic import make_synthetic_study
from tests.tiny import make_tiny_model_dir

GOOD_SPEC = """
name = "bad-input"
[items]
source = "bundled"
languages = ["en", "de"]
n_per_language = 2
[[models]]
id = "{model}"
[pruning]
methods = ["wanda"]
sparsities = [0.5]
[calibration]
nsamples = 2
seqlen = 16
[protocol]
batch_size = 2
max_new_tokens = 2
"""


@dataclass
class Case:
    """One bad input: what to set up in `ws` (the workspace), the command, and what the error must name."""

    id: str
    argv: Callable[[Path], list[str]]
    names: Callable[[Path], list[str]]  # fragments the error line must contain (file, key or line)
    setup: Callable[[Path], None] = lambda ws: None
    stream: str = "err"  # where the naming line goes: "err" (the error line) or "out" (validate's report)
    new_files: bool = False  # a run that got as far as taking its run folder's lock may add .writer.lock


def _spec(ws: Path, text: str | None = None, extra: str = "", drop: str | None = None) -> Path:
    body = (text if text is not None else GOOD_SPEC.format(model=(ws / "model").as_posix())) + extra
    if drop:
        body = body.replace(drop, "")
    path = ws / "study.toml"
    path.write_text(body, encoding="utf-8")
    return path


def run_case(spec_extra: str = "", drop: str | None = None, replace: tuple[str, str] | None = None) -> Callable:
    def setup(ws: Path) -> None:
        text = GOOD_SPEC.format(model=(ws / "model").as_posix())
        if replace:
            assert replace[0] in text
            text = text.replace(*replace)
        _spec(ws, text, spec_extra, drop)

    return setup


def _run_argv(ws: Path) -> list[str]:
    return ["run", str(ws / "study.toml"), "--out", str(ws / "out"), "--no-progress"]


def spec_case(id: str, key: str, **kw) -> Case:
    """A bad study spec: `prunescope run` names study.toml and the key."""
    return Case(id, _run_argv, lambda ws: [str(ws / "study.toml"), key], setup=run_case(**kw))


def _rewrite_lines(path: Path, fn: Callable[[list[dict]], list[dict]]) -> None:
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(dumps_line(r) for r in fn(recs)), encoding="utf-8")


def _set_resume_items_hash(run: Path, value: str) -> None:
    """A run folder made from the items as an older prunescope read them (another items hash)."""
    m = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
    m["resume_identity"]["items_hash"] = value
    (run / MANIFEST).write_text(json.dumps(m), encoding="utf-8")


def _set_manifest(run: Path, **fields) -> None:
    m = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
    m.update(fields)
    (run / MANIFEST).write_text(json.dumps(m), encoding="utf-8")


def _model_weights(ws: Path) -> Path:
    return ws / "model" / "model.safetensors"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _garbage_gguf(ws: Path) -> None:
    (ws / "garbage.gguf").write_bytes(os.urandom(4096))


def _items_file(ws: Path, rows: list[dict]) -> None:
    (ws / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _item(i: int, n_options: int = 4) -> dict:
    options = [f"option {j}" for j in range(n_options)]
    return {"id": f"q{i}", "language": "en", "question": f"Question {i}?", "answer": options[0], "options": options}


def _resume_setup(mutate: Callable[[Path], None]) -> Callable[[Path], None]:
    """A study folder made from the good spec, its run folder `mutate`d, for a resume to refuse."""

    def setup(ws: Path) -> None:
        from engine.contract.reader import SCHEMA_VERSION
        from engine.runfolder import items_hash, write_jsonl_atomic
        from engine.runner import _identity, load_study_items, write_study_spec
        from engine.study import parse_study, plan_runs

        spec = _spec(ws)
        study = parse_study(spec)
        plan = plan_runs(study)[0]
        items = load_study_items(study)
        out = ws / "out"
        out.mkdir()
        write_study_spec(out, spec.read_text(encoding="utf-8"))
        run = out / plan.run_id
        run.mkdir()
        write_jsonl_atomic(run / ITEMS, items)
        ident = _identity(plan, study.protocol, items_hash(items))
        manifest = {"schema_version": SCHEMA_VERSION, "run_id": plan.run_id, "status": "running"}
        (run / MANIFEST).write_text(json.dumps({**manifest, "resume_identity": ident}), encoding="utf-8")
        outcome = {"item_uid": items[0]["item_uid"], "content_hash": items[0]["content_hash"], "x": 1}
        (run / OUTCOMES).write_text(dumps_line(outcome), encoding="utf-8")
        mutate(run)

    return setup


def _edit_first_item(run: Path) -> None:
    def edit(recs):
        recs[0]["question"] += " (edited)"
        return recs

    _rewrite_lines(run / ITEMS, edit)


def _append_differing_duplicate(run: Path) -> None:
    rec = json.loads((run / OUTCOMES).read_text(encoding="utf-8"))
    rec["x"] = 2
    with open(run / OUTCOMES, "a", encoding="utf-8") as f:
        f.write(dumps_line(rec))


# ------------------------------------------------------------------ the study folder for readers

STUDY = "study"
RUN = "tiny-llama__wanda-s50"


def _run(ws: Path) -> Path:
    return ws / STUDY / RUN


def _dup_line(ws: Path) -> None:
    path = _run(ws) / OUTCOMES
    first = path.read_text(encoding="utf-8").splitlines(keepends=True)[0]
    with open(path, "a", encoding="utf-8") as f:
        f.write(first)


def _corrupt_line(ws: Path) -> None:
    path = _run(ws) / OUTCOMES
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join([*lines[:2], "{oops\n", *lines[2:]]), encoding="utf-8")


def _rank_past_64_bits(ws: Path) -> None:
    def edit(recs):
        recs[2]["gold_trace"]["first_token_rank"] = 10**30
        return recs

    _rewrite_lines(_run(ws) / OUTCOMES, edit)


def _edit_item_keep_hash(ws: Path) -> None:
    def edit(recs):
        recs[2]["question"] = "edited"
        return recs

    _rewrite_lines(_run(ws) / ITEMS, edit)


def _other_items(ws: Path) -> None:
    def drop_last(recs):
        return recs[:-1]

    _rewrite_lines(_run(ws) / ITEMS, drop_last)


def _unknown_item(ws: Path) -> None:
    def rename(recs):
        recs[0]["item_uid"] = "nowhere/q0/en"
        return recs

    _rewrite_lines(_run(ws) / OUTCOMES, rename)


def _write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))

    return setup


def _made_with_override(ws: Path) -> None:
    """out/study.toml as `run study.toml --n-per-language 2` keeps it."""
    (ws / "out").mkdir(exist_ok=True)
    spec = (ws / "study.toml").read_text(encoding="utf-8")
    (ws / "out" / "study.toml").write_text(spec + "\n# command-line overrides\n# items.n_per_language = 2\n", "utf-8")


def _both(*fns: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        for fn in fns:
            fn(ws)

    return setup


def _manifest(**fields) -> Callable[[Path], None]:
    return lambda ws: _set_manifest(_run(ws), **fields)


def _study(ws: Path) -> str:
    return str(ws / STUDY)


def _manifest_path(ws: Path) -> str:
    return str(_run(ws) / MANIFEST)


def _prune_argv(*extra: str, model: str | None = None) -> Callable[[Path], list[str]]:
    def argv(ws: Path) -> list[str]:
        return ["prune", model or str(ws / "model"), "--method", "wanda", "--out", str(ws / "pruned"), *extra]

    return argv


def _ppl_argv(*extra: str, model: str | None = None) -> Callable[[Path], list[str]]:
    def argv(ws: Path) -> list[str]:
        return ["perplexity", model or str(ws / "model"), *extra]

    return argv


CASES: list[Case] = [
    # ---------------------------------------------------------------- run: the spec file itself
    Case("run-spec-missing", _run_argv, lambda ws: [str(ws / "study.toml"), "not found"]),
    Case(
        "run-spec-is-folder",
        _run_argv,
        lambda ws: [str(ws / "study.toml"), "is a folder"],
        setup=lambda ws: (ws / "study.toml").mkdir(),
    ),
    spec_case("run-spec-bad-toml", "invalid TOML", spec_extra="[[models]\n"),
    Case(
        "run-spec-not-utf8",
        _run_argv,
        lambda ws: [str(ws / "study.toml"), "not UTF-8"],
        setup=_write("study.toml", b"name = '\xff\xfe'\n"),
    ),
    spec_case("run-spec-unknown-top-key", "bogus", replace=('name = "bad-input"', 'bogus = 1\nname = "bad-input"')),
    # ---------------------------------------------------------------- run: [pruning] and [[conditions]]
    spec_case("run-sparsities-not-list", "[pruning].sparsities", replace=("sparsities = [0.5]", "sparsities = 0.5")),
    spec_case("run-methods-a-string", "[pruning].methods", replace=('methods = ["wanda"]', 'methods = "wanda"')),
    spec_case("run-unknown-method", "unknown method 'wandaa'", replace=('["wanda"]', '["wandaa"]')),
    spec_case("run-sparsity-range", "[pruning].sparsities", replace=("[0.5]", "[1.5]")),
    spec_case("run-sparsity-string", "[pruning].sparsities", replace=("[0.5]", '["half"]')),
    spec_case(
        "run-pattern-bad", "[pruning].patterns", spec_extra="", replace=("sparsities = [0.5]", 'patterns = ["4:2"]')
    ),
    spec_case("run-methods-without-sparsities", "[pruning].methods", drop="sparsities = [0.5]\n"),
    spec_case(
        "run-include-dense-string",
        "[pruning].include_dense",
        replace=("[pruning]\n", '[pruning]\ninclude_dense = "yes"\n'),
    ),
    spec_case("run-condition-without-method", "[[conditions]] #1", spec_extra="[[conditions]]\nsparsity = 0.6\n"),
    spec_case(
        "run-condition-dense-with-sparsity",
        "[[conditions]] #1",
        spec_extra="[[conditions]]\nmethod = 'dense'\nsparsity = 0.6\n",
    ),
    spec_case(
        "run-condition-nm-contradiction",
        "[[conditions]] #1",
        spec_extra="[[conditions]]\nmethod = 'sparsegpt'\npattern = '2:4'\nsparsity = 0.7\n",
    ),
    spec_case("run-condition-no-sparsity", "[[conditions]] #1", spec_extra="[[conditions]]\nmethod = 'magnitude'\n"),
    spec_case(
        "run-condition-unknown-key", "[[conditions]] #1", spec_extra="[[conditions]]\nmethod = 'wanda'\nsparsty = 0.5\n"
    ),
    # ---------------------------------------------------------------- run: [protocol]
    spec_case("run-batch-size-zero", "[protocol].batch_size", replace=("batch_size = 2", "batch_size = 0")),
    spec_case(
        "run-max-new-tokens-zero", "[protocol].max_new_tokens", replace=("max_new_tokens = 2", "max_new_tokens = 0")
    ),
    spec_case("run-mc-rule-unknown", "[protocol].mc_rule", spec_extra="mc_rule = 'longest'\n"),
    spec_case("run-beam-width-zero", "[protocol].beam_width", spec_extra="beam_width = 0\nprobes = 'all'\n"),
    spec_case("run-temperature-negative", "[protocol].temperature", spec_extra="temperature = -1.0\n"),
    spec_case("run-top-p-above-one", "[protocol].top_p", spec_extra="top_p = 1.5\n"),
    spec_case("run-n-samples-zero", "[protocol].n_samples", spec_extra="n_samples = 0\n"),
    spec_case("run-probes-unknown", "[protocol].probes", spec_extra="probes = 'some'\n"),
    spec_case(
        "run-letter-rule-without-letters", "[protocol].mc_rule", spec_extra="mc_rule = 'letter'\nletter = false\n"
    ),
    spec_case("run-chat-template-string", "[protocol].use_chat_template", spec_extra="use_chat_template = 'yes'\n"),
    spec_case("run-protocol-unknown-key", "[protocol]", spec_extra="beams = 2\n"),
    # ---------------------------------------------------------------- run: [calibration], [items], [[models]], [launcher]
    spec_case("run-nsamples-zero", "[calibration].nsamples", replace=("nsamples = 2", "nsamples = 0")),
    spec_case("run-seqlen-one", "[calibration].seqlen", replace=("seqlen = 16", "seqlen = 1")),
    spec_case(
        "run-calibration-file-missing",
        "[calibration].source",
        replace=("[calibration]\n", "[calibration]\nsource = '/no/such/calib.jsonl'\n"),
    ),
    spec_case(
        "run-n-per-language-zero", "[items].n_per_language", replace=("n_per_language = 2", "n_per_language = 0")
    ),
    spec_case("run-languages-a-string", "[items].languages", replace=('["en", "de"]', '"en"')),
    Case(
        "run-no-models",
        _run_argv,
        lambda ws: [str(ws / "study.toml"), "[[models]]"],
        setup=lambda ws: _spec(ws, GOOD_SPEC.format(model="x").replace('[[models]]\nid = "x"\n', "")),
    ),
    spec_case("run-model-dtype", "[[models]] #1.dtype", replace=("[pruning]", 'dtype = "float8"\n[pruning]')),
    spec_case("run-model-device-name", "[[models]] #1.device", replace=("[pruning]", 'device = "gpu"\n[pruning]')),
    spec_case("run-cuda-absent", "[[models]] #1.device", replace=("[pruning]", 'device = "cuda:99"\n[pruning]')),
    spec_case("run-launcher-kind", "[launcher].kind", spec_extra="[launcher]\nkind = 'k8s'\n"),
    spec_case(
        "run-launcher-workers-zero", "[launcher].num_workers", spec_extra="[launcher]\nkind = 'ray'\nnum_workers = 0\n"
    ),
    spec_case("run-launcher-unknown-key", "[launcher]", spec_extra="[launcher]\nnodes = 2\n"),
    # ---------------------------------------------------------------- run: items and model files (checked before loading)
    Case(
        "run-items-file-missing",
        _run_argv,
        lambda ws: [str(ws / "nope.jsonl"), "no such item file"],
        setup=run_case(replace=('source = "bundled"\nlanguages = ["en", "de"]', 'source = "{ws}/nope.jsonl"')),
    ),
    Case(
        "run-items-bad-json-line",
        _run_argv,
        lambda ws: [str(ws / "items.jsonl"), "line 2"],
        setup=_both(
            _write("items.jsonl", json.dumps(_item(1)) + "\n{not json\n"),
            run_case(replace=('source = "bundled"\nlanguages = ["en", "de"]', 'source = "{ws}/items.jsonl"')),
        ),
    ),
    Case(
        "run-items-more-options-than-letters",
        _run_argv,
        lambda ws: [str(ws / "items.jsonl"), "27 options", "[protocol].letter"],
        setup=_both(
            lambda ws: _items_file(ws, [_item(1, 27), _item(2)]),
            run_case(replace=('source = "bundled"\nlanguages = ["en", "de"]', 'source = "{ws}/items.jsonl"')),
        ),
    ),
    Case(
        "run-model-path-missing",
        _run_argv,
        lambda ws: [str(ws / "study.toml"), "[[models]] #1.id", "/no/such/model"],
        setup=lambda ws: _spec(ws, GOOD_SPEC.format(model="/no/such/model")),
    ),
    Case(
        "run-model-folder-without-config",
        _run_argv,
        lambda ws: [str(ws / "model"), "config.json"],
        setup=_both(run_case(), lambda ws: (ws / "model" / "config.json").unlink()),
    ),
    Case(
        "run-truncated-safetensors",
        _run_argv,
        lambda ws: [str(_model_weights(ws)), "truncated"],
        setup=_both(run_case(), lambda ws: _truncate(_model_weights(ws))),
    ),
    Case(
        "run-weights-file-is-a-folder",
        _run_argv,
        lambda ws: [str(ws / "model" / "pytorch_model.bin"), "folder"],
        setup=_both(run_case(), lambda ws: (ws / "model" / "pytorch_model.bin").mkdir()),
    ),
    Case(
        "run-garbage-gguf",
        _run_argv,
        lambda ws: [str(ws / "garbage.gguf"), "not a GGUF file"],
        setup=_both(_garbage_gguf, lambda ws: _spec(ws, GOOD_SPEC.format(model=(ws / "garbage.gguf").as_posix()))),
    ),
    Case(
        "run-model-is-a-text-file",
        _run_argv,
        lambda ws: [str(ws / "notes.txt"), "not a .gguf"],
        setup=_both(
            _write("notes.txt", "hello"), lambda ws: _spec(ws, GOOD_SPEC.format(model=(ws / "notes.txt").as_posix()))
        ),
    ),
    # ---------------------------------------------------------------- run: the output folder
    Case(
        "run-out-is-a-file",
        _run_argv,
        lambda ws: ["--out", str(ws / "out"), "not a folder"],
        setup=_both(run_case(), _write("out", "x")),
    ),
    Case(
        "run-out-not-writable",
        lambda ws: ["run", str(ws / "study.toml"), "--out", "/sys/prunescope-test-out", "--no-progress"],
        lambda ws: ["/sys/prunescope-test-out"],
        setup=run_case(),
    ),
    Case(
        "run-threads-zero",
        lambda ws: [*_run_argv(ws), "--threads", "0"],
        lambda ws: ["--threads", "0"],
        setup=run_case(),
    ),
    Case(
        "run-workers-zero",
        lambda ws: [*_run_argv(ws), "--workers", "0"],
        lambda ws: ["--workers must be >= 1, got 0"],
        setup=run_case(),
    ),
    Case(
        "run-only-unknown-run",
        lambda ws: [*_run_argv(ws), "--only", "nope"],
        lambda ws: ["--only", "nope", str(ws / "study.toml")],
        setup=run_case(),
    ),
    Case(
        "run-n-per-language-flag-zero",
        lambda ws: [*_run_argv(ws), "--n-per-language", "0"],
        lambda ws: ["--n-per-language must be >= 1, got 0"],
        setup=run_case(),
    ),
    Case(
        "run-only-names-nothing",
        lambda ws: [*_run_argv(ws), "--only", ","],
        lambda ws: ["--only ','", "names nothing"],
        setup=run_case(),
    ),
    Case(
        "run-languages-flag-names-nothing",
        lambda ws: [*_run_argv(ws), "--languages", " , "],
        lambda ws: ["--languages", "names nothing"],
        setup=run_case(),
    ),
    Case(
        "run-override-of-an-items-list",
        lambda ws: [*_run_argv(ws), "--n-per-language", "2"],
        lambda ws: [str(ws / "study.toml"), "[[items]]"],
        setup=run_case(replace=("[items]\n", "[[items]]\n")),
    ),
    Case(
        "run-override-of-items-not-a-table",
        lambda ws: [*_run_argv(ws), "--languages", "en"],
        lambda ws: [str(ws / "study.toml"), "[items]"],
        setup=lambda ws: _spec(ws, 'items = 5\n[[models]]\nid = "x"\n'),
    ),
    spec_case(
        "run-max-new-tokens-huge",
        "[protocol].max_new_tokens",
        replace=("max_new_tokens = 2", "max_new_tokens = 1000000000000"),
    ),
    Case(
        "run-slurm-without-slurm",
        lambda ws: [*_run_argv(ws), "--launcher", "slurm"],
        lambda ws: ["--launcher slurm", "no SLURM on this machine"],
        setup=run_case(),
    ),
    Case(
        "run-items-json-nested-too-deeply",
        _run_argv,
        lambda ws: [str(ws / "items.jsonl"), "line 2", "nested too deeply"],
        setup=_both(
            _write("items.jsonl", json.dumps(_item(1)) + "\n" + "[" * 100000 + "]" * 100000 + "\n"),
            run_case(replace=('source = "bundled"\nlanguages = ["en", "de"]', 'source = "{ws}/items.jsonl"')),
        ),
    ),
    Case(
        "run-out-made-from-another-spec",
        _run_argv,
        lambda ws: [str(ws / "out" / "study.toml"), "different spec", "line 1: \"name = 'other'\" then"],
        setup=_both(run_case(), _write("out/study.toml", "name = 'other'\n")),
    ),
    Case(  # resumed without the override the study was made with: the message names it
        "run-resume-without-its-override",
        _run_argv,
        lambda ws: [str(ws / "out" / "study.toml"), "overrides then: items.n_per_language = 2; now: none"],
        setup=_both(run_case(), _made_with_override),
    ),
    Case(
        "run-dry-run-on-a-study-of-another-spec",
        lambda ws: [*_run_argv(ws), "--dry-run"],
        lambda ws: [str(ws / "out" / "study.toml"), "different spec"],
        setup=_both(run_case(), _write("out/study.toml", "name = 'other'\n")),
    ),
    Case(
        "run-resume-unknown-schema-version",
        _run_argv,
        lambda ws: [str(ws / "out" / "model__dense" / MANIFEST), "schema_version 7", "reads schema_version 1"],
        setup=_resume_setup(lambda run: _set_manifest(run, schema_version=7)),
        new_files=True,
    ),
    Case(
        "run-resume-items-read-otherwise",
        _run_argv,
        lambda ws: [
            str(ws / "out" / "model__dense" / MANIFEST),
            "items_hash (with the same spec",
            "stripped and in NFC",
        ],
        setup=_resume_setup(lambda run: _set_resume_items_hash(run, "sha256:" + "0" * 64)),
        new_files=True,
    ),
    Case(
        "run-resume-edited-item",
        _run_argv,
        lambda ws: [str(ws / "out" / "model__dense" / ITEMS) + ":1", "differs from the study's item"],
        setup=_resume_setup(_edit_first_item),
        new_files=True,
    ),
    Case(
        "run-resume-differing-duplicates",
        _run_argv,
        lambda ws: [str(ws / "out" / "model__dense" / OUTCOMES), "different outcome lines 1, 2"],
        setup=_resume_setup(_append_differing_duplicate),
        new_files=True,
    ),
    # ---------------------------------------------------------------- prune
    Case("prune-model-missing", _prune_argv(model="/no/such/model"), lambda ws: ["/no/such/model", "does not exist"]),
    Case("prune-sparsity-range", _prune_argv("--sparsity", "1.5"), lambda ws: ["sparsity", "1.5"]),
    Case("prune-pattern-bad", _prune_argv("--pattern", "2-4"), lambda ws: ["pattern", "2-4"]),
    Case("prune-nsamples-zero", _prune_argv("--nsamples", "0"), lambda ws: ["--nsamples"]),
    Case("prune-threads-zero", _prune_argv("--threads", "0"), lambda ws: ["--threads", "0"]),
    Case("prune-device-absent", _prune_argv("--device", "cuda:99"), lambda ws: ["--device", "cuda:99"]),
    Case(
        "prune-out-not-empty",
        _prune_argv(),
        lambda ws: ["--out", str(ws / "pruned"), "not empty"],
        setup=_write("pruned/x", "x"),
    ),
    Case(
        "prune-out-is-a-file",
        _prune_argv(),
        lambda ws: ["--out", str(ws / "pruned"), "not a folder"],
        setup=_write("pruned", "x"),
    ),
    Case(
        "prune-calibration-missing",
        _prune_argv("--calibration", "/no/calib.jsonl"),
        lambda ws: ["--calibration", "/no/calib.jsonl", "does not exist"],
    ),
    Case(
        "prune-truncated-safetensors",
        _prune_argv(),
        lambda ws: [str(_model_weights(ws)), "truncated"],
        setup=lambda ws: _truncate(_model_weights(ws), 0.9),
    ),
    Case(
        "prune-garbage-gguf",
        lambda ws: _prune_argv(model=str(ws / "garbage.gguf"))(ws),
        lambda ws: [str(ws / "garbage.gguf"), "GGUF"],
        setup=_garbage_gguf,
    ),
    # ---------------------------------------------------------------- perplexity
    Case("ppl-model-missing", _ppl_argv(model="/no/such/model"), lambda ws: ["/no/such/model"]),
    Case("ppl-text-missing", _ppl_argv("--text", "/no/text.txt"), lambda ws: ["--text", "/no/text.txt"]),
    Case("ppl-seqlen-zero", _ppl_argv("--seqlen", "0"), lambda ws: ["--seqlen"]),
    Case("ppl-threads-zero", _ppl_argv("--threads", "0"), lambda ws: ["--threads", "0"]),
    Case("ppl-device-name", _ppl_argv("--device", "gpu"), lambda ws: ["--device", "gpu"]),
    Case(
        "ppl-garbage-gguf",
        lambda ws: _ppl_argv(model=str(ws / "garbage.gguf"))(ws),
        lambda ws: [str(ws / "garbage.gguf"), "GGUF"],
        setup=_garbage_gguf,
    ),
    Case(
        "ppl-truncated-safetensors",
        _ppl_argv(),
        lambda ws: [str(_model_weights(ws)), "truncated"],
        setup=lambda ws: _truncate(_model_weights(ws), 0.3),
    ),
    # ---------------------------------------------------------------- stats
    Case("stats-study-missing", lambda ws: ["stats", str(ws / "nope")], lambda ws: [str(ws / "nope"), "no such"]),
    Case(
        "stats-schema-version",
        lambda ws: ["stats", _study(ws), "--no-glmm"],
        lambda ws: [_manifest_path(ws), "schema_version 2", "reads schema_version 1"],
        setup=_manifest(schema_version=2),
    ),
    Case(
        "stats-no-schema-version",
        lambda ws: ["stats", _study(ws), "--no-glmm"],
        lambda ws: [_manifest_path(ws), "no schema_version"],
        setup=lambda ws: (_run(ws) / MANIFEST).write_text('{"run_id": "x"}'),
    ),
    Case(
        "stats-manifest-not-json",
        lambda ws: ["stats", _study(ws), "--no-glmm"],
        lambda ws: [_manifest_path(ws), "not valid JSON"],
        setup=lambda ws: (_run(ws) / MANIFEST).write_text("{oops"),
    ),
    Case(
        "stats-duplicate-lines",
        lambda ws: ["stats", _study(ws), "--no-glmm"],
        lambda ws: [str(_run(ws) / OUTCOMES), "validate --repair"],
        setup=_dup_line,
    ),
    Case(
        "stats-items-missing",
        lambda ws: ["stats", _study(ws), "--no-glmm"],
        lambda ws: [str(_run(ws) / ITEMS), "missing"],
        setup=lambda ws: (_run(ws) / ITEMS).unlink(),
    ),
    Case(
        "stats-unknown-item",
        lambda ws: ["stats", _study(ws), "--no-glmm"],
        lambda ws: [str(_run(ws) / OUTCOMES), "not in items.jsonl"],
        setup=_unknown_item,
    ),
    Case(
        "stats-strict-corrupt-line",
        lambda ws: ["stats", _study(ws), "--no-glmm", "--strict"],
        lambda ws: [str(_run(ws) / OUTCOMES) + ":3"],
        setup=_corrupt_line,
    ),
    Case(
        "stats-integer-past-64-bits",
        lambda ws: ["stats", _study(ws), "--no-glmm"],
        lambda ws: [str(_run(ws) / OUTCOMES) + ":3", "OverflowError"],
        setup=_rank_past_64_bits,
    ),
    Case(
        "validate-integer-past-64-bits",
        lambda ws: ["validate", _study(ws)],
        lambda ws: [str(_run(ws) / OUTCOMES) + ":3", "first_token_rank", "greater than the maximum"],
        setup=_rank_past_64_bits,
        stream="out",
    ),
    Case("stats-level", lambda ws: ["stats", _study(ws), "--level", "2"], lambda ws: ["--level", "2"]),
    Case("stats-test-unknown", lambda ws: ["stats", _study(ws), "--test", "bogus"], lambda ws: ["--test", "bogus"]),
    Case("stats-by-unknown", lambda ws: ["stats", _study(ws), "--by", "colour"], lambda ws: ["--by", "colour"]),
    # ---------------------------------------------------------------- glmm
    Case(
        "glmm-data-missing",
        lambda ws: ["glmm", "--data", str(ws / "no.csv"), "--formula", "y ~ x + (1|g)"],
        lambda ws: ["--data", str(ws / "no.csv")],
    ),
    Case(
        "glmm-binary-file",
        lambda ws: ["glmm", "--data", str(ws / "blob.csv"), "--formula", "y ~ x + (1|g)"],
        lambda ws: ["--data", str(ws / "blob.csv")],
        setup=lambda ws: (ws / "blob.csv").write_bytes(os.urandom(2048)),
    ),
    Case(
        "glmm-empty-file",
        lambda ws: ["glmm", "--data", str(ws / "empty.csv"), "--formula", "y ~ x + (1|g)"],
        lambda ws: ["--data", str(ws / "empty.csv")],
        setup=_write("empty.csv", ""),
    ),
    Case(
        "glmm-missing-column",
        lambda ws: ["glmm", "--data", str(ws / "t.csv"), "--formula", "y ~ z + (1|g)"],
        lambda ws: ["--data", str(ws / "t.csv"), "z"],
        setup=_write("t.csv", "y,x,g\n1,0.5,a\n0,0.1,b\n1,0.2,a\n0,0.9,b\n"),
    ),
    Case(
        "glmm-row-too-long",  # pandas would take the extra cell as a row label and shift the columns
        lambda ws: ["glmm", "--data", str(ws / "t.csv"), "--formula", "y ~ x + (1|g)"],
        lambda ws: ["--data", str(ws / "t.csv"), "line 3 has 4 cells, the header has 3"],
        setup=_write("t.csv", "y,x,g\n1,0.5,a\n0,0.1,b,c\n1,0.2,a\n"),
    ),
    Case(
        "glmm-row-too-short",  # pandas would fill the missing cell with a missing value
        lambda ws: ["glmm", "--data", str(ws / "t.csv"), "--formula", "y ~ x + (1|g)"],
        lambda ws: ["--data", str(ws / "t.csv"), "line 4 has 2 cells, the header has 3"],
        setup=_write("t.csv", "y,x,g\n1,0.5,a\n0,0.1,b\n1,0.2\n"),
    ),
    Case(
        "glmm-formula-syntax",
        lambda ws: ["glmm", "--data", str(ws / "t.csv"), "--formula", "y ~ x + (1|"],
        lambda ws: ["--data", str(ws / "t.csv"), "--formula 'y ~ x + (1|'", "unbalanced"],
        setup=_write("t.csv", "y,x,g\n1,0.5,a\n0,0.1,b\n1,0.2,a\n0,0.9,b\n"),
    ),
    # ---------------------------------------------------------------- validate
    Case("validate-missing", lambda ws: ["validate", str(ws / "nope")], lambda ws: [str(ws / "nope"), "no such"]),
    Case(
        "validate-schema-version",
        lambda ws: ["validate", _study(ws)],
        lambda ws: [_manifest_path(ws), "schema_version 3"],
        setup=_manifest(schema_version=3),
        stream="out",
    ),
    Case(
        "validate-items-differ-across-runs",
        lambda ws: ["validate", _study(ws)],
        lambda ws: [str(_run(ws) / ITEMS), "one item set"],
        setup=_other_items,
        stream="out",
    ),
    Case(
        "validate-edited-item-hash-kept",
        lambda ws: ["validate", _study(ws)],
        lambda ws: [str(_run(ws) / ITEMS) + ":3", "content_hash does not match"],
        setup=_edit_item_keep_hash,
        stream="out",
    ),
    Case(
        "validate-duplicate-line",
        lambda ws: ["validate", _study(ws)],
        lambda ws: [str(_run(ws) / OUTCOMES), "duplicate item"],
        setup=_dup_line,
        stream="out",
    ),
    Case(
        "validate-repair-refuses-differing-duplicates",
        lambda ws: ["validate", "--repair", _study(ws)],
        lambda ws: [str(_run(ws) / OUTCOMES), "different outcome lines"],
        setup=lambda ws: _append_differing_duplicate_in(_run(ws)),
        new_files=True,
    ),
    # ---------------------------------------------------------------- status
    Case("status-missing", lambda ws: ["status", str(ws / "nope")], lambda ws: [str(ws / "nope"), "no such"]),
    Case(
        "status-a-file",
        lambda ws: ["status", str(ws / "f")],
        lambda ws: [str(ws / "f"), "not a folder"],
        setup=_write("f", "x"),
    ),
    Case(
        "status-manifest-not-json",
        lambda ws: ["status", _study(ws)],
        lambda ws: [_manifest_path(ws), "not valid JSON"],
        setup=lambda ws: (_run(ws) / MANIFEST).write_text("{oops"),
    ),
    Case(
        "status-schema-version",
        lambda ws: ["status", _study(ws)],
        lambda ws: [_manifest_path(ws), "schema_version 99"],
        setup=_manifest(schema_version=99),
    ),
    # ---------------------------------------------------------------- tui (refused before the app starts)
    Case("tui-missing", lambda ws: ["tui", str(ws / "nope")], lambda ws: [str(ws / "nope"), "no such"]),
    Case(
        "tui-a-file",
        lambda ws: ["tui", str(ws / "f")],
        lambda ws: [str(ws / "f"), "not a folder"],
        setup=_write("f", "x"),
    ),
    Case(
        "tui-schema-version",
        lambda ws: ["tui", _study(ws)],
        lambda ws: [_manifest_path(ws), "schema_version 5"],
        setup=_manifest(schema_version=5),
    ),
    Case(
        "tui-second-run-missing",
        lambda ws: ["tui", str(_run(ws)), str(ws / "nope")],
        lambda ws: [str(ws / "nope"), "no such"],
    ),
    Case(
        "tui-keymap-not-json",
        lambda ws: ["tui", _study(ws), "--keymap", str(ws / "keys.json")],
        lambda ws: [str(ws / "keys.json"), "keymap"],
        setup=_write("keys.json", "{nope"),
    ),
    Case(
        "tui-keymap-wrong-shape",
        lambda ws: ["tui", _study(ws), "--keymap", str(ws / "keys.json")],
        lambda ws: [str(ws / "keys.json"), "keymap"],
        setup=_write("keys.json", '["q"]'),
    ),
]


def _append_differing_duplicate_in(run: Path) -> None:
    path = run / OUTCOMES
    rec = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    rec["open"]["text"] = "a different answer"
    with open(path, "a", encoding="utf-8") as f:
        f.write(dumps_line(rec))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A workspace every case copies: a tiny model folder and a synthetic study."""
    root = tmp_path_factory.mktemp("bad-inputs")
    make_tiny_model_dir(root / "model")
    make_synthetic_study(root / STUDY, n_per_language=4, languages=("en", "de"))
    return root


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[p.relative_to(root).as_posix() + "/"] = "dir"
    return out


@pytest.fixture
def workspace(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))
    return ws


def _expand(case: Case, ws: Path) -> None:
    """`{ws}` in a spec written by the case stands for the workspace."""
    spec = ws / "study.toml"
    if spec.is_file():
        text = spec.read_bytes()
        if b"{ws}" in text:
            spec.write_bytes(text.replace(b"{ws}", str(ws).encode()))


def check_output(case: Case, ws: Path, rc: int, out: str, err: str) -> None:
    assert rc != 0, f"{case.id}: exit 0\n{out}\n{err}"
    both = out + err
    assert "Traceback" not in both and "internal error" not in both, both
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == (0 if case.stream == "out" else 1), f"{case.id}: {err}"
    naming = errors if case.stream == "err" else [line for line in out.splitlines() if case.names(ws)[0] in line]
    assert naming, f"{case.id}: no line names {case.names(ws)[0]!r}\n{out}\n{err}"
    for fragment in case.names(ws):
        assert any(fragment in line for line in naming), f"{case.id}: {fragment!r} not in {naming}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_named(case: Case, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = workspace
    case.setup(ws)
    _expand(case, ws)
    before = _snapshot(ws)
    capsys.readouterr()
    rc = main(case.argv(ws))
    captured = capsys.readouterr()
    check_output(case, ws, rc, captured.out, captured.err)
    after = _snapshot(ws)
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"{case.id}: changed or removed {changed}"
    new = sorted(set(after) - set(before))
    if case.new_files:
        new = [k for k in new if not k.endswith(".writer.lock")]
    assert not new, f"{case.id}: left {new}"


def test_the_corpus_is_large_and_covers_every_command() -> None:
    commands = {c.argv(Path("/ws"))[0] for c in CASES}
    assert commands == {"run", "prune", "perplexity", "stats", "glmm", "validate", "status", "tui"}
    assert len(CASES) >= 60


SUBPROCESS_CASES = ["run-sparsities-not-list", "run-truncated-safetensors", "stats-schema-version", "glmm-binary-file"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_real_exit_path(case_id: str, workspace: Path) -> None:
    """The same cases through a real `python -m engine.cli` process: exit code 2, one line, nothing else."""
    case = next(c for c in CASES if c.id == case_id)
    case.setup(workspace)
    _expand(case, workspace)
    before = _snapshot(workspace)
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", *case.argv(workspace)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    check_output(case, workspace, proc.returncode, proc.stdout, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _snapshot(workspace) == before


@pytest.mark.parametrize(
    "exc, expected",
    [
        (
            OSError(28, "No space left on device", "/data/out/x"),
            "/data/out/x: No space left on device; the disk is full",
        ),
        (OSError(28, "No space left on device"), "No space left on device while writing; the disk is full"),
        (
            OSError(30, "Read-only file system", "/ro/out"),
            "/ro/out: Read-only file system; the file system is read-only",
        ),
        (PermissionError(13, "Permission denied", "/x/y"), "/x/y: Permission denied; check its permissions"),
    ],
)
def test_file_system_errors_anywhere_are_one_line(
    exc: OSError, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A disk that fills up or a folder that turns read-only mid-run is named, not called a bug."""
    import engine.status

    def fail(*a: object, **k: object) -> int:
        raise exc

    monkeypatch.setattr(engine.status, "print_status", fail)
    assert main(["status", "/anywhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"prunescope status: error: {expected}"), err


def test_a_reader_that_goes_away_ends_stats_with_141(tmp_path: Path) -> None:
    """`prunescope stats STUDY | head`: Rich's own handling of the broken pipe exits 1, the code of an
    error; the CLI ends it with 141 as `validate | head` and other tools do."""
    sample = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion"
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m engine.cli stats "{sample}" --no-glmm | head -1; exit ${{PIPESTATUS[0]}}',
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 141 and proc.stdout.strip() and "error" not in proc.stderr, proc.stderr
