"""`prunescope stats`: paired tests, effect sizes and the GLMM of a study, as tables and figures.

Registration is cheap: pandas, scipy, matplotlib and the GLMM backends are imported inside the command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.safe_text import inert
from stats.api import LEVELS, MAX_BOOT, StatsOptions, parse_tests
from stats.glmm.commands import GLMM_BACKENDS

if TYPE_CHECKING:
    from stats.api import StatsResult

OUTPUT_FORMATS = ("table", "markdown", "latex", "csv", "json")


def register(subparsers: argparse._SubParsersAction) -> None:
    d = StatsOptions()
    p = subparsers.add_parser(
        "stats",
        help="paired significance tests, effect sizes and GLMM of a study",
        description="McNemar-family tests (mid-p default, asymptotic alongside), effect sizes with CIs, "
        "multiple-comparison control, Cochran's Q across sparsities, language homogeneity and "
        "cluster-adjusted tests, and a mixed-effects logistic regression, as tables and figures.",
    )
    p.add_argument("study", nargs="+", type=Path, help="a study folder, or run folders")
    p.add_argument(
        "--by",
        default=None,
        help="cell keys, comma-separated from language,model,method,sparsity,pattern,condition "
        "(default model,method,sparsity,pattern)",
    )
    p.add_argument(
        "--test",
        default=",".join(d.tests),
        help="comparisons, comma-separated: recognition (recognition-only, pruned vs dense), open, mc, "
        "shown (each format pruned vs dense), within (MC vs open in each run); default recognition,within. "
        "The selection decides every table: the per-language, languages-compared and Cochran's Q tables, "
        "the paper's analyses (transitions, demoted vs erased, recovery, rank shift, format ladder) and the "
        "default GLMM come with recognition",
    )
    p.add_argument(
        "--method",
        default=d.method,
        choices=("midp", "exact", "asymptotic", "asymptotic_cc"),
        help="primary McNemar p-value (default mid-p; the asymptotic p is always shown too)",
    )
    p.add_argument(
        "--adjust",
        default=d.adjust,
        choices=("holm", "bh", "none"),
        help="multiple-comparison correction over each table's family (default holm)",
    )
    p.add_argument(
        "--diff-ci",
        default=d.diff_ci,
        help="interval for the paired difference Δ: tango (default, Tango's asymptotic score), scas "
        "(Laud's skewness-corrected score, as R ratesci), newcombe, wald, wald_cc, agresti_min, "
        "bonett_price",
    )
    p.add_argument(
        "--level", type=float, default=d.level, help=f"confidence level, {LEVELS[0]} to {LEVELS[1]} (default {d.level})"
    )
    p.add_argument("--format", default="table", choices=OUTPUT_FORMATS, help="stdout format (default table)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write REPORT.md, tables.tex, tables.json, csv/*.csv, figures/*.pdf|png and diagnostics.json here",
    )
    p.add_argument("--no-glmm", action="store_true", help="skip the mixed-effects model")
    p.add_argument(
        "--glmm-formula",
        default=None,
        help="lme4-style formula on the tidy table (columns: item, language, dataset, model, method, condition, "
        "method_sparsity, sparsity, log_params, open_correct, mc_correct, shown_correct, "
        "recognition_only); default recognition_only ~ condition [+ model] [+ language] [+ dataset] + (1|item), "
        "with log_params + sparsity:log_params in place of model when the study has two or more model sizes",
    )
    p.add_argument(
        "--glmm-backend", default=d.glmm_backend, choices=GLMM_BACKENDS, help="mixedlm (default), gee, lme4 or bayes"
    )
    p.add_argument(
        "--did",
        default=None,
        metavar="LANG_A,LANG_B",
        help="add a difference-in-differences table: change of the recognition-only rate under pruning "
        "in LANG_A minus in LANG_B, item-cluster bootstrap CI",
    )
    p.add_argument(
        "--boot",
        type=int,
        default=d.boot,
        help=f"bootstrap resamples for --did and the layer trace, 1 to {MAX_BOOT:,} (default {d.boot})",
    )
    p.add_argument(
        "--seed", type=int, default=d.seed, help=f"bootstrap seed for --did and the layer trace, ≥ 0 (default {d.seed})"
    )
    p.add_argument(
        "--demotion-rank",
        type=int,
        default=d.demotion_rank,
        metavar="K",
        help="demoted = open generation failed and gold first-token rank ≤ K or a probe recovered it "
        "(default: the threshold the runs recorded, else 10); redoes the analysis without re-running models",
    )
    p.add_argument(
        "--demotion-probes",
        default=d.demotion_probes,
        help="probes whose recovery counts as demoted, comma-separated from beam,sampling,one_shot, or none "
        "(rank alone); default auto: all three, or none when no run ran probes",
    )
    p.add_argument("--strict", action="store_true", help="a corrupt outcome line is an error, not a warning")
    p.add_argument(
        "--baseline",
        default=None,
        metavar="RUN",
        help="pair every other run on the same items with run RUN (its run id), whatever its model or "
        "condition, instead of each pruned run with its model's dense run; a manifest with "
        '"baseline": true (`prunescope import --baseline`) does the same without the flag',
    )
    p.set_defaults(func=run_stats)
    from stats.glmm.commands import register as register_glmm

    register_glmm(subparsers)


def options_from_args(args: argparse.Namespace) -> StatsOptions:
    """The `StatsOptions` a `prunescope stats` command line asks for (checked)."""
    return StatsOptions(
        by=args.by,
        tests=parse_tests(args.test),
        method=args.method,
        adjust=args.adjust,
        diff_ci=args.diff_ci,
        level=args.level,
        glmm=not args.no_glmm,
        glmm_formula=args.glmm_formula,
        glmm_backend=args.glmm_backend,
        did=args.did,
        boot=args.boot,
        seed=args.seed,
        demotion_rank=args.demotion_rank,
        demotion_probes=args.demotion_probes,
        strict=args.strict,
        baseline=args.baseline,
    ).checked()


def run_stats(args: argparse.Namespace) -> int:
    from stats.api import analyse

    options = options_from_args(args)
    if args.out is not None:
        from engine.preflight import check_out_dir

        check_out_dir(args.out)  # before the analysis, not after it
    result = analyse(args.study, options)
    for problem in result.df.attrs.get("problems", []):
        print(f"prunescope stats: warning: {inert(problem)}", file=sys.stderr)
    for why in result.tr.attrs.get("unpaired", []):
        print(f"prunescope stats: warning: left out of the paired tests: {inert(why)}", file=sys.stderr)
    title = "prunescope stats: " + ", ".join(p.name or str(p) for p in args.study)
    emit(result.tables, args.format, title, result.summary)
    if args.out is not None:
        written = write_outputs(args.out, result, title, options.level)
        print(f"prunescope stats: wrote {len(written)} files under {args.out}", file=sys.stderr)
    return 0


def emit(tables: list, fmt: str, title: str, summary: list[str]) -> None:
    from stats import report

    if fmt == "table":
        from engine.terminal import stdout_console

        if not sys.stdout.isatty():
            print(
                "prunescope stats: stdout is not a terminal, so the tables are written unwrapped; "
                "--format csv, markdown, latex or json gives files for other tools",
                file=sys.stderr,
            )
        report.render_rich(tables, stdout_console())
    elif fmt == "markdown":
        sys.stdout.write(report.render_markdown(tables, title, summary))
    elif fmt == "latex":
        sys.stdout.write(report.render_latex(tables))
    elif fmt == "csv":
        text = "".join(f"# {t.key}: {t.title}\n{report.render_csv(t)}\n" for t in tables)
        # to a terminal, escape sequences in the data (model ids, labels) are shown, not run; a file gets the bytes
        sys.stdout.write(inert(text, max_len=None, newlines=True) if sys.stdout.isatty() else text)
    else:  # JSON escapes control characters; to a terminal, bidi controls are shown as escapes too
        text = report.render_json(tables, {"title": title})
        sys.stdout.write(inert(text, max_len=None, newlines=True) if sys.stdout.isatty() else text)


DIAGNOSTICS = "diagnostics.json"
STAGE_PREFIX = ".stats-"  # the work folder a `stats --out` writes its report in


def write_outputs(out: Path, result: StatsResult, title: str, level: float) -> list[Path]:
    """REPORT.md, tables in LaTeX/JSON/CSV and the figures (the same on every machine), and diagnostics.json,
    made in a folder inside `out` and moved into place once all are written: a stopped `stats --out`
    leaves the earlier report as it was, and the folders `figures/`, `tex/` and `csv/` hold this
    report's files only (none left from an earlier one with other tables)."""
    from engine.staging import StagedFolder, sweep_stale

    sweep_stale(out, STAGE_PREFIX)  # what a stopped `stats --out` left (a running one's is kept)
    with StagedFolder(out, STAGE_PREFIX) as staged:
        stage = staged.path
        written = _write_all(stage, result, title, level)
        staged.unlock()
        with _moving(out):  # one writer at a time moves its report in, so two reports never mix
            for made in sorted(stage.iterdir()):  # files replace theirs; folders replace theirs whole
                if made.is_dir() and (out / made.name).exists():
                    os.replace(out / made.name, stage / f".old-{made.name}")
                os.replace(made, out / made.name)
    return [out / p.relative_to(stage) for p in written]


