"""The committed sample study (sample_runs/smollm2-illusion) is reproducible: re-running a slice of it
keeps the determinism contract of `engine.reproducibility` with the committed outcome lines.

The slice is one planned batch (the engine's unit of computation: batches are a fixed function of the
whole item set, and sampling probes are seeded by the batch's item uids) holding items of at least two
languages, for the dense run and magnitude 50%, pruned afresh from the committed spec. The sample was
made with one torch thread (its manifests record `hardware.torch_threads`), so the slice runs with one
thread too. Texts, token ids, decisions, categories, ranks and counts must be identical and floats
within the contract's tolerance; byte identity is required only when the manifest records the same
machine configuration as this one (the committed sample predates that record, so on every machine its
floats are compared within the tolerance).

Magnitude pruning, not Wanda: a magnitude mask depends on |W| alone, so the pruned model is the same
on every machine. Wanda's and SparseGPT's masks come from calibration activations, and on another
machine configuration the weights nearest each row's threshold can swap, more so in later layers
(docs/reproducibility.md); their re-runs are then runs of a slightly different model, which a per-line
contract cannot check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.contract.labels import CATEGORIES
from engine.contract.reader import iter_outcomes, read_items, read_manifest
from engine.reproducibility import machine_config, numerics, outcome_differences, same_machine_config
from engine.runfolder import dumps_line

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion"
RUNS = ("demo__dense", "demo__magnitude-s50")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo-model")]


def _slice(batches: list[list[dict]]) -> list[dict]:
    """The last (shortest-prompt, so cheapest) batch with at least two languages."""
    for batch in reversed(batches):
        if len({it["language"] for it in batch}) >= 2:
            return batch
    raise AssertionError("no planned batch of the sample holds two languages")


def test_sample_study_is_complete_and_paired() -> None:
    from engine.runner import load_study_items
    from engine.study import parse_study, plan_runs

    study = parse_study(SAMPLE / "study.toml")
    plans = plan_runs(study)
    items = read_items(SAMPLE / plans[0].run_id)
    assert items == load_study_items(study)  # the seeded subset is the same on this machine
    for plan in plans:
        run = SAMPLE / plan.run_id
        manifest = read_manifest(run)
        assert manifest["status"] == "complete" and manifest["hardware"]["torch_threads"] == 1
        assert read_items(run) == items
        assert sorted(r["item_uid"] for r in iter_outcomes(run)) == sorted(it["item_uid"] for it in items)


def test_sample_lines_carry_the_verdicts_of_todays_matcher() -> None:
    """Grading the committed lines again under the study's scoring changes nothing, and every manifest
    records the scoring, demotion rule and resume identity the engine writes today."""
    from engine.grading import demotion_rule, regrade, scoring_of
    from engine.runfolder import items_hash
    from engine.runner import _identity
    from engine.study import parse_study, plan_runs

    study = parse_study(SAMPLE / "study.toml")
    scoring, max_rank = scoring_of(study.protocol), study.protocol.demotion_max_rank
    for plan in plan_runs(study):
        run = SAMPLE / plan.run_id
        items = read_items(run)
        manifest = read_manifest(run)
        assert manifest["matching"] == scoring.to_dict()
        assert manifest["demotion_rule"] == demotion_rule(max_rank)
        assert manifest["resume_identity"] == _identity(plan, study.protocol, items_hash(items))
        by_uid = {it["item_uid"]: it for it in items}
        for rec in iter_outcomes(run):
            assert regrade(rec, by_uid[rec["item_uid"]], scoring, max_rank) == rec, (plan.run_id, rec["item_uid"])


@dataclass(frozen=True)
class Rerun:
    committed: dict[str, str]  # item_uid -> committed outcome line
    lines: list[str]  # the slice, evaluated here
    same_config: bool  # the manifest records this machine's configuration


@pytest.fixture(scope="module", params=RUNS)
def rerun(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Rerun:
    import torch

    from engine.models import load_model
    from engine.protocol import evaluate_batch, plan_batches
    from engine.pruning.apply import prune_model
    from engine.runner import one_shot_pool
    from engine.study import parse_study, plan_runs

    run_id = request.param
    study = parse_study(SAMPLE / "study.toml")
    plan = next(p for p in plan_runs(study) if p.run_id == run_id)
    run = SAMPLE / run_id
    items = read_items(run)
    with (run / "outcomes.jsonl").open(encoding="utf-8") as fh:
        committed = {json.loads(line)["item_uid"]: line for line in fh}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = load_model(plan.model)
        if plan.condition.method != "dense":
            report = prune_model(
                loaded.model,
                loaded.tokenizer,
                plan.condition,
                device="cpu",
                cache_dir=tmp_path_factory.mktemp("prune-cache"),
                model_id=loaded.info["id"],
                revision=loaded.info.get("revision"),
            )
            ref = read_manifest(run)["condition"]["pruning_report"]
            assert report["cache"]["key"] == ref["cache"]["key"]  # same weights, condition and calibration ids
            assert report["calibration"] == ref["calibration"]
            assert {m: v["sparsity"] for m, v in report["modules"].items()} == {
                m: v["sparsity"] for m, v in ref["modules"].items()
            }
        batch = _slice(plan_batches(loaded, items, study.protocol))
        records = evaluate_batch(loaded, batch, study.protocol, one_shot_pool(items))
        here = numerics("cpu", loaded.info["dtype"])
    finally:
        torch.set_num_threads(threads)
    assert len({it["language"] for it in batch}) >= 2
    same = same_machine_config(machine_config(read_manifest(run)), here)
    return Rerun(committed, [dumps_line(r) for r in records], same)


def _contract_breaches(committed: dict[str, str], lines: list[str], same_config: bool) -> list[str]:
    """Every way the re-run lines break the contract with the committed ones, each named by item."""
    problems = []
    for line in lines:
        uid = json.loads(line)["item_uid"]
        problems += [f"{uid}: {p}" for p in outcome_differences(committed[uid], line, same_config)]
    return problems


def test_rerun_slice_keeps_the_determinism_contract(rerun: Rerun) -> None:
    assert len(rerun.lines) == 8
    assert _contract_breaches(rerun.committed, rerun.lines, rerun.same_config) == []


def _other(old: Any, n_options: int) -> Any:
    """A different value of the same kind: another text, option or category, a float 1% off."""
    if isinstance(old, str):
        return next(c for c in CATEGORIES if c != old) if old in CATEGORIES else old + " (changed)"
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return (old + 1) % n_options
    return old * 1.01


@pytest.mark.parametrize(
    "path", [("open", "text"), ("open", "correct"), ("mc", "choice"), ("category",), ("gold_trace", "margin")]
)
def test_the_rerun_check_catches_a_changed_line(rerun: Rerun, path: tuple[str, ...]) -> None:
    """A changed text, decision or category, or a float moved by 1%, fails the same check."""
    first = json.loads(rerun.lines[0])
    node = first
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = _other(node[path[-1]], len(first["mc"]["options"]))
    lines = [dumps_line(first), *rerun.lines[1:]]
    (problem,) = _contract_breaches(rerun.committed, lines, rerun.same_config)
    assert problem.startswith(f"{first['item_uid']}: {'.'.join(path)}: "), problem
