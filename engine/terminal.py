"""What the CLI writes to the terminal: Rich consoles (tables are never wrapped when stdout is piped)
and progress bars (quiet when stderr is not a terminal). Torch-free; `stats` uses it too."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

# (steps done, steps in all): items of a run, decoder layers of a pruning.
StepProgress = Callable[[int, int], None]

# A console width no table reaches: piped output is laid out at its natural width, never wrapped.
UNWRAPPED_WIDTH = 100_000


def stdout_console() -> Console:
    """Stdout: a terminal's own width, or unbounded lines when stdout is a pipe or a file. A reader that
    goes away (`| head`) raises BrokenPipeError, which the CLI ends with 141 as other tools do (Rich's
    own handling exits 1, the code of an error)."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return PipeConsole(
        file=sys.stdout, highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else UNWRAPPED_WIDTH
    )


def library_bars(show: bool) -> None:
    """transformers' and the hub's own progress bars (loading weights, writing shards) only where ours
    show: off under --no-progress and when stderr is not a terminal (a log file)."""
    if show and sys.stderr.isatty():
        return
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    disable_progress_bars()
    transformers_logging.disable_progress_bar()


def stderr_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stderr)


def progress_bars() -> Progress:
    """One display of progress bars on stderr (nothing at all when stderr is not a terminal). Each task
    carries a `unit` field: 'layers', or the rate such as '0.75 items/s'."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = stderr_console()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def layer_task(bars: Progress, description: str) -> StepProgress:
    """A pruning's progress as one bar of `bars`, added at the first call (when the layers are known)."""
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task:
            task.append(bars.add_task(description, total=total, unit="layers"))
        bars.update(task[0], completed=done, total=total)

    return update


@contextmanager
def layer_progress(description: str) -> Iterator[StepProgress]:
    """A pruning's progress bar on its own display (`prunescope prune`)."""
    with progress_bars() as bars:
        yield layer_task(bars, description)
