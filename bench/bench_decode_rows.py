"""What a decoding step's linear products cost when batches decode apart, layer-interleaved, or merged.

A greedy decoding step of `--rows` rows multiplies every linear weight of the demo model (SmolLM2-135M,
weights packed as in a run: `engine.onednn.packed_linears`) by `rows` hidden states: about 540 MB of
weights for a few GFLOP, so on a machine with little memory bandwidth per core the step streams
weights. Three ways to run `--batches` such steps, timed on the same weights and inputs:

- apart: each batch's step on its own, every layer in turn (what the engine does, batch after batch);
- interleaved: layer by layer, every batch's product before the next layer's (each weight read from
  memory once per round, then from cache), each product still at `rows` rows;
- merged: one product of `batches * rows` rows per weight (one batch of that size, for decoding).

Reported per batch-step (milliseconds, the fastest of `--repeats`), with the load average. Only the
linear products run: attention, normalisation and the rest are out of this measure.

    .venv/bin/python bench/bench_decode_rows.py --out bench/results/decode_rows.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _fastest(fn: Callable[[], None], repeats: int) -> float:
    fn()  # warm: packed weights and kernels chosen
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(model: Any, batches: int, rows: int, repeats: int) -> dict[str, float]:
    """Milliseconds per batch-step of the three ways (see the module docstring)."""
    import torch

    layers = [[m for m in layer.modules() if isinstance(m, torch.nn.Linear)] for layer in model.model.layers]
    head = model.get_output_embeddings()
    widths = {lin.in_features for group in layers for lin in group} | {head.in_features}
    gen = torch.Generator().manual_seed(0)
    x = {(w, b): torch.randn(rows, w, generator=gen) for w in widths for b in range(batches)}
    merged = {w: torch.cat([x[w, b] for b in range(batches)]) for w in widths}

    def apart() -> None:
        for b in range(batches):
            for group in layers:
                for lin in group:
                    lin(x[lin.in_features, b])
            head(x[head.in_features, b])

    def interleaved() -> None:
        for group in layers:
            for b in range(batches):
                for lin in group:
                    lin(x[lin.in_features, b])
        for b in range(batches):
            head(x[head.in_features, b])

    def together() -> None:
        for group in layers:
            for lin in group:
                lin(merged[lin.in_features])
        head(merged[head.in_features])

    with torch.no_grad():
        ways = {"apart": apart, "interleaved": interleaved, "merged": together}
        return {name: 1000 * _fastest(fn, repeats) / batches for name, fn in ways.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--rows", type=int, default=16, help="rows of one batch's decoding step")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the engine's thread policy)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True, help="results JSON")
    args = ap.parse_args(argv)

    from bench_protocol import demo_model

    from engine.onednn import packed_linears
    from engine.reproducibility import numerics

    loaded, threads, load_before = demo_model(args.threads)
    with packed_linears(loaded.model):
        ms = measure(loaded.model, args.batches, args.rows, args.repeats)
    res = {
        "batches": args.batches,
        "rows": args.rows,
        "threads": threads.as_dict(),
        "ms_per_batch_step": ms,
        "interleaved_speedup": ms["apart"] / ms["interleaved"],
        "merged_speedup": ms["apart"] / ms["merged"],
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "numerics": numerics("cpu", "float32"),
    }
    print(
        f"{args.batches} batches x {args.rows} rows, {threads.threads} thread(s): per batch-step "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
        + f"; interleaved {res['interleaved_speedup']:.2f}x, merged {res['merged_speedup']:.2f}x"
        + f" (load {load_before[0]:.2f} -> {res['load_after'][0]:.2f})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
