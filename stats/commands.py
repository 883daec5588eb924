"""`prunescope stats`: paired tests, effect sizes and the GLMM of a study, as tables and figures.

Registration is cheap: pandas, scipy, matplotlib and the GLMM backends are imported inside the command.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import UserError

OUTPUT_FORMATS = ("table", "markdown", "latex", "csv", "json")


def register(subparsers: argparse._SubParsersAction) -> None:
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
        default=",".join(("recognition", "within")),
        help="comparisons, comma-separated: recognition (recognition-only, pruned vs dense), open, mc, "
        "shown (each format pruned vs dense), within (MC vs open in each run); default recognition,within. "
        "The selection decides every table: the per-language, languages-compared and Cochran's Q tables and "
        "the default GLMM are of the recognition-only rate and come with recognition",
    )
    p.add_argument(
        "--method",
        default="midp",
        choices=("midp", "exact", "asymptotic", "asymptotic_cc"),
        help="primary McNemar p-value (default mid-p; the asymptotic p is always shown too)",
    )
    p.add_argument(
        "--adjust",
        default="holm",
        choices=("holm", "bh", "none"),
        help="multiple-comparison correction over each table's family (default holm)",
    )
    p.add_argument(
        "--diff-ci",
        default="tango",
        help="interval for the paired difference Δ: tango (default, Tango's asymptotic score), scas "
        "(Laud's skewness-corrected score, as R ratesci), newcombe, wald, wald_cc, agresti_min, "
        "bonett_price",
    )
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
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
        help="lme4-style formula on the tidy table (columns: item, language, model, method, condition, "
        "method_sparsity, sparsity, log_params, open_correct, mc_correct, shown_correct, "
        "recognition_only); default recognition_only ~ condition [+ model] [+ language] + (1|item)",
    )
    p.add_argument("--glmm-backend", default="mixedlm", help="mixedlm (default), gee, lme4 or bayes")
    p.add_argument(
        "--did",
        default=None,
        metavar="LANG_A,LANG_B",
        help="add a difference-in-differences table: change of the recognition-only rate under pruning "
        "in LANG_A minus in LANG_B, item-cluster bootstrap CI",
    )
    p.add_argument("--boot", type=int, default=10_000, help="bootstrap resamples for --did (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed for --did (default 0)")
    p.add_argument("--strict", action="store_true", help="a corrupt outcome line is an error, not a warning")
    p.set_defaults(func=run_stats)
    from stats.glmm.commands import register as register_glmm

    register_glmm(subparsers)


def run_stats(args: argparse.Namespace) -> int:
    from stats import analysis
    from stats.intervals import DIFF_METHODS
    from stats.load import load_study, transitions
    from stats.summary import findings

    if not 0 < args.level < 1:
        raise UserError(f"--level must be in (0, 1), got {args.level}")
    if args.diff_ci not in DIFF_METHODS:
        raise UserError(f"--diff-ci: unknown interval {args.diff_ci!r}; choose from {', '.join(DIFF_METHODS)}")
    tests = [t.strip() for t in args.test.split(",") if t.strip()]
    for t in tests:
        if t not in analysis.TESTS:
            raise UserError(f"--test: unknown test {t!r}; choose from {', '.join(analysis.TESTS)}")
    by = analysis.parse_by(args.by)
    df = load_study(args.study, strict=args.strict)
    for problem in df.attrs.get("problems", []):
        print(f"prunescope stats: warning: {problem}", file=sys.stderr)
    tr = transitions(df)
    tables, sentences = build_tables(df, tr, tests, by, args)
    glmm = None
    if not args.no_glmm and (args.glmm_formula or "recognition" in tests):
        formula = args.glmm_formula or analysis.default_glmm_formula(df)
        t0 = time.perf_counter()
        gtable, glmm = analysis.glmm_report(df, formula, args.glmm_backend)
        args.glmm_fit_s = time.perf_counter() - t0
        args.glmm_title = f"GLMM ({args.glmm_backend}): {formula}"
        tables.append(gtable)
    title = "prunescope stats: " + ", ".join(p.name or str(p) for p in args.study)
    summary = findings(df, tables, by, args.level, args.adjust)
    emit(tables, args.format, title, summary)
    if args.out is not None:
        written = write_outputs(args.out, tables, sentences, title, df, tr, glmm, args, summary)
        print(f"prunescope stats: wrote {len(written)} files under {args.out}", file=sys.stderr)
    return 0


def build_tables(df: Any, tr: Any, tests: list[str], by: list[str], args: argparse.Namespace):
    """Report tables for the requested tests; with recognition also per language, the languages compared,
    Cochran's Q across sparsities (all of the recognition-only rate) and the matching rules' robustness table."""
    from stats import analysis
    from stats.robustness import matching_report

    tables, sentences = [], []
    for test in tests:
        table, results = analysis.paired_table_report(
            df, tr, test, by, args.method, args.adjust, args.level, args.diff_ci
        )
        tables.append(table)
        sentences += [
            (table.title, f"{analysis.cell_label(rec, by)}: {r.report()}") for rec, r in zip(table.records, results)
        ]
    if "recognition" in tests and len(tr) and tr["language"].nunique() > 1:
        if "language" not in by:
            table, _ = analysis.paired_table_report(
                df, tr, "recognition", [*by, "language"], args.method, args.adjust, args.level, args.diff_ci
            )
            tables.append(
                dataclasses.replace(table, key="mcnemar-recognition-language", title=table.title + ", per language")
            )
        tables.append(analysis.language_report(tr, "recognition", args.method, args.adjust, args.level))
    if "recognition" in tests:
        cochran = analysis.cochran_report(df, "recognition_only", args.adjust)
        if cochran.records:
            tables.append(cochran)
        tables.append(matching_report(df))
    if args.did:
        pair = [s.strip() for s in args.did.split(",")]
        if len(pair) != 2 or not all(pair):
            raise UserError(f"--did: expected two languages as LANG_A,LANG_B, got {args.did!r}")
        did = analysis.did_report(tr, pair[0], pair[1], args.boot, args.seed, args.level)
        tables.append(did)
        sentences += [
            (
                did.title,
                f"{did.title}, {r['model']} / {r['condition']}: DiD = {r['did']:.4f} "
                f"({100 * args.level:g}% CI {r['did_low']:.4f} to {r['did_high']:.4f}; item-cluster bootstrap, "
                f"{r['items']} items, B = {r['n_boot']}, seed {r['seed']}).",
            )
            for r in did.records
        ]
    return tables, sentences


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
        for t in tables:
            sys.stdout.write(f"# {t.key}: {t.title}\n")
            sys.stdout.write(report.render_csv(t))
            sys.stdout.write("\n")
    else:
        sys.stdout.write(report.render_json(tables, {"title": title}))


def write_outputs(
    out: Path,
    tables: list,
    sentences: list,
    title: str,
    df: Any,
    tr: Any,
    glmm: Any,
    args: argparse.Namespace,
    summary: list[str],
) -> list[Path]:
    """REPORT.md, tables in LaTeX/JSON/CSV and the figures (the same on every machine), and diagnostics.json."""
    from stats import figures, report

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    md = report.render_markdown(tables, title, summary)
    if sentences:
        md += "\n## Reporting sentences\n\n" + "\n".join(f"- {report.md_escape(s)}" for _, s in sentences) + "\n"
    md += (
        "\n## Figures\n\n"
        + "\n".join(f"- `figures/{name}.pdf` (and `.png`)" for name in _figure_names(tr, glmm))
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
        (out / DIAGNOSTICS, _diagnostics_json(glmm, args)),
    ):
        path.write_text(text, encoding="utf-8")
        written.append(path)
    (out / "csv").mkdir(exist_ok=True)
    for t in tables:
        path = out / "csv" / f"{t.key}.csv"
        path.write_text(report.render_csv(t), encoding="utf-8")
        written.append(path)
    fig_dir = out / "figures"
    written += figures.recognition_vs_sparsity(df, fig_dir / "recognition_vs_sparsity", args.level)
    if len(tr):
        written += figures.first_token_rank(tr, fig_dir / "first_token_rank")
    if glmm is not None:
        written += figures.glmm_forest(glmm.coef_table(), fig_dir / "glmm_forest", args.glmm_title)
    return written


DIAGNOSTICS = "diagnostics.json"


def _diagnostics_json(glmm: Any, args: argparse.Namespace) -> str:
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
            "fit_s": round(args.glmm_fit_s, 3),
        }
    return json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def _figure_names(tr: Any, glmm: Any) -> list[str]:
    names = ["recognition_vs_sparsity"]
    if len(tr):
        names.append("first_token_rank")
    if glmm is not None:
        names.append("glmm_forest")
    return names
