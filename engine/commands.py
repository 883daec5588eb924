"""Engine subcommands: run, demo, status, validate, rescore (registration is import-light)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_SPEC = Path(__file__).with_name("data") / "demo_study.toml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run every condition of a study spec (resumable)",
        description="Run every (model, condition) of STUDY.toml into run folders under --out. "
        "Re-running the same command resumes: finished runs are skipped, a killed run "
        "continues where it stopped.",
    )
    p.add_argument("spec", type=Path, metavar="STUDY.toml")
    p.add_argument("--out", type=Path, required=True, help="study folder to write (created if missing)")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="run the bundled demo study on SmolLM2-135M-Instruct and print its summary")
    d.add_argument("--out", type=Path, default=Path("runs/demo"), help="study folder (default: runs/demo)")
    _add_run_options(d)
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("status", help="per-run progress of a study folder (done / running / failed, items, ETA)")
    s.add_argument("study", type=Path)
    s.set_defaults(func=cmd_status)

    v = sub.add_parser("validate", help="check run folders against the JSON Schemas and the format's invariants")
    v.add_argument("paths", type=Path, nargs="+", metavar="STUDY_OR_RUN")
    v.add_argument(
        "--repair",
        action="store_true",
        help="first cut torn last lines and remove exact duplicate outcome lines (never while a writer is live)",
    )
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser(
        "rescore",
        help="grade a study's stored outputs again under another matching rule, into a derived study",
        description="Grade the stored open, candidate-shown and probe outputs of every run again (correctness, "
        "categories, demotion) without running a model, and write the result as a derived study: complete "
        "run folders whose manifests record the scoring and the run they come from. The source is only read. "
        "Read the derived study with `prunescope stats OUT` or `prunescope tui OUT`.",
    )
    r.add_argument("study", type=Path, metavar="STUDY_OR_RUN")
    r.add_argument("--out", type=Path, required=True, help="derived study folder to write (new, or an earlier rescore)")
    r.add_argument(
        "--rule",
        default="contains",
        help="exact | contains (default) | 'f1>=X', token F1 at least X (quote it: > is a shell redirection)",
    )
    r.add_argument(
        "--guards",
        default="all",
        help="guards on contains / f1, comma-separated from hedge,loop,short; all (default) or none",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_rescore)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", default=None, help="comma-separated run ids to run (default: all)")
    p.add_argument("--n-per-language", type=int, default=None, help="override [items].n_per_language")
    p.add_argument("--languages", default=None, help="override [items].languages (comma-separated)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the study as a run would (items, devices, model files, --out) and print the plan; write nothing",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="pruned-weights cache (default: $PRUNESCOPE_CACHE/pruned or ~/.cache/prunescope/pruned; "
        "ray/slurm: <out>/.prunescope/cache on the shared file system)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per run (default: the physical cores, shared among --workers, no more than are idle at "
        "the start; a resumed run keeps its count)",
    )
    g = p.add_argument_group("scale-out (see README: Running on many GPUs)")
    g.add_argument(
        "--launcher",
        choices=("local", "ray", "slurm"),
        default=None,
        help="local (default): runs here, one after another or --workers at once; ray: one Ray task per run; "
        "slurm: a submitit job array",
    )
    g.add_argument(
        "--workers",
        "--num-workers",
        dest="num_workers",
        type=int,
        default=None,
        help="runs at once: local: worker processes on this machine (default 1: in this process); ray: tasks on a "
        "local instance",
    )
    g.add_argument("--address", default=None, help="ray: address of an existing cluster (default: start a local one)")
    g.add_argument("--max-retries", type=int, default=None, help="retries of a run whose worker died or failed")
    g.add_argument("--partition", default=None, help="slurm partition")
    g.add_argument("--time-min", type=int, default=None, help="slurm time limit per run, minutes")
    g.add_argument("--gpus", dest="gpus_per_task", type=int, default=None, help="GPUs per run (ray/slurm)")
    g.add_argument("--array-parallelism", type=int, default=None, help="slurm: runs at once")


def _overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    if args.n_per_language is not None:
        out["items.n_per_language"] = args.n_per_language
    if args.languages is not None:
        out["items.languages"] = _names(args.languages, "--languages")
    return out


def _names(value: str, flag: str) -> list[str]:
    """A comma-separated flag's names; none at all is refused (`--only ,` would run nothing)."""
    from engine.errors import UserError

    names = [x.strip() for x in value.split(",") if x.strip()]
    if not names:
        raise UserError(f"{flag} {value!r}: names nothing; give comma-separated names or leave the flag out")
    return names


