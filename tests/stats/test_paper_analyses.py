"""The paper's analyses on a study whose every outcome is planted, against hand-computed numbers
(and R for the signed-rank statistics), with the edge cases: a language without RO items, a probe
that was not run, candidate-shown generation missing on some items, a single model size."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from engine.cli import main
from engine.grading import demotion as demotion_of
from stats import analysis, demotion, ladder, paper_figures, rank_shift, recovery, transition_rates
from stats.load import load_study, transitions
from tests.stats.planted import Outcome, write_study

NO = {"beam_top": False, "beam_any": False, "sample_hits": 0}


def _k(item: dict) -> int:
    return int(item["parallel_id"][1:])


def dense_plan(item: dict, i: int) -> Outcome:
    k = _k(item)
    if item["language"] == "sw" or k <= 13:
        return Outcome(open=True, mc=True, shown=True, rank=1, logprob=-0.5)
    if k <= 16:  # both wrong, far from the top: erased
        return Outcome(open=False, mc=False, shown=False, rank=50, logprob=-6.0, **NO)
    return Outcome(open=False, mc=True, shown=True, rank=2, logprob=-2.0, **NO)  # RO, demoted by rank


def pruned_plan(item: dict, i: int) -> Outcome:
    k = _k(item)
    if item["language"] == "sw":
        return Outcome(open=True, mc=True, shown=True, rank=1, logprob=-0.5)
    if k <= 9:  # RO, near the top; beam (any) recovers k < 5, (top) k < 2, sampling k < 3, one-shot k = 0
        return Outcome(
            open=False,
            mc=True,
            rank=3,
            logprob=-2.5,
            beam_top=k < 2,
            beam_any=k < 5,
            sample_hits=2 if k < 3 else 0,
            one_shot=k == 0,
        )
    if k <= 13:  # RO, erased
        return Outcome(open=False, mc=True, rank=500, logprob=-9.0, one_shot=False, **NO)
    if k <= 16:
        return Outcome(open=False, mc=False, rank=60, logprob=-7.0, one_shot=False, **NO)
    return Outcome(open=True, mc=True, shown=True, rank=1, logprob=-0.4)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("planted") / "study"
    write_study(
        root,
        [("dense", 0.0, "unstructured", dense_plan), ("wanda", 0.5, "unstructured", pruned_plan)],
        n_per_language=20,
        languages=("en", "sw"),
    )
    return root


@pytest.fixture(scope="module")
def pairs(planted: Path):
    df = load_study(planted)
    return df, transitions(df)


def _row(table, **keys):
    rows = [r for r in table.records if all(r.get(k) == v for k, v in keys.items())]
    assert len(rows) == 1, (keys, len(rows))
    return rows[0]


def test_transitions_and_both_denominators(pairs) -> None:
    _, tr = pairs
    mat = transition_rates.transition_matrix(tr)
    bc = _row(mat, language="all", dense="BC")
    assert (bc["n"], bc["to_BC"], bc["to_RO"], bc["to_GO"], bc["to_BW"]) == (34, 20, 14, 0, 0)
    assert _row(mat, language="all", dense="BW")["to_BW"] == 3
    assert _row(mat, language="all", dense="RO")["to_BC"] == 3
    ro = transition_rates.ro_denominators(tr)
    pooled, en, sw = (_row(ro, language=lang) for lang in ("all", "en", "sw"))
    assert (pooled["n"], pooled["ro"], pooled["rate_all"]) == (40, 14, 14 / 40)
    assert (pooled["n_dense_open"], pooled["ro_of_dense_open"]) == (34, 14)
    assert pooled["rate_dense_open"] == pytest.approx(14 / 34)
    assert (en["rate_all"], en["rate_dense_open"], en["ro_dense"]) == (14 / 20, 1.0, 3)
    assert (sw["ro"], sw["rate_all"]) == (0, 0.0)  # a cell with no RO items
    # Wilson 95% interval of 14/40, by hand: (p + z²/2n ± z√(p(1−p)/n + z²/4n²)) / (1 + z²/n)
    z, n, p = 1.959963984540054, 40, 14 / 40
    centre, half = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n),
    )
    assert pooled["rate_all_low"] == pytest.approx(centre - half) and pooled["rate_all_high"] == pytest.approx(
        centre + half
    )


def test_demoted_and_erased_with_paired_tests(pairs) -> None:
    _, tr = pairs
    table = demotion.demotion_report(tr, demotion.DemotionRule(10))
    r = _row(table, language="all")
    assert (r["failed"], r["demoted"], r["erased"]) == (17, 10, 7)
    assert (r["dense_failed"], r["dense_demoted"]) == (6, 3)
    assert (r["ro"], r["ro_demoted"], r["ro_erased"]) == (14, 10, 4)
    assert r["p_ro_majority"] == pytest.approx(binomtest(10, 14, 0.5).pvalue)
    # erased among all 40 items: pruned {10…16}, dense {14, 15, 16}: b = 4, c = 0
    assert (r["b_erased"], r["c_erased"], r["delta_erased"]) == (4, 0, pytest.approx(0.1))
    assert r["p_erased"] == pytest.approx(0.0625)  # mid-p: 2 · ½ · P(X = 0), X ~ Bin(4, ½)
    assert "rank ≤ 10" in table.notes[0] and "one-shot" in table.notes[0]
    sw = _row(table, language="sw")
    assert sw["ro"] == 0 and math.isnan(sw["ro_demoted_share"]) and math.isnan(sw["p_ro_majority"])
    # the threshold is an option: with rank ≤ 2 the rank-3 items are demoted only where a probe recovered
    strict = _row(demotion.demotion_report(tr, demotion.DemotionRule(2)), language="all")
    assert (strict["demoted"], strict["erased"]) == (5, 12)
    no_probe = _row(demotion.demotion_report(tr, demotion.DemotionRule(2, ())), language="all")
    assert no_probe["demoted"] == 0


def test_failures_no_probe_ran_on_are_not_probed_not_erased(pairs) -> None:
    _, tr = pairs
    tr = tr.copy()
    blank = (tr["first_token_rank_pruned"] == 500).to_numpy()  # the 4 RO items erased: their probes never ran
    for col in ("beam_top_pruned", "beam_any_pruned", "sample_hits_pruned", "one_shot_pruned"):
        tr[col] = tr[col].astype(object).where(~blank, None)
    labels = demotion.label(tr, demotion.DemotionRule(10), "_pruned")
    assert (labels[blank] == "not_probed").all() and blank.sum() == 4
    assert (demotion.label(tr, demotion.DemotionRule(10, ()), "_pruned")[blank] == "erased").all()  # rank alone
    table = demotion.demotion_report(tr, demotion.DemotionRule(10))
    r = _row(table, language="all")
    assert (r["failed"], r["demoted"], r["erased"], r["not_probed"]) == (17, 10, 3, 4)
    assert r["demoted_share"] == pytest.approx(10 / 13)  # of the known verdicts, not of all 17 failures
    assert (r["ro"], r["ro_demoted"], r["ro_erased"]) == (14, 10, 0)
    assert r["p_ro_majority"] == pytest.approx(binomtest(10, 10, 0.5).pvalue)
    # the paired test leaves the 4 unknown items out: erased pruned {14, 15, 16} = dense {14, 15, 16}
    assert (r["b_erased"], r["c_erased"], r["delta_erased"]) == (0, 0, 0.0)
    assert "not probed" in [c.header for c in table.columns]
    assert any("not probed" in n and "4 item pairs" in n for n in table.notes)
    plain = demotion.demotion_report(pairs[1], demotion.DemotionRule(10))
    assert "not probed" not in [c.header for c in plain.columns]  # the column only where some failure has it
    # the engine's stored label for such a line says the same
    record = {"open": {"correct": False}, "gold_trace": {"first_token_rank": 500}, "probes": None}
    assert demotion_of(record, 10) == "not_probed"


def _without_gold_traces(tr: pd.DataFrame) -> pd.DataFrame:
    """The pairs as runs imported without gold traces give them: no ranks; and no probe result on the
    dense run's 3 failures with rank 2 (en items 17–19, which the pruned run answers)."""
    tr = tr.copy()
    for side in ("_dense", "_pruned"):
        tr[f"first_token_rank{side}"] = pd.array([pd.NA] * len(tr), dtype="Int64")
    bare = ~tr["open_correct_dense"].to_numpy(bool) & tr["open_correct_pruned"].to_numpy(bool)
    for col in ("beam_top_dense", "beam_any_dense", "sample_hits_dense", "one_shot_dense"):
        tr[col] = tr[col].mask(bare)
    return tr


