"""The `prunescope` command. Each part registers its own subcommands; heavy imports happen only
inside the chosen command, so `prunescope tui` and `prunescope stats` never import torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import engine
from engine.errors import UserError, os_error_line

# (module, function) pairs; each function takes the subparsers object and adds its commands,
# setting `func` on each parser to a callable `(args) -> int | None`.
REGISTRARS: tuple[tuple[str, str], ...] = (
    ("engine.commands", "register"),
    ("engine.pruning.commands", "register"),
    ("engine.importers.commands", "register"),
    ("stats.commands", "register"),
    ("tui.commands", "register"),
)


class _VersionAction(argparse.Action):
    """`--version`, reading the package metadata only when asked (it costs ~30 ms to import)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"prunescope {engine.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="prunescope",
        description="Paired open-generation / multiple-choice evaluation of pruned language models.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors (anywhere on the line)")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, name in REGISTRARS:
        register: Callable[[argparse._SubParsersAction], None] = getattr(importlib.import_module(module), name)
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from engine.threads import reproducible_blas

    reproducible_blas()  # before any command imports torch
    argv = list(sys.argv[1:] if argv is None else argv)
    debug_flag = "--debug" in argv  # accepted anywhere on the line, not only before the command
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = debug_flag or bool(os.environ.get("PRUNESCOPE_DEBUG"))
    try:
        rc = args.func(args)
    except UserError as exc:
        if debug:
            raise
        _error_line(args.command, f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        print(f"prunescope {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other CLI tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 141
    except OSError as exc:  # permission, read-only, disk full, not a folder…: the path and what to do
        line = os_error_line(exc)
        if debug:
            raise
        if line is None:
            return _internal_error(args.command, exc)
        _error_line(args.command, f"error: {line}")
        return 2
    except Exception as exc:  # a bug, not bad input: one line, and how to see more
        if debug:
            raise
        return _internal_error(args.command, exc)
    return int(rc or 0)


def _error_line(command: str, text: str) -> None:
    """One line on stderr; paths and data quoted in it stay inert (no newlines, no terminal controls)."""
    from engine.safe_text import inert

    print(f"prunescope {command}: {inert(text, max_len=4000)}", file=sys.stderr)


def _internal_error(command: str, exc: BaseException) -> int:
    _error_line(command, f"internal error: {exc.__class__.__name__}: {exc} (run with --debug for the traceback)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
