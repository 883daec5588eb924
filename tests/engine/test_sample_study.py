"""The committed sample study (sample_runs/smollm2-illusion) is reproducible: re-running a slice of it
on this CPU gives outcome lines identical, byte for byte, to the committed ones.

The slice is one planned batch (the engine's unit of computation: batches are a fixed function of the
whole item set, and sampling probes are seeded by the batch's item uids) holding items of at least two
languages, for the dense run and Wanda 50%, pruned afresh from the committed calibration spec. The
sample was made with one torch thread (its manifests record `hardware.torch_threads`), so the slice
runs with one thread too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runfolder import dumps_line, iter_outcomes, read_items, read_manifest

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion"
RUNS = ("demo__dense", "demo__wanda-s50")

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


@pytest.mark.parametrize("run_id", RUNS)
def test_rerun_slice_gives_identical_outcome_lines(run_id: str, tmp_path: Path) -> None:
    import torch

    from engine.models import load_model
    from engine.protocol import evaluate_batch, plan_batches
    from engine.pruning.apply import prune_model
    from engine.runner import one_shot_pool
    from engine.study import parse_study, plan_runs

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
                cache_dir=tmp_path,
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
    finally:
        torch.set_num_threads(threads)
    assert len({it["language"] for it in batch}) >= 2
    for rec in records:
        assert dumps_line(rec) == committed[rec["item_uid"]], rec["item_uid"]
