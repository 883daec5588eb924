"""Protocol throughput on the demo model on CPU, side by side with lm-evaluation-harness.

Measures, in one run, on the same bundled items, model (the cached demo safetensors folder) and
prompt strings:
  * prunescope's whole protocol (open + shown generation, cloze and letter MC, gold trace, probes);
  * MC option log-likelihood scoring alone: prunescope (one cached prompt pass shared by all
    options) vs lm-eval's HFLM `loglikelihood` requests (context, delimiter + option);
  * greedy open generation alone: prunescope's KV-cached greedy loop vs HFLM `generate_until`;
and whether the MC decisions under the sum rule (what lm-eval's `acc` uses) agree item by item.

    .venv/bin/python bench/bench_protocol.py --n-items 48 --out bench/results/protocol.json

Needs `lm-eval==0.4.13` (the `bench` extra). Prints a table; writes everything to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any


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


def _ours_mc(loaded: Any, items: list[dict], config: Any) -> tuple[float, list[list[float]]]:
    """Cloze MC scoring alone: one prompt pass per batch, every option scored from its cache."""
    import torch

    from engine.prompts import PromptBuilder
    from engine.protocol import plan_batches
    from engine.protocol.scoring import prefix_pass, score

    builder = PromptBuilder(loaded.tokenizer, config)
    pad = loaded.tokenizer.pad_token_id
    lls: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for batch in plan_batches(loaded, items, config):
            prompts = [builder.open(it) for it in batch]
            rows = [
                (i, builder.continuation(p, o)) for i, (it, p) in enumerate(zip(batch, prompts)) for o in it["options"]
            ]
            state = prefix_pass(loaded.model, [p.ids for p in prompts], pad)
            scored = iter(score(loaded.model, state, [p.ids for p in prompts], rows, pad))
            for it in batch:
                lls[it["item_uid"]] = [next(scored).total for _ in it["options"]]
    return time.perf_counter() - t0, [lls[it["item_uid"]] for it in items]


def _ours_generation(loaded: Any, items: list[dict], config: Any) -> tuple[float, list[str]]:
    """Greedy open generation alone (KV-cached greedy loop, left-padded length-sorted batches)."""
    import torch

    from engine.prompts import PromptBuilder
    from engine.protocol import plan_batches
    from engine.protocol.generation import greedy_decode, stop_token_ids
    from engine.protocol.scoring import prefix_pass

    builder = PromptBuilder(loaded.tokenizer, config)
    stops = stop_token_ids(loaded.tokenizer, loaded.model)
    texts: dict[str, str] = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for batch in plan_batches(loaded, items, config):
            state = prefix_pass(loaded.model, [builder.open(it).ids for it in batch], loaded.tokenizer.pad_token_id)
            for it, g in zip(batch, greedy_decode(loaded.model, loaded.tokenizer, state, config.max_new_tokens, stops)):
                texts[it["item_uid"]] = g.text
    return time.perf_counter() - t0, [texts[it["item_uid"]] for it in items]


def _lm_eval(folder: str, items: list[dict], loaded: Any, config: Any) -> dict[str, Any]:
    """The same requests through lm-evaluation-harness's HF backend."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from engine.prompts import PromptBuilder
    from engine.protocol.generation import cut_answer, stop_token_ids

    builder = PromptBuilder(loaded.tokenizer, config)
    t_load = time.perf_counter()
    lm = HFLM(pretrained=folder, backend="causal", device="cpu", dtype="float32", batch_size=config.batch_size)
    load_s = time.perf_counter() - t_load
    ll_reqs, owners = [], []
    gen_reqs = []
    stops = [loaded.tokenizer.convert_ids_to_tokens(i) for i in stop_token_ids(loaded.tokenizer, loaded.model)]
    for k, it in enumerate(items):
        p = builder.open(it)
        for o in it["options"]:
            ll_reqs.append(Instance("loglikelihood", {}, (p.text, p.delimiter + o), len(ll_reqs)))
            owners.append(k)
        gen_reqs.append(
            Instance(
                "generate_until",
                {},
                (p.text, {"until": ["\n", *stops], "do_sample": False, "max_gen_toks": config.max_new_tokens}),
                k,
            )
        )
    t0 = time.perf_counter()
    ll_out = lm.loglikelihood(ll_reqs, disable_tqdm=True)
    mc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen_out = lm.generate_until(gen_reqs, disable_tqdm=True)
    gen_s = time.perf_counter() - t0
    lls: list[list[float]] = [[] for _ in items]
    for k, (ll, _greedy) in zip(owners, ll_out):
        lls[k].append(float(ll))
    return {"load_s": load_s, "mc_s": mc_s, "gen_s": gen_s, "lls": lls, "texts": [cut_answer(t)[0] for t in gen_out]}


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-items", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument(
        "--probes",
        default="failed",
        choices=["failed", "all", "none"],
        help="recovery probes in the whole-protocol run",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-lm-eval", action="store_true")
    ap.add_argument("--out", type=Path, required=True, help="results JSON")
    args = ap.parse_args(argv)

    import torch

    from engine.config import ModelSpec, ProtocolConfig
    from engine.models import load_model
    from engine.protocol import evaluate_batches

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(ModelSpec("demo", device="cpu"))
    items = _items(args.n_items, args.seed)
    n = len(items)
    config = ProtocolConfig(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, probes=args.probes)
    pool: dict[str, list[dict]] = {}
    for it in items:
        pool.setdefault(it["language"], []).append(it)

    t0 = time.perf_counter()
    records = {r["item_uid"]: r for batch in evaluate_batches(loaded, items, config, pool) for r in batch}
    whole_s = time.perf_counter() - t0
    mc_s, our_lls = _ours_mc(loaded, items, config)
    gen_s, our_texts = _ours_generation(loaded, items, config)
    result: dict[str, Any] = {
        "command": "bench/bench_protocol.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "model": loaded.info,
        "n_items": n,
        "languages": sorted({it["language"] for it in items}),
        "n_options": sum(len(it["options"]) for it in items),
        "protocol": config.to_dict(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "prunescope": {
            "whole_protocol_s": whole_s,
            "whole_protocol_items_per_s": n / whole_s,
            "probed_items": sum(r["probes"] is not None for r in records.values()),
            "mc_s": mc_s,
            "mc_items_per_s": n / mc_s,
            "gen_s": gen_s,
            "gen_items_per_s": n / gen_s,
        },
    }
    # the whole-protocol records and the MC-only path must agree on the sum-rule decisions
    protocol_decisions = [records[it["item_uid"]]["mc"]["decisions"]["sum"] for it in items]
    ours = [_argmax(v) for v in our_lls]
    result["prunescope"]["mc_only_equals_protocol"] = ours == protocol_decisions
    rows = [("prunescope whole protocol", n / whole_s, None)]
    rows += [("prunescope MC log-likelihood", n / mc_s, None), ("prunescope greedy generation", n / gen_s, None)]
    if not args.skip_lm_eval:
        import lm_eval

        le = _lm_eval(loaded.info["path"], items, loaded, config)
        theirs = [_argmax(v) for v in le["lls"]]
        agree = [a == b for a, b in zip(protocol_decisions, theirs)]
        diffs = [abs(x - y) for a, b in zip(our_lls, le["lls"]) for x, y in zip(a, b)]
        # lm-eval moves the context's trailing whitespace (the chat prompt's final "\n") into every
        # continuation, adding the same log P("\n") to each option of an item: a per-item offset
        spreads = [
            max(x - y for x, y in zip(a, b)) - min(x - y for x, y in zip(a, b)) for a, b in zip(our_lls, le["lls"])
        ]
        result["lm_eval"] = {
            "version": lm_eval.__version__,
            "load_s": le["load_s"],
            "mc_s": le["mc_s"],
            "mc_items_per_s": n / le["mc_s"],
            "gen_s": le["gen_s"],
            "gen_items_per_s": n / le["gen_s"],
        }
        result["agreement"] = {
            "mc_sum_decisions_equal": sum(agree),
            "of": n,
            "all_equal": all(agree),
            "disagreeing_items": [it["item_uid"] for it, ok in zip(items, agree) if not ok],
            "max_abs_loglik_diff": max(diffs),
            "max_within_item_diff_spread": max(spreads),
            "logliks": {it["item_uid"]: {"prunescope": a, "lm_eval": b} for it, a, b in zip(items, our_lls, le["lls"])},
            "greedy_text_equal": sum(a == b for a, b in zip(our_texts, le["texts"])),
        }
        rows[1] = (rows[1][0], rows[1][1], n / le["mc_s"])
        rows[2] = (rows[2][0], rows[2][1], n / le["gen_s"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print(
        f"{n} bundled items, {len(result['languages'])} languages, {result['n_options']} options, "
        f"SmolLM2-135M-Instruct fp32 on CPU, {result['threads']} thread(s), batch {config.batch_size}, "
        f"max_new_tokens {config.max_new_tokens}"
    )
    print(f"{'measure':32} {'prunescope items/s':>19} {'lm-eval items/s':>16} {'speed-up':>9}")
    for name, ours_rate, theirs_rate in rows:
        other = f"{theirs_rate:16.2f}" if theirs_rate else f"{'-':>16}"
        ratio = f"{ours_rate / theirs_rate:8.2f}x" if theirs_rate else f"{'-':>9}"
        print(f"{name:32} {ours_rate:19.2f} {other} {ratio}")
    print(f"whole protocol: {result['prunescope']['probed_items']} of {n} items probed (probes={config.probes})")
    if "agreement" in result:
        a = result["agreement"]
        print(
            f"MC decisions (sum rule) equal to lm-eval: {a['mc_sum_decisions_equal']}/{n}; "
            f"max |loglik diff| {a['max_abs_loglik_diff']:.2e} (same within an item to "
            f"{a['max_within_item_diff_spread']:.1e}); greedy texts equal: {a['greedy_text_equal']}/{n}"
        )
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
