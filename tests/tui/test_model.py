"""The TUI's data layer: indexing, pairing, filtering, sorting, live following and damaged input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.contract.labels import discordant, transition_label
from engine.contract.reader import read_manifest
from engine.runfolder import write_json_atomic
from tui.model import load_study, run_labels
from tui.view import Filter, row_text, select, sort_order


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_load_pairs_and_counts_match_stats(study: Path) -> None:
    from stats.load import load_study as stats_load

    s = load_study([study])
    assert [r.label for r in s.runs] == ["dense", "wanda-s50", "wanda-s70"]
    assert s.all_problems == []
    assert len(s.pairs) == 2 * 24  # two pruned runs × 8 items × 3 languages, each paired with dense
    df = stats_load(study)
    counts = s.cell_counts()
    for r, run in enumerate(s.runs):
        for lang in s.languages:
            sub = df[(df["condition"] == run.label) & (df["language"] == lang)]
            c = counts[(r, lang)]
            assert c["n"] == len(sub)
            assert c["open"] == pytest.approx(sub["open_correct"].mean())
            assert c["shown"] == pytest.approx(sub["shown_correct"].astype(float).mean())
            assert c["mc"] == pytest.approx(sub["mc_correct"].mean())
            assert c["recog"] == pytest.approx(sub["recognition_only"].mean())


@pytest.mark.parametrize("blank_line", [False, True], ids=["arrow", "line-by-line"])
def test_shown_accuracy_counts_only_lines_with_a_shown_generation(study: Path, blank_line: bool) -> None:
    path = study / "tiny-llama__wanda-s50" / "outcomes.jsonl"
    recs = [json.loads(x) for x in _lines(path)]
    for rec in recs:
        if rec["language"] == "de":
            rec["shown"] = None
        elif rec["language"] == "sw":
            del rec["shown"]
    text = "".join(json.dumps(r) + "\n" for r in recs)
    path.write_text(("\n" if blank_line else "") + text, encoding="utf-8")
    s = load_study([study])
    (r,) = (i for i, run in enumerate(s.runs) if run.label == "wanda-s50")
    en = [rec["shown"]["correct"] for rec in recs if rec["language"] == "en"]
    counts = s.cell_counts()
    assert np.isnan(counts[(r, "de")]["shown"]) and np.isnan(counts[(r, "sw")]["shown"])
    assert counts[(r, "en")]["shown"] == counts[(r, None)]["shown"] == pytest.approx(np.mean(en))
    run = s.runs[r]
    assert run.column("shown_correct").to_pylist() == [
        rec["shown"]["correct"] if rec.get("shown") else None for rec in recs
    ]


def test_read_line_by_offset(study: Path) -> None:
    s = load_study([study])
    run = s.runs[2]
    for row in (0, 5, len(run) - 1):
        assert run.fetch(row)["item_uid"] == s.uid(2, row)


def test_transitions_match_categories(study: Path) -> None:
    s = load_study([study])
    p = s.pairs
    for i in range(len(p)):
        run, ref = s.runs[p.run[i]], s.runs[s.reference[p.run[i]]]
        dense_cat = ref.fetch(p.ref[i])["category"]
        cat = run.fetch(p.row[i])["category"]
        short = {"both_correct": "BC", "recognition_only": "RO", "generation_only": "GO", "both_wrong": "BW"}
        assert transition_label(p.transition[i]) == f"{short[dense_cat]}→{short[cat]}"
        assert bool(discordant(p.transition[i])) == (dense_cat != cat)


def test_filter_parse_and_errors() -> None:
    f = Filter.parse("lang:de,en cat:RO trans:BC>RO run:wanda flag disc answer\\d")
    assert f.languages == ["de", "en"] and f.categories == ["recognition_only"]
    assert f.transitions == ["BC→RO"] and f.runs == ["wanda"] and f.flagged and f.discordant
    assert f.regex is not None and f.regex.search("ANSWER7")
    with pytest.raises(ValueError, match="bad regex"):
        Filter.parse("answer(")
    with pytest.raises(ValueError, match="unknown category"):
        Filter.parse("cat:maybe")
    with pytest.raises(ValueError, match=r"lang: needs its value right after the colon, e\.g\. lang:de"):
        Filter.parse("lang: es")  # was every row: an empty lang: and the regex 'es' (in every uid's "test")


def test_select_each_criterion(study: Path) -> None:
    s = load_study([study])
    p = s.pairs
    de = select(s, Filter.parse("lang:de"), set())
    assert len(de) == 16 and all(s.language(p.run[i], p.row[i]) == "de" for i in de)
    ro = select(s, Filter.parse("cat:RO"), set())
    assert all(p.transition[i] % 4 == 1 for i in ro)
    tr = select(s, Filter.parse("trans:BC→RO"), set())
    assert all(transition_label(p.transition[i]) == "BC→RO" for i in tr)
    disc = select(s, Filter.parse("disc"), set())
    assert len(disc) == int(discordant(p.transition).sum())
    run = select(s, Filter.parse("run:wanda-s70"), set())
    assert len(run) == 24 and all(s.runs[p.run[i]].label == "wanda-s70" for i in run)
    text = select(s, Filter.parse("q000003/"), set())
    assert len(text) == 6 and all("q000003/" in row_text(s, i) for i in text)
    uid = s.uid(1, 0)
    flagged = select(s, Filter.parse("flag"), {uid})
    assert [s.uid(p.run[i], p.row[i]) for i in flagged] == [uid, uid]  # one row per pruned run


def test_sort_by_every_column(study: Path) -> None:
    s = load_study([study])
    idx = np.arange(len(s.pairs))
    p = s.pairs
    by_answer = sort_order(s, idx, "answer", True, set())
    answers = [s.open_text(p.run[i], p.row[i]) for i in by_answer]
    assert answers == sorted(answers, reverse=True)
    by_lang = sort_order(s, idx, "language", False, set())
    langs = [s.language(p.run[i], p.row[i]) for i in by_lang]
    assert langs == sorted(langs)
    for key in ("run", "item", "transition", "gold", "flag"):
        assert sorted(sort_order(s, idx, key, False, set()).tolist()) == idx.tolist()


def test_follow_a_running_run(study: Path) -> None:
    run_dir = study / "tiny-llama__wanda-s70"
    lines = _lines(run_dir / "outcomes.jsonl")
    (run_dir / "outcomes.jsonl").write_text("".join(lines[:10]) + lines[10][:40], encoding="utf-8")
    manifest = read_manifest(run_dir)
    manifest["status"] = "running"
    write_json_atomic(run_dir / "manifest.json", manifest)
    s = load_study([study])
    run = s.runs[2]
    assert len(run) == 10 and run.outcomes.torn_tail and s.all_problems == []
    assert run.refresh() == 0
    with open(run_dir / "outcomes.jsonl", "a", encoding="utf-8") as f:
        f.write(lines[10][40:] + lines[11] + lines[12][:5])
    assert run.refresh() == 2 and run.outcomes.torn_tail
    with open(run_dir / "outcomes.jsonl", "a", encoding="utf-8") as f:
        f.write(lines[12][5:])
    assert run.refresh() == 1 and not run.outcomes.torn_tail
    s.rebuild()
    assert len(s.pairs) == 24 + 13
    assert run.fetch(12)["item_uid"] == s.uid(2, 12)


def test_corrupt_and_torn_lines_reported_not_fatal(study: Path) -> None:
    path = study / "tiny-llama__wanda-s50" / "outcomes.jsonl"
    lines = _lines(path)
    path.write_text("".join(lines[:3]) + "{not json\n" + "".join(lines[3:]) + '{"item_uid": "x', encoding="utf-8")
    s = load_study([study])
    run = s.runs[1]
    assert len(run) == len(lines)
    text = " | ".join(s.all_problems)
    assert f"{path}:4: corrupt line" in text and "torn last line" in text
    assert run.fetch(3)["item_uid"] == s.uid(1, 3)


def test_missing_manifest_and_unpaired_runs(study: Path) -> None:
    (study / "tiny-llama__wanda-s50" / "manifest.json").unlink()
    path = study / "tiny-llama__wanda-s70" / "outcomes.jsonl"
    recs = [json.loads(x) for x in _lines(path)]
    for r in recs:
        r["content_hash"] = "sha256:" + "1" * 64
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    s = load_study([study])
    text = " | ".join(s.all_problems)
    assert "manifest.json: missing" in text
    assert "tiny-llama__wanda-s70 and tiny-llama__dense do not pair: 24 item(s) have different content" in text
    assert "(no manifest)" in s.runs[1].label


def test_empty_and_missing_study(tmp_path: Path) -> None:
    s = load_study([tmp_path])
    assert s.runs == [] and "no run folders" in s.all_problems[0]
    s = load_study([tmp_path / "nope"])
    assert "no such study or run folder" in s.all_problems[0]


def test_two_runs_paired_directly(study: Path) -> None:
    s = load_study([study / "tiny-llama__wanda-s50", study / "tiny-llama__wanda-s70"])
    assert s.reference == [-1, 0] and len(s.pairs) == 24
    assert s.root == study


def test_tui_app_does_not_import_torch() -> None:
    code = "import sys, tui.app, tui.commands; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_two_dense_runs_get_the_same_answer_in_stats_and_the_tui(study: Path) -> None:
    from engine.errors import UserError
    from stats.load import load_study as stats_load
    from stats.load import transitions

    other = study / "tiny-llama__dense-again"
    other.mkdir()
    for name in ("items.jsonl", "outcomes.jsonl"):
        (other / name).write_bytes((study / "tiny-llama__dense" / name).read_bytes())
    manifest = read_manifest(study / "tiny-llama__dense")
    manifest["run_id"] = other.name
    write_json_atomic(other / "manifest.json", manifest)
    with pytest.raises(UserError) as exc:
        transitions(stats_load(study))
    message = str(exc.value)
    assert "2 dense runs on the same items (tiny-llama__dense, tiny-llama__dense-again)" in message
    s = load_study([study])
    assert message in s.all_problems
    assert all(ref == -1 for ref in s.reference)  # nothing is paired against a guessed reference
    assert {s.uid(r, row) for r, row in zip(s.pairs.run, s.pairs.row)}  # runs are listed unpaired
    assert not discordant(s.pairs.transition).any()


def test_filter_by_demotion_and_recovery(study: Path) -> None:
    s = load_study([study])
    p = s.pairs
    recs = [s.runs[p.run[i]].fetch(p.row[i]) for i in range(len(p))]

    def recovered(rec: dict) -> bool | None:
        pr = rec.get("probes")
        if not pr:
            return None
        return bool(pr["beam"]["hit_any"] or pr["sampling"]["hits"] or pr["one_shot"]["correct"])

    for query, want in (
        ("demotion:demoted", lambda r: r["demotion"] == "demoted"),
        ("demotion:erased", lambda r: r["demotion"] == "erased"),
        ("demotion:demoted|erased", lambda r: r["demotion"] in ("demoted", "erased")),
        ("recovered:yes", lambda r: recovered(r) is True),
        ("recovered:no", lambda r: recovered(r) is False),
        ("demotion:demoted recovered:no", lambda r: r["demotion"] == "demoted" and recovered(r) is False),
    ):
        got = select(s, Filter.parse(query), set()).tolist()
        assert got == [i for i, r in enumerate(recs) if want(r)], query
    assert len(select(s, Filter.parse("demotion:erased"), set())) > 0
    for bad in ("demotion:gone", "recovered:maybe"):
        with pytest.raises(ValueError, match=bad.split(":")[1]):
            Filter.parse(bad)


def test_two_studies_are_pooled_the_way_stats_pools_them(study: Path, tmp_path: Path) -> None:
    import shutil

    from stats.load import load_study as stats_load
    from stats.load import transitions

    other = tmp_path / "other-study"
    shutil.copytree(study, other)  # the same runs and items: only the study tells them apart
    s = load_study([study, other])
    assert s.all_problems == []
    names = [r.name for r in s.runs]
    assert names[:3] == [f"{study.name}/tiny-llama__{c}" for c in ("dense", "wanda-s50", "wanda-s70")]
    assert names[3:] == [f"other-study/tiny-llama__{c}" for c in ("dense", "wanda-s50", "wanda-s70")]
    assert [names[ref] if ref >= 0 else None for ref in s.reference] == [None, names[0], names[0]] + [
        None,
        names[3],
        names[3],
    ]  # each study's pruned runs pair with its own dense run
    tr = transitions(stats_load([study, other]))
    pairs = {(str(a), str(b)) for a, b in zip(tr["run_id"], tr["reference_run"])}
    assert pairs == {(names[i], names[s.reference[i]]) for i in (1, 2, 4, 5)}
    assert len(s.pairs) == len(tr)


def test_labels_fall_back_to_run_ids_when_conditions_and_models_repeat() -> None:
    class Run:
        def __init__(self, name: str, label: str, model: str) -> None:
            self.name, self.label, self.model, self.meta = name, label, model, object()

    runs: list[Any] = [Run("a__dense", "dense", "org/M"), Run("b__dense", "dense", "org/M"), Run("s", "s50", "org/M")]
    assert run_labels(runs) == ["a__dense", "b__dense", "s50"]
    runs.append(Run("n", "s50", "other/N"))
    assert run_labels(runs) == ["a__dense", "b__dense", "s50 · M", "s50 · N"]


def test_a_run_named_exactly_is_not_mixed_with_runs_containing_its_name() -> None:
    """The Overview opens a cell with `run:<folder name>`: gpt2__wanda-s50 must not bring in
    distilgpt2__wanda-s50; a part of a name still picks every run containing it."""
    from types import SimpleNamespace

    from tui.view import runs_named

    runs: Any = [
        SimpleNamespace(name=n, label=n.split("__")[1])
        for n in ("gpt2__dense", "gpt2__wanda-s50", "distilgpt2__dense", "distilgpt2__wanda-s50")
    ]
    assert runs_named(runs, "gpt2__wanda-s50") == [1]
    assert runs_named(runs, "wanda") == [1, 3] and runs_named(runs, "dense") == [0, 2]
    assert runs_named(runs, "gpt2__wanda") == [1, 3]


def test_a_backtracking_regex_is_stopped_with_a_message(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backreferences go to a backtracking engine (RE2 refuses them): a pattern that would run for ever
    is stopped after the budget with a message, and one that is merely a backreference works."""
    import time

    import tui.view

    s = load_study([study])
    hits = select(s, Filter.parse(r"(q)0\1"), set())
    assert len(hits) == 0 and len(select(s, Filter.parse(r"(0)\1\1"), set())) > 0
    monkeypatch.setattr(tui.view, "BACKTRACKING_BUDGET_S", 0.3)
    import pyarrow as pa

    t0 = time.monotonic()
    with pytest.raises(ValueError, match=r"the regex took over 0\.3 s and was stopped"):
        tui.view._regex_mask(pa.array(["a" * 40 + "!"]), re.compile(r"(a|aa)+\1$"), time.monotonic() + 0.3)
    assert time.monotonic() - t0 < 5
