"""Protocol throughput on the demo model, side by side with lm-evaluation-harness, and as a fraction of
the machine's matmul rate.

In one process, on the same bundled items, model (the cached demo safetensors folder) and prompt
strings, it measures:
  * prunescope's whole protocol (open and shown generation, cloze and letter MC, gold trace, probes on
    failed items) with the fast backend, and optionally (--with-plain) with the plain backend;
  * MC option log-likelihood alone: prunescope (one pass per batch: shared prefix once, each prompt
    with its options as a tree) vs lm-eval's HFLM `loglikelihood` requests (context, delimiter + option);
  * greedy open generation alone: prunescope's decoding loop vs HFLM `generate_until`;
and checks that the MC decisions under the sum rule (lm-eval's `acc`) and the greedy texts agree item
by item. It counts the floating-point work of prunescope's passes (decoder linear layers 2 x params
per token, attention 4 x hidden per query and key it sees per layer, the output layer 2 x vocab x
hidden per logit row; padding counted apart) and measures the machine's fp32 matmul rate (2048^3, same
threads, the faster of `torch.mm` and the oneDNN GEMM the engine uses) before and after each whole
protocol, so the achieved rate is a fraction of the best this machine did in the run. It then replays
the linear products alone of the fastest whole protocol's passes, at their shapes: their time is a
floor for any implementation of those passes, so it gives the highest fraction the protocol could reach
with attention, normalisation and everything else free (`linear_only`). The linear
weights are packed for the protocol once per batch size,
outside the timings (a run does it once, like lm-eval's model loading; `setup_s`), and each measured
part opens its own session, so no part reuses another's prompt prefixes. Every measure runs
`--repeats` times (default 3), ours and lm-eval's interleaved; the fastest of each counts (a shared
machine only slows a measure down) and all are kept (`repeats`). Rates are by wall clock and by
process CPU time; the load average is recorded at the start and the end.

    .venv/bin/python bench/bench_protocol.py --n-items 48 --threads 1 --out bench/results/protocol.json

Needs `lm-eval==0.4.13` (`make bench-deps`) unless --skip-lm-eval. `--device cuda` and several
`--batch-sizes` are for bench/gpu.sh. Prints a table; writes everything to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _items(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` bundled items spread over every bundled language (seeded subset, stable)."""
    from engine.config import ItemsSpec
    from engine.items.loader import load_items

    every = load_items(ItemsSpec(source="bundled", n_per_language=10_000, seed=seed))
    langs = sorted({it["language"] for it in every})
    per = -(-n // len(langs))
    items = load_items(ItemsSpec(source="bundled", n_per_language=per, seed=seed))
    by_lang: dict[str, list[dict]] = {}
    for it in items:
        by_lang.setdefault(it["language"], []).append(it)
    picked: list[dict] = []
    while len(picked) < n and any(by_lang.values()):
        for lang in langs:
            if by_lang.get(lang) and len(picked) < n:
                picked.append(by_lang[lang].pop(0))
    return picked


def demo_model(threads_asked: int | None, device: str = "cpu") -> tuple[Any, Any, tuple[float, float, float]]:
    """(the demo model, the threads the engine's policy chose, the load average before loading), with
    reproducible BLAS set first."""
    from engine.threads import apply_threads, choose_threads, reproducible_blas

    reproducible_blas()
    from engine.config import ModelSpec
    from engine.models import load_model

    threads = choose_threads(threads_asked)
    apply_threads(threads)
    start_load = os.getloadavg()
    return load_model(ModelSpec("demo", device=device)), threads, start_load


class Clock:
    """Wall and process CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.t, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.t, time.process_time() - self.c


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _rate(run: Any, device: str, n: int, reps: int) -> dict[str, float]:
    """Best GFLOP/s of `run` (one n^3 product) over 3 blocks of `reps`, by wall clock and by CPU time."""
    run()
    _sync(device)
    wall = cpu = 0.0
    for _ in range(3):
        with Clock() as clock:
            for _ in range(reps):
                run()
            _sync(device)
        flops = 2 * n**3 * reps / 1e9
        wall, cpu = max(wall, flops / clock.wall), max(cpu, flops / clock.cpu)
    return {"wall_gflops": wall, "cpu_gflops": cpu}


def matmul_rate(device: str, n: int = 2048, reps: int = 5) -> dict[str, Any]:
    """fp32 GFLOP/s of an n^3 matmul, by wall clock and by CPU time: the faster of `torch.mm` (the BLAS
    torch was built with) and, on the CPU, a linear layer inside the engine's `packed_linears` (the
    oneDNN GEMM where it is enabled; on an AMD EPYC it ran at 2.4x MKL's rate). Each path's own rates
    are kept too."""
    import torch

    from engine.onednn import onednn_enabled, packed_linears

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    paths = {"torch.mm": _rate(lambda: a @ b, device, n, reps)}
    if device == "cpu" and onednn_enabled():
        layer = torch.nn.Linear(n, n, bias=False)
        layer.weight.data = b.t().contiguous()
        with torch.inference_mode(), packed_linears(layer):
            paths["onednn"] = _rate(lambda: layer(a), device, n, reps)
    return {
        "wall_gflops": max(r["wall_gflops"] for r in paths.values()),
        "cpu_gflops": max(r["cpu_gflops"] for r in paths.values()),
        "paths": paths,
    }


def _decoder_linears(model: Any) -> list[Any]:
    """The linear layers of the model's decoder layers (the output layer is apart)."""
    return [m for layer in model.get_decoder().layers for m in layer.modules() if m.__class__.__name__ == "Linear"]


def _linear_gflop(model: Any, tokens: int, logit_rows: int) -> float:
    """GFLOP of the decoder's linear layers on `tokens` tokens and the output layer on `logit_rows` rows."""
    linear = sum(m.weight.numel() for m in _decoder_linears(model))
    return (2 * linear * tokens + 2 * model.config.vocab_size * model.config.hidden_size * logit_rows) / 1e9


def flops(model: Any, meter: Any) -> dict[str, float]:
    """GFLOP of the metered passes, real work and as computed (padding included)."""
    c = model.config
    hidden = c.num_attention_heads * getattr(c, "head_dim", c.hidden_size // c.num_attention_heads)
    attention = 4 * hidden * c.num_hidden_layers

    def total(tokens: int, keys: int, logits: int) -> float:
        return _linear_gflop(model, tokens, logits) + attention * keys / 1e9

    return {
        "real_gflop": total(meter.real_tokens, meter.real_key_reads, meter.real_logit_rows),
        "computed_gflop": total(meter.computed_tokens, meter.computed_key_reads, meter.computed_logit_rows),
    }


def linear_only(
    model: Any, meter: Any, real_gflop: float, peak: dict[str, float], device: str, repeats: int = 2
) -> dict[str, float]:
    """The metered passes' linear products alone, replayed at their shapes: every decoder linear layer on
    each pass's computed tokens and the output layer on its computed logit rows (random inputs, the
    weights as the protocol used them). Their time bounds any implementation of the same passes from
    below, so `ceiling_of_matmul_*` (the whole protocol's real work over that time, as a fraction of the
    matmul rate) is the most it could reach with attention, normalisation and the rest free. The fastest
    of `repeats` replays counts."""
    import torch

    linears = _decoder_linears(model)
    head = model.get_output_embeddings()
    w = head.weight
    rows = max(max(t, r) for t, r in meter.shapes)
    widths = {m.in_features for m in [*linears, head]}
    inputs = {k: torch.randn(rows, k, device=w.device, dtype=w.dtype) for k in widths}
    clocks = []
    for _ in range(repeats):
        with torch.inference_mode(), Clock() as clock:
            for tokens, logit_rows in meter.shapes:
                for m in linears:
                    m(inputs[m.in_features][:tokens])
                if logit_rows:
                    head(inputs[head.in_features][:logit_rows])
            _sync(device)
        clocks.append(clock)
    clock = min(clocks, key=lambda c: c.wall)
    gflop = _linear_gflop(model, meter.computed_tokens, meter.computed_logit_rows)
    return {
        "wall_s": clock.wall,
        "cpu_s": clock.cpu,
        "computed_gflop": gflop,
        "gflops_wall": gflop / clock.wall,
        "of_matmul_wall": gflop / clock.wall / peak["wall_gflops"],
        "ceiling_of_matmul_wall": real_gflop / clock.wall / peak["wall_gflops"],
        "ceiling_of_matmul_cpu": real_gflop / clock.cpu / peak["cpu_gflops"],
    }


def _ours_mc(loaded: Any, items: list[dict], config: Any) -> list[list[float]]:
    """Cloze MC scores alone: per batch, one pass over the prompts (shared prefix once) with their options."""
    import torch

    from engine.prompts import PromptBuilder
    from engine.protocol import plan_batches
    from engine.protocol.kvcache import packed_attention
    from engine.protocol.rows import Group, fill, plan_layout

    builder = PromptBuilder(loaded.tokenizer, config)
    lls: dict[str, list[float]] = {}
    with torch.inference_mode(), packed_attention(loaded.model):
        for batch in plan_batches(loaded, items, config):
            prompts = [builder.open(it) for it in batch]
            trees = [[builder.continuation(p, o) for o in it["options"]] for it, p in zip(batch, prompts)]
            ids = [p.ids for p in prompts]
            layout = plan_layout(ids, trees)
            group = Group.new(loaded.model, len(ids), layout.columns)
            scores, _ = fill(loaded.model, group, 0, 0, layout, ids, loaded.tokenizer.pad_token_id, trees)
            for it, s in zip(batch, scores):
                lls[it["item_uid"]] = [x.total for x in s]
    return [lls[it["item_uid"]] for it in items]


def _ours_generation(loaded: Any, items: list[dict], config: Any) -> list[str]:
    """Greedy open generation alone: prompts as above, then one decoding loop per batch."""
    import torch

    from engine.prompts import PromptBuilder
    from engine.protocol import plan_batches
    from engine.protocol.generation import stop_token_ids
    from engine.protocol.kvcache import packed_attention
    from engine.protocol.lanes import Lane, Lanes, decode_lanes
    from engine.protocol.rows import Group, fill, plan_layout

    builder = PromptBuilder(loaded.tokenizer, config)
    stops = stop_token_ids(loaded.tokenizer, loaded.model)
    pad = loaded.tokenizer.pad_token_id
    texts: dict[str, str] = {}
    with torch.inference_mode(), packed_attention(loaded.model):
        for batch in plan_batches(loaded, items, config):
            ids = [builder.open(it).ids for it in batch]
            layout = plan_layout(ids)
            group = Group.new(loaded.model, len(ids), layout.columns + config.max_new_tokens)
            _, last = fill(loaded.model, group, 0, 0, layout, ids, pad)
            lanes = Lanes(greedy=[Lane(r, 0, last[i]) for i, r in enumerate(layout.row_of())])
            out = decode_lanes(loaded.model, loaded.tokenizer, group, lanes, config.max_new_tokens, stops)
            for it, g in zip(batch, out.greedy):
                texts[it["item_uid"]] = g.text
    return [texts[it["item_uid"]] for it in items]


class LmEval:
    """The same requests through lm-evaluation-harness's HF backend (its model loaded once)."""

    def __init__(self, folder: str, items: list[dict], loaded: Any, config: Any, device: str) -> None:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM

        from engine.prompts import PromptBuilder
        from engine.protocol.generation import stop_token_ids

        builder = PromptBuilder(loaded.tokenizer, config)
        self.n, self.device = len(items), device
        with Clock() as load:
            self.lm = HFLM(
                pretrained=folder, backend="causal", device=device, dtype="float32", batch_size=config.batch_size
            )
        self.load_s = load.wall
        self.ll_reqs: list[Any] = []
        self.owners: list[int] = []
        self.gen_reqs: list[Any] = []
        stops = [loaded.tokenizer.convert_ids_to_tokens(i) for i in stop_token_ids(loaded.tokenizer, loaded.model)]
        for k, it in enumerate(items):
            p = builder.open(it)
            for o in it["options"]:
                self.ll_reqs.append(Instance("loglikelihood", {}, (p.text, p.delimiter + o), len(self.ll_reqs)))
                self.owners.append(k)
            until = {"until": ["\n", *stops], "do_sample": False, "max_gen_toks": config.max_new_tokens}
            self.gen_reqs.append(Instance("generate_until", {}, (p.text, until), k))

    def mc(self) -> tuple[Clock, list[list[float]]]:
        with Clock() as clock:
            out = self.lm.loglikelihood(self.ll_reqs, disable_tqdm=True)
            _sync(self.device)
        lls: list[list[float]] = [[] for _ in range(self.n)]
        for k, (ll, _greedy) in zip(self.owners, out):
            lls[k].append(float(ll))
        return clock, lls

    def gen(self) -> tuple[Clock, list[str]]:
        from engine.protocol.generation import cut_answer

        with Clock() as clock:
            out = self.lm.generate_until(self.gen_reqs, disable_tqdm=True)
            _sync(self.device)
        return clock, [cut_answer(t)[0] for t in out]


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def _rates(n: int, clock: Clock, work: dict[str, float] | None, peak: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "wall_s": clock.wall,
        "cpu_s": clock.cpu,
        "items_per_s": n / clock.wall,
        "items_per_cpu_s": n / clock.cpu,
    }
    if work is not None:
        out.update(work)
        out["gflops_wall"] = work["real_gflop"] / clock.wall
        out["gflops_cpu"] = work["real_gflop"] / clock.cpu
        out["of_matmul_wall"] = out["gflops_wall"] / peak["wall_gflops"]
        out["of_matmul_cpu"] = out["gflops_cpu"] / peak["cpu_gflops"]
    return out


def run_one_size(loaded: Any, items: list[dict], batch_size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every measure at one batch size."""
    import torch

    from engine.config import ProtocolConfig
    from engine.onednn import packed_linears
    from engine.runner import one_shot_pool

    config = ProtocolConfig(batch_size=batch_size, max_new_tokens=args.max_new_tokens, probes=args.probes)
    pool = one_shot_pool(items)
    res: dict[str, Any] = {"batch_size": batch_size, "protocol": config.to_dict()}
    # the weights packed once, as a run does, outside the timings (like lm-eval's loading); each
    # measured part then opens its own session (its own shared-prefix store), as one run would
    with contextlib.ExitStack() as stack:
        with Clock() as setup:
            stack.enter_context(packed_linears(loaded.model))
        res["setup_s"] = setup.wall
        _measure(loaded, items, config, pool, args, res)
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return res


def _measure(
    loaded: Any, items: list[dict], config: Any, pool: dict, args: argparse.Namespace, res: dict[str, Any]
) -> None:
    from engine.protocol import evaluate_batch, plan_batches
    from engine.protocol.rows import metered
    from engine.protocol.session import protocol_session

    n = len(items)

    def whole(plain: bool) -> tuple[Clock, dict[str, dict], Any]:
        with metered() as meter, Clock() as clock, protocol_session(loaded.model):
            records = {
                r["item_uid"]: r
                for batch in plan_batches(loaded, items, config)
                for r in evaluate_batch(loaded, batch, config, pool, plain=plain)
            }
            _sync(args.device)
        return clock, records, meter

    # every measure `repeats` times, ours and lm-eval's interleaved; the fastest of each counts (a shared
    # machine only ever slows a measure down), every repeat is kept
    le = None if args.skip_lm_eval else LmEval(loaded.info["path"], items, loaded, config, args.device)
    times: dict[str, list[dict[str, float]]] = {}
    best: dict[str, tuple[Clock, Any]] = {}

    def keep(name: str, clock: Clock, out: Any) -> None:
        times.setdefault(name, []).append({"wall_s": clock.wall, "cpu_s": clock.cpu})
        if name not in best or clock.wall < best[name][0].wall:
            best[name] = (clock, out)

    def ours(name: str, part: Any) -> Any:
        with metered() as meter, Clock() as clock, protocol_session(loaded.model):
            out = part(loaded, items, config)
            _sync(args.device)
        keep(name, clock, meter)
        return out

    rates = []
    for _ in range(args.repeats):
        before = matmul_rate(args.device)
        clock, records, meter = whole(plain=False)
        after = matmul_rate(args.device)
        rates += [before, after]
        keep("whole", clock, meter)
        our_lls = ours("mc", _ours_mc)
        if le is not None:
            keep("lm_eval_mc", *le.mc())
        our_texts = ours("gen", _ours_generation)
        if le is not None:
            keep("lm_eval_gen", *le.gen())
    # the machine's rate: the best of the matmuls measured before and after each whole protocol
    peak = {k: max(r[k] for r in rates) for k in ("wall_gflops", "cpu_gflops")}
    by_path = {name: max(r["paths"][name]["wall_gflops"] for r in rates) for name in rates[0]["paths"]}
    res["matmul"] = {"measured": rates, "best": peak, "best_wall_by_path": by_path}
    res["repeats"] = times
    clock, meter = best["whole"]
    res["whole"] = _rates(n, clock, flops(loaded.model, meter), peak)
    res["whole"]["probed_items"] = sum(r["probes"] is not None for r in records.values())
    res["whole"]["meter"] = meter.as_dict()
    res["whole"]["linear_only"] = linear_only(loaded.model, meter, res["whole"]["real_gflop"], peak, args.device)
    if args.with_plain:
        plain_clock, plain_records, _ = whole(plain=True)
        res["whole_plain"] = _rates(n, plain_clock, None, peak)
        res["whole_plain"]["same_decisions_texts"] = all(
            plain_records[u]["mc"]["decisions"] == records[u]["mc"]["decisions"]
            and plain_records[u]["open"]["text"] == records[u]["open"]["text"]
            for u in records
        )
    res["mc"] = _rates(n, best["mc"][0], flops(loaded.model, best["mc"][1]), peak)
    res["gen"] = _rates(n, best["gen"][0], flops(loaded.model, best["gen"][1]), peak)
    protocol_decisions = [records[it["item_uid"]]["mc"]["decisions"]["sum"] for it in items]
    res["mc"]["equals_protocol"] = [_argmax(v) for v in our_lls] == protocol_decisions
    res["gen"]["equals_protocol"] = our_texts == [records[it["item_uid"]]["open"]["text"] for it in items]
    if le is not None:
        import lm_eval

        le_mc, le_lls = best["lm_eval_mc"]
        le_gen, le_texts = best["lm_eval_gen"]
        theirs = [_argmax(v) for v in le_lls]
        agree = [a == b for a, b in zip(protocol_decisions, theirs)]
        diffs = [abs(x - y) for a, b in zip(our_lls, le_lls) for x, y in zip(a, b)]
        # lm-eval moves the context's trailing whitespace (the chat prompt's final "\n") into every
        # continuation, adding the same log P("\n") to each option of an item: a per-item offset
        spreads = [max(x - y for x, y in zip(a, b)) - min(x - y for x, y in zip(a, b)) for a, b in zip(our_lls, le_lls)]
        res["lm_eval"] = {
            "version": lm_eval.__version__,
            "load_s": le.load_s,
            "mc": {
                "wall_s": le_mc.wall,
                "cpu_s": le_mc.cpu,
                "items_per_s": n / le_mc.wall,
                "items_per_cpu_s": n / le_mc.cpu,
            },
            "gen": {
                "wall_s": le_gen.wall,
                "cpu_s": le_gen.cpu,
                "items_per_s": n / le_gen.wall,
                "items_per_cpu_s": n / le_gen.cpu,
            },
        }
        res["agreement"] = {
            "mc_sum_decisions_equal": sum(agree),
            "of": n,
            "disagreeing_items": [it["item_uid"] for it, ok in zip(items, agree) if not ok],
            "max_abs_loglik_diff": max(diffs),
            "max_within_item_diff_spread": max(spreads),
            "greedy_text_equal": sum(a == b for a, b in zip(our_texts, le_texts)),
            "greedy_text_differences": {
                it["item_uid"]: {"prunescope": a, "lm_eval": b}
                for it, a, b in zip(items, our_texts, le_texts)
                if a != b
            },
        }
        for part in ("mc", "gen"):
            res[part]["speedup_wall"] = res[part]["items_per_s"] / res["lm_eval"][part]["items_per_s"]
            res[part]["speedup_cpu"] = res[part]["items_per_cpu_s"] / res["lm_eval"][part]["items_per_cpu_s"]


def _print(result: dict[str, Any]) -> None:
    print(
        f"{result['n_items']} bundled items, {len(result['languages'])} languages, {result['n_options']} options, "
        f"{result['model']['id']} fp32 on {result['device']}, {result['threads']['threads']} thread(s) "
        f"({result['threads']['source']}), max_new_tokens {result['max_new_tokens']}, "
        f"load average {result['load_average']['start'][0]:.2f} -> {result['load_average']['end'][0]:.2f}"
    )
    for res in result["sizes"]:
        m = res["matmul"]["best"]
        paths = ", ".join(f"{k} {v:.1f}" for k, v in res["matmul"]["best_wall_by_path"].items())
        print(
            f"\nbatch {res['batch_size']}: matmul {m['wall_gflops']:.1f} GFLOP/s (wall), {m['cpu_gflops']:.1f} (CPU)"
            f" [wall by path: {paths}]"
        )
        print(
            f"{'measure':30} {'items/s':>8} {'lm-eval':>8} {'ratio':>7}   {'per CPU-s':>9} {'lm-eval':>8} {'ratio':>7}"
            f"   {'GFLOP/s':>8} {'of matmul':>9}"
        )
        rows = [("whole protocol", "whole"), ("whole protocol, plain backend", "whole_plain")]
        rows += [("MC option log-likelihood", "mc"), ("greedy open generation", "gen")]
        for name, key in rows:
            if key not in res:
                continue
            r = res[key]
            le = res.get("lm_eval", {}).get(key)
            other = (
                f"{le['items_per_s']:8.2f} {r['items_per_s'] / le['items_per_s']:6.2f}x" if le else f"{'-':>8} {'-':>7}"
            )
            other_cpu = (
                f"{le['items_per_cpu_s']:8.2f} {r['items_per_cpu_s'] / le['items_per_cpu_s']:6.2f}x"
                if le
                else f"{'-':>8} {'-':>7}"
            )
            gf = (
                f"{r['gflops_cpu']:8.1f} {100 * r['of_matmul_cpu']:5.0f}% CPU, {100 * r['of_matmul_wall']:.0f}% wall"
                if "gflops_cpu" in r
                else ""
            )
            print(f"{name:30} {r['items_per_s']:8.2f} {other}   {r['items_per_cpu_s']:9.2f} {other_cpu}   {gf}")
        w = res["whole"]
        print(
            f"whole protocol: {w['probed_items']} of {result['n_items']} items probed; {w['real_gflop']:.0f} GFLOP of "
            f"work, {w['computed_gflop']:.0f} computed (padding and masked attention)"
        )
        lo = w["linear_only"]
        print(
            f"its linear products alone, replayed at its passes' shapes: {lo['wall_s']:.1f} s, "
            f"{lo['gflops_wall']:.1f} GFLOP/s ({100 * lo['of_matmul_wall']:.0f}% of matmul); with nothing else taking "
            f"time the whole protocol would reach {100 * lo['ceiling_of_matmul_wall']:.0f}% of matmul (wall), "
            f"{100 * lo['ceiling_of_matmul_cpu']:.0f}% (CPU)"
        )
        if "agreement" in res:
            a = res["agreement"]
            print(
                f"MC decisions (sum rule) equal to lm-eval: {a['mc_sum_decisions_equal']}/{a['of']}; greedy texts "
                f"equal: {a['greedy_text_equal']}/{a['of']}; max |loglik diff| {a['max_abs_loglik_diff']:.2e} "
                f"(the same within an item to {a['max_within_item_diff_spread']:.1e})"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--n-items", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batch-sizes", default=None, help="comma-separated batch sizes (overrides --batch-size)")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--probes", default="failed", choices=["failed", "all", "none"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the engine's thread policy)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="times each measure runs (the fastest counts)")
    ap.add_argument("--with-plain", action="store_true", help="also time the whole protocol on the plain backend")
    ap.add_argument("--skip-lm-eval", action="store_true")
    ap.add_argument("--out", type=Path, required=True, help="results JSON")
    args = ap.parse_args(argv)

    import torch

    loaded, threads, start_load = demo_model(args.threads, args.device)
    items = _items(args.n_items, args.seed)
    sizes = [int(x) for x in args.batch_sizes.split(",")] if args.batch_sizes else [args.batch_size]
    result: dict[str, Any] = {
        "command": "bench/bench_protocol.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": loaded.info,
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(args.device),
        "n_items": len(items),
        "languages": sorted({it["language"] for it in items}),
        "n_options": sum(len(it["options"]) for it in items),
        "max_new_tokens": args.max_new_tokens,
        "threads": threads.as_dict(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    result["sizes"] = [run_one_size(loaded, items, b, args) for b in sizes]
    result["load_average"] = {"start": start_load, "end": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _print(result)
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
