"""What `prunescope stats` computes, as a library: `StatsOptions` in, report tables out.

The CLI (`stats.commands`) turns its arguments into `StatsOptions`; the TUI builds the same options
and calls the same functions, so both show the same numbers. Nothing here knows about argparse.

    options = StatsOptions(tests=("recognition", "open"), adjust="bh")
    result = analyse(["runs/my-study"], options)
    result.tables, result.summary
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError

TEST_DEFAULT = ("recognition", "within")
MAX_BOOT = 1_000_000  # the layer trace keeps B × layers medians in memory
LEVELS = (0.5, 0.999999)  # --level: every interval is computable in between (1 − 1e-15 is not)


@dataclass(frozen=True)
class StatsOptions:
    """The analyses and their settings (the defaults are `prunescope stats`'s)."""

    by: str | None = None  # cell keys, 'model,method,...' (None: model, method, sparsity, pattern)
    tests: tuple[str, ...] = TEST_DEFAULT
    method: str = "midp"  # primary McNemar p-value
    adjust: str = "holm"  # multiple-comparison correction over each table's family
    diff_ci: str = "tango"  # interval for the paired difference
    level: float = 0.95
    glmm: bool = True
    glmm_formula: str | None = None  # None: the default formula for the study
    glmm_backend: str = "mixedlm"
    did: str | None = None  # 'LANG_A,LANG_B': add the difference-in-differences table
    boot: int = 10_000
    seed: int = 0
    demotion_rank: int | None = None  # None: the threshold the runs recorded, else 10
    demotion_probes: str = "auto"  # probes whose recovery counts as demoted, 'none', or 'auto' (those the runs ran)
    strict: bool = False  # a corrupt outcome line is an error, not a warning
    baseline: str | None = None  # a run every other run is paired with (None: the manifests' rule)

    def checked(self) -> StatsOptions:
        """These options, or UserError naming the bad one."""
        from stats import analysis
        from stats.intervals import DIFF_METHODS

        if not LEVELS[0] <= self.level <= LEVELS[1]:
            raise UserError(f"--level must be a confidence level from {LEVELS[0]} to {LEVELS[1]}, got {self.level}")
        if not 1 <= self.boot <= MAX_BOOT:
            raise UserError(f"--boot must be a number of bootstrap resamples from 1 to {MAX_BOOT:,}, got {self.boot}")
        if self.seed < 0:
            raise UserError(f"--seed must be ≥ 0, got {self.seed}")
        if self.diff_ci not in DIFF_METHODS:
            raise UserError(f"--diff-ci: unknown interval {self.diff_ci!r}; choose from {', '.join(DIFF_METHODS)}")
        for t in self.tests:
            if t not in analysis.TESTS:
                raise UserError(f"--test: unknown test {t!r}; choose from {', '.join(analysis.TESTS)}")
        analysis.parse_by(self.by)
        from stats import demotion

        demotion.DemotionRule(
            10 if self.demotion_rank is None else self.demotion_rank, demotion.parse_probes(self.demotion_probes) or ()
        )  # validates
        if self.did is not None:
            pair = [s.strip() for s in self.did.split(",")]
            if len(pair) != 2 or not all(pair):
                raise UserError(f"--did: expected two languages as LANG_A,LANG_B, got {self.did!r}")
        return self

    @property
    def by_keys(self) -> list[str]:
        from stats import analysis

        return analysis.parse_by(self.by)

    def demotion_rule(self, df: Any) -> Any:
        """The demoted/erased rule for these runs: the options' threshold, else the one the runs recorded."""
        from stats import demotion

        runs = df.attrs.get("runs", [])
        return demotion.default_rule(runs, self.demotion_rank, demotion.parse_probes(self.demotion_probes))


def parse_tests(text: str) -> tuple[str, ...]:
    """'recognition, open' → ('recognition', 'open')."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


@dataclass
class StatsResult:
    """Everything one analysis produced."""

    df: Any  # the tidy table (stats.load.load_study)
    tr: Any  # dense → pruned pairs (stats.load.transitions)
    tables: list[Any]  # stats.report.ReportTable, in report order (the GLMM last, when fitted)
    sentences: list[tuple[str, str]]  # (table title, reporting sentence)
    summary: list[str] = field(default_factory=list)
    glmm: Any = None  # the fitted GLMM result
    glmm_title: str = ""
    glmm_fit_s: float = 0.0  # seconds the GLMM fit took (diagnostics.json, never the report files)
    rule: Any = None  # the demoted/erased rule used (stats.demotion.DemotionRule)


def load(sources: Sequence[Path | str], options: StatsOptions) -> tuple[Any, Any]:
    """(tidy table, dense → pruned pairs) of the runs under `sources`."""
    from stats.load import load_study, transitions

    df = load_study(list(sources), strict=options.strict)
    return df, transitions(df, options.baseline)


def report_tables(df: Any, tr: Any, options: StatsOptions) -> tuple[list[Any], list[tuple[str, str]]]:
    """Report tables for the requested tests; with recognition also per language, the languages compared,
    Cochran's Q across sparsities (all of the recognition-only rate), the matching rules' robustness
    table and the paper's analyses (transitions, demoted vs erased, recovery, rank shift, format ladder);
    the layer-trace tables when the runs carry layer traces; the difference-in-differences table; and the
    reporting sentences."""
    from stats import analysis
    from stats.layer_trace import layer_report
    from stats.paper import paper_tables
    from stats.robustness import matching_report

    by = options.by_keys
    tables, sentences = [], []
    for test in options.tests:
        table, results = analysis.paired_table_report(
            df, tr, test, by, options.method, options.adjust, options.level, options.diff_ci
        )
        tables.append(table)
        sentences += [
            (table.title, f"{analysis.cell_label(rec, by)}: {r.report()}") for rec, r in zip(table.records, results)
        ]
    if "recognition" in options.tests and len(tr) and tr["language"].nunique() > 1:
        if "language" not in by:
            table, _ = analysis.paired_table_report(
                df, tr, "recognition", [*by, "language"], options.method, options.adjust, options.level, options.diff_ci
            )
            tables.append(
                dataclasses.replace(table, key="mcnemar-recognition-language", title=table.title + ", per language")
            )
        tables.append(analysis.language_report(tr, "recognition", options.method, options.adjust, options.level))
    if "recognition" in options.tests:
        cochran = analysis.cochran_report(df, "recognition_only", options.adjust)
        if cochran.records:
            tables.append(cochran)
        tables.append(matching_report(df))
        tables += paper_tables(
            df, tr, options.demotion_rule(df), options.method, options.adjust, options.level, options.diff_ci
        )
    tables += layer_report(df, tr, options.boot, options.seed, options.level)
    if options.did:
        a, b = (s.strip() for s in options.did.split(","))
        did = analysis.did_report(tr, a, b, options.boot, options.seed, options.level)
        tables.append(did)
        sentences += [
            (
                did.title,
                f"{did.title}, {r['model']} / {r['condition']}: DiD = {r['did']:.4f} "
                f"({100 * options.level:g}% CI {r['did_low']:.4f} to {r['did_high']:.4f}; item-cluster bootstrap, "
                f"{r['items']} items, B = {r['n_boot']}, seed {r['seed']}).",
            )
            for r in did.records
        ]
    return tables, sentences


def fit_glmm(df: Any, options: StatsOptions) -> tuple[Any, Any, str, float]:
    """(GLMM report table, fitted result, title, seconds the fit took) under the options' formula and backend."""
    from stats import analysis

    formula = options.glmm_formula or analysis.default_glmm_formula(df)
    t0 = time.perf_counter()
    try:
        table, result = analysis.glmm_report(df, formula, options.glmm_backend)
    except UserError as exc:
        if options.glmm_formula is not None:  # the model the user asked for: their error to see
            raise
        # the default model, which these data cannot fit (one item, a constant response): the table says why
        table, result = analysis.glmm_not_fitted(formula, options.glmm_backend, str(exc)), None
    return table, result, f"GLMM ({options.glmm_backend}): {formula}", time.perf_counter() - t0


def wants_glmm(options: StatsOptions) -> bool:
    """The GLMM is fitted unless switched off; the default formula is of the recognition-only rate, so
    without a formula of its own it comes with the recognition test."""
    return options.glmm and (options.glmm_formula is not None or "recognition" in options.tests)


def recognition_cells(df: Any, tr: Any, options: StatsOptions) -> dict[tuple[str, str, str], float]:
    """Adjusted p of the recognition-only test per (model, condition, language) cell."""
    from stats import analysis

    if not len(tr):
        return {}
    cells, _ = analysis.paired_table_report(
        df, tr, "recognition", ["model", "condition", "language"], options.method, options.adjust, options.level
    )
    return {(str(r["model"]), str(r["condition"]), str(r["language"])): float(r["p_adjusted"]) for r in cells.records}


def analyse(sources: Sequence[Path | str], options: StatsOptions) -> StatsResult:
    """Load the runs and compute every table the options ask for (the GLMM too, unless switched off)."""
    from stats.summary import findings

    options.checked()
    df, tr = load(sources, options)
    tables, sentences = report_tables(df, tr, options)
    result = StatsResult(df, tr, tables, sentences, rule=options.demotion_rule(df))
    if wants_glmm(options):
        table, result.glmm, result.glmm_title, result.glmm_fit_s = fit_glmm(df, options)
        tables.append(table)
    result.summary = findings(df, tables, options.by_keys, options.level, options.adjust)
    return result
