"""Benchmark: the TUI on generated studies of N outcome lines (headless Textual `run_test`).

Measures, per study size, twice: first with an empty index cache (the study has no run index yet,
as a study made by an older prunescope or by hand), then again with the index the first pass
cached. Each pass: time to first paint (the overview, showing its loading state, is on screen);
time until the study is indexed and the overview grid shows numbers; time to show the item list;
a jump to the end of the list and page-ups; a filter (from enter); opening an item (enter → the
item screen drawn); the next discordant item on the item screen; Run info; and peak RSS. Then Run
info on the sample study (`--sample`, 10 runs with per-layer pruning reports). Significance tests are
switched off (they run in their own worker; bench/bench_stats_load.py measures loading for them).
Usage:

    .venv/bin/python bench/bench_tui.py [--lines 100000 1000000] [--dir PATH] [--keep]

A study already generated under --dir (same size) is reused. Each measurement runs in a fresh
process (so peak RSS is that study's) and prints the load average when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.synthetic import DEFAULT_CONDITIONS, DEFAULT_LANGUAGES, make_synthetic_study  # noqa: E402
from tui.headless import cpu_starvation, press, until  # noqa: E402


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


async def measure_run_info(study: Path) -> dict[str, float]:
    """Run info of a loaded study: key 5 until its lines are on screen, and back."""
    from tui.app import PrunescopeApp
    from tui.screens.runinfo import RunInfoScreen
    from tui.widgets.lines import LinesView

    out: dict[str, float] = {}
    app = PrunescopeApp([study], run_stats=False, stats_glmm=False)
    async with app.run_test(size=(130, 40)) as pilot:
        await _until(pilot, lambda: app.study is not None)
        t = time.perf_counter()
        await press(pilot, "5")
        await _until(pilot, lambda: isinstance(app.screen, RunInfoScreen) and app.screen.query_one(LinesView).count > 0)
        out["run_info_s"] = time.perf_counter() - t
        out["run_info_lines"] = float(app.screen.query_one(LinesView).count)
        t = time.perf_counter()
        await press(pilot, "G", "escape")
        out["run_info_end_and_back_s"] = time.perf_counter() - t
    return out


async def measure(study: Path) -> dict[str, float]:
    from textual.widgets import Static

    from tui.app import PrunescopeApp
    from tui.screens.item import ItemScreen
    from tui.screens.items import ItemsScreen
    from tui.screens.runinfo import RunInfoScreen
    from tui.widgets.item_table import ItemTable
    from tui.widgets.lines import LinesView

    out: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    app = PrunescopeApp([study], run_stats=False, stats_glmm=False)
    async with app.run_test(size=(130, 40)) as pilot:
        out["first_paint_s"] = time.perf_counter() - t0
        message = str(app.screen.query_one("#message", Static).render())
        out["loading_state_shown"] = float("Loading" in message or app.study is not None)
        await _until(pilot, lambda: app.study is not None)
        out["loaded_s"] = time.perf_counter() - t0
        out["loaded_cpu_s"] = time.process_time() - c0  # CPU seconds of this process (a loaded machine inflates wall)
        out["outcome_lines"] = float(sum(len(r) for r in app.study.runs))
        out["item_rows"] = float(len(app.study.pairs))

        t = time.perf_counter()
        await press(pilot, "2")
        await _until(
            pilot,
            lambda: (
                isinstance(app.screen, ItemsScreen)
                and len(app.screen.query_one(ItemTable).rows) == len(app.study.pairs)
            ),
        )
        out["item_list_s"] = time.perf_counter() - t

        t = time.perf_counter()
        await press(pilot, "G")
        out["jump_to_end_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(20):
            await press(pilot, "pageup")
        out["page_up_per_key_s"] = (time.perf_counter() - t) / 20

        await press(pilot, "slash", *"lang:de cat:RO")
        t = time.perf_counter()
        await press(pilot, "enter")
        table = app.get_screen("items").query_one(ItemTable)
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
        out["filter_s"] = time.perf_counter() - t
        out["filtered_rows"] = float(len(table.rows))

        screen = app.get_screen("item")
        assert isinstance(screen, ItemScreen)
        await press(pilot, "j", "j")
        t = time.perf_counter()
        await press(pilot, "enter")  # at once: nothing drawn ahead
        await _until(pilot, lambda: app.screen is screen and screen._shown is not None)
        out["open_item_s"] = time.perf_counter() - t
        await press(pilot, "escape", "j")
        await asyncio.sleep(1.0)  # the cursor rests on a row, as when reading the list
        t = time.perf_counter()
        await press(pilot, "enter")
        await _until(pilot, lambda: app.screen is screen and screen._shown == (screen.pair_index, screen._width()))
        out["open_item_after_rest_s"] = time.perf_counter() - t
        await asyncio.sleep(1.0)  # reading the item
        before = screen.pair_index
        t = time.perf_counter()
        await press(pilot, "right_square_bracket")
        await _until(pilot, lambda: screen._shown is not None and screen._shown[0] != before)
        out["next_discordant_item_s"] = time.perf_counter() - t

        t = time.perf_counter()
        await press(pilot, "5")
        await _until(pilot, lambda: isinstance(app.screen, RunInfoScreen) and app.screen.query_one(LinesView).count > 0)
        out["run_info_s"] = time.perf_counter() - t
    out["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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


def _print(results: dict[str, float]) -> None:
    for key, value in results.items():
        if key.endswith("_s"):
            print(f"  {key[:-2]:<24} {value:8.3f} s")
        else:
            print(f"  {key:<24} {value:10.0f}")
    print(f"  ({_load()}; CPU starvation {cpu_starvation():.1f}: wall seconds per CPU second of a busy loop)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        _print(asyncio.run(measure(Path(sys.argv[2]))))
    elif len(sys.argv) == 3 and sys.argv[1] == "--measure-run-info":
        _print(asyncio.run(measure_run_info(Path(sys.argv[2]))))
    else:
        main()
