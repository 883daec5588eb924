"""CSV and JSON hold every number at the precision the tables print it, so they do not depend on the
machine (the GLMM's optimum moves by ~1e-6 between BLAS kernels; the printed digits do not)."""

from __future__ import annotations

import json
import math

from stats.report import Column, ReportTable, printed, render_csv, render_json, render_markdown


def test_printed_precision_per_column_kind() -> None:
    assert printed(22 / 96, "rate") == 0.229 and printed(1.23456789, "num") == 1.235
    assert printed(0.0496, "p") == 0.05 and printed(3.14159e-7, "p") == 3.1e-07
    assert printed(2 / 3) == 0.666667  # a number no column shows: 6 significant digits
    neg_zero = printed(-0.0004, "num")
    assert neg_zero == 0.0 and math.copysign(1.0, neg_zero) == 1.0  # no −0.0
    assert printed(math.inf, "ci") == math.inf and math.isnan(printed(math.nan, "p"))


def test_csv_and_json_hold_what_the_table_prints() -> None:
    table = ReportTable(
        "t",
        "T",
        [Column("rate", "r", "rate"), Column("p", "p", "p"), Column("Δ", "d", "ci"), Column("n", "n", "int")],
        [
            {
                "r": 22 / 96,
                "p": 3.14159e-7,
                "d": -1 / 3,
                "d_low": -0.5000004,
                "d_high": 1 / 7,
                "n": 96,
                "hidden": 2 / 3,
                "nested": {"x": [1 / 3]},
                "odds": math.inf,
            }
        ],
    )
    assert "| 0.229 | 3.1e−07 | −0.333 [−0.500, 0.143] | 96 |" in render_markdown([table])
    header, row = render_csv(table).splitlines()
    assert header == "r,p,d,d_low,d_high,n,hidden,nested,odds"
    assert row == '0.229,3.1e-07,-0.333,-0.5,0.143,96,0.666667,"{""x"": [0.333333]}",inf'
    record = json.loads(render_json([table]))["tables"][0]["records"][0]
    assert record == {
        "r": 0.229,
        "p": 3.1e-07,
        "d": -0.333,
        "d_low": -0.5,
        "d_high": 0.143,
        "n": 96,
        "hidden": 0.666667,
        "nested": {"x": [0.333333]},
        "odds": None,
    }
    assert table.records[0]["r"] == 22 / 96  # the records themselves keep every digit


def test_p_below_the_smallest_double_is_not_printed_as_zero() -> None:
    """Exact McNemar with b = 3220, c = 484: the true p is 10^−492.8, which underflows to 0. Tables and
    sentences print '< 1e−300' (as R prints '< 2.2e-16'), never '0.0e+00'; JSON keeps the number."""
    from stats.binomial import logcdf_half
    from stats.mcnemar import mcnemar
    from stats.report import format_p, p_clause, render_latex
    from stats.tables import PairedTable

    res = mcnemar(PairedTable(2000, 3220, 484, 296), "exact")
    assert res.pvalue == 0.0 and (math.log(2) + logcdf_half(484, 3704)) / math.log(10) < -300
    assert format_p(0.0) == "< 1e−300" and format_p(5e-324) == "< 1e−300"
    assert format_p(1e-300) == "1.0e−300" and format_p(7.3e-5) == "7.3e−05" and format_p(0.042) == "0.042"
    assert p_clause(0.0) == "p < 1e−300" and p_clause(0.042, "adjusted p") == "adjusted p = 0.042"
    sentence = res.report()
    assert "; p < 1e−300 (asymptotic p < 1e−300);" in sentence and "e+00" not in sentence
    table = ReportTable("t", "T", [Column("p", "p", "p")], [{"p": res.pvalue}])
    assert "| \\< 1e−300 |" in render_markdown([table])
    assert "$<10^{-300}$ \\\\" in render_latex([table])
    assert json.loads(render_json([table]))["tables"][0]["records"][0]["p"] == 0.0


def test_a_table_without_rows_still_has_its_csv_header() -> None:
    """A paper table with no rows was written as one newline, which CSV readers refuse."""
    table = ReportTable("recovery-paired", "Recovery", [Column("model", "model"), Column("n", "n", "int")], [], [])
    assert render_csv(table) == "model,n\n"


def test_the_demotion_summary_leaves_out_conditions_without_a_verdict() -> None:
    """Where every failure of a pruned run was not probed its demoted share is NaN: the sentence read
    'nan%–nan%' or skipped it silently while counting it among the conditions."""
    from stats.summary import demotion_findings

    base = {"model": "m", "rule": "rank", "failed": 10, "ro": 4, "p_ro_majority": 0.5, "ro_demoted_share": 0.5}
    recs = [
        {**base, "demoted_share": float("nan"), "dense_failed": 5, "dense_demoted_share": 0.4, "not_probed": 10},
        {**base, "demoted_share": 0.3, "dense_failed": 5, "dense_demoted_share": 0.4, "not_probed": 0},
    ]
    (line,) = demotion_findings(ReportTable("demotion", "Demotion", [], recs, []), 0.95)
    assert "nan" not in line and "30.0%" in line and "1 condition(s) with no verdict at all" in line
    assert "of 1 conditions" in line


