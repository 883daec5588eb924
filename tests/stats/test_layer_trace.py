"""stats.layer_trace: medians of resampled clusters against an explicit resampling, the first entry
where a pruned curve leaves the dense CI, the tables and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stats import figures
from stats.layer_trace import BOOT_CHUNK, TraceRun, _medians, compared, layer_curves, layer_tables, rank_curve
from tests.synthetic import add_layer_traces, make_synthetic_study

TRACED = (("dense", 0.0, "unstructured"), ("wanda", 0.5, "unstructured"))


def test_multiset_medians_equal_numpy_on_the_repeated_items() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        values = np.sort(rng.integers(1, 50, size=n)).astype(float)
        weights = rng.integers(0, 4, size=(5, n))
        weights[:, 0] += weights.sum(axis=1) == 0  # a draw holds at least one item
        want = [np.median(np.repeat(values, w)) for w in weights]
        assert _medians(values, weights).tolist() == want


def test_the_bootstrap_resamples_clusters_with_every_item_of_a_cluster() -> None:
    rng = np.random.default_rng(2)
    ranks = rng.integers(1, 1000, size=(9, 4))
    clusters = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "f"])
    n_boot, seed = BOOT_CHUNK + 37, 5  # more than one chunk of draws
    med, lo, hi = rank_curve(ranks, clusters, n_boot, seed, 0.9)
    # the same draws, made explicit: each draw's multiset of items, its median per entry
    codes, inverse = np.unique(clusters, return_inverse=True)
    draws = np.random.default_rng(seed)
    counts = np.concatenate(
        [
            draws.multinomial(codes.size, np.full(codes.size, 1 / codes.size), size=min(BOOT_CHUNK, n_boot - s))
            for s in range(0, n_boot, BOOT_CHUNK)
        ]
    )
    boot = np.array([np.median(np.repeat(ranks, c[inverse], axis=0), axis=0) for c in counts])
    assert med.tolist() == np.median(ranks, axis=0).tolist()
    assert lo == pytest.approx(np.quantile(boot, 0.05, axis=0)) and hi == pytest.approx(np.quantile(boot, 0.95, axis=0))
    assert np.all(lo <= med) and np.all(med <= hi)


def _runs(shift_from: int, entries: int = 8, items: int = 24) -> list[TraceRun]:
    """A dense run whose ranks fall from ~5000 to ~1 over the entries, and a pruned run equal to it up
    to entry `shift_from`, 50 times worse after; two languages, items in parallel clusters."""
    rng = np.random.default_rng(3)
    base = np.exp(np.linspace(np.log(5000), 0, entries))
    dense = np.maximum(1, np.round(base * rng.lognormal(0, 0.3, size=(items, entries)))).astype(int)
    pruned = dense.copy()
    pruned[:, shift_from:] *= 50
    langs = np.array(["en", "de"] * (items // 2))
    clusters = np.repeat(np.arange(items // 2).astype(str), 2)
    return [
        TraceRun("m__dense", "m", "dense", None, langs, clusters, dense),
        TraceRun("m__wanda-s50", "m", "wanda-s50", "m__dense", langs, clusters, pruned),
    ]


def test_the_first_entry_outside_the_dense_ci_is_where_the_pruned_curve_departs(tmp_path: Path) -> None:
    curves = layer_curves(_runs(shift_from=5), n_boot=400, seed=0)
    assert set(curves["language"]) == {"de", "en"} and curves["layer"].max() == 7
    pairs = compared(curves)
    assert len(pairs) == 2 * 8
    summary, by_layer = layer_tables(curves, 0.95, 400, 0)
    assert [(r["language"], r["first_outside"], r["direction"], r["n_outside"]) for r in summary.records] == [
        ("de", 5, "worse", 3),
        ("en", 5, "worse", 3),
    ]
    every = by_layer.all_records()
    assert len(every) == 16 and sorted((r["language"], r["layer"]) for r in every) == [
        (lang, e) for lang in ("de", "en") for e in range(8)
    ]
    # shown: the entries outside the dense CI (5, 6, 7: 7 is also the last); the rest in CSV/JSON only
    assert [row[2:4] + row[6:] for row in by_layer.display_rows()] == [
        [lang, str(e), "worse"] for lang in ("de", "en") for e in (5, 6, 7)
    ]
    assert [r["outside"] for r in by_layer.detail] == [""] * 10
    written = figures.layer_trace(pd.DataFrame(every), tmp_path / "layer_trace")
    assert [p.suffix for p in written] == [".pdf", ".png"] and all(p.stat().st_size > 0 for p in written)


def test_a_pruned_curve_that_never_leaves_has_no_departure() -> None:
    summary, _ = layer_tables(layer_curves(_runs(shift_from=8), n_boot=200), 0.95, 200, 0)
    assert [r["first_outside"] for r in summary.records] == [None, None]
    assert summary.display_rows()[0][4] == "–"


def test_dense_runs_alone_give_curves_but_no_comparison() -> None:
    curves = layer_curves(_runs(5)[:1], n_boot=50)
    assert len(curves) == 16 and layer_tables(curves, 0.95, 50, 0) == []


def test_prunescope_stats_gives_the_layer_tables_and_figure(tmp_path: Path) -> None:
    import jsonschema

    from engine.contract.reader import OUTCOMES
    from stats.api import StatsOptions, analyse
    from stats.commands import write_outputs

    root = tmp_path / "study"
    add_layer_traces(make_synthetic_study(root, n_per_language=12, languages=("de", "en"), conditions=TRACED))
    schema = json.loads((Path(__file__).parents[2] / "engine" / "schema" / "outcome.schema.json").read_text())
    for line in (root / "tiny-llama__wanda-s50" / OUTCOMES).read_text(encoding="utf-8").splitlines()[:3]:
        jsonschema.Draft202012Validator(schema).validate(json.loads(line))
    result = analyse([root], StatsOptions(tests=("recognition",), glmm=False, boot=300))
    tables = {t.key: t for t in result.tables}
    assert [(r["language"], r["first_outside"], r["direction"]) for r in tables["layer-trace"].records] == [
        ("de", 4, "worse"),
        ("en", 4, "worse"),
    ]
    assert len(tables["layer-trace-by-layer"].all_records()) == 2 * 7
    written = write_outputs(tmp_path / "out", result, "t", 0.95)
    assert tmp_path / "out" / "figures" / "layer_trace.png" in written
    report = (tmp_path / "out" / "REPORT.md").read_text(encoding="utf-8")
    assert "## Layer trace: where the pruned model leaves the dense curve" in report
    assert "`figures/layer_trace.pdf`" in report


def test_studies_without_layer_traces_have_no_layer_tables(tmp_path: Path) -> None:
    from stats.api import StatsOptions, analyse

    make_synthetic_study(tmp_path, n_per_language=6, languages=("de", "en"))
    result = analyse([tmp_path], StatsOptions(tests=("recognition",), glmm=False, boot=50))
    assert not [t for t in result.tables if t.key.startswith("layer-trace")]


def test_pruned_runs_traced_without_their_reference_are_named(tmp_path: Path) -> None:
    """Nothing silent: with the pruned run's traces only, the section is there with no rows and says why."""
    from stats.api import StatsOptions, analyse
    from stats.commands import write_outputs

    runs = make_synthetic_study(tmp_path / "s", n_per_language=6, languages=("de", "en"), conditions=TRACED)
    add_layer_traces([r for r in runs if r.name.endswith("__wanda-s50")])
    result = analyse([tmp_path / "s"], StatsOptions(tests=("recognition",), glmm=False, boot=50))
    (summary,) = [t for t in result.tables if t.key.startswith("layer-trace")]
    assert summary.key == "layer-trace" and summary.records == []
    why = "Not compared: tiny-llama__wanda-s50 (its reference run tiny-llama__dense has no layer traces)."
    assert summary.notes == [why]
    write_outputs(tmp_path / "out", result, "t", 0.95)
    section = (tmp_path / "out" / "REPORT.md").read_text(encoding="utf-8").split("## Layer trace")[1]
    assert "(no rows)" in section and "has no layer traces" in section
    assert not (tmp_path / "out" / "figures" / "layer_trace.png").exists()