def test_without_gold_traces_correct_answers_still_count(pairs) -> None:
    """Correct answers need no trace: all 40 items stay in the cell; failures are told apart by their
    probes, and the dense failures with neither a rank nor a probe result are not probed."""
    tr = _without_gold_traces(pairs[1])
    table = demotion.demotion_report(tr, demotion.DemotionRule(10))
    r = _row(table, language="all")
    assert (r["n"], r["failed"], r["demoted"], r["erased"], r["not_probed"]) == (40, 17, 5, 12, 0)  # beam k < 5
    assert (r["dense_failed"], r["dense_demoted"], r["dense_not_probed"]) == (6, 0, 3)
    # the 3 unknown pairs leave the paired test: erased pruned {5…16}, dense {14, 15, 16} of 37 items
    assert (r["b_erased"], r["c_erased"], r["delta_erased"]) == (9, 0, pytest.approx(9 / 37))
    assert any("Gold traces missing" in n and "3 failures" in n for n in table.notes)
    assert not any(
        "Gold traces missing" in n for n in demotion.demotion_report(pairs[1], demotion.DemotionRule(10)).notes
    )
    rank_alone = _row(demotion.demotion_report(tr, demotion.DemotionRule(10, ())), language="all")
    assert (rank_alone["demoted"], rank_alone["erased"], rank_alone["not_probed"]) == (0, 0, 17)  # no rank: unknown