def _execute(spec_path: Path, out: Path, args: argparse.Namespace) -> int:
    """Check everything checkable (spec, launcher, devices, model files, items, --out), then run.
    A study refused by a check leaves no trace in --out."""
    from engine.errors import UserError
    from engine.preflight import preflight
    from engine.runner import (
        check_study_spec,
        load_study_items,
        print_language_summary,
        recorded_spec,
        run_study,
        write_study_spec,
    )
    from engine.study import plan_runs, read_spec, study_from_dict

    overrides = _overrides(args)
    spec_text, raw = read_spec(spec_path)
    study = study_from_dict(raw, spec_path, overrides)
    opts = _launch_options(raw, spec_path, args)
    plans = plan_runs(study)
    if args.only is not None:
        wanted = _names(args.only, "--only")
        unknown = sorted(set(wanted) - {p.run_id for p in plans})
        if unknown:
            raise UserError(
                f"--only: no run named {', '.join(unknown)} in {spec_path} (runs: {', '.join(p.run_id for p in plans)})"
            )
        plans = [p for p in plans if p.run_id in wanted]
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1 (got {args.threads})")
    try:
        items = load_study_items(study)
    except UserError as exc:
        raise UserError(f"{spec_path}: [items]: {exc}") from None
    preflight(study, spec_path, out, items)
    recorded = recorded_spec(spec_text, overrides)
    check_study_spec(out, recorded)
    if args.dry_run:
        print_plan(study, plans, out, opts)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    write_study_spec(out, recorded)
    from engine.config import cache_root

    if opts.kind != "local" or (opts.num_workers or 1) > 1:
        from dataclasses import replace

        from engine.launch import launch, print_launch_report

        if opts.kind == "local" and opts.cache_dir is None:
            opts = replace(opts, cache_dir=str(cache_root() / "pruned"))
        report = launch(
            spec_text,
            spec_path,
            out,
            [p.run_id for p in plans],
            overrides,
            opts,
            threads=args.threads,
            show_progress=not args.no_progress,
        )
        print_launch_report(report, out)
        print_language_summary([out / p.run_id for p in plans if (out / p.run_id / "outcomes.jsonl").exists()])
        if report.failed:
            return 1
        print_next_steps(out)
        return 0
    results = run_study(
        study,
        out,
        plans,
        show_progress=not args.no_progress,
        cache_dir=args.cache_dir or cache_root() / "pruned",
        items=items,
        threads=args.threads,
    )
    for r in results:
        verb = "already complete" if r.status == "skipped" else f"{r.n_new} new items in {r.seconds:.1f}s"
        print(f"{r.run_id}: {verb} -> {r.path}", file=sys.stderr)
    print_language_summary([r.path for r in results])
    print_next_steps(out)
    return 0


def _launch_options(raw: dict, spec_path: Path, args: argparse.Namespace):
    from engine.launch import LAUNCH_FLAGS, launch_options

    flags = {k: getattr(args, k) for k in LAUNCH_FLAGS if k not in ("kind", "cache_dir")}
    flags["kind"] = args.launcher
    flags["cache_dir"] = str(args.cache_dir) if args.cache_dir else None
    return launch_options(raw, spec_path, **flags)


def print_plan(study, plans, out: Path, opts) -> None:
    from engine.launch import pending_runs
    from engine.safe_text import inert

    print(f"study {inert(study.name)} -> {out} (launcher: {opts.kind})")
    print(
        f"items: source={inert(study.items.source)} languages={list(study.items.languages) or 'all'} "
        f"n_per_language={study.items.n_per_language} seed={study.items.seed}"
    )
    print(f"{len(plans)} runs ({len(study.models)} models × {len(study.conditions)} conditions):")
    todo = set(pending_runs(out, [p.run_id for p in plans]))
    for p in plans:
        c = p.condition
        calib = (
            f" calibration={inert(c.calibration.source)} n={c.calibration.nsamples}×{c.calibration.seqlen}"
            if c.calibration and c.uses_calibration
            else ""
        )
        state = "to run" if p.run_id in todo else "complete"
        print(
            f"  {p.run_id} [{state}]: model={inert(p.model.id)} method={c.method} sparsity={c.sparsity:.3f} "
            f"pattern={c.pattern}{calib}"
        )


