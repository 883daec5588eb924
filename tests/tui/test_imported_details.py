"""The TUI on imported runs, where they lack what engine-made runs have: who decided open correctness
(`--grade task`), option scores (Inspect's generated letter), demotion verdicts and probes (the filter
says so), condition labels that tell runs apart, and run-info keys that stay distinct when cut."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.style import Style

from engine.cli import main
from tests.engine.importers.test_inspect import LOGS
from tests.engine.importers.test_lm_eval import DENSE, FIXTURES, PRUNED
from tests.tui.conftest import items_list, loaded
from tests.tui.svgtext import svg_rows, svg_text
from tui import render
from tui.app import PrunescopeApp
from tui.model import Study, load_study
from tui.screens.item import _render
from tui.view import Filter, filter_hints, select
from tui.widgets.item_table import ItemTable


def _import(out: Path, harness: str, src: Path, *extra: str) -> Path:
    assert main(["import", harness, str(src), "--out", str(out), "--baseline", DENSE, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The lm-eval fixtures imported as they are and graded by the task (per-character MC), and the
    Inspect fixtures (MC answered by a generated letter)."""
    root = tmp_path_factory.mktemp("imported-details")
    return {
        "lm": _import(root / "lm", "lm-eval", FIXTURES),
        "lm_task": _import(root / "lm_task", "lm-eval", FIXTURES, "--grade", "task", "--mc-rule", "per_char"),
        "inspect": _import(root / "inspect", "inspect", LOGS),
    }


def _item_text(study: Study, uid_part: str, width: int = 160) -> str:
    """The item screen's body (as the worker draws it) for the first row whose uid has `uid_part`."""
    index = next(
        i for i in range(len(study.pairs)) if uid_part in study.uid(int(study.pairs.run[i]), int(study.pairs.row[i]))
    )
    drawn = _render(study, index, width)
    assert drawn is not None
    return "\n".join(line.text.rstrip() for line in drawn.lines)


def _matched(text: str) -> dict[str, str]:
    """Run -> its 'matched' cell in the outputs table of an item screen's text (wrapped lines joined)."""
    table = text.split("Outputs of each run")[1].split("\n\n")[0]
    cells: dict[str, str] = {}
    run = ""
    for line in table.splitlines():
        parts = line.split("│")
        if len(parts) < 5:
            continue
        run = parts[1].strip() or run
        cells[run] = " ".join([cells.get(run, ""), parts[4].strip()]).strip()
    return cells


def _plain(renderable, width: int = 200) -> str:
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# ---------------------------------------------------------------- 1. who decides open correctness


def test_task_graded_imports_name_the_metric_that_decides_first(imports: dict[str, Path]) -> None:
    """`--grade task`: the ✗ beside 'The capital of France is Paris.' is the task's exact match, not the
    matcher's 'contains: Paris', which read like a credit."""
    matched = _matched(_item_text(load_study([imports["lm_task"]], baseline=DENSE), "capital-france-en"))
    assert matched == {
        DENSE: "psqa_gen exact_match = 0.00 (decides) · matcher: contains Paris",
        PRUNED: "psqa_gen exact_match = 0.00 (decides) · matcher: no match",  # '... is 21.'
    }
    # Graded by prunescope's matcher (the default), the matcher's verdict stays first and unlabelled.
    matched = _matched(_item_text(load_study([imports["lm"]], baseline=DENSE), "capital-france-en"))
    assert matched[DENSE] == "contains: Paris · psqa_gen exact_match = 0.00"


# ---------------------------------------------------------------- 2. options without scores


def test_generated_letter_runs_say_why_their_options_have_no_scores(imports: dict[str, Path]) -> None:
    text = _item_text(load_study([imports["inspect"]], baseline=DENSE), "capital-france-en")
    options = text.split("Outputs of each run")[0]
    notes = " ".join(options.split())
    for run in (DENSE, PRUNED):
        assert f"{run}: answered by a generated letter, no option scores; no option letter found" in notes