def test_without_any_trace_or_probe_a_cell_is_left_out(pairs) -> None:
    tr = _without_gold_traces(pairs[1])
    for col in ("beam_top_pruned", "beam_any_pruned", "sample_hits_pruned", "one_shot_pruned"):
        tr[col] = tr[col].mask(np.ones(len(tr), dtype=bool))
    table = demotion.demotion_report(tr, demotion.DemotionRule(10))
    assert table.records == [] and "planted/model / wanda-s50" in table.notes[-1]
    assert paper_figures.demotion_shares(tr, Path("unused"), demotion.DemotionRule(10)) == []


def _figure(monkeypatch: pytest.MonkeyPatch, draw) -> Any:
    """The figure `draw(stem)` makes, caught before it is saved and closed."""
    made = []
    monkeypatch.setattr(paper_figures, "_save", lambda fig, stem: made.append(fig) or [])
    draw(Path("unused"))
    (fig,) = made
    return fig


def test_the_demotion_figure_counts_correct_answers_without_traces(pairs, monkeypatch: pytest.MonkeyPatch) -> None:
    tr = _without_gold_traces(pairs[1])
    fig = _figure(monkeypatch, lambda stem: paper_figures.demotion_shares(tr, stem, demotion.DemotionRule(10)))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["dense", "wanda-s50"]
    heights = {c.get_label(): [b.get_height() for b in c] for c in ax.containers}
    assert heights["open correct"] == pytest.approx([34 / 40, 23 / 40])
    assert heights["not probed"] == pytest.approx([3 / 40, 0.0])


def test_figures_of_a_baseline_study_say_baseline(pairs, monkeypatch: pytest.MonkeyPatch) -> None:
    df, _ = pairs
    tr = transitions(df, baseline="model__wanda-s50")  # the dense run compared with a baseline
    fig = _figure(monkeypatch, lambda stem: paper_figures.demotion_shares(tr, stem, demotion.DemotionRule(10)))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["baseline", "dense"]
    fig = _figure(monkeypatch, lambda stem: paper_figures.first_token_rank(tr, stem))
    lines = fig.axes[0].get_lines()[:2]  # then the rank-1/5/10 guides
    assert [line.get_label() for line in lines] == ["baseline", "dense"]
    assert [line.get_linewidth() for line in lines] == [2.0, 1.0]  # only the reference drawn bold


