"""Studies with planted effects for the paper's analyses: every item's outcome in every run is given
(or drawn from known probabilities), so each number the analyses report can be computed by hand.

An `Outcome` is what one run did on one item; `write_study` writes run folders in the contract's
format (items from `tests.synthetic`, manifests from `tests.synthetic.synthetic_manifest`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contract.labels import category
from engine.contract.reader import ITEMS, MANIFEST, OUTCOMES
from engine.runfolder import dumps_line, sha256_text, write_json_atomic, write_jsonl_atomic
from tests.synthetic import synthetic_items, synthetic_manifest


@dataclass(frozen=True)
class Outcome:
    """One run's result on one item; probes None = not run."""

    open: bool
    mc: bool
    shown: bool | None = None
    rank: int = 1
    logprob: float = -1.0
    beam_top: bool | None = None
    beam_any: bool | None = None
    sample_hits: int | None = None
    one_shot: bool | None = None


def outcome_line(item: dict[str, Any], o: Outcome, max_rank: int = 10) -> dict[str, Any]:
    """A contract outcome line with the fields the analyses read."""
    gen = {"text": "x", "correct": o.open}
    probes = None
    if o.beam_any is not None or o.sample_hits is not None or o.one_shot is not None:
        probes = {
            "beam": None if o.beam_any is None else {"k": 4, "hit_top": bool(o.beam_top), "hit_any": o.beam_any},
            "sampling": None if o.sample_hits is None else {"n": 4, "hits": o.sample_hits},
            "one_shot": None if o.one_shot is None else {"correct": o.one_shot},
        }
    recovered = bool(o.beam_any or o.sample_hits or o.one_shot)
    return {
        "item_uid": item["item_uid"],
        "content_hash": item["content_hash"],
        "language": item["language"],
        "open": gen,
        "shown": None if o.shown is None else {"text": "x", "correct": o.shown},
        "mc": {"correct": o.mc},
        "gold_trace": {"first_token_rank": o.rank, "seq_logprob": o.logprob, "margin": 0.0},
        "category": category(o.open, o.mc),
        "demotion": None if o.open else ("demoted" if o.rank <= max_rank or recovered else "erased"),
        "probes": probes,
    }


Plan = Callable[[dict[str, Any], int], Outcome]  # (item, index) -> outcome


def write_study(
    root: Path,
    runs: Sequence[tuple[str, float, str, Plan]],
    n_per_language: int,
    languages: Sequence[str] = ("en",),
    model: str = "planted/model",
    n_params: int = 100_000_000,
    dataset: str = "synthetic",
    seed: int = 0,
) -> list[Path]:
    """Run folders under `root`, one per (method, sparsity, pattern, plan)."""
    items = synthetic_items(n_per_language, languages, seed)
    for it in items:
        it["source"]["dataset"] = dataset
        it["item_uid"] = it["item_uid"].replace("synthetic/", f"{dataset}/", 1)
        del it["content_hash"]
        it["content_hash"] = sha256_text(dumps_line(dict(it.items())))
    out = []
    for method, sparsity, pattern, plan in runs:
        tag = "" if method == "dense" else f"-s{round(sparsity * 100):02d}"
        run_id = f"{model.split('/')[-1]}__{method}{tag}"
        run = Path(root) / run_id
        run.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(run / ITEMS, items)
        with open(run / OUTCOMES, "w", encoding="utf-8") as f:
            for i, it in enumerate(items):
                f.write(dumps_line(outcome_line(it, plan(it, i))))
        write_json_atomic(
            run / MANIFEST, synthetic_manifest(run_id, method, sparsity, pattern, items, model=model, n_params=n_params)
        )
        out.append(run)
    return out


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class Effects:
    """Known effects of a random planted study (see `random_plan`)."""

    ro_intercept: float = -2.0  # logit P(RO) of the dense run
    ro_sparsity: float = 4.0  # + per unit sparsity at the mean log size
    size_interaction: float = -2.0  # + per unit sparsity per log10 parameters above the mean
    demoted_share: float = 0.8  # P(one-shot recovers | open failed after pruning): demoted by that probe
    beam_recovery: float = 0.4  # P(beam any hit | open failed)
    rank_shift: int = 3  # pruned rank − dense rank of every item, plus symmetric noise in −2…2
    mean_log_size: float = 9.0


def random_plan(effects: Effects, sparsity: float, log_size: float, seed: str) -> Plan:
    """Outcomes drawn from the planted effects (deterministic per seed and item).

    The dense first-token rank is 1–3 (drawn per item, the same in every run); a pruned run adds the
    planted shift and symmetric noise, so ranks alone never demote (use the rule rank ≤ 1 with the
    one-shot probe: demoted share = `demoted_share`).
    """

    def plan(item: dict[str, Any], i: int) -> Outcome:
        rng = random.Random(f"{seed}/{item['item_uid']}")
        dense_rank = 1 + random.Random(item["item_uid"]).randrange(3)
        rank = dense_rank if sparsity == 0 else dense_rank + effects.rank_shift + rng.choice((-2, -1, 0, 1, 2))
        eta = (
            effects.ro_intercept
            + effects.ro_sparsity * sparsity
            + effects.size_interaction * sparsity * (log_size - effects.mean_log_size)
        )
        ro = rng.random() < logistic(eta)
        if ro:
            open_ok, mc_ok = False, True
        else:
            open_ok = rng.random() < 0.6
            mc_ok = open_ok and rng.random() < 0.9
        if open_ok:
            return Outcome(open=True, mc=mc_ok, shown=True, rank=rank, logprob=-0.5)
        return Outcome(
            open=False,
            mc=mc_ok,
            shown=rng.random() < 0.5,
            rank=rank,
            logprob=-3.0,
            beam_top=False,
            beam_any=rng.random() < effects.beam_recovery,
            sample_hits=0,
            one_shot=rng.random() < effects.demoted_share,
        )

    return plan
