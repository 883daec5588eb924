"""Benchmark: the TUI on generated studies of N outcome lines (headless Textual `run_test`).

Measures, per study size: the import of `tui.app`; time to first paint (the overview, showing its
loading state, is on screen); time until the study is indexed and the overview grid shows numbers;
time to show the item list; time for a jump to the end of the list and for page-downs; time to
apply a filter (from enter); and time to open an item (enter → the item screen rendered). Significance tests are
switched off (they run in their own worker; bench/bench_stats_load.py measures them). Usage:

    .venv/bin/python bench/bench_tui.py [--lines 100000 1000000] [--dir PATH] [--keep]

A study already generated under --dir (same size) is reused.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.synthetic import DEFAULT_CONDITIONS, DEFAULT_LANGUAGES, make_synthetic_study

ROOT = Path(__file__).resolve().parents[1]


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


async def _until(pilot, ready, timeout: float = 600.0) -> None:
    deadline = time.perf_counter() + timeout
    while not ready():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app did not get there in time")
        await pilot.pause(0.005)


async def measure(study: Path) -> dict[str, float]:
    from textual.widgets import Static

    from tui.app import PrunescopeApp
    from tui.screens.item import ItemScreen
    from tui.screens.items import ItemsScreen
    from tui.widgets.item_table import ItemTable

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    app = PrunescopeApp([study], run_stats=False, stats_glmm=False)
    async with app.run_test(size=(130, 40)) as pilot:
        out["first_paint_s"] = time.perf_counter() - t0
        message = str(app.screen.query_one("#message", Static).render())
        out["loading_state_shown"] = float("Loading" in message or app.study is not None)
        await _until(pilot, lambda: app.study is not None)
        await pilot.pause()
        out["loaded_s"] = time.perf_counter() - t0
        out["outcome_lines"] = float(sum(len(r) for r in app.study.runs))
        out["item_rows"] = float(len(app.study.pairs))

        t = time.perf_counter()
        await pilot.press("2")
        await _until(
            pilot,
            lambda: (
                isinstance(app.screen, ItemsScreen)
                and len(app.screen.query_one(ItemTable).rows) == len(app.study.pairs)
            ),
        )
        await pilot.pause()
        out["item_list_s"] = time.perf_counter() - t

        t = time.perf_counter()
        await pilot.press("G")
        await pilot.pause()
        out["jump_to_end_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(20):
            await pilot.press("pageup")
        await pilot.pause()
        out["page_up_per_key_s"] = (time.perf_counter() - t) / 20

        await pilot.press("slash", *"lang:de cat:RO")
        t = time.perf_counter()
        await pilot.press("enter")
        table = app.screen.query_one(ItemTable)
        await _until(
            pilot,
            lambda: (
                app.items_state.query == "lang:de cat:RO"
                and app.items_state.rows is not None
                and len(table.rows) == len(app.items_state.rows)
                and len(table.rows) < len(app.study.pairs)
            ),
        )
        await pilot.pause()
        out["filter_s"] = time.perf_counter() - t
        out["filtered_rows"] = float(len(table.rows))

        await pilot.press("j", "j")
        t = time.perf_counter()
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ItemScreen) and bool(app.screen.records))
        await pilot.pause()
        out["open_item_s"] = time.perf_counter() - t
        t = time.perf_counter()
        await pilot.press("right_square_bracket")
        await pilot.pause()
        out["next_discordant_item_s"] = time.perf_counter() - t
    out["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import tui.app; print(time.perf_counter() - t)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(res.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000], help="study sizes in outcome lines")
    ap.add_argument("--dir", type=Path, default=None, help="where to build the studies (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated studies")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench_tui_"))
    base.mkdir(parents=True, exist_ok=True)
    print(
        f"import tui.app: {import_seconds():.3f} s   (load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
        f"{os.cpu_count()} CPUs)"
    )
    try:
        for lines in args.lines:
            study, gen = study_for(lines, base)
            size = sum(p.stat().st_size for p in study.glob("*/outcomes.jsonl"))
            print(
                f"\nstudy of {lines} outcome lines at {study} ({size / 2**20:.0f} MiB of outcomes"
                + (f", generated in {gen:.1f} s)" if gen else ", reused)")
            )
            # each size in a fresh process, so max RSS is that study's
            res = subprocess.run(
                [sys.executable, __file__, "--measure", str(study)], capture_output=True, text=True, cwd=ROOT
            )
            if res.returncode:
                print(res.stderr[-3000:])
                raise SystemExit(res.returncode)
            print(res.stdout, end="")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


def _measure_main(study: Path) -> None:
    for key, value in asyncio.run(measure(study)).items():
        if key.endswith("_s"):
            print(f"  {key[:-2]:<24} {value:8.3f} s")
        else:
            print(f"  {key:<24} {value:10.0f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        _measure_main(Path(sys.argv[2]))
    else:
        main()
