"""Inspect logs beyond the plain fixtures: samples that ended in an error, an empty generation target,
and a generation task whose samples carry options and letter targets (mmlu_generative-style)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import iter_outcomes
from engine.importers.inspect_logs import read_log

LOGS = Path(__file__).parent / "fixtures" / "inspect" / "logs"
DENSE = "SmolLM2-135M-Instruct"

Edit = Callable[[str, dict, list[dict]], None]


def _json_logs(tmp_path: Path, edit: Edit) -> Path:
    """The dense model's two fixture logs as .json logs, each passed through `edit(kind, header, samples)`."""
    out = tmp_path / "logs"
    out.mkdir(parents=True)
    for kind in ("mc", "gen"):
        task = read_log(next((LOGS / DENSE).glob(f"*psqa-{kind}_*.eval")))
        header, samples = json.loads(json.dumps(task.header)), [json.loads(json.dumps(s)) for _, s in task.samples]
        edit(kind, header, samples)
        (out / f"{kind}.json").write_text(json.dumps({**header, "samples": samples}), encoding="utf-8")
    return out


def _run(tmp_path: Path, logs: Path, *extra: str) -> int:
    return main(["import", "inspect", str(logs), "--out", str(tmp_path / "study"), *extra])


def test_a_sample_that_ended_in_an_error_is_skipped_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def error(kind: str, header: dict, samples: list[dict]) -> None:
        if kind == "gen":
            del samples[3]["scores"]
            samples[3]["error"] = {"message": "RuntimeError: CUDA out of memory", "traceback": "..."}

    logs = _json_logs(tmp_path, error)
    assert _run(tmp_path, logs) == 0
    err = capsys.readouterr().err
    assert f"skipped 1 sample(s) of {logs / 'gen.json'} that ended in an error (id symbol-gold-en)" in err
    uids = [o["item_uid"] for o in iter_outcomes(tmp_path / "study" / DENSE)]
    assert len(uids) == 15 and not any("symbol-gold-en" in u for u in uids)


def test_a_sample_that_errored_for_one_model_is_skipped_for_every_model(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The pruned model's generation of one sample failed (its log keeps the error): both runs leave that
    item out, so the study keeps one item set (the import was refused before, as two item sets)."""
    logs = tmp_path / "logs"
    for model in (DENSE, f"{DENSE}-wanda-s50"):
        for kind in ("mc", "gen"):
            task = read_log(next((LOGS / model).glob(f"*psqa-{kind}_*.eval")))
            samples = [json.loads(json.dumps(s)) for _, s in task.samples]
            if model != DENSE and kind == "gen":
                del samples[3]["scores"]
                samples[3]["error"] = {"message": "TimeoutError", "traceback": "..."}
            (logs / model).mkdir(parents=True, exist_ok=True)
            (logs / model / f"{kind}.json").write_text(
                json.dumps({**task.header, "samples": samples}), encoding="utf-8"
            )
    assert _run(tmp_path, logs) == 0
    err = capsys.readouterr().err
    assert f"skipped 1 sample(s) of {logs / DENSE}-wanda-s50/gen.json that ended in an error (id symbol-gold-en)" in err
    assert (
        f"skipped 1 sample(s) of model '/tmp/i16/models/{DENSE}' in tasks psqa_mc and psqa_gen (id symbol-gold-en) too: "
        "they ended in an error in another model's log" in err
    )
    for run in (DENSE, "wanda-s50"):
        folders = [p for p in (tmp_path / "study").iterdir() if p.name.endswith(run)]
        assert len(folders) == 1, folders
        uids = [o["item_uid"] for o in iter_outcomes(folders[0])]
        assert len(uids) == 15 and not any("symbol-gold-en" in u for u in uids), run


def test_an_empty_generation_target_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def empty(kind: str, header: dict, samples: list[dict]) -> None:
        if kind == "gen":
            samples[0]["target"] = []

    logs = _json_logs(tmp_path, empty)
    assert _run(tmp_path, logs) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith(
        f"{logs / 'gen.json'}: samples[0]: target is an empty list (no gold answer for sample 'capital-france-en')"
    )


def test_a_generate_and_match_task_with_letter_targets_is_the_generation_twin(tmp_path: Path) -> None:
    """mmlu_generative-style: the generation task carries the options and the gold letter; its generate()
    solver and match() scorer say it is generation. --pair names the roles whatever the logs suggest."""
    options: dict[str, tuple] = {}

    def letters(kind: str, header: dict, samples: list[dict]) -> None:
        if kind == "mc":
            options.update({s["id"]: (s["choices"], s["target"]) for s in samples})
        else:
            for s in samples:
                s["choices"], s["target"] = options[s["id"]]
            header["eval"]["scorers"] = [{"name": "match", "options": {}, "metrics": [], "metadata": {}}]

    logs = _json_logs(tmp_path, letters)
    assert [s["solver"] for s in json.loads((logs / "gen.json").read_text())["plan"]["steps"]] == ["generate"]
    assert _run(tmp_path, logs) == 0
    assert len(list(iter_outcomes(tmp_path / "study" / DENSE))) == 16

    def unnamed(kind: str, header: dict, samples: list[dict]) -> None:
        letters(kind, header, samples)
        header["eval"]["scorers"], header["plan"]["steps"] = [], []  # nothing says which is which

    logs = _json_logs(tmp_path / "b", unnamed)
    assert _run(tmp_path / "b", logs) == 2
    assert _run(tmp_path / "b", logs, "--pair", "psqa_mc=psqa_gen") == 0


def test_the_manifest_names_the_logs_by_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _json_logs(tmp_path, lambda kind, header, samples: None)
    monkeypatch.chdir(tmp_path)
    assert main(["import", "inspect", "logs", "--out", "study"]) == 0
    manifest = json.loads((tmp_path / "study" / DENSE / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["imported"]["files"]) == [
        str(tmp_path.resolve() / "logs" / f"{k}.json") for k in ("gen", "mc")
    ]
