"""Per-layer pruning time and peak memory on random decoder layers of Llama-7B and Llama-2-70B shapes.

For each shape, method (magnitude, wanda, sparsegpt) and pattern (unstructured 50%, 2:4) it prunes
the linear modules of one random decoder layer with `engine.pruning`'s algorithms, timing only the
algorithm (the activation statistics come from a random X of `--tokens` rows and are not timed),
and extrapolates the layer time to the whole model (32 / 80 layers). Modules that read the same
input share one statistic; for SparseGPT one Hessian factorization per input group is timed
(`factor_hessian`) and counted once per layer, as the driver does.

Peak memory is the extra memory one call needs above what was allocated before it: on CUDA from
`torch.cuda.max_memory_allocated`, on CPU from the process's peak RSS (VmHWM, reset through
/proc/self/clear_refs before each call).

    python bench/bench_prune_layers.py --device cpu --shapes 7b --out results.json
    python bench/bench_prune_layers.py --device cuda --shapes 7b,70b
    python bench/bench_prune_layers.py --shapes 70b --modules q,k,v,o --methods sparsegpt
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.pruning.algorithms import factor_hessian, magnitude_mask, sparsegpt_prune, wanda_mask


@dataclass(frozen=True)
class Shape:
    name: str
    hidden: int
    intermediate: int
    kv: int  # rows of k_proj / v_proj (num_kv_heads * head_dim)
    layers: int

    def modules(self) -> dict[str, tuple[int, int, str]]:
        """module -> (out, in, input group); modules of one group read the same input."""
        h, i, kv = self.hidden, self.intermediate, self.kv
        return {
            "q": (h, h, "attn_in"),
            "k": (kv, h, "attn_in"),
            "v": (kv, h, "attn_in"),
            "o": (h, h, "o_in"),
            "gate": (i, h, "mlp_in"),
            "up": (i, h, "mlp_in"),
            "down": (h, i, "down_in"),
        }


SHAPES = {
    "7b": Shape("llama-7b", 4096, 11008, 4096, 32),
    "70b": Shape("llama-2-70b", 8192, 28672, 1024, 80),
}
PATTERNS = {"unstructured": None, "2:4": (2, 4)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_rss_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1))


def measure(fn: Callable[[], object], device: torch.device) -> tuple[object, float, float]:
    """Run `fn` once; return its result, seconds, and extra peak memory in MiB above the start."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        seconds = time.perf_counter() - t0
        return out, seconds, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _cpu_rss_kib("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    return out, seconds, max(0, _cpu_rss_kib("VmHWM") - base) / 1024


def input_statistics(
    cols: int, tokens: int, device: torch.device, seed: int, hessian: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Wanda's per-column mean squared norm and (when asked) H = 2/N X^T X, from a random X with
    uneven column scales."""
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(tokens, cols, generator=g, device=device) * torch.linspace(0.1, 2.0, cols, device=device)
    return (x * x).sum(0) / tokens, (2.0 / tokens) * (x.t() @ x) if hessian else None


def run_shape(
    shape: Shape,
    methods: list[str],
    patterns: list[str],
    modules: list[str],
    tokens: int,
    device: torch.device,
    seed: int,
) -> list[dict]:
    rows: list[dict] = []
    specs = shape.modules()
    groups: dict[str, list[str]] = {}
    for mod in modules:
        groups.setdefault(specs[mod][2], []).append(mod)
    for gi, (group, members) in enumerate(groups.items()):
        cols = specs[members[0]][1]
        act, hessian = input_statistics(cols, tokens, device, seed + gi, "sparsegpt" in methods)
        factor = None
        for method in methods:
            for pattern in patterns:
                nm = PATTERNS[pattern]
                if method == "sparsegpt" and factor is None:
                    factor, secs, mib = measure(partial(factor_hessian, hessian), device)
                    rows.append(
                        dict(
                            shape=shape.name,
                            method=method,
                            pattern="any",
                            module=f"factor[{group}]",
                            out=cols,
                            inp=cols,
                            seconds=secs,
                            peak_extra_mib=mib,
                        )
                    )
                    print(
                        f"  {shape.name} sparsegpt factor[{group}] {cols}x{cols}: {secs:.2f} s, {mib:.0f} MiB",
                        flush=True,
                    )
                for mod in members:
                    out_f, in_f, _ = specs[mod]
                    g = torch.Generator(device=device).manual_seed(seed + 100 + len(rows))
                    weight = torch.randn(out_f, in_f, generator=g, device=device) * 0.02
                    if method == "magnitude":
                        call = partial(magnitude_mask, weight, 0.5, nm)
                    elif method == "wanda":
                        call = partial(wanda_mask, weight, act, 0.5, nm)
                    else:
                        call = partial(sparsegpt_prune, weight, factor, 0.5, nm)
                    _, secs, mib = measure(call, device)
                    rows.append(
                        dict(
                            shape=shape.name,
                            method=method,
                            pattern=pattern,
                            module=mod,
                            out=out_f,
                            inp=in_f,
                            seconds=secs,
                            peak_extra_mib=mib,
                        )
                    )
                    print(
                        f"  {shape.name} {method} {pattern} {mod} {out_f}x{in_f}: {secs:.2f} s, {mib:.0f} MiB",
                        flush=True,
                    )
                    del weight
        del act, hessian, factor
    return rows


def summarize(
    rows: list[dict], shape: Shape, methods: list[str], patterns: list[str], modules: list[str]
) -> list[dict]:
    summary = []
    complete = set(modules) == set(shape.modules())
    for method in methods:
        for pattern in patterns:
            mine = [
                r
                for r in rows
                if r["shape"] == shape.name and r["method"] == method and r["pattern"] in (pattern, "any")
            ]
            layer_s = sum(r["seconds"] for r in mine)
            summary.append(
                dict(
                    shape=shape.name,
                    method=method,
                    pattern=pattern,
                    modules=",".join(modules),
                    complete_layer=complete,
                    layer_seconds=layer_s,
                    layers=shape.layers,
                    model_seconds=layer_s * shape.layers,
                    peak_extra_mib=max((r["peak_extra_mib"] for r in mine), default=0.0),
                )
            )
    return summary


def print_table(summary: list[dict], device: str) -> None:
    print(f"\nper-layer pruning time and peak extra memory, device {device} (whole model = layer x layers)")
    head = f"{'shape':<12} {'method':<10} {'pattern':<12} {'layer s':>9} {'model min':>10} {'peak MiB':>9}  modules"
    print(head)
    print("-" * len(head))
    for s in summary:
        mods = "all" if s["complete_layer"] else s["modules"] + " (partial layer)"
        print(
            f"{s['shape']:<12} {s['method']:<10} {s['pattern']:<12} {s['layer_seconds']:>9.2f} "
            f"{s['model_seconds'] / 60:>10.1f} {s['peak_extra_mib']:>9.0f}  {mods}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shapes", default="7b", help="comma list of 7b,70b")
    ap.add_argument("--methods", default="magnitude,wanda,sparsegpt")
    ap.add_argument("--patterns", default="unstructured,2:4")
    ap.add_argument("--modules", default="q,k,v,o,gate,up,down", help="subset of q,k,v,o,gate,up,down")
    ap.add_argument("--tokens", type=int, default=1024, help="rows of the random X behind the statistics")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, help="write rows and summary as JSON here")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    shapes, methods, patterns, modules = (
        [v.strip() for v in arg.split(",") if v.strip()]
        for arg in (args.shapes, args.methods, args.patterns, args.modules)
    )
    choices = (
        (shapes, SHAPES, "shape"),
        (methods, ("magnitude", "wanda", "sparsegpt"), "method"),
        (patterns, PATTERNS, "pattern"),
        (modules, SHAPES["7b"].modules(), "module"),
    )
    for value, allowed, what in choices:
        bad = [v for v in value if v not in allowed]
        if bad:
            ap.error(f"unknown {what} {bad}; choose from {list(allowed)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rows, summary = [], []
    for key in shapes:
        shape = SHAPES[key]
        print(
            f"{shape.name}: hidden {shape.hidden}, intermediate {shape.intermediate}, kv rows {shape.kv}, "
            f"{shape.layers} layers; modules {','.join(modules)}",
            flush=True,
        )
        shape_rows = run_shape(shape, methods, patterns, modules, args.tokens, device, args.seed)
        rows += shape_rows
        summary += summarize(shape_rows, shape, methods, patterns, modules)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print_table(summary, f"{args.device} ({device_name}, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    if args.out:
        args.out.write_text(
            json.dumps(
                dict(
                    command=" ".join(
                        ["python", "bench/bench_prune_layers.py", *(argv if argv is not None else sys.argv[1:])]
                    ),
                    device=args.device,
                    device_name=device_name,
                    torch=torch.__version__,
                    threads=torch.get_num_threads(),
                    tokens=args.tokens,
                    rows=rows,
                    summary=summary,
                ),
                indent=1,
            )
        )
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
