"""`prunescope import lm-eval` on real lm-evaluation-harness 0.4.13 logs (tests/engine/importers/fixtures/lm_eval/README.md):
valid run folders, MC decisions equal to the harness's per-sample metrics, stable uids, task pairs,
paired tests between two imported models, one-line errors for malformed logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import iter_outcomes, read_manifest
from engine.errors import UserError
from engine.importers.lm_eval import read_lm_eval, tasks_by_model
from engine.importers.pairs import GEN, MC, model_pairs, pair_names
from engine.importers.records import ImportOptions, McSample
from engine.runfolder import validate_run, validate_study
from stats.api import StatsOptions, analyse

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval" / "runs"
DENSE = "SmolLM2-135M-Instruct"
PRUNED = "SmolLM2-135M-Instruct-wanda-s50"


def read_outcomes(run: Path) -> list[dict]:
    return list(iter_outcomes(run))


def samples(model: str, task: str) -> list[dict]:
    (path,) = (FIXTURES / f"__tmp__i16__models__{model}").glob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def import_fixtures(out: Path, *extra: str, src: Path = FIXTURES) -> None:
    assert main(["import", "lm-eval", str(src), "--out", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "study"
    import_fixtures(out, "--baseline", DENSE)
    return out


def test_import_writes_valid_run_folders(study: Path) -> None:
    runs = sorted(p for p in study.iterdir() if p.is_dir())
    assert [p.name for p in runs] == [DENSE, PRUNED]
    for run in runs:
        assert validate_run(run) == []
        manifest = read_manifest(run)
        assert manifest["status"] == "complete" and manifest["counts"] == {"done": 16, "total": 16}
        assert manifest["imported"]["harness"] == "lm-eval" and manifest["imported"]["version"] == "0.4.13"
        assert manifest["imported"]["pairs"] == [{"mc": "psqa_mc", "open": "psqa_gen"}]
        assert set(manifest["imported"]["tasks"]) == {"psqa_mc", "psqa_gen"}  # the task configs
        assert manifest["model"]["id"].endswith(run.name) and manifest["model"]["n_params"] == 134515008
    assert validate_study(runs) == []
    assert read_manifest(runs[0]).get("baseline") is True and "baseline" not in read_manifest(runs[1])


@pytest.mark.parametrize("model", [DENSE, PRUNED])
def test_mc_decisions_equal_the_harness_per_sample_metrics(study: Path, model: str) -> None:
    by_native = {rec["doc"]["id"]: rec for rec in samples(model, "psqa_mc")}
    outcomes = read_outcomes(study / model)
    assert len(outcomes) == len(by_native) == 16
    rules = {"acc": "sum", "acc_norm": "per_char", "acc_bytes": "per_byte"}
    for out in outcomes:
        native = out["item_uid"].split("/")[3]
        logged = by_native[native]
        mc = out["mc"]
        for metric, rule in rules.items():  # every normalisation lm-eval logged, item by item
            assert (mc["decisions"][rule] == mc["gold_index"]) == bool(logged[metric]), (native, metric)
        assert mc["rule"] == "sum" and mc["correct"] == bool(logged["acc"])
        assert [o["loglik"] for o in mc["options"]] == [float(r[0]) for r in logged["filtered_resps"]]
        assert all(o["n_tokens"] is None for o in mc["options"]) and mc["scores"]["per_token"] is None


@pytest.mark.parametrize("model", [DENSE, PRUNED])
def test_generations_keep_the_task_metric_beside_prunescope_matching(study: Path, model: str) -> None:
    by_native = {rec["doc"]["id"]: rec for rec in samples(model, "psqa_gen")}
    for out in read_outcomes(study / model):
        logged = by_native[out["item_uid"].split("/")[3]]
        op = out["open"]
        assert op["text"] == logged["resps"][0][0]
        assert op["harness"] == {
            "task": "psqa_gen",
            "metric": "exact_match",
            "filter": "strip",
            "value": logged["exact_match"],
            "correct": logged["exact_match"] == 1.0,
            "response": logged["filtered_resps"][0],
        }
        assert op["n_new_tokens"] is None and op["stop"] is None
        assert out["gold_trace"] is None and out["probes"] is None and out["demotion"] is None
    dense = {o["item_uid"]: o for o in read_outcomes(study / DENSE)}
    # exact_match credits none of the dense model's sentences; the matcher credits "… is Canberra."
    assert not any(o["open"]["harness"]["correct"] for o in dense.values())
    assert dense["qa16/default/test/capital-australia-en/en"]["open"]["correct"]


def test_grade_by_task_metric(tmp_path: Path) -> None:
    import_fixtures(tmp_path / "s", "--grade", "task")
    outcomes = read_outcomes(tmp_path / "s" / DENSE)
    assert all(o["open"]["correct"] == o["open"]["harness"]["correct"] for o in outcomes)
    assert read_manifest(tmp_path / "s" / DENSE)["imported"]["open_correct"].startswith("the task's own metric")


def _reordered(src: Path, dst: Path) -> Path:
    """A copy of the fixtures with every samples file in reverse order and doc_id renumbered."""
    shutil.copytree(src, dst)
    for path in dst.rglob("samples_*.jsonl"):
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()][::-1]
        for k, rec in enumerate(lines):
            rec["doc_id"] = k
        path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return dst


def test_uids_come_from_the_document_not_its_position(tmp_path: Path, study: Path) -> None:
    import_fixtures(tmp_path / "s", src=_reordered(FIXTURES, tmp_path / "logs"))
    for model in (DENSE, PRUNED):
        before = {o["item_uid"]: o["category"] for o in read_outcomes(study / model)}
        after = {o["item_uid"]: o["category"] for o in read_outcomes(tmp_path / "s" / model)}
        assert before == after
    assert "qa16/default/test/capital-france-en/en" in before


def test_documents_without_an_id_are_keyed_by_their_content(tmp_path: Path) -> None:
    logs = _reordered(FIXTURES, tmp_path / "logs")
    for path in logs.rglob("samples_*.jsonl"):
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for rec in lines:
            del rec["doc"]["id"]
        path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    (run,) = [r for r in read_lm_eval([logs], ImportOptions()) if r.run_id == DENSE]
    natives = [i["source"]["native_id"] for i in run.items]
    assert len(set(natives)) == 16 and all(n.startswith("doc-") for n in natives)
    assert all(len(o["mc"]["options"]) == 4 for o in run.outcomes)


def test_recognised_task_pairs_and_explicit_ones(capsys: pytest.CaptureFixture) -> None:
    kinds = {
        "mmlu_anatomy": MC,
        "mmlu_anatomy_generative": GEN,
        "trivia_mc": MC,
        "trivia_gen": GEN,
        "arc_easy": MC,
        "arc_open": GEN,
        "wikitext": "loglikelihood_rolling",
    }
    assert model_pairs("m", kinds) == [("mmlu_anatomy", "mmlu_anatomy_generative"), ("trivia_mc", "trivia_gen")]
    err = capsys.readouterr().err
    assert "skipped task arc_easy (multiple_choice)" in err and "skipped task wikitext (loglikelihood_rolling)" in err
    assert ("arc_easy", "arc_open") in model_pairs("m", kinds, [("arc_easy", "arc_open")])
    with pytest.raises(UserError, match="must be a multiple-choice task"):
        pair_names(["arc_easy"], ["arc_open"], [("arc_open", "arc_easy")])
    with pytest.raises(UserError, match="X_mc/X_gen"):
        model_pairs("m", {"wikitext": "loglikelihood_rolling"})


def test_stats_pairs_two_imported_models_with_mcnemar_and_cis(study: Path, capsys: pytest.CaptureFixture) -> None:
    result = analyse([study], StatsOptions(tests=("recognition", "open", "mc"), glmm=False))
    tables = {t.key: t for t in result.tables}
    for key in ("mcnemar-recognition", "mcnemar-open", "mcnemar-mc"):
        (rec,) = tables[key].records
        assert rec["n"] == 16 and rec["delta_low"] <= rec["delta"] <= rec["delta_high"]
        assert 0 <= rec["p"] <= 1 and str(rec["model"]).endswith(PRUNED)
    open_rec = tables["mcnemar-open"].records[0]
    assert (open_rec["b"], open_rec["c"]) == (0, 7)  # the pruned model loses 7 open answers, gains none
    assert "each run vs the baseline" in tables["mcnemar-open"].title
    assert tables["transitions"].title == "Transitions baseline → run"  # the paper's tables say so too
    assert not tables["demotion"].records and "neither gold ranks nor probe results" in tables["demotion"].notes[-1]
    # the same tests named on the command line, for a study whose manifests mark no baseline
    plain = study.parent / "plain"
    import_fixtures(plain)
    assert main(["stats", str(plain), "--baseline", DENSE, "--test", "recognition,open", "--no-glmm"]) == 0
    text = capsys.readouterr().out
    assert "Open-generation accuracy, each run vs the baseline (McNemar)" in text and "Δ [95% CI]" in text
    assert "−0.438 [−0.668, −0.159]" in text


def test_no_gold_trace_is_absent_in_the_table(study: Path) -> None:
    result = analyse([study], StatsOptions(tests=("recognition",), glmm=False))
    df = result.df
    assert df["first_token_rank"].isna().all() and df["beam_any"].isna().all() and df["demotion"].isna().all()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "logs"
    shutil.copytree(FIXTURES / f"__tmp__i16__models__{DENSE}", dst)
    return dst


def _error(tmp_path: Path, capsys: pytest.CaptureFixture, logs: Path) -> str:
    assert main(["import", "lm-eval", str(logs), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    return err[0]


def test_malformed_logs_are_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logs = _copy(tmp_path)
    (mc,) = logs.glob("samples_psqa_mc_*.jsonl")
    good = mc.read_text(encoding="utf-8")
    lines = good.splitlines()
    _write(mc, "\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    assert f"{mc}:2: not valid JSON" in _error(tmp_path, capsys, logs)
    rec = json.loads(lines[2])
    del rec["doc"]
    _write(mc, "\n".join([lines[0], lines[1], json.dumps(rec), *lines[3:]]) + "\n")
    assert f"{mc}:3: key 'doc' missing" in _error(tmp_path, capsys, logs)
    rec = json.loads(lines[0])
    rec["target"] = 9
    _write(mc, "\n".join([json.dumps(rec), *lines[1:]]) + "\n")
    assert f"{mc}:1: target 9 is not an option index" in _error(tmp_path, capsys, logs)
    rec = json.loads(lines[0])
    rec["filtered_resps"][1][0] = "NaN"
    _write(mc, "\n".join([json.dumps(rec), *lines[1:]]) + "\n")
    assert f"{mc}:1: filtered_resps[1][0]: expected a finite number" in _error(tmp_path, capsys, logs)
    _write(mc, good)
    (results,) = logs.glob("results_*.json")
    data = json.loads(results.read_text(encoding="utf-8"))
    _write(results, json.dumps({k: v for k, v in data.items() if k != "configs"}))
    assert f"{results}: key 'configs' missing" in _error(tmp_path, capsys, logs)
    _write(results, "{")
    assert f"{results}:1: not valid JSON" in _error(tmp_path, capsys, logs)
    _write(results, json.dumps(data))
    mc.unlink()
    line = _error(tmp_path, capsys, logs)
    assert "task 'psqa_mc' has no samples_psqa_mc_" in line and "--log_samples" in line


def test_repeated_documents_empty_files_and_unknown_pairs_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    logs = _copy(tmp_path)
    (mc,) = logs.glob("samples_psqa_mc_*.jsonl")
    lines = mc.read_text(encoding="utf-8").splitlines()
    _write(mc, "\n".join([*lines, lines[2]]) + "\n")  # a document logged twice in one task only
    err = _error(tmp_path, capsys, logs)
    assert f"{mc}:{len(lines) + 1}: document" in err and f"is asked 2 time(s) in {mc.name} and 1 in" in err
    _write(mc, "")
    assert f"{mc}: no samples (task psqa_mc); its twin has" in _error(tmp_path, capsys, logs)
    assert main(["import", "lm-eval", str(FIXTURES), "--out", str(tmp_path / "o"), "--pair", "psqa_mcq=psqa_gen"]) == 2
    assert "--pair psqa_mcq=psqa_gen: no task named psqa_mcq in the logs (tasks: " in capsys.readouterr().err


def test_a_task_without_its_twin_is_refused_with_the_recognised_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    logs = _copy(tmp_path)
    (results,) = logs.glob("results_*.json")
    data = json.loads(results.read_text(encoding="utf-8"))
    data["configs"] = {"psqa_mc": data["configs"]["psqa_mc"]}
    _write(results, json.dumps(data))
    assert main(["import", "lm-eval", str(logs), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "skipped task psqa_mc (multiple_choice): no twin" in err
    assert "X_mc/X_gen" in err and "--pair MC_TASK=GEN_TASK" in err


def test_an_existing_run_or_a_different_item_set_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import_fixtures(tmp_path / "s")
    assert main(["import", "lm-eval", str(FIXTURES), "--out", str(tmp_path / "s")]) == 2
    assert "already in the study" in capsys.readouterr().err
    assert tasks_by_model([FIXTURES]).keys() == {f"/tmp/i16/models/{DENSE}", f"/tmp/i16/models/{PRUNED}"}


def test_mutual_information_and_the_older_argument_layout() -> None:
    """lm-eval's acc_mutual_info requests (unconditional log-likelihoods after the conditional ones), in the
    0.4.0-0.4.4 layout of `arguments` (a list of [context, continuation]) with numbers, not strings."""
    from engine.importers.lm_eval import TaskLog, _mc_sample
    from engine.importers.records import mc_record

    log = TaskLog("t_mc", {"output_type": "multiple_choice", "target_delimiter": " "}, Path("r"), Path("s"), {})
    rec = {
        "arguments": [["Q: a?\nA:", " x"], ["Q: a?\nA:", " yy"], ["", " x"], ["", " yy"]],
        "resps": [[[-2.0, False]], [[-3.0, False]], [[-1.0, False]], [[-4.5, False]]],
        "filtered_resps": [[-2.0, False], [-3.0, False], [-1.0, False], [-4.5, False]],
        "target": 1,
        "metrics": ["acc", "acc_mutual_info"],
        "acc": 0.0,
        "acc_mutual_info": 1.0,
    }
    mc, prompt = _mc_sample(log, rec, "s:1")
    assert mc.options == ["x", "yy"] and mc.unconditional == [-1.0, -4.5] and prompt == "Q: a?\nA:"
    block = mc_record(mc, "mutual_info")
    assert block["decisions"] == {"sum": 0, "per_char": 1, "per_byte": 1, "mutual_info": 1}  # -2/1 < -3/2
    assert block["scores"]["mutual_info"] == [-1.0, 1.5] and block["correct"] and block["choice"] == 1
    with pytest.raises(UserError, match="MC rule 'mutual_info': not available"):
        mc_record(McSample("t", ["a", "b"], [-1.0, -2.0], [None, None], 0, {}), "mutual_info")


def test_one_model_logged_in_another_order_shares_the_study(tmp_path: Path, study: Path) -> None:
    """lm-eval on several GPUs writes samples rank by rank: the pruned model's samples in another order
    than the dense model's still give one item set (in uid order), imported together or one by one."""
    logs = tmp_path / "logs"
    shutil.copytree(FIXTURES, logs)
    for path in (logs / f"__tmp__i16__models__{PRUNED}").glob("samples_*.jsonl"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[1::2] + lines[0::2]), encoding="utf-8")
    import_fixtures(tmp_path / "together", src=logs)
    items = (tmp_path / "together" / DENSE / "items.jsonl").read_bytes()
    assert (tmp_path / "together" / PRUNED / "items.jsonl").read_bytes() == items
    uids = [json.loads(line)["item_uid"] for line in items.splitlines()]
    assert uids == sorted(uids)
    for model in (DENSE, PRUNED):
        assert {o["item_uid"]: o for o in read_outcomes(tmp_path / "together" / model)} == {
            o["item_uid"]: o for o in read_outcomes(study / model)
        }
    import_fixtures(tmp_path / "apart", src=logs / f"__tmp__i16__models__{PRUNED}")
    import_fixtures(tmp_path / "apart", src=logs / f"__tmp__i16__models__{DENSE}")
    assert validate_study([tmp_path / "apart" / DENSE, tmp_path / "apart" / PRUNED]) == []


