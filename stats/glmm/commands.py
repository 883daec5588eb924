"""`prunescope glmm`: fit a binary mixed model to any CSV table."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `glmm` subcommand (cheap: nothing heavy is imported here)."""
    p = subparsers.add_parser(
        "glmm",
        help="fit a mixed-effects logistic regression to a CSV table",
        description=(
            "Fit a binary mixed-effects (or GEE) logistic model with an lme4-style formula, e.g. "
            "'recognition_only ~ condition + language + (1|item)'. Backends: mixedlm (default, Laplace ML), "
            "gee (population-averaged), lme4 (R via Rscript), bayes (exploratory point estimates, no p-values)."
        ),
    )
    p.add_argument(
        "--data", required=True, metavar="FILE.csv", help="table with one row per observation (.csv, .csv.gz, .parquet)"
    )
    p.add_argument("--formula", required=True, help="lme4-style formula with a 0/1 response or cbind(k, n - k)")
    p.add_argument("--backend", default="mixedlm", choices=["mixedlm", "gee", "lme4", "bayes"])
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    p.set_defaults(func=run_glmm)


def _read_table(path: str) -> pd.DataFrame:
    from pathlib import Path

    import pandas as pd

    from engine.errors import UserError

    file = Path(path)
    if not file.is_file():
        raise UserError(f"--data {path}: no such file")
    try:
        df = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"--data {path}: cannot read table ({first[:200]})") from None
    if df.empty or not len(df.columns):
        raise UserError(f"--data {path}: the table has no rows (a header row and one row per observation)")
    return df


def run_glmm(args: argparse.Namespace) -> int:
    import json

    from engine.errors import UserError
    from engine.safe_text import inert
    from stats.glmm import fit_glmm

    try:
        result = fit_glmm(_read_table(args.data), args.formula, backend=args.backend)
    except UserError as exc:
        if str(exc).startswith("--data"):
            raise
        raise UserError(f"--data {args.data}, --formula {args.formula!r}: {exc}") from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        for line in result.summary_lines():
            print(inert(line, max_len=None))
        scalars = {k: v for k, v in result.diagnostics.items() if not isinstance(v, list)}
        if scalars:
            details = ", ".join(f"{k} {v}" for k, v in scalars.items())
            print(inert(f"Diagnostics (differ between machines): {details}", max_len=None))
        print()
        print(inert(result.report(), max_len=None))
    return 0  # convergence and singular-fit problems are flagged in the output itself
