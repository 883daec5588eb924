"""Wall-clock time of one 4-condition study with the local launcher and with Ray (N workers).

The study: a tiny random Llama (built locally), dense + Wanda 50% + magnitude 50% + SparseGPT 2:4,
on the bundled items. Each launcher writes a fresh study folder; the outcome files are compared
byte for byte (same study either way).

    .venv/bin/python bench/bench_launch.py --n-per-language 8 --workers 2 --out bench/results/launch.json
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


def _time_run(spec: Path, out: Path, env: dict, *extra: str) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--out", str(out), "--no-progress", *extra],
        check=True,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-per-language", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from tests.tiny import make_tiny_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_tiny_model_dir(root / "tiny-llama")
        spec = root / "study.toml"
        spec.write_text(SPEC.format(model=model.as_posix(), n=args.n_per_language), encoding="utf-8")
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PRUNESCOPE_CACHE": str(root / "cache"),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        local_s = _time_run(spec, root / "local", env)
        ray_s = _time_run(spec, root / "ray", env, "--launcher", "ray", "--num-workers", str(args.workers))
        runs = sorted(p.name for p in (root / "local").iterdir() if p.is_dir() and not p.name.startswith("."))
        same = all(
            (root / "local" / r / "outcomes.jsonl").read_bytes() == (root / "ray" / r / "outcomes.jsonl").read_bytes()
            for r in runs
        )
    result = {
        "conditions": len(runs),
        "items_per_condition": 4 * args.n_per_language,
        "cpu_count": os.cpu_count(),
        "local_s": round(local_s, 1),
        "ray_s": round(ray_s, 1),
        "ray_workers": args.workers,
        "speedup": round(local_s / ray_s, 2),
        "identical_outcomes": same,
    }
    print(
        f"{len(runs)} conditions × {4 * args.n_per_language} items, {os.cpu_count()} CPUs, one torch thread per process"
    )
    print(f"local launcher        {local_s:8.1f} s")
    print(f"ray, {args.workers} workers        {ray_s:8.1f} s   (speed-up {local_s / ray_s:.2f}x)")
    print(f"identical outcomes: {same}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
