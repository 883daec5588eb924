"""Synthetic study folders in the run-folder format, for tests and benchmarks of `stats` and `tui`.

The outcomes follow a simple generative model (item difficulty, language offset, and a pruning
penalty that hits open generation harder than multiple choice), so recognition-only errors grow
with sparsity the way the paper describes. Torch-free and fast (a million lines in seconds).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.contract.labels import category, condition_label, pattern_sparsity
from engine.contract.reader import ITEMS, MANIFEST, OUTCOMES, SCHEMA_VERSION
from engine.runfolder import dumps_line, items_hash, sha256_text, write_json_atomic, write_jsonl_atomic

DEFAULT_LANGUAGES = ("en", "de", "es", "ru", "zh", "sw")
DEFAULT_CONDITIONS: tuple[tuple[str, float, str], ...] = (
    ("dense", 0.0, "unstructured"),
    ("wanda", 0.5, "unstructured"),
    ("wanda", 0.7, "unstructured"),
    ("sparsegpt", 0.5, "unstructured"),
    ("magnitude", 0.5, "unstructured"),
)
_LANG_OFFSET = {"en": 0.8, "de": 0.4, "es": 0.4, "fr": 0.4, "ru": 0.0, "zh": -0.2, "ja": -0.3, "ar": -0.4, "sw": -0.9}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def synthetic_items(n_per_language: int, languages: Sequence[str], seed: int = 0) -> list[dict[str, Any]]:
    """Parallel items: item k has one translation per language, sharing `parallel_id`."""
    rng = random.Random(seed)
    items = []
    for k in range(n_per_language):
        answer = f"answer{k}"
        distractors = [f"wrong{k}a", f"wrong{k}b", f"wrong{k}c"]
        gold = rng.randrange(4)
        for lang in languages:
            options = distractors[:]
            options.insert(gold, answer)
            item = {
                "item_uid": f"synthetic/default/test/q{k:06d}/{lang}",
                "language": lang,
                "question": f"[{lang}] What is the answer to question {k}?",
                "context": None,
                "answer": answer,
                "aliases": [f"ans {k}"],
                "options": options,
                "gold_index": gold,
                "parallel_id": f"q{k:06d}",
                "source": {
                    "dataset": "synthetic",
                    "config": "default",
                    "split": "test",
                    "native_id": f"q{k:06d}",
                    "distractors": "synthetic",
                },
            }
            item["content_hash"] = sha256_text(dumps_line(dict(item.items())))
            items.append(item)
    return items


def _generation(text: str, correct: bool, gold: str, lang: str) -> dict[str, Any]:
    return {
        "text": text,
        "correct": correct,
        "match": {"rule": "exact" if correct else "none", "alias": gold if correct else None, "normalizer": lang},
        "em": 1.0 if correct else 0.0,
        "f1": 1.0 if correct else 0.0,
        "n_new_tokens": max(1, len(text.split())),
        "stop": "eos",
    }


def synthetic_outcome(
    item: dict[str, Any],
    rng: random.Random,
    ability: float,
    penalty_open: float,
    penalty_mc: float,
    probes: bool = True,
) -> dict[str, Any]:
    """One schema-valid outcome line for `item` under the generative model."""
    lang = item["language"]
    base = ability + _LANG_OFFSET.get(lang, 0.0)
    open_ok = rng.random() < _sigmoid(base - penalty_open)
    mc_ok = rng.random() < _sigmoid(base + 1.5 - penalty_mc)
    shown_ok = rng.random() < _sigmoid(base + 0.8 - (penalty_open + penalty_mc) / 2)
    gold_i = item["gold_index"]
    n = len(item["options"])
    choice = gold_i if mc_ok else (gold_i + 1 + rng.randrange(n - 1)) % n
    sums = [-rng.uniform(4.0, 9.0) for _ in range(n)]
    sums[choice] = max(sums) + rng.uniform(0.1, 1.0)
    n_tok = [2 + (i % 2) for i in range(n)]
    n_chr = [len(o) for o in item["options"]]
    n_byt = [len(o.encode("utf-8")) for o in item["options"]]
    per_char = [s / c for s, c in zip(sums, n_chr)]
    # The stored decision rule is per_char: make its argmax the sampled choice.
    per_char[choice] = max(per_char) + 0.05
    sums = [pc * c for pc, c in zip(per_char, n_chr)]
    scores = {
        "sum": sums,
        "per_token": [s / t for s, t in zip(sums, n_tok)],
        "per_char": per_char,
        "per_byte": [s / b for s, b in zip(sums, n_byt)],
    }
    letters = ["A", "B", "C", "D", "E", "F"][:n]
    letter_lp = [-rng.uniform(1.0, 5.0) for _ in range(n)]
    decisions = {k: max(range(n), key=lambda i, v=v: v[i]) for k, v in scores.items()}
    decisions["letter"] = max(range(n), key=lambda i: letter_lp[i])
    rank = 1 if open_ok else (2 + int(rng.expovariate(0.35)) if rng.random() < 0.8 else 50 + rng.randrange(5000))
    n_gold = 2
    lps = [-rng.uniform(0.05, 0.5) if open_ok else -rng.uniform(0.5, 4.0) for _ in range(n_gold)]
    greedy_lp = -rng.uniform(0.5, 3.0)
    seq = sum(lps)
    open_text = item["answer"] if open_ok else f"not {item['answer']}"
    out: dict[str, Any] = {
        "item_uid": item["item_uid"],
        "content_hash": item["content_hash"],
        "language": lang,
        "open": _generation(open_text, open_ok, item["answer"], lang),
        "shown": _generation(
            item["answer"] if shown_ok else item["options"][(gold_i + 1) % n], shown_ok, item["answer"], lang
        ),
        "mc": {
            "gold_index": gold_i,
            "options": [
                {"text": o, "loglik": s, "n_tokens": t, "n_chars": c, "n_bytes": b}
                for o, s, t, c, b in zip(item["options"], sums, n_tok, n_chr, n_byt)
            ],
            "scores": scores,
            "letter": {"letters": letters, "logprobs": letter_lp},
            "decisions": decisions,
            "rule": "per_char",
            "choice": decisions["per_char"],
            "correct": decisions["per_char"] == gold_i,
        },
        "gold_trace": {
            "target": item["answer"],
            "token_ids": [1000 + i for i in range(n_gold)],
            "tokens": [item["answer"][: len(item["answer"]) // 2], item["answer"][len(item["answer"]) // 2 :]],
            "logprobs": lps,
            "ranks": [rank] + [1 + rng.randrange(3) for _ in range(n_gold - 1)],
            "first_token_rank": rank,
            "seq_logprob": seq,
            "greedy_seq_logprob": seq if open_ok else greedy_lp,
            "margin": 0.0 if open_ok else seq - greedy_lp,
        },
        "category": category(open_ok, decisions["per_char"] == gold_i),
        "demotion": None,
        "probes": None,
    }
    if not open_ok and probes:
        beam_hit = rank <= 4 and rng.random() < 0.7
        hits = sum(rng.random() < (0.3 if rank <= 10 else 0.02) for _ in range(4))
        one = rank <= 10 and rng.random() < 0.5
        out["probes"] = {
            "beam": {
                "k": 4,
                "beams": [
                    {
                        "text": item["answer"] if (beam_hit and i == 1) else f"beam{i}",
                        "score": -1.0 - i,
                        "correct": beam_hit and i == 1,
                    }
                    for i in range(4)
                ],
                "hit_top": False,
                "hit_any": beam_hit,
            },
            "sampling": {
                "n": 4,
                "temperature": 0.7,
                "top_p": 1.0,
                "seed": 0,
                "samples": [{"text": item["answer"] if i < hits else f"s{i}", "correct": i < hits} for i in range(4)],
                "hits": hits,
            },
            "one_shot": {
                "example_uid": "synthetic/default/test/q000000/" + lang,
                "text": item["answer"] if one else "?",
                "correct": one,
            },
        }
        out["demotion"] = "demoted" if (rank <= 10 or beam_hit or hits or one) else "erased"
    return out


def synthetic_manifest(
    run_id: str,
    method: str,
    sparsity: float,
    pattern: str,
    items: list[dict[str, Any]],
    status: str = "complete",
    model: str = "synthetic/tiny-llama",
    n_params: int = 135_000_000,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "status": status,
        "error": None,
        "model": {
            "id": model,
            "revision": None,
            "source": "synthetic",
            "architecture": "LlamaForCausalLM",
            "n_params": n_params,
            "dtype": "float32",
            "instruct": True,
        },
        "condition": {
            "method": method,
            "sparsity": sparsity,
            "pattern": pattern,
            "calibration": None
            if method == "dense"
            else {"source": "bundled", "nsamples": 8, "seqlen": 128, "seed": 0, "hash": "sha256:" + "0" * 64},
            "pruning_report": None,
        },
        "items": {"n": len(items), "hash": items_hash(items), "languages": sorted({i["language"] for i in items})},
        "prompts": {"templates": {"open": "Q: {question}\nA:"}, "hashes": {"open": sha256_text("Q: {question}\nA:")}},
        "decoding": {"max_new_tokens": 32, "greedy": True},
        "matching": {"containment": True},
        "probes": {"mode": "failed", "beam_width": 4, "n_samples": 4, "temperature": 0.7},
        "demotion_rule": {"max_rank": 10, "or_recovered_by_probe": True},
        "seeds": {"protocol": 0},
        "versions": {"prunescope": "synthetic"},
        "git": None,
        "hardware": {"device": "none"},
        "timings": {},
    }


def make_synthetic_study(
    root: Path,
    n_per_language: int = 50,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    conditions: Sequence[tuple[str, float, str]] = DEFAULT_CONDITIONS,
    models: Sequence[tuple[str, int]] = (("synthetic/tiny-llama", 135_000_000),),
    seed: int = 0,
    probes: bool = True,
) -> list[Path]:
    """Write a study of run folders under `root`; returns the run folders."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    items = synthetic_items(n_per_language, languages, seed)
    item_rng = random.Random(seed + 1)
    ability = {it["parallel_id"]: item_rng.gauss(0.5, 1.2) for it in items}
    runs = []
    for model, n_params in models:
        size_bonus = 0.3 * math.log10(n_params / 1e8)
        for method, sparsity, pattern in conditions:
            nm_sparsity = pattern_sparsity(pattern)
            eff = sparsity if nm_sparsity is None else nm_sparsity
            strength = {"dense": 0.0, "wanda": 1.0, "sparsegpt": 0.8, "magnitude": 1.6}[method]
            pen_open = strength * 6.0 * max(0.0, eff - 0.3)
            pen_mc = strength * 2.0 * max(0.0, eff - 0.4)
            run_id = f"{model.split('/')[-1]}__{condition_label(method, eff, pattern)}"
            run = root / run_id
            run.mkdir(exist_ok=True)
            write_jsonl_atomic(run / ITEMS, items)
            rng = random.Random(f"{seed}/{run_id}")
            with open(run / OUTCOMES, "w", encoding="utf-8") as f:
                for it in items:
                    f.write(
                        dumps_line(
                            synthetic_outcome(
                                it, rng, ability[it["parallel_id"]] + size_bonus, pen_open, pen_mc, probes
                            )
                        )
                    )
            write_json_atomic(
                run / MANIFEST,
                synthetic_manifest(
                    run_id,
                    method,
                    sparsity if pattern == "unstructured" else eff,
                    pattern,
                    items,
                    model=model,
                    n_params=n_params,
                ),
            )
            runs.append(run)
    return runs


def add_layer_traces(runs: Sequence[Path], departs_at: int = 4, entries: int = 7) -> None:
    """Give every outcome line of `runs` a layer trace: the dense ranks fall from ~5000 to ~1 over the
    entries (the same item the same ranks in every run); a pruned run's are 100 times worse from entry
    `departs_at` on."""
    import numpy as np

    base = np.exp(np.linspace(np.log(5000), 0, entries))
    for run in runs:
        manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
        lines = [json.loads(x) for x in (run / OUTCOMES).read_text(encoding="utf-8").splitlines()]
        for rec in lines:
            seed = int(rec["content_hash"][7:15], 16)
            ranks = np.maximum(1, np.round(base * np.random.default_rng(seed).lognormal(0, 0.3, entries))).astype(int)
            if manifest["condition"]["method"] != "dense":
                ranks[departs_at:] *= 100
            rec["layer_trace"] = {"ranks": ranks.tolist(), "logprobs": [-1.0] * entries, "top1": [7] * entries}
        (run / OUTCOMES).write_text("".join(dumps_line(r) for r in lines), encoding="utf-8")