def _program() -> str:
    """How this shell calls prunescope again: `prunescope` when PATH finds this one, else the path used."""
    import shutil

    prog = sys.argv[0]
    if Path(prog).name != "prunescope":  # `python -m engine.cli`, tests
        return "prunescope"
    found = shutil.which("prunescope")
    return "prunescope" if found and Path(found).resolve() == Path(prog).resolve() else prog


def print_next_steps(out: Path) -> None:
    """What to do with a finished study, as commands this shell can run (on stderr)."""
    import shlex

    from engine.safe_text import inert

    prog = _program()
    steps = (
        ("validate", "check every run against the run-folder schemas"),
        ("stats", "paired tests: what pruning changed, with corrected p-values"),
        ("tui", "step through the items in the terminal UI"),
    )
    calls = [f"{shlex.quote(prog)} {cmd} {shlex.quote(str(out))}" for cmd, _ in steps]
    width = max(map(len, calls))
    lines = ["Next:"] + [f"  {call:<{width}}  # {what}" for call, (_, what) in zip(calls, steps)]
    if prog != "prunescope":
        lines.append(f"  (after `. {shlex.quote(str(Path(prog).parent / 'activate'))}`, plain `prunescope` works)")
    print(inert("\n".join(lines), max_len=None, newlines=True), file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    return _execute(args.spec, args.out, args)


def cmd_demo(args: argparse.Namespace) -> int:
    return _execute(DEMO_SPEC, args.out, args)


def cmd_status(args: argparse.Namespace) -> int:
    from engine.status import print_status

    return print_status(args.study)


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.contract.reader import discover_runs, is_run_dir
    from engine.errors import UserError
    from engine.runfolder import repair_run, validate_run, validate_study
    from engine.safe_text import inert

    bad = 0
    n_runs = 0
    for path in args.paths:
        if not path.exists():
            raise UserError(f"{path}: no such study or run folder")
        if not path.is_dir():
            raise UserError(f"{path}: not a folder (give a study folder or a run folder)")
        runs = discover_runs(path)
        if not runs:
            print(f"{inert(path)}: no run folders found")
            bad += 1
        for run in runs:
            n_runs += 1
            if args.repair:
                for msg in repair_run(run):
                    print(f"{inert(run)}: repaired: {inert(msg)}")
            problems = validate_run(run)
            bad += bool(problems)
            print(f"{inert(run)}: {'ok' if not problems else f'{len(problems)} problems'}")
            for msg in problems[:20]:
                print(f"  {inert(msg)}")
        across = [] if is_run_dir(path) else validate_study(runs)
        bad += bool(across)
        for msg in across:
            print(f"{inert(path)}: {inert(msg)}")
    print(f"{n_runs - bad if n_runs >= bad else 0} of {n_runs} runs valid")
    return 1 if bad else 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from engine.matching import Scoring
    from engine.rescore import rescore_study
    from engine.safe_text import inert

    scoring = Scoring.parse(args.rule, args.guards)
    summaries = rescore_study(args.study, args.out, scoring, progress=not args.no_progress and sys.stderr.isatty())
    print(f"scoring: {scoring.describe()}")
    print(
        "run: items; open correct before -> after; shown before -> after; categories changed; "
        "probe hits changed; newly not probed"
    )
    for s in summaries:
        print(
            f"  {inert(s.run_id)}: {s.n}; open {s.open_before} -> {s.open_after}; shown {s.shown_before} -> "
            f"{s.shown_after}; {s.category_changed}; {s.probe_hits_changed}; {s.not_probed}"
        )
        if s.status != "complete":
            print(f"  {inert(s.run_id)}: {s.status}, not complete: re-run rescore when it is", file=sys.stderr)
    unprobed = sum(s.not_probed for s in summaries)
    if unprobed:
        print(
            f"{unprobed} open answers fail only under this scoring and were never probed (probes ran on failed "
            "items): their demotion is 'not_probed', not 'erased'"
        )
    print(
        f"wrote {len(summaries)} run folders to {inert(args.out)}; read them with: prunescope stats {inert(args.out)}"
    )
    return 0