def test_the_demotion_summary_of_a_baseline_study_names_the_baseline() -> None:
    """The sentence said 'pruned runs'' and 'dense run's' where the runs were paired with a baseline."""
    from stats.report import for_baseline
    from stats.summary import demotion_findings

    rec = {"model": "m", "rule": "rank", "failed": 10, "ro": 4, "p_ro_majority": 0.5, "ro_demoted_share": 0.5}
    rec |= {"demoted_share": 0.3, "dense_failed": 5, "dense_demoted_share": 0.4, "not_probed": 0}
    table = ReportTable("demotion", "Demoted vs erased, dense vs pruned", [], [rec], [])
    (line,) = demotion_findings(for_baseline(table), 0.95)
    assert "of the runs' open-generation failures" in line and "(40.0% of the baseline run's)" in line
    assert "dense" not in line and "pruned" not in line
    (line,) = demotion_findings(table, 0.95)
    assert "of the pruned runs' open-generation failures" in line and "(40.0% of the dense run's)" in line


def test_baseline_wording_leaves_names_and_labels_alone() -> None:
    """The dense/pruned words were replaced inside model ids and, in notes, in condition labels:
    'org/dense-7b' became 'org/baseline-7b' and a note's 'org/other / dense' 'org/other / baseline'."""
    from stats.report import baseline_wording

    assert (
        baseline_wording("Transitions dense → pruned of org/dense-7b") == "Transitions baseline → run of org/dense-7b"
    )
    assert baseline_wording("Left out: org/other / dense; the dense run of it", phrases_only=True) == (
        "Left out: org/other / dense; the baseline run of it"
    )


def test_baseline_wording_of_the_notes_that_said_same_model() -> None:
    """Under a baseline from another model, notes still said 'the baseline run of the same model' (a
    full stop after a phrase stopped it from matching) and 'RO dense' beside the header 'RO baseline'."""
    from stats.report import baseline_wording

    said = {
        "Unit: item × language, paired by item uid and content hash with the dense run of the same model.": (
            "Unit: item × language, paired by item uid and content hash with the baseline run."
        ),
        "conditions: each format, pruned vs the dense run of the same model on the same items.": (
            "conditions: each format, each run vs the baseline run on the same items."
        ),
        "95% Wilson score intervals. RO dense: recognition-only items of the dense run (the baseline).": (
            "95% Wilson score intervals. RO baseline: recognition-only items of the baseline run."
        ),
    }
    for note, want in said.items():
        assert baseline_wording(note, phrases_only=True) == want
    assert baseline_wording("see org/dense.v2 and demo__dense.") == "see org/dense.v2 and demo__dense."


def test_latex_maps_every_symbol_the_tables_use() -> None:
    from stats.report import latex_escape

    assert latex_escape("Σb, Σc; dense open ✓; p (RO share = ½); θ ≈ 1 ≠ 2; §3") == (
        r"$\Sigma$b, $\Sigma$c; dense open $\surd$; p (RO share = 1/2); $\theta$ $\approx$ 1 $\neq$ 2; \S{}3"
    )
    assert latex_escape("set with --demotion-rank; 1–2") == "set with -{}-demotion-rank; 1--2"  # a flag, an en dash


def test_one_cell_gives_one_difference_not_a_range() -> None:
    """'Δ from +25.0 to +25.0 pp' for a study with one pruned-vs-dense cell."""
    from stats.report import ReportTable
    from stats.summary import recognition_findings

    rec = {"n": 16, "delta": 0.25, "p_adjusted": 0.2, "model": "m"}
    (line,) = recognition_findings(
        ReportTable("mcnemar-recognition", "Recognition", [], [rec], []), ["model"], 0.95, "holm"
    )
    assert "over 1 cell by model: Δ +25.0 pp; no cell is significant" in line
    (line,) = recognition_findings(
        ReportTable("mcnemar-recognition", "Recognition", [], [rec, {**rec, "delta": -0.1}], []),
        ["model"],
        0.95,
        "holm",
    )
    assert "over 2 cells by model: Δ from -10.0 to +25.0 pp" in line


def test_latex_tables_with_text_in_another_script_say_which_engine_sets_them() -> None:
    """A model id in Cyrillic stopped pdflatex with nothing in the file saying why."""
    from stats.report import Column, ReportTable, render_latex

    cols = [Column("model", "model", "text", "left")]
    plain = render_latex([ReportTable("t", "T", cols, [{"model": "org/Llama-3-8B"}], [])])
    assert plain.splitlines()[0] == "% prunescope stats tables; requires \\usepackage{booktabs}"
    other = render_latex([ReportTable("t", "T", cols, [{"model": "org/модель-7b"}, {"model": "org/模型"}], [])])
    assert other.splitlines()[0] == (
        "% prunescope stats tables; requires \\usepackage{booktabs}; holds 8 character(s) outside the Latin "
        "scripts (e.g. 'д', U+0434), which pdflatex does not set: compile with xelatex or lualatex"
    )