def test_the_default_rule_counts_the_probes_the_runs_ran() -> None:
    def rule(*modes: str | None) -> tuple[str, ...]:
        return demotion.default_rule([{"probes_mode": m} for m in modes]).probes

    assert rule("none", "none") == ()
    assert rule("failed", "none") == rule("all") == rule() == demotion.PROBES
    assert rule("none", None) == ()  # an imported run records no mode: it decides nothing
    assert demotion.default_rule([{"probes_mode": "none"}], probes=("beam",)).probes == ("beam",)
    assert demotion.parse_probes("auto") is None and demotion.parse_probes("none") == ()


def test_stored_labels_agree_with_the_relabelling(pairs) -> None:
    df, _ = pairs
    labels = demotion.label(df, demotion.DemotionRule(10))
    stored = df["demotion"].astype(object).where(df["demotion"].notna(), "").astype(str).to_numpy()
    assert (labels == stored).all()


def test_recovery_per_probe_and_a_probe_not_run(pairs) -> None:
    df, tr = pairs
    table = recovery.recovery_report(df)
    failed = _row(table, condition="wanda-s50", language="all", subset="failed")
    assert failed["n"] == 17
    for probe, k in (("beam_top", 2), ("beam_any", 5), ("sampling", 3), ("one_shot", 1)):
        assert (failed[f"k_{probe}"], failed[f"n_{probe}"]) == (k, 17), probe
    ro = _row(table, condition="wanda-s50", language="all", subset="RO")
    assert (ro["k_beam_any"], ro["n_beam_any"], ro["beam_any"]) == (5, 14, 5 / 14)
    dense = _row(table, condition="dense", language="all", subset="failed")
    assert dense["n_one_shot"] == 0 and math.isnan(dense["one_shot"])  # not run: no rate, not 0
    assert (dense["k_beam_any"], dense["n_beam_any"]) == (0, 6)
    paired = recovery.recovery_paired_report(tr)
    probes = {r["probe"]: r for r in paired.records}
    assert "one-shot" not in probes  # the dense run never ran it
    assert probes["beam, any"]["n"] == 3 and probes["beam, any"]["b"] == 0


def test_rank_shift_against_r(pairs) -> None:
    _, tr = pairs
    table = rank_shift.rank_shift_report(tr)
    r = _row(table, language="all", subset="RO")
    # R 4.2: wilcox.test(c(rep(3, 10), rep(500, 4)), rep(1, 14), paired = TRUE, conf.int = TRUE)
    assert r["rank_V"] == 105
    assert r["rank_p"] == pytest.approx(6.38083981951632e-04, rel=1e-9)
    assert r["rank_hl"] == pytest.approx(2.00008485008439, abs=2e-4)  # uniroot tolerance 1e-4
    assert r["rank_hl_low"] == pytest.approx(2.0, abs=2e-4) and r["rank_hl_high"] == pytest.approx(250.5, abs=2e-4)
    assert (r["rank_dense_median"], r["rank_pruned_median"]) == (1.0, 3.0)
    assert (r["top1_dense"], r["top1_pruned"], r["top5_pruned"], r["top10_pruned"]) == (1.0, 0.0, 10 / 14, 10 / 14)
    sw = _row(table, language="sw", subset="RO")
    assert sw["rank_n"] == 0 and math.isnan(sw["rank_p"]) and sw["top"] == "–"


def test_format_ladder(pairs) -> None:
    df, tr = pairs
    table = ladder.ladder_report(df, tr)
    d, p = _row(table, condition="dense", language="all"), _row(table, condition="wanda-s50", language="all")
    assert (d["open"], d["shown"], d["mc"]) == (34 / 40, 37 / 40, 37 / 40)
    assert d["p_open_shown"] == pytest.approx(0.125)  # b = 0, c = 3: mid-p 2 · ½ · ⅛
    assert (p["open"], p["mc"], p["shown_n"], p["shown"]) == (23 / 40, 37 / 40, 23, 1.0)  # shown missing on 17
    assert p["n_open_shown"] == 23
    assert p["delta_open_vs_dense"] == pytest.approx((23 - 34) / 40)
    assert math.isnan(d["p_open_vs_dense"])


