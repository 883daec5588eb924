"""Benchmark: the TUI on generated studies of N outcome lines (headless Textual `run_test`).

Measures, per study size, twice: first with an empty index cache (the study has no run index yet,
as a study made by an older prunescope or by hand), then again with the index the first pass
cached. Each pass: time to first paint (the overview, showing its loading state, is on screen);
time until the study is indexed and the overview grid shows numbers; time to show the item list;
a jump to the end of the list and page-ups; a filter (from enter); opening an item (enter → the
item screen drawn); the next discordant item on the item screen; Run info; and peak RSS (of the
app, and of the index-building worker processes a first open starts). Then Run info on the sample
study (`--sample`, 10 runs with per-layer pruning reports). Significance tests are switched off
(they run in their own worker; bench/bench_stats_load.py measures loading for them).

Each time is wall seconds, with the CPU seconds of the process and its worker processes beside it:
on a busy machine wall time grows with the load, CPU time much less. Each pass ends with the load
average and the machine's starvation (`tui.headless.MachineShare`: wall seconds per CPU second of a
busy loop in another process, 1.0 on an idle machine), to read the wall times against.
Usage:

    .venv/bin/python bench/bench_tui.py [--lines 100000 1000000] [--dir PATH] [--keep]

A study already generated under --dir (same size) is reused. Each measurement runs in a fresh
process (so peak RSS is that study's) and prints the load average when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic import DEFAULT_CONDITIONS, DEFAULT_LANGUAGES, make_synthetic_study  # noqa: E402
from tui.headless import MachineShare, cpu_seconds, press, until  # noqa: E402


def study_for(lines: int, base: Path) -> tuple[Path, float]:
    """A synthetic study of about `lines` outcome lines (6 languages × 5 conditions); reused if present."""
    per_language = max(1, lines // (len(DEFAULT_LANGUAGES) * len(DEFAULT_CONDITIONS)))
    study = base / f"study-{lines}"
    marker = study / ".complete"
    if marker.exists():
        return study, 0.0
    shutil.rmtree(study, ignore_errors=True)
    t0 = time.perf_counter()
    make_synthetic_study(study, n_per_language=per_language, seed=0)
    marker.write_text("ok\n")
    return study, time.perf_counter() - t0


async def _until(pilot, ready, timeout: float = 1800.0) -> None:
    await until(ready, timeout)


class Clock:
    """`with clock("name"):` records `name_s` (wall) and `name_cpu_s` (CPU, `cpu_seconds`) in `out`."""

    def __init__(self) -> None:
        self.out: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t, c = time.perf_counter(), cpu_seconds()
        yield
        self.out[f"{name}_s"] = time.perf_counter() - t
        self.out[f"{name}_cpu_s"] = cpu_seconds() - c


async def measure_run_info(study: Path) -> dict[str, float]:
    """Run info of a loaded study: key 5 until its lines are on screen, and back."""
    from tui.app import PrunescopeApp
    from tui.screens.runinfo import RunInfoScreen
    from tui.widgets.lines import LinesView

    clock = Clock()
    app = PrunescopeApp([study], run_stats=False, stats_glmm=False)
    async with app.run_test(size=(130, 40)) as pilot:
        await _until(pilot, lambda: app.study is not None)
        with clock("run_info"):
            await press(pilot, "5")
            await _until(
                pilot, lambda: isinstance(app.screen, RunInfoScreen) and app.screen.query_one(LinesView).count > 0
            )
        clock.out["run_info_lines"] = float(app.screen.query_one(LinesView).count)
        with clock("run_info_end_and_back"):
            await press(pilot, "G", "escape")
    return clock.out


async def measure(study: Path) -> dict[str, float]:
    from textual.widgets import Static

    from tui.app import PrunescopeApp
    from tui.screens.item import ItemScreen
    from tui.screens.items import ItemsScreen
    from tui.screens.runinfo import RunInfoScreen
    from tui.widgets.item_table import ItemTable
    from tui.widgets.lines import LinesView

    clock = Clock()
    out = clock.out
    t0, c0 = time.perf_counter(), cpu_seconds()
    app = PrunescopeApp([study], run_stats=False, stats_glmm=False)
    async with app.run_test(size=(130, 40)) as pilot:
        out["first_paint_s"] = time.perf_counter() - t0
        message = str(app.screen.query_one("#message", Static).render())
        out["loading_state_shown"] = float("Loading" in message or app.study is not None)
        await _until(pilot, lambda: app.study is not None)
        out["loaded_s"] = time.perf_counter() - t0  # the study indexed, from the app's start
        out["loaded_cpu_s"] = cpu_seconds() - c0
        out["outcome_lines"] = float(sum(len(r) for r in app.study.runs))
        out["item_rows"] = float(len(app.study.pairs))

        with clock("item_list"):
            await press(pilot, "2")
            await _until(
                pilot,
                lambda: (
                    isinstance(app.screen, ItemsScreen)
                    and len(app.screen.query_one(ItemTable).rows) == len(app.study.pairs)
                ),
            )
        with clock("jump_to_end"):
            await press(pilot, "G")
        with clock("page_up_x20"):
            for _ in range(20):
                await press(pilot, "pageup")

        await press(pilot, "slash", *"lang:de cat:RO")
        table = app.get_screen("items").query_one(ItemTable)
        with clock("filter"):
            await press(pilot, "enter")
            await _until(
                pilot,
                lambda: (
                    isinstance(app.screen, ItemsScreen)
                    and app.items_state.query == "lang:de cat:RO"
                    and app.items_state.rows is not None
                    and len(table.rows) == len(app.items_state.rows)
                    and len(table.rows) < len(app.study.pairs)
                ),
            )
        out["filtered_rows"] = float(len(table.rows))

        screen = app.get_screen("item")
        assert isinstance(screen, ItemScreen)
        await press(pilot, "j", "j")
        with clock("open_item"):
            await press(pilot, "enter")  # at once: nothing drawn ahead
            await _until(pilot, lambda: app.screen is screen and screen._shown is not None)
        await press(pilot, "escape", "j")
        await asyncio.sleep(1.0)  # the cursor rests on a row, as when reading the list
        with clock("open_item_after_rest"):
            await press(pilot, "enter")
            await _until(pilot, lambda: app.screen is screen and screen._shown == (screen.pair_index, screen._width()))
        await asyncio.sleep(1.0)  # reading the item
        before = screen.pair_index
        with clock("next_discordant_item"):
            await press(pilot, "right_square_bracket")
            await _until(pilot, lambda: screen._shown is not None and screen._shown[0] != before)

        with clock("run_info"):
            await press(pilot, "5")
            await _until(
                pilot, lambda: isinstance(app.screen, RunInfoScreen) and app.screen.query_one(LinesView).count > 0
            )
    out["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["max_rss_workers_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import tui.app; print(time.perf_counter() - t)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(res.stdout.strip())


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _run(args: list[str], env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, env=env)
    if res.returncode:
        print(res.stderr[-3000:])
        raise SystemExit(res.returncode)
    print(res.stdout, end="")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000], help="study sizes in outcome lines")
    ap.add_argument("--dir", type=Path, default=None, help="where to build the studies (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated studies")
    ap.add_argument(
        "--sample", type=Path, default=ROOT / "sample_runs" / "smollm2-illusion", help="study for the Run info timing"
    )
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench_tui_"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"import tui.app: {import_seconds():.3f} s   ({_load()}, {os.cpu_count()} CPUs)")
    try:
        for lines in args.lines:
            study, gen = study_for(lines, base)
            size = sum(p.stat().st_size for p in study.glob("*/outcomes.jsonl"))
            print(
                f"\nstudy of {lines} outcome lines at {study} ({size / 2**20:.0f} MiB of outcomes"
                + (f", generated in {gen:.1f} s)" if gen else ", reused)")
            )
            cache = Path(tempfile.mkdtemp(prefix="index_cache_", dir=base))
            env = {**os.environ, "PRUNESCOPE_CACHE": str(cache)}
            try:
                for label in ("first time (no index)", "warm (index cached)"):
                    print(f" {label}:")
                    _run(["--measure", str(study)], env)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        if args.sample.exists():
            print(f"\nsample study {args.sample}:")
            _run(["--measure-run-info", str(args.sample)], dict(os.environ))
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


def _print(results: dict[str, float], share: MachineShare) -> None:
    for key, value in results.items():
        if key.endswith("_cpu_s"):
            continue
        if key.endswith("_s"):
            cpu = results.get(f"{key[:-2]}_cpu_s")
            print(f"  {key[:-2]:<24} {value:8.3f} s" + (f"   (CPU {cpu:.3f} s)" if cpu is not None else ""))
        else:
            print(f"  {key:<24} {value:10.0f}")
    print(f"  ({_load()}; starvation {share.starvation:.1f}: wall seconds per CPU second of a busy loop)")


def _measure(what, study: Path) -> None:
    with MachineShare() as share:
        results = asyncio.run(what(study))
    _print(results, share)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        _measure(measure, Path(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--measure-run-info":
        _measure(measure_run_info, Path(sys.argv[2]))
    else:
        main()