def test_the_comparisons_left_out_are_named_beside_those_made(tmp_path: Path) -> None:
    from stats.api import StatsOptions, analyse

    models = (("synthetic/tiny-llama", 135_000_000), ("synthetic/small-qwen", 500_000_000))
    runs = make_synthetic_study(tmp_path, n_per_language=6, languages=("de", "en"), conditions=TRACED, models=models)
    add_layer_traces([r for r in runs if not r.name.startswith("small-qwen__dense")])
    result = analyse([tmp_path], StatsOptions(tests=("recognition",), glmm=False, boot=50))
    summary = next(t for t in result.tables if t.key == "layer-trace")
    assert {r["model"] for r in summary.records} == {"synthetic/tiny-llama"}
    assert summary.notes[-1] == (
        "Not compared: small-qwen__wanda-s50 (its reference run small-qwen__dense has no layer traces)."
    )


LAYER_SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-layer-trace"


def test_stats_reproduces_the_committed_layer_trace_sample(tmp_path: Path) -> None:
    """`prunescope stats` on the committed layer-trace study (the demo model, dense and Wanda 50%) gives
    the committed layer tables byte for byte, and its figure."""
    from engine.cli import main

    assert main(["stats", str(LAYER_SAMPLE), "--test", "recognition", "--no-glmm", "--out", str(tmp_path)]) == 0
    for name in ("csv/layer-trace.csv", "csv/layer-trace-by-layer.csv"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (LAYER_SAMPLE / name).read_text(encoding="utf-8")

    def layer_sections(path: Path) -> list[str]:
        return [part for part in path.read_text(encoding="utf-8").split("\n## ") if part.startswith("Layer trace")]

    assert len(layer_sections(LAYER_SAMPLE / "REPORT.md")) == 2
    assert layer_sections(tmp_path / "REPORT.md") == layer_sections(LAYER_SAMPLE / "REPORT.md")
    assert (tmp_path / "figures" / "layer_trace.png").stat().st_size > 0


def test_two_models_get_a_row_of_panels_each(tmp_path: Path) -> None:
    from stats.api import StatsOptions, analyse
    from stats.commands import write_outputs

    models = (("synthetic/tiny-llama", 135_000_000), ("synthetic/small-qwen", 500_000_000))
    add_layer_traces(
        make_synthetic_study(tmp_path / "s", n_per_language=6, languages=("de", "en"), conditions=TRACED, models=models)
    )
    result = analyse([tmp_path / "s"], StatsOptions(tests=("recognition",), glmm=False, boot=100))
    summary = next(t for t in result.tables if t.key == "layer-trace")
    assert sorted({(r["model"], r["language"]) for r in summary.records}) == [
        (m, lang) for m in ("synthetic/small-qwen", "synthetic/tiny-llama") for lang in ("de", "en")
    ]
    written = write_outputs(tmp_path / "out", result, "t", 0.95)
    assert tmp_path / "out" / "figures" / "layer_trace.png" in written
