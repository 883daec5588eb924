"""The determinism contract: the machine record of a run, and the comparison of two outcome lines."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from engine.reproducibility import (
    ATOL,
    RTOL,
    machine_config,
    numerics,
    outcome_differences,
    same_machine_config,
)
from engine.runfolder import dumps_line, load_schema, read_manifest

SAMPLE = Path(__file__).resolve().parents[2] / "sample_runs" / "smollm2-illusion" / "demo__wanda-s50"


@pytest.fixture(scope="module")
def line() -> dict:
    """A both-wrong, erased line of the sample (so the changes below are changes)."""
    with (SAMPLE / "outcomes.jsonl").open(encoding="utf-8") as fh:
        recs = [json.loads(x) for x in fh]
    return next(r for r in recs if r["category"] == "both_wrong" and r["demotion"] == "erased")


def _changed(line: dict, path: str, value: object) -> str:
    new = copy.deepcopy(line)
    *parents, last = path.split(".")
    node = new
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return dumps_line(new)


def test_identical_lines_keep_the_contract_on_any_configuration(line: dict) -> None:
    assert outcome_differences(dumps_line(line), dumps_line(line), same_config=True) == []
    assert outcome_differences(line, dumps_line(line), same_config=False) == []


@pytest.mark.parametrize(
    "path, value",
    [
        ("open.text", "Venus"),  # a text
        ("open.correct", True),  # a decision
        ("mc.choice", 0),
        ("mc.decisions.sum", 1),
        ("category", "recognition_only"),
        ("gold_trace.first_token_rank", 1485),  # a rank
        ("gold_trace.token_ids.1", 236),  # a token id
        ("open.n_new_tokens", 15),  # a count
        ("demotion", "demoted"),
        ("probes.beam.beams.0.text", "でまたととどな"),
    ],
)
def test_a_changed_text_decision_rank_or_count_breaks_it_everywhere(line: dict, path: str, value: object) -> None:
    changed = _changed(line, path, value)
    shown = re.sub(r"\.(\d+)", r"[\1]", path)  # how the difference names it: gold_trace.token_ids[1]
    for same in (True, False):
        problems = outcome_differences(dumps_line(line), changed, same_config=same)
        assert len(problems) == 1 and problems[0].startswith(shown + ": "), problems


def test_floats_within_the_tolerance_only_across_configurations(line: dict) -> None:
    v = line["gold_trace"]["margin"]  # 2.8161…
    near = _changed(line, "gold_trace.margin", v * (1 + RTOL / 2))
    assert outcome_differences(line, near, same_config=False) == []
    (problem,) = outcome_differences(line, near, same_config=True)
    assert problem.startswith("gold_trace.margin:") and "must be identical" in problem
    far = _changed(line, "gold_trace.margin", v * (1 + 3 * RTOL))
    (problem,) = outcome_differences(line, far, same_config=False)
    assert "gold_trace.margin" in problem and f"rtol {RTOL:g}" in problem
    # near zero the absolute tolerance applies
    zero = copy.deepcopy(line)
    zero["gold_trace"]["margin"] = 0.0
    assert outcome_differences(zero, _changed(zero, "gold_trace.margin", ATOL / 2), same_config=False) == []
    assert outcome_differences(zero, _changed(zero, "gold_trace.margin", 3 * ATOL), same_config=False) != []


def test_one_sampled_draw_may_move_only_across_configurations(line: dict) -> None:
    one = _changed(line, "probes.sampling.samples.2.text", "でまたととどな")
    assert outcome_differences(line, one, same_config=False) == []
    (problem,) = outcome_differences(line, one, same_config=True)
    assert problem.startswith("probes.sampling.samples[2].text: ")
    # the moved draw now matches the gold answer: its hit moves with it, and only with it
    hit = json.loads(one)
    hit["probes"]["sampling"]["samples"][2]["correct"] = True
    assert [p.split(":")[0] for p in outcome_differences(line, hit, same_config=False)] == [
        "probes.sampling.samples[2].correct",
        "probes.sampling.samples[2].text",
    ]
    hit["probes"]["sampling"]["hits"] += 1
    assert outcome_differences(line, hit, same_config=False) == []
    two = json.loads(_changed(json.loads(one), "probes.sampling.samples.0.text", "Venus"))
    problems = outcome_differences(line, two, same_config=False)
    assert [p.split(":")[0] for p in problems] == ["probes.sampling.samples[0].text", "probes.sampling.samples[2].text"]
    moved_seed = _changed(json.loads(one), "probes.sampling.seed", 1)
    assert [p.split(":")[0] for p in outcome_differences(line, moved_seed, same_config=False)] == [
        "probes.sampling.seed"
    ]


def test_structure_changes_are_named(line: dict) -> None:
    fewer = copy.deepcopy(line)
    fewer["mc"]["options"].pop()
    assert outcome_differences(line, fewer, same_config=False) == ["mc.options: 4 entries expected, 3 found"]
    extra = copy.deepcopy(line)
    extra["new_key"] = 1
    assert outcome_differences(line, extra, same_config=False) == ["new_key: only in the actual line"]
    as_int = copy.deepcopy(line)
    as_int["open"]["em"] = 0  # 0.0 in the line: a type change is a change
    assert outcome_differences(line, as_int, same_config=False) == ["open.em: 0.0 expected, 0 found"]


def test_bytes_alone_differ_only_matter_on_the_same_configuration(line: dict) -> None:
    reordered = json.dumps(line, ensure_ascii=True)  # same values, other bytes
    assert outcome_differences(dumps_line(line), reordered, same_config=False) == []
    assert outcome_differences(dumps_line(line), reordered, same_config=True) == []  # compared canonically
    assert outcome_differences(dumps_line(line), dumps_line(line), same_config=True) == []


def test_the_committed_sample_records_its_configuration() -> None:
    recorded = machine_config(read_manifest(SAMPLE))
    assert recorded is not None and recorded["device"] == "cpu" and recorded["torch_threads"] == 1
    here = numerics("cpu", "float32")
    assert not same_machine_config(None, here) and not same_machine_config(None, None)
    assert same_machine_config(here, dict(here))
    other = "AVX2" if here["cpu_capability"] != "AVX2" else "AVX512"
    assert not same_machine_config(here, {**here, "cpu_capability": other})


def test_numerics_record_matches_the_schema() -> None:
    schema = load_schema("manifest")["properties"]["hardware"]["properties"]["numerics"]
    rec = numerics("cpu", "float32")
    jsonschema.validate(rec, schema)
    assert rec["device"] == "cpu" and rec["dtype"] == "float32" and rec["torch_threads"] >= 1
    assert machine_config({"hardware": {"numerics": rec}}) == rec


def test_numerics_sees_the_kernel_level_torch_uses() -> None:
    here = numerics("cpu", "float32")
    # Another kernel level than this process's: the portable kernels, or AVX2 when this process already runs those.
    level = "default" if here["cpu_capability"] != "DEFAULT" else "avx2"
    code = "import json; from engine.reproducibility import numerics; print(json.dumps(numerics('cpu', 'float32')))"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": level}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    rec = json.loads(out)
    assert rec["env"]["ATEN_CPU_CAPABILITY"] == level
    if level == "default":
        assert rec["cpu_capability"] == "DEFAULT"
    assert not same_machine_config(rec, here)


def test_numerics_on_a_gpu_names_it_and_its_matmul_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA H200")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    rec = numerics("cuda:0", "bfloat16")
    jsonschema.validate(rec, load_schema("manifest")["properties"]["hardware"]["properties"]["numerics"])
    assert (rec["device"], rec["dtype"], rec["gpu"], rec["gpu_capability"], rec["cudnn"]) == (
        "cuda",
        "bfloat16",
        "NVIDIA H200",
        "9.0",
        90100,
    )
    assert {"tf32_matmul", "tf32_cudnn", "float32_matmul_precision", "deterministic_algorithms"} <= set(rec)
    assert not same_machine_config(rec, {**rec, "tf32_matmul": not rec["tf32_matmul"]})


@pytest.fixture
def fp32_settings() -> Iterator[None]:
    """torch's fp32 matmul settings as they were before the test."""
    import torch

    nodes = (torch.backends.cuda.matmul, torch.backends.cudnn, torch.backends.mkldnn.matmul)  # type: ignore[attr-defined]
    before = [n.fp32_precision for n in nodes]
    yield
    for n, value in zip(nodes, before):
        n.fp32_precision = value


