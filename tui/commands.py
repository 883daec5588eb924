"""`prunescope tui`: the terminal UI over a study (or two run folders paired directly).

Registration imports nothing heavy; Textual is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from engine.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tui",
        help="browse a study in a terminal UI (works over SSH)",
        description="Step through paired items, gold-answer traces and significance summaries. Keys: j/k, g/G, "
        "enter/escape, / filter, ? help, ctrl+p commands, 1-6 screens, e export, f flag, q quit.",
    )
    p.add_argument("study", type=Path, help="a study folder, or a run folder")
    p.add_argument(
        "run2",
        type=Path,
        nargs="?",
        default=None,
        help="a second run folder: pair STUDY (the reference) with it directly; or a second study to pool",
    )
    p.add_argument(
        "--keymap", type=Path, default=None, help='JSON file {"binding id": "keys"} to remap keys (ids are listed by ?)'
    )
    p.add_argument("--no-glmm", action="store_true", help="do not fit the mixed-effects model")
    p.add_argument(
        "--no-stats",
        action="store_true",
        help="do not run the significance tests (the overview shows rates without marks)",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="serve the UI to a browser with textual-serve on 127.0.0.1 (use ssh -L PORT:localhost:PORT)",
    )
    p.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000)")
    p.add_argument(
        "--baseline",
        default=None,
        metavar="RUN",
        help="pair every other run on the same items with run RUN (its run id), whatever its model or condition",
    )
    p.set_defaults(func=run_tui)


def check_readable(src: Path) -> None:
    """`src` is a folder whose runs are in a format this prunescope reads. Damaged runs still open (the
    app shows what is wrong where the data would be); a newer or unknown schema_version does not."""
    from engine.contract.reader import MANIFEST, RunFolderError, check_schema_version, discover_runs, read_json

    if not src.exists():
        raise UserError(f"{src}: no such study or run folder")
    if not src.is_dir():
        raise UserError(f"{src}: not a folder (give a study folder or a run folder)")
    for run in discover_runs(src):
        try:
            manifest = read_json(run / MANIFEST)
        except RunFolderError:
            continue
        check_schema_version(manifest, run / MANIFEST)


def read_keymap(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read keymap ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise UserError(f'{path}: a keymap is a JSON object of binding id → keys, e.g. {{"app.quit": "q,ctrl+q"}}')
    known = binding_ids()
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(
            f"{path}: no binding has the id {', '.join(map(repr, unknown))} (the ids: `?` in the app lists "
            f"each screen's; all of them: {', '.join(sorted(known))})"
        )
    return data


def binding_ids() -> set[str]:
    """The id of every binding of the app, its screens and widgets (what a keymap may remap)."""
    from textual.binding import Binding
    from textual.dom import DOMNode

    import tui.app  # noqa: F401  (imports every screen and widget)

    ids: set[str] = set()
    todo: list[type] = [DOMNode]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("tui."):
            ids |= {b.id for b in cls.__dict__.get("BINDINGS", ()) if isinstance(b, Binding) and b.id}
    return ids


def run_tui(args: argparse.Namespace) -> int:
    sources = [args.study] + ([args.run2] if args.run2 is not None else [])
    for src in sources:
        check_readable(src)
    keymap = read_keymap(args.keymap)
    if args.serve:
        return serve(sources, args)
    from tui.app import PrunescopeApp

    PrunescopeApp(
        sources, keymap=keymap, stats_glmm=not args.no_glmm, run_stats=not args.no_stats, baseline=args.baseline
    ).run()
    return 0


def serve(sources: list[Path], args: argparse.Namespace) -> int:
    """textual-serve bound to localhost only: reach it through `ssh -L PORT:localhost:PORT host`."""
    from textual_serve.server import Server

    cmd = [sys.executable, "-m", "engine.cli", "tui", *map(str, sources)]
    if args.keymap:
        cmd += ["--keymap", str(args.keymap)]
    cmd += ["--no-glmm"] * args.no_glmm + ["--no-stats"] * args.no_stats
    if args.baseline:
        cmd += ["--baseline", args.baseline]
    print(
        f"prunescope tui: serving on http://127.0.0.1:{args.port} (from your machine: "
        f"ssh -L {args.port}:localhost:{args.port} <this host>)",
        file=sys.stderr,
    )
    Server(shlex.join(cmd), host="127.0.0.1", port=args.port).serve()
    return 0