@contextlib.contextmanager
def _moving(out: Path) -> Iterator[None]:
    """An exclusive flock on the folder `out` itself (no file left in it), waiting for another
    `stats --out` that is moving its report in; where the file system has no flock, none."""
    import fcntl

    fd = os.open(out, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the flock


def _write_all(out: Path, result: StatsResult, title: str, level: float) -> list[Path]:
    import pandas as pd

    from stats import figures, paper_figures, report
    from stats.layer_trace import BY_LAYER

    tables, tr, glmm = result.tables, result.tr, result.glmm
    fig_dir = out / "figures"
    figs = figures.recognition_vs_sparsity(result.df, fig_dir / "recognition_vs_sparsity", level)
    if len(tr):
        figs += paper_figures.first_token_rank(tr, fig_dir / "first_token_rank")
        figs += paper_figures.demotion_shares(tr, fig_dir / "demotion", result.rule)
    figs += paper_figures.format_ladder(result.df, fig_dir / "format_ladder", level)
    if glmm is not None:
        figs += figures.glmm_forest(glmm.coef_table(), fig_dir / "glmm_forest", result.glmm_title)
    by_layer = next((t for t in tables if t.key == BY_LAYER), None)
    if by_layer is not None:
        figs += figures.layer_trace(pd.DataFrame(by_layer.all_records()), fig_dir / "layer_trace", level)
    written: list[Path] = list(figs)
    md = report.render_markdown(tables, title, result.summary)
    if result.sentences:
        md += "\n## Reporting sentences\n\n" + "\n".join(f"- {report.md_escape(s)}" for _, s in result.sentences) + "\n"
    md += (
        "\n## Figures\n\n"
        + "\n".join(f"- `figures/{p.stem}.pdf` (and `.png`)" for p in figs if p.suffix == ".pdf")
        + "\n"
    )
    if glmm is not None:
        md += (
            "\n## Diagnostics\n\n- `diagnostics.json`: the GLMM optimiser's iterations, messages and unrounded "
            "optimum, and the fit time. They differ between machines; nothing above depends on them.\n"
        )
    for path, text in (
        (out / "REPORT.md", md),
        (out / "tables.tex", report.render_latex(tables)),
        (out / "tables.json", report.render_json(tables, {"title": title})),
        (out / DIAGNOSTICS, _diagnostics_json(glmm, result.glmm_fit_s)),
    ):
        path.write_text(text, encoding="utf-8")
        written.append(path)
    (out / "tex").mkdir(exist_ok=True)
    for t in tables:  # one file per table, for LaTeX \input
        path = out / "tex" / f"{t.key}.tex"
        path.write_text(report.render_latex([t]), encoding="utf-8")
        written.append(path)
    (out / "csv").mkdir(exist_ok=True)
    for t in tables:
        path = out / "csv" / f"{t.key}.csv"
        path.write_text(report.render_csv(t), encoding="utf-8")
        written.append(path)
    return written


def _diagnostics_json(glmm: Any, fit_s: float) -> str:
    """Machine-dependent details of the run (GLMM convergence, timing), kept out of the report files."""
    import json

    doc: dict[str, Any] = {
        "note": "convergence details and timings; they differ between machines, the report files do not",
        "glmm": None,
    }
    if glmm is not None:
        doc["glmm"] = {
            "formula": glmm.formula,
            "backend": f"{glmm.backend} {glmm.backend_version}",
            "converged": bool(glmm.converged),
            "singular": bool(glmm.singular),
            **glmm.diagnostics,
            "fit_s": round(fit_s, 3),
        }
    return json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
