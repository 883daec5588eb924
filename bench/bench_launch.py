"""Wall-clock time of one 4-run study with the local launcher: in this process (`--workers 1`), in
`--workers N` processes, and optionally on a local Ray instance (`--ray`).

The study: a tiny random Llama (built locally), dense + Wanda 50% + magnitude 50% + SparseGPT 2:4,
on the bundled items. Each way writes a fresh study folder with the default thread policy (no
OMP_NUM_THREADS: one process takes the idle physical cores, N processes share them); the outcome
files are compared byte for byte with the in-process run's, and the threads each run used are read
from its manifest. The load average is recorded around each command.

    .venv/bin/python bench/bench_launch.py --n-per-language 48 --workers 2 --out bench/results/launch.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = """
name = "bench-launch"
[items]
source = "bundled"
languages = ["en", "de", "fr", "zh"]
n_per_language = {n}
[[models]]
id = "{model}"
[pruning]
methods = ["wanda", "magnitude"]
sparsities = [0.5]
[[conditions]]
method = "sparsegpt"
pattern = "2:4"
[calibration]
nsamples = 8
seqlen = 64
[protocol]
batch_size = 8
max_new_tokens = 8
probes = "failed"
beam_width = 2
n_samples = 2
"""


def _time_run(spec: Path, out: Path, env: dict, *extra: str) -> dict:
    load = os.getloadavg()
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--no-progress", *extra],
        check=True,
        env=env,
        capture_output=True,
    )
    wall = time.perf_counter() - t
    runs = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    threads = {
        p.name: json.loads((p / "manifest.json").read_text(encoding="utf-8"))["hardware"]["threads"]["threads"]
        for p in runs
    }
    return {
        "wall_s": round(wall, 1),
        "threads": threads,
        "load_average_before": load,
        "load_average_after": os.getloadavg(),
    }


def _same(a: Path, b: Path) -> bool:
    runs = sorted(p.name for p in a.iterdir() if p.is_dir() and not p.name.startswith("."))
    return len(runs) == 4 and all(
        (a / r / "outcomes.jsonl").read_bytes() == (b / r / "outcomes.jsonl").read_bytes() for r in runs
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-per-language", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ray", action="store_true", help="also time --launcher ray with --workers")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from tests.tiny import make_tiny_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_tiny_model_dir(root / "tiny-llama")
        spec = root / "study.toml"
        spec.write_text(SPEC.format(model=model.as_posix(), n=args.n_per_language), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        env.update({"PRUNESCOPE_CACHE": str(root / "cache"), "RAY_USAGE_STATS_ENABLED": "0"})
        ways = {"local, --workers 1": [], f"local, --workers {args.workers}": ["--workers", str(args.workers)]}
        if args.ray:
            ways[f"ray, {args.workers} workers"] = ["--launcher", "ray", "--workers", str(args.workers)]
        timed = {}
        for k, (name, extra) in enumerate(ways.items()):
            timed[name] = _time_run(spec, root / f"way{k}", env, *extra)
            timed[name]["identical_outcomes"] = _same(root / "way0", root / f"way{k}")
    base = timed["local, --workers 1"]["wall_s"]
    for t in timed.values():
        t["speedup"] = round(base / t["wall_s"], 2)
    result = {
        "command": "bench/bench_launch.py " + " ".join(sys.argv[1:]),
        "runs": 4,
        "items_per_run": 4 * args.n_per_language,
        "cpu_count": os.cpu_count(),
        "ways": timed,
    }
    print(f"4 runs × {4 * args.n_per_language} items, {os.cpu_count()} CPUs, default thread policy")
    for name, t in timed.items():
        print(
            f"{name:22} {t['wall_s']:8.1f} s  speed-up {t['speedup']:.2f}x  threads/run "
            f"{sorted(set(t['threads'].values()))}  identical outcomes: {t['identical_outcomes']}  "
            f"load {t['load_average_before'][0]:.2f} -> {t['load_average_after'][0]:.2f}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
