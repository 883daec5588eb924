"""How lm-eval's logged targets and documents are read: list targets logged as `str(list)`, MC gold
indices resolved as lm-eval resolves them and checked against its per-sample `acc`, multiple-input
(winogrande-style) requests, and the documents of a task pair checked to be the same."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cli import main
from engine.contract.reader import iter_outcomes

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval" / "runs"
DENSE = "SmolLM2-135M-Instruct"


def _logs(tmp_path: Path) -> Path:
    dst = tmp_path / "logs"
    shutil.copytree(FIXTURES / f"__tmp__i16__models__{DENSE}", dst)
    return dst


def _edit(logs: Path, task: str, fn: Callable[[list[dict]], None]) -> Path:
    (path,) = logs.glob(f"samples_{task}_*.jsonl")
    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    fn(recs)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def _import(tmp_path: Path, logs: Path) -> tuple[list[dict], list[dict]]:
    out = tmp_path / "study"
    assert main(["import", "lm-eval", str(logs), "--out", str(out)]) == 0
    items = [json.loads(x) for x in (out / DENSE / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    return items, list(iter_outcomes(out / DENSE))


def _error(tmp_path: Path, logs: Path, capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    assert main(["import", "lm-eval", str(logs), "--out", str(tmp_path / "err")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def test_a_list_target_logged_as_its_repr_gives_the_answer_and_aliases(tmp_path: Path) -> None:
    """lm-eval 0.4.3+ logs str(target): triviaqa's ['William Shakespeare', 'Shakespeare'] arrives as text."""
    logs = _logs(tmp_path)

    def gen(recs: list[dict]) -> None:
        recs[0]["target"] = str([recs[0]["target"], "City of Light"])
        recs[0]["resps"], recs[0]["filtered_resps"] = [["City of Light"]], ["City of Light"]
        recs[1]["target"] = "[not, a list of strings]"
        recs[2]["target"] = "['a', 1]"

    _edit(logs, "psqa_gen", gen)
    items, outcomes = _import(tmp_path, logs)
    by_uid = {it["item_uid"]: it for it in items}
    paris = by_uid["qa16/default/test/capital-france-en/en"]
    assert paris["answer"] == "Paris" and "City of Light" in paris["aliases"]
    assert next(o for o in outcomes if o["item_uid"] == paris["item_uid"])["open"]["correct"] is True
    assert by_uid["qa16/default/test/capital-australia-en/en"]["answer"] == "[not, a list of strings]"
    assert "['a', 1]" in {it["answer"] for it in items}  # not all strings: kept as text


def _numeric_options(recs: list[dict], options: list[str], target: str, preferred: int) -> None:
    """Item 0 with number options and `target` logged as text; the model prefers option `preferred`;
    its acc, acc_norm and acc_bytes as lm-eval gives them for gold = options.index(target)."""
    rec = recs[0]
    for k, o in enumerate(options):
        rec["arguments"][f"gen_args_{k}"]["arg_1"] = o
    lls = [-5.0, -6.0, -7.0, -8.0]
    lls[preferred] = -1.0
    rec["filtered_resps"] = [[str(v), "False"] for v in lls]
    rec["resps"] = [[[str(v), "False"]] for v in lls]
    rec["target"] = target
    gold = options.index(target)
    rec["acc"] = float(preferred == gold)
    for m in ("acc_norm", "acc_bytes"):
        rec[m] = float(max(range(4), key=lambda i: (lls[i] / len(options[i]), -i)) == gold)


def test_a_target_that_is_an_option_text_and_an_index_is_resolved_by_the_logged_acc(tmp_path: Path) -> None:
    """Options "1".."4", target "2": lm-eval's gold is choices.index("2") = 1 here, which its acc says."""
    logs = _logs(tmp_path)
    _edit(logs, "psqa_mc", lambda recs: _numeric_options(recs, ["1", "2", "3", "4"], "2", preferred=1))
    _, outcomes = _import(tmp_path, logs)
    mc = next(o["mc"] for o in outcomes if o["item_uid"].split("/")[3] == "capital-france-en")
    assert mc["gold_index"] == 1 and mc["correct"] is True