def test_imported_scores_name_their_kind_when_the_rule_is_not_the_sum(imports: dict[str, Path]) -> None:
    text = " ".join(_item_text(load_study([imports["lm_task"]], baseline=DENSE), "capital-france-en").split())
    assert "scores are log-likelihood per character (MC rule per_char, not the sum)" in text
    text = " ".join(_item_text(load_study([imports["lm"]], baseline=DENSE), "capital-france-en").split())
    assert "scores are" not in text  # the sum: what lm-eval's acc is


def test_a_generated_letter_note_names_the_choice_and_keeps_data_inert() -> None:
    options = [{"text": "Lyon", "loglik": None}, {"text": "[bold red]Paris\x1b[31m", "loglik": None}]
    mc = {"rule": "generated_letter", "choice": 1, "letter": None, "scores": None, "options": options}
    note = render.options_notes([("[blink]run", {"mc": mc}), ("other", {"mc": {**mc, "choice": None}})])
    text = " ".join(_plain(note).split())
    assert "[blink]run: answered by a generated letter, no option scores; its choice: B ([bold red]Paris" in text
    assert "\x1b" not in text
    assert "other: answered by a generated letter, no option scores; no option letter found in its answer" in text
    scored = {"rule": "per_char", "scores": {"per_char": [-1.0, -2.0]}, "options": options, "choice": 0}
    assert render.options_notes([("engine-run", {"mc": scored})]) is None  # engine-made runs: nothing to say


# ---------------------------------------------------------------- 3. probe filters on imported runs


@pytest.mark.asyncio
async def test_probe_filters_say_why_imported_runs_match_nothing(imports: dict[str, Path]) -> None:
    study = load_study([imports["lm"]], baseline=DENSE)
    for query, hint in (
        ("demotion:demoted", "no row has a demotion verdict (imported runs have none)"),
        ("recovered:yes", "no row has recovery probes (imported runs have none)"),
    ):
        flt = Filter.parse(query)
        assert len(select(study, flt, set())) == 0
        assert filter_hints(study, flt) == [hint]
    app = PrunescopeApp([imports["lm"]], stats_glmm=False, run_stats=False, baseline=DENSE)
    async with app.run_test(size=(130, 40)) as pilot:
        await loaded(pilot)
        await items_list(pilot)
        await pilot.press("slash", *"recovered:no", "enter")
        await loaded(pilot)
        assert "no row has recovery probes (imported runs have none)" in " ".join(
            svg_text(app.export_screenshot()).split()
        )


def test_probe_filters_on_engine_runs_give_no_hint_where_rows_match(study: Path) -> None:
    s = load_study([study])
    for query in ("demotion:demoted", "recovered:yes", "recovered:no"):
        flt = Filter.parse(query)
        if len(select(s, flt, set())):
            assert filter_hints(s, flt) == [], query


# ---------------------------------------------------------------- 4. run labels of imported runs


def test_imported_runs_are_labelled_by_model_alone(imports: dict[str, Path]) -> None:
    """Every imported run is 'dense': 'dense · ' opened every label and pushed the model's end off."""
    assert load_study([imports["lm"]], baseline=DENSE).labels == [DENSE, PRUNED]


@pytest.mark.asyncio
@pytest.mark.parametrize(("width", "end"), [(120, "-wanda-s50"), (80, "-s50")])
async def test_the_run_column_keeps_the_end_of_imported_model_names(
    imports: dict[str, Path], width: int, end: str
) -> None:
    """At 120 columns the labels were 'dense · SmolLM2-135M-…', at 80 'dense · S…': the pruned run's
    'wanda-s50' was cut off."""
    app = PrunescopeApp([imports["lm"]], stats_glmm=False, run_stats=False, baseline=DENSE)
    async with app.run_test(size=(width, 40)) as pilot:
        await loaded(pilot)
        await items_list(pilot)
        rows = svg_rows(app.export_screenshot())
        start = next(k for k, line in enumerate(rows) if line.startswith("run "))
        header, *body = [line for line in rows[start:] if line.strip()][:-1]
        cells = {line[: header.index("lang")].strip() for line in body}
        assert cells and all(cell.startswith("Smo") and cell.endswith(end) for cell in cells), cells