def test_a_list_target_gives_the_answer_and_its_aliases(tmp_path: Path) -> None:
    """triviaqa-style targets: the first is the answer, the rest aliases that prunescope's matching credits."""
    logs = _copy(tmp_path)
    (gen,) = logs.glob("samples_psqa_gen_*.jsonl")
    lines = [json.loads(line) for line in gen.read_text(encoding="utf-8").splitlines()]
    first = lines[0]
    first["target"] = [first["target"], "City of Light"]
    first["resps"], first["filtered_resps"] = [["City of Light"]], ["City of Light"]
    _write(gen, "".join(json.dumps(r) + "\n" for r in lines))
    import_fixtures(tmp_path / "s", src=logs)
    (run,) = [p for p in (tmp_path / "s").iterdir() if p.is_dir()]
    items = [json.loads(line) for line in (run / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    (item,) = [it for it in items if "City of Light" in it["aliases"]]
    assert item["answer"] == first["target"][0]
    (outcome,) = [o for o in read_outcomes(run) if o["item_uid"] == item["item_uid"]]
    assert outcome["open"]["correct"] is True


def test_bytes_that_are_not_utf8_are_named_with_their_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logs = _copy(tmp_path)
    (mc,) = logs.glob("samples_psqa_mc_*.jsonl")
    n = len(mc.read_bytes().splitlines())
    mc.write_bytes(mc.read_bytes() + b"\xff\xfe garbage\n")
    assert f"{mc}:{n + 1}: not UTF-8 text" in _error(tmp_path, capsys, logs)


def test_a_folder_in_the_way_refuses_the_import_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "s" / PRUNED).mkdir(parents=True)  # left by a stopped import, no manifest yet
    assert main(["import", "lm-eval", str(FIXTURES), "--out", str(tmp_path / "s")]) == 2
    assert "already in the study" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "s").iterdir()] == [PRUNED]


def test_a_second_baseline_in_one_study_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two runs marked as the baseline of one item set are ambiguous: the second is refused at import,
    naming the first, before anything of it is written."""
    out = tmp_path / "study"
    import_fixtures(out, "--baseline", DENSE, src=FIXTURES / f"__tmp__i16__models__{DENSE}")
    capsys.readouterr()
    argv = ["import", "lm-eval", str(FIXTURES / f"__tmp__i16__models__{PRUNED}"), "--out", str(out)]
    assert main([*argv, "--baseline", PRUNED]) == 2
    err = capsys.readouterr().err
    assert "already has its baseline, SmolLM2-135M-Instruct (" in err and not (out / PRUNED).exists()
    assert main(argv) == 0  # without the mark it joins the study
