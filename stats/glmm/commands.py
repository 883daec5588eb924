"""`prunescope glmm`: fit a binary mixed model to any CSV table."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

GLMM_BACKENDS = ("mixedlm", "gee", "lme4", "bayes")  # the keys of stats.glmm.fit.BACKENDS, without importing it


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
    p.add_argument("--backend", default="mixedlm", choices=GLMM_BACKENDS)
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    p.set_defaults(func=run_glmm)


def _read_table(path: str) -> pd.DataFrame:
    from pathlib import Path

    import pandas as pd

    from engine.errors import UserError

    file = Path(path)
    if file.is_dir():
        raise UserError(f"--data {path}: a folder; expected a table file (.csv, .csv.gz or .parquet)")
    if not file.is_file():
        raise UserError(f"--data {path}: no such file")
    try:
        if file.suffix == ".parquet":
            df = pd.read_parquet(file)
        else:
            _check_row_lengths(file, path)
            df = pd.read_csv(file, index_col=False)  # a longer row is an error, never a row label
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"--data {path}: cannot read table ({first[:200]})") from None
    if df.empty or not len(df.columns):
        raise UserError(f"--data {path}: the table has no rows (a header row and one row per observation)")
    _warn_mostly_numeric(df, path)
    return df


def _check_row_lengths(file: Path, path: str) -> None:
    """Every CSV row has as many cells as the header (pandas would pad a short row with missing values)."""
    import csv
    import gzip

    from engine.errors import UserError

    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, [])
        for row in rows:
            if row and len(row) != len(header):
                raise UserError(
                    f"--data {path}: line {rows.line_num} has {len(row)} cells, the header has {len(header)}"
                )


def _warn_mostly_numeric(df: pd.DataFrame, path: str) -> None:
    """Name a text column whose values are numbers but for a few (a typo turns a covariate into a factor)."""
    import sys

    import pandas as pd

    from engine.safe_text import inert

    for col in df.columns:
        if not (pd.api.types.is_object_dtype(df[col]) or pd.api.types.is_string_dtype(df[col])):
            continue
        values = df[col].dropna()
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna()
        if len(values) and 0 < bad.sum() <= 0.1 * len(values):
            row = int(values.index[bad.to_numpy()][0])
            print(
                inert(
                    f"prunescope glmm: warning: --data {path}: column {col!r} is read as a factor (text) because of "
                    f"line {row + 2}: {values.loc[row]!r}"
                    + (f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else "")
                    + "; its other values are numbers",
                    max_len=None,
                ),
                file=sys.stderr,
            )


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