def test_model_labels_are_cut_in_the_middle() -> None:
    table = ItemTable(lambda i: [], lambda i: False)
    table.label_width, table.cut_middle = 60, True
    label = "meta-llama-3.1-8B-Instruct-wanda-s50-calibrated"
    shown = next(iter(table._line([label, "en", "x", "BC→RO", "g", "a", ""], 120, Style()))).text[:-1]
    assert cell_len(shown) == table._widths(120)[0] < len(label)
    assert "…" in shown and shown.endswith("-s50-calibrated") and shown.startswith("meta-")
    table.cut_middle = False  # engine-made studies of one model: cut at the end, as before
    shown = next(iter(table._line([label, "en", "x", "BC→RO", "g", "a", ""], 120, Style()))).text[:-1]
    assert shown.startswith("meta-llama-3.1-8B") and shown.endswith("…")


# ---------------------------------------------------------------- 5. run info keys


def test_run_info_keys_cut_to_the_key_column_stay_distinct(imports: dict[str, Path]) -> None:
    """Keys are cut to 40 cells: 'imported.tasks.psqa_gen.fewshot_config.doc_to_choice' and
    '...doc_to_target' were both shown as their first 40 cells."""
    study = load_study([imports["lm"]], baseline=DENSE)
    run = study.runs[0]
    keys = [k for k, _ in render.flatten(run.manifest)]
    long = [k for k in keys if cell_len(k) > 40]
    assert len({k[:40] for k in long}) < len(long)  # cut at their end, some would look the same
    info = render.run_info_lines([run], study.root)
    shown = [line.text[:40] for line in info.lines if line.text[:40].strip() and "…" in line.text[:40]]
    assert len(shown) == len(long) and len(set(shown)) == len(long)
    assert all(cell_len(s) == 40 for s in shown)


def test_run_info_quotes_values_that_are_only_whitespace(imports: dict[str, Path]) -> None:
    """lm-eval's fewshot_delimiter '\\n\\n' was drawn as two blank lines under its key."""
    study = load_study([imports["lm"]], baseline=DENSE)
    run = study.runs[0]
    keys = [k for k, v in render.flatten(run.manifest) if isinstance(v, str) and v and not v.strip()]
    assert keys, "the fixture has whitespace-only values"
    info = render.run_info_lines([run], study.root)
    texts = [line.text for line in info.lines]
    shown = [(text, texts[i + 1]) for i, text in enumerate(texts) if "fewshot_delimiter" in text[:40]]
    assert shown
    for text, after in shown:
        assert text[40:].strip() == '"\\n\\n"' and after.strip(), (text, after)


@pytest.mark.asyncio
async def test_the_paper_screen_says_why_a_chosen_model_has_no_rows(imports: dict[str, Path]) -> None:
    """`M` on the baseline's model left the paired tables as '(no rows)' with nothing said."""
    from tests.tui.conftest import SIZE, open_screen
    from tui.screens.paper import PaperScreen

    app = PrunescopeApp([imports["lm"]], baseline=DENSE, stats_glmm=False)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        screen = await open_screen(pilot, "6")
        assert isinstance(screen, PaperScreen)
        while screen.model.split("/")[-1] != DENSE:
            await pilot.press("M")
        had_rows = {t.key for t in screen._tables() if t.all_records()}
        empty = [t for t in screen.filtered() if not t.records and t.key in had_rows]
        assert empty, "some table has rows of the other model only"
        for t in empty:
            assert t.notes[0].startswith(f"No rows for model {screen.model} here; this table's rows are of "), t.notes
            assert PRUNED in t.notes[0]