def test_single_model_size_keeps_the_model_factor(pairs) -> None:
    df, _ = pairs
    assert "log_params" not in analysis.default_glmm_formula(df)


def test_stats_command_writes_every_analysis(planted: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["stats", str(planted), "--out", str(out), "--no-glmm", "--demotion-rank", "2"]) == 0
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    for title in (
        "Transitions dense → pruned",
        "Recognition-only rate under two denominators",
        "Demoted vs erased, dense vs pruned",
        "Recovery by probe",
        "Gold-rank shift, dense → pruned",
        "Format ladder: open → shown → MC",
        "Model size as an axis",
        "Datasets",
    ):
        assert f"## {title}" in report
    assert "gold first-token rank ≤ 2" in report
    # the summary: 5 of 17 pruned failures demoted under rank ≤ 2 (the probes' k < 5), 3 of 6 dense ones
    assert "29.4% of the pruned runs' open-generation failures are demoted (50.0% of the dense run's)" in report
    assert "above one half in 0 and below it in 0 of 1 conditions" in report  # 5 of 14 RO: p = 0.42
    for key in ("transitions", "ro-denominators", "demotion", "recovery", "rank-shift", "ladder"):
        tex = (out / "tex" / f"{key}.tex").read_text(encoding="utf-8")
        assert tex.count("\\begin{table}") == 1
        assert (out / "csv" / f"{key}.csv").exists()
    for fig in ("demotion", "first_token_rank", "format_ladder"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 0 and (out / "figures" / f"{fig}.pdf").exists()
    doc = json.loads((out / "tables.json").read_text(encoding="utf-8"))
    demo = next(t for t in doc["tables"] if t["key"] == "demotion")
    assert {r["language"] for r in demo["records"]} == {"all", "en", "sw"}  # per-language rows as detail
    assert "| all |" in report and "| sw |" not in report.split("## Demoted vs erased")[1].split("## ")[0]


def test_bad_demotion_options(planted: Path, capsys) -> None:
    assert main(["stats", str(planted), "--no-glmm", "--demotion-rank", "0"]) != 0
    assert "--demotion-rank" in capsys.readouterr().err
    assert main(["stats", str(planted), "--no-glmm", "--demotion-probes", "beam,oracle"]) != 0
    assert "oracle" in capsys.readouterr().err


def test_signed_rank_matches_r_goldens() -> None:
    from stats.signed_rank import signed_rank

    cases = json.loads((Path(__file__).parent / "goldens" / "signed_rank.json").read_text(encoding="utf-8"))
    for c in cases:
        r = signed_rank(np.array(c["x"]), np.array(c["y"]), c["level"])
        exact = "exact" in c["method"]
        assert r.method == ("exact" if exact else "normal"), c["name"]
        assert r.statistic == c["V"] and r.pvalue == pytest.approx(c["p"], rel=1e-9), c["name"]
        tol = 1e-9 if exact else 2e-4  # R's root finder stops at tol.root = 1e-4
        for ours, theirs in ((r.estimate, c["estimate"]), (r.lower, c["lower"]), (r.upper, c["upper"])):
            assert ours == pytest.approx(theirs, abs=tol), c["name"]


def test_signed_rank_without_pairs_has_no_statistic() -> None:
    """No pairs: no test (R's wilcox.test refuses), so V is missing, not 0; all-zero differences keep
    R's V = 0 with no p."""
    from stats.signed_rank import signed_rank

    empty = signed_rank(np.array([]), np.array([]))
    assert empty.n == 0 and math.isnan(empty.statistic) and math.isnan(empty.pvalue)
    zeros = signed_rank(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert zeros.statistic == 0.0 and math.isnan(zeros.pvalue)
