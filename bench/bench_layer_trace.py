"""What the layer trace costs: protocol time and outcome bytes per item on the demo model, trace off vs on.

In one process, on the same bundled items and the demo study's protocol (engine/data/demo_study.toml),
it runs the whole protocol (`evaluate_batches`, the fast backend) with `layer_trace` off and on,
alternating for `--rounds` rounds so that a change in the machine's load falls on both, and reports
per item: wall and process CPU seconds of each (median over rounds), the time inside the lens
readout itself (`layer_traces`: final norm, unembedding and log-softmax of every layer), and the bytes
an outcome line takes with and without its `layer_trace`. It checks that the trace changes nothing
else in the records.

    .venv/bin/python bench/bench_layer_trace.py --n-items 24 --rounds 3 --threads 1 \\
        --out bench/results/layer_trace.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_protocol import Clock, _items, demo_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--n-items", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the engine's thread policy)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="results JSON")
    args = ap.parse_args(argv)

    import torch

    from engine.protocol import evaluate as evaluate_module
    from engine.protocol import evaluate_batches
    from engine.runfolder import dumps_line
    from engine.runner import one_shot_pool
    from engine.study import parse_study

    loaded, threads, start_load = demo_model(args.threads)
    items = _items(args.n_items, args.seed)
    pool = one_shot_pool(items)
    base = parse_study(ROOT / "engine" / "data" / "demo_study.toml").protocol
    configs = {False: dataclasses.replace(base, layer_trace=False), True: dataclasses.replace(base, layer_trace=True)}
    lens_s: list[float] = []
    real_traces = evaluate_module.layer_traces

    def timed_traces(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_traces(*a, **k)
        finally:
            lens_s.append(time.perf_counter() - t)

    evaluate_module.layer_traces = timed_traces  # type: ignore[assignment]
    walls: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    lens_per_round: list[float] = []
    records: dict[bool, list[dict]] = {}
    for _ in range(args.rounds):
        for on in (False, True):
            lens_s.clear()
            with Clock() as clock:
                records[on] = [r for batch in evaluate_batches(loaded, items, configs[on], pool) for r in batch]
            walls[on].append(clock.wall)
            cpus[on].append(clock.cpu)
            if on:
                lens_per_round.append(sum(lens_s))
    with_trace = records[True]
    stripped = [{k: v for k, v in r.items() if k != "layer_trace"} for r in with_trace]
    if stripped != records[False]:
        raise SystemExit("the layer trace changed other fields of the records")
    n = len(items)
    bytes_off = sum(len(dumps_line(r).encode()) + 1 for r in records[False]) / n
    bytes_on = sum(len(dumps_line(r).encode()) + 1 for r in with_trace) / n
    layers = len(with_trace[0]["layer_trace"]["ranks"])
    wall_off, wall_on = statistics.median(walls[False]), statistics.median(walls[True])
    cpu_off, cpu_on = statistics.median(cpus[False]), statistics.median(cpus[True])
    result = {
        "command": "bench/bench_layer_trace.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": loaded.info,
        "n_items": n,
        "languages": sorted({it["language"] for it in items}),
        "protocol": configs[True].to_dict(),
        "trace_entries": layers,
        "rounds": args.rounds,
        "wall_s": {"off": walls[False], "on": walls[True]},
        "cpu_s": {"off": cpus[False], "on": cpus[True]},
        "lens_readout_s": lens_per_round,
        "per_item": {
            "wall_ms_off": 1000 * wall_off / n,
            "wall_ms_on": 1000 * wall_on / n,
            "cpu_ms_off": 1000 * cpu_off / n,
            "cpu_ms_on": 1000 * cpu_on / n,
            "lens_readout_ms": 1000 * statistics.median(lens_per_round) / n,
            "bytes_off": bytes_off,
            "bytes_on": bytes_on,
            "extra_bytes": bytes_on - bytes_off,
        },
        "threads": threads.as_dict(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    result["load_average"] = {"start": start_load, "end": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    p = result["per_item"]
    print(f"{n} items, {layers} trace entries, {args.rounds} rounds, threads {threads.as_dict()}")
    print(
        f"wall ms/item: off {p['wall_ms_off']:.0f}, on {p['wall_ms_on']:.0f} (lens readout {p['lens_readout_ms']:.1f})"
    )
    print(f"cpu  ms/item: off {p['cpu_ms_off']:.0f}, on {p['cpu_ms_on']:.0f}")
    print(f"bytes/item:   off {bytes_off:.0f}, on {bytes_on:.0f} (+{bytes_on - bytes_off:.0f})")
    print(f"load average: start {start_load}, end {result['load_average']['end']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