def test_lowered_cpu_fp32_matmuls_are_recorded(fp32_settings: None) -> None:
    """A script's `set_float32_matmul_precision("medium")` (bf16 linears on CPUs with AMX) shows in the record."""
    import torch

    assert "cpu_fp32_matmuls" not in numerics("cpu", "float32")
    torch.set_float32_matmul_precision("medium")
    assert numerics("cpu", "float32")["cpu_fp32_matmuls"] == "bf16"


NEWER_API_ONLY = """
import json, torch
from engine.pruning import factor_hessian, sparsegpt_prune
from engine.reproducibility import fp32_matmul_precision, full_fp32_matmuls, numerics
g = torch.Generator().manual_seed(0)
x, w = torch.randn(16, 576, generator=g), torch.randn(1536, 576, generator=g)
full = torch.nn.functional.linear(x, w)
torch.backends.cuda.matmul.fp32_precision = "tf32"  # the newer API: torch's legacy getters now raise
torch.backends.mkldnn.matmul.fp32_precision = "bf16"
with full_fp32_matmuls():
    inside = [fp32_matmul_precision("cuda"), fp32_matmul_precision("mkldnn")]
    same = torch.equal(torch.nn.functional.linear(x, w), full)
    kept = int(sparsegpt_prune(w[:8], factor_hessian(x.t() @ x / 16), 0.5).weight.count_nonzero())
after = [fp32_matmul_precision("cuda"), fp32_matmul_precision("mkldnn")]
torch.cuda.is_available = lambda: True
torch.cuda.get_device_capability = lambda index=None: (9, 0)
torch.cuda.get_device_name = lambda index=None: "NVIDIA H200"
rec = numerics("cuda:0", "float32")
print(json.dumps([inside, same, kept, after, rec["tf32_matmul"], rec["float32_matmul_precision"]]))
"""


def test_full_fp32_and_the_record_under_torchs_newer_precision_api() -> None:
    """Set through torch's per-backend `fp32_precision` (where the legacy getters raise), the pruning's
    full-fp32 block and the run's record still work, and the block computes what full fp32 computes."""
    proc = subprocess.run([sys.executable, "-c", NEWER_API_ONLY], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    inside, same, kept, after, tf32, precision = json.loads(proc.stdout.splitlines()[-1])
    assert inside == ["ieee", "ieee"] and same and kept == 8 * 288
    assert after == ["tf32", "bf16"] and tf32 is True and precision == "tf32"