def test_a_text_target_in_the_options_that_is_also_a_number(tmp_path: Path) -> None:
    """Options "6","8","10","4", target "8": option 1 (its text), not an index out of range."""
    logs = _logs(tmp_path)
    _edit(logs, "psqa_mc", lambda recs: _numeric_options(recs, ["6", "8", "10", "4"], "8", preferred=1))
    _, outcomes = _import(tmp_path, logs)
    mc = next(o["mc"] for o in outcomes if o["item_uid"].split("/")[3] == "capital-france-en")
    assert mc["gold_index"] == 1 and mc["correct"] is True


def test_a_gold_that_disagrees_with_the_logged_acc_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    logs = _logs(tmp_path)

    def flip(recs: list[dict]) -> None:
        recs[0]["acc"] = 1.0 - recs[0]["acc"]

    path = _edit(logs, "psqa_mc", flip)
    line = _error(tmp_path, logs, capsys)
    assert line.startswith(f"prunescope import: error: {path}:1: no reading of target '2' (option 2) agrees")
    assert "the log-likelihoods pick option 2" in line


def test_an_ambiguous_target_falls_back_to_the_tasks_doc_to_target(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The model picks neither reading of "2" (option 1 by text, option 2 by index): acc is 0 for both, and
    the task's doc_to_target (the field gold_index, an int) says index."""
    logs = _logs(tmp_path)

    def wrong(recs: list[dict]) -> None:
        _numeric_options(recs, ["1", "2", "3", "4"], "2", preferred=0)
        recs[0]["doc"]["gold_index"] = 2

    _edit(logs, "psqa_mc", wrong)
    _, outcomes = _import(tmp_path, logs)
    mc = next(o["mc"] for o in outcomes if o["item_uid"].split("/")[3] == "capital-france-en")
    assert mc["gold_index"] == 2 and mc["correct"] is False
    (results,) = logs.glob("results_*.json")
    data = json.loads(results.read_text(encoding="utf-8"))
    data["configs"]["psqa_mc"]["doc_to_target"] = "def doc_to_target(doc): ..."
    results.write_text(json.dumps(data), encoding="utf-8")
    assert "target '2' may be option 1 or 2 and the logged acc=0, acc_norm=0, acc_bytes=0 cannot tell" in (
        _error(tmp_path, logs, capsys)
    )


def test_multiple_input_requests_get_the_gold_the_logged_acc_gives(tmp_path: Path) -> None:
    """winogrande-style: one context per option, one shared continuation, the continuation as target."""
    logs = _logs(tmp_path)

    def winogrande(recs: list[dict]) -> None:
        for rec in recs:
            rec["arguments"] = {
                f"gen_args_{k}": {"arg_0": f"The cup fell because the {w}", "arg_1": " was heavy."}
                for k, w in enumerate(("cup", "table"))
            }
            lls = [-5.0, -3.0]
            rec["filtered_resps"] = [[str(v), "False"] for v in lls]
            rec["resps"] = [[[str(v), "False"]] for v in lls]
            rec["target"] = "was heavy."
            rec["metrics"] = ["acc"]
            rec["acc"] = 1.0 if rec["doc_id"] % 2 else 0.0  # gold 1 (the model's pick), else gold 0
            del rec["acc_norm"], rec["acc_bytes"]

    _edit(logs, "psqa_mc", winogrande)
    _, outcomes = _import(tmp_path, logs)
    for out in outcomes:
        mc = out["mc"]
        assert [o["text"] for o in mc["options"]] == ["cup", "table"] and mc["choice"] == 1
        assert mc["correct"] == bool(mc["harness"]["metrics"]["acc"])
        assert mc["gold_index"] == (1 if mc["correct"] else 0)


def test_one_id_on_two_documents_of_a_task_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A non-unique id column: the two documents cannot be told apart by id, in whatever order each task lists them."""
    logs = _logs(tmp_path)

    def dup(recs: list[dict]) -> None:
        recs[0]["doc"]["id"] = recs[1]["doc"]["id"] = "dup"

    path = _edit(logs, "psqa_mc", dup)
    _edit(logs, "psqa_gen", dup)
    line = _error(tmp_path, logs, capsys)
    assert f"{path}:2: document id 'dup' (en) is also at {path}:1 on another document" in line


def test_one_id_on_different_documents_in_the_two_tasks_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Positional ids (idx 0..N-1) on two differently ordered copies of the data: the questions differ."""
    logs = _logs(tmp_path)

    def positional(recs: list[dict], shift: int) -> None:
        docs = [r["doc"] for r in recs]
        for k, rec in enumerate(recs):
            rec["doc"] = {**docs[k // 8 * 8 + (k + shift) % 8], "idx": k}  # 8 per language
            del rec["doc"]["id"]

    mc = _edit(logs, "psqa_mc", lambda recs: positional(recs, 0))
    gen = _edit(logs, "psqa_gen", lambda recs: positional(recs, 1))
    line = _error(tmp_path, logs, capsys)
    assert f"{mc}:1 and {gen}:1: document id '0' (en) has question 'What is the capital of France?' in one" in line


def test_twins_that_word_the_question_differently_are_paired(tmp_path: Path) -> None:
    """A twin whose process_docs wraps the question ("Question: ... Answer:") or appends its options
    asks the same document: the check compares the texts with one inside the other."""
    logs = _logs(tmp_path)

    def wrap(recs: list[dict]) -> None:
        for r in recs:
            r["doc"]["question"] = f"Question:  {r['doc']['question'].upper()}\nAnswer:"

    _edit(logs, "psqa_gen", wrap)
    items, outcomes = _import(tmp_path, logs)
    assert len(items) == len(outcomes) == 16


def test_answers_that_are_only_an_article_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Generative MMLU's target `A` (English) is an article to the matcher: credited where it stands
    alone ("The answer is A.", since matching v4), not before a word ("A is ..."); the import says so
    and names --grade task."""
    logs = _logs(tmp_path)
    said = {"A": "The answer is A.", "B": "B is the answer."}

    def gen(recs: list[dict]) -> None:
        en = [r for r in recs if r["doc"].get("language", "en") == "en"][:2]
        for r, letter in zip(en, said):
            r["target"] = letter
            r["resps"], r["filtered_resps"] = [[said[letter]]], [said[letter]]

    _edit(logs, "psqa_gen", gen)
    capsys.readouterr()
    items, outcomes = _import(tmp_path, logs)
    warnings = [w for w in capsys.readouterr().err.splitlines() if "only an article" in w]
    # 'A' (en) and the fixture's own French 'Au' (gold), which French reads as the article au (= à le)
    assert (
        len(warnings) == 1
        and "task psqa_gen (" in warnings[0]
        and "samples_psqa_gen_" in warnings[0]
        and ": 2 of 16 answers" in warnings[0]
        and "where it stands alone" in warnings[0]
        and "--grade task" in warnings[0]
    )
    answer = {it["item_uid"]: it["answer"] for it in items}
    graded = {answer[o["item_uid"]]: o["open"]["correct"] for o in outcomes if answer[o["item_uid"]] in said}
    assert graded == {"A": True, "B": True}  # 'B' is no article: found before a word too


def test_the_manifest_names_the_logs_by_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Imported from a relative path, the manifest said 'logs/samples_...jsonl', which means nothing to
    a reader of the study in another directory."""
    _logs(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["import", "lm-eval", "logs", "--out", "study"]) == 0
    manifest = json.loads((tmp_path / "study" / DENSE / "manifest.json").read_text(encoding="utf-8"))
    files = manifest["imported"]["files"]
    assert files and all(Path(f).is_absolute() and Path(f).is_file() for f in files), files
