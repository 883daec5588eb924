"""`prunescope import lm-eval|inspect PATH… --out STUDY` (registration is import-light)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="turn lm-evaluation-harness or Inspect per-sample logs into run folders (paired tests, the TUI)",
        description="Write one run folder per model from another harness's per-sample logs, so that "
        "`prunescope stats --baseline RUN` and the TUI compare any two models item by item.",
    )
    kinds = p.add_subparsers(dest="harness", metavar="HARNESS", required=True)
    lm = kinds.add_parser(
        "lm-eval",
        help="lm-evaluation-harness 0.4.3+ output folders (results_*.json + samples_*.jsonl from --log_samples)",
        description="Import lm-eval output folders. Tasks are paired by format (X/X_generative, X_mc/X_gen, "
        "X_mc/X_generative, or --pair): each item's MC log-likelihoods and its generation become one outcome line.",
    )
    lm.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="an lm-eval --output_path folder or results file"
    )
    lm.add_argument(
        "--mc-rule",
        default="sum",
        choices=("sum", "per_char", "per_byte", "mutual_info"),
        help="which MC decision counts: sum of log-likelihoods (lm-eval's acc, default), per character "
        "(acc_norm), per byte (acc_bytes), mutual information (acc_mutual_info, when logged)",
    )
    _common(lm)
    lm.set_defaults(func=cmd_import_lm_eval)

    ins = kinds.add_parser(
        "inspect",
        help="Inspect AI logs (.eval or .json): a multiple-choice task and its generative twin per model",
        description="Import Inspect AI eval logs. A multiple-choice task (samples with choices, scored by "
        "choice()) and a generation task on the same sample ids are paired per model, by name (X_mc/X_gen, "
        "X/X_generative, X_mc/X_generative) or with --pair.",
    )
    ins.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="an Inspect log file, or a folder of them")
    _common(ins)
    ins.set_defaults(func=cmd_import_inspect)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="MC_TASK=GEN_TASK",
        help="a multiple-choice task and the generation task asking the same items, when their names do not "
        "say so (repeatable)",
    )
    p.add_argument("--out", type=Path, required=True, help="study folder to write the run folders into")
    p.add_argument(
        "--baseline",
        default=None,
        metavar="RUN",
        help='mark run RUN (a run id: the model name\'s last part) as the baseline ("baseline": true in its '
        "manifest): `prunescope stats` and the TUI then pair every other run with it",
    )
    p.add_argument(
        "--grade",
        default="prunescope",
        choices=("prunescope", "task"),
        help="who decides whether an open generation is correct: prunescope's matcher (default) or the "
        "task's own metric; both are stored side by side",
    )
    p.add_argument(
        "--language",
        default=None,
        help="the language of every item, over what the documents say (default: the document's language, else en)",
    )


def _options(args: argparse.Namespace, mc_rule: str = "sum"):
    from engine.importers.records import ImportOptions, language_code

    language = args.language if args.language is None else language_code(args.language)
    if args.language is not None and language is None:
        raise UserError(f"--language {args.language!r}: not a language code like 'en' or 'pt-BR'")
    return ImportOptions(mc_rule=mc_rule, grade_by=args.grade, language=language)


def _pairs(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        a, sep, b = v.partition("=")
        if not sep or not a.strip() or not b.strip():
            raise UserError(f"--pair {v!r}: expected MC_TASK=GEN_TASK")
        out.append((a.strip(), b.strip()))
    return out


def cmd_import_lm_eval(args: argparse.Namespace) -> int:
    from engine.importers.folder import write_study
    from engine.importers.lm_eval import read_lm_eval

    runs = read_lm_eval(args.paths, _options(args, args.mc_rule), _pairs(args.pair))
    write_study(args.out, runs, args.baseline)
    return 0


def cmd_import_inspect(args: argparse.Namespace) -> int:
    from engine.importers.folder import write_study
    from engine.importers.inspect_logs import read_inspect

    runs = read_inspect(args.paths, _options(args), _pairs(args.pair))
    write_study(args.out, runs, args.baseline)
    return 0
