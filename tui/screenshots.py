"""SVG screenshots of every screen, for the README: `python -m tui.screenshots STUDY OUTDIR`.

Runs the app headless at a fixed size, waits for loading and the tests, and visits each screen.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from tui.app import PrunescopeApp

SHOTS = (  # (file name, keys pressed from the overview)
    ("overview", ()),
    ("items", ("2", "right_square_bracket")),
    ("item", ("2", "right_square_bracket", "enter")),
    ("item-probes", ("2", "right_square_bracket", "enter", "G")),
    ("significance", ("4",)),
    ("runinfo", ("5",)),
    ("paper", ("6",)),
    ("help", ("2", "question_mark")),
)


async def _settle(pilot) -> None:
    app = pilot.app
    while True:
        await pilot.pause()
        await app.workers.wait_for_complete()
        if app.study is not None and not any(w.is_running for w in app.workers):
            return


async def take(study: Path, outdir: Path, size: tuple[int, int] = (130, 40), glmm: bool = True) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, keys in SHOTS:
        app = PrunescopeApp([study], stats_glmm=glmm)
        async with app.run_test(size=size) as pilot:
            await _settle(pilot)
            for key in keys:
                await pilot.press(key)
                await _settle(pilot)
            path = outdir / f"{name}.svg"
            app.save_screenshot(path.name, str(outdir))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder")
    parser.add_argument("outdir", type=Path, help="where the SVG files go (e.g. docs/screenshots)")
    parser.add_argument("--width", type=int, default=130)
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--no-glmm", action="store_true", help="skip the mixed-effects model")
    args = parser.parse_args(argv)
    for path in asyncio.run(take(args.study, args.outdir, (args.width, args.height), glmm=not args.no_glmm)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
