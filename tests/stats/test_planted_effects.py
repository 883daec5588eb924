"""Three model sizes, two datasets pooled with `prunescope stats A B`, effects drawn from known
probabilities: the analyses give the planted effects back within their CIs, and the default GLMM
carries log size × sparsity and the dataset factor."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.cli import main
from tests.stats.planted import Effects, logistic, random_plan, write_study

SIZES = {"planted/size-s": 10**8, "planted/size-m": 10**9, "planted/size-l": 10**10}
CONDS = (("dense", 0.0), ("wanda", 0.5), ("wanda", 0.7))
EFFECTS = Effects()


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("pooled")
    studies = []
    for dataset in ("xquad", "tydiqa"):
        study = root / f"study-{dataset}"
        for model, n_params in SIZES.items():
            log_size = math.log10(n_params)
            write_study(
                study,
                [
                    (m, s, "unstructured", random_plan(EFFECTS, s, log_size, f"{dataset}/{model}/{m}{s}"))
                    for m, s in CONDS
                ],
                n_per_language=150,
                languages=("en", "de"),
                model=model,
                n_params=n_params,
                dataset=dataset,
                seed=7,
            )
        studies.append(study)
    out = root / "out"
    rc = main(
        ["stats", *map(str, studies), "--out", str(out), "--level", "0.99"]
        + ["--demotion-rank", "1", "--demotion-probes", "one_shot"]
    )
    assert rc == 0
    doc = json.loads((out / "tables.json").read_text(encoding="utf-8"))
    return out, {t["key"]: t for t in doc["tables"]}


def _all(table: dict, **keys) -> list[dict]:
    return [r for r in table["records"] if r.get("language") == "all" and all(r.get(k) == v for k, v in keys.items())]


def test_ro_rate_per_size_and_sparsity_within_ci(pooled) -> None:
    _, tables = pooled
    rows = _all(tables["ro-denominators"])
    assert len(rows) == 2 * 3 * 2  # dataset × model × pruned condition
    assert {r["dataset"] for r in rows} == {"xquad", "tydiqa"}
    for r in rows:
        s = 0.5 if r["condition"] == "wanda-s50" else 0.7
        eta = EFFECTS.ro_intercept + EFFECTS.ro_sparsity * s
        eta += EFFECTS.size_interaction * s * (math.log10(SIZES[r["model"]]) - EFFECTS.mean_log_size)
        assert r["rate_all_low"] <= logistic(eta) <= r["rate_all_high"], r


def test_demotion_recovery_and_rank_shift_within_ci(pooled) -> None:
    _, tables = pooled
    for r in _all(tables["demotion"]):
        assert r["demoted_share_low"] <= EFFECTS.demoted_share <= r["demoted_share_high"], r
        assert "rank ≤ 1 or recovered by one-shot" in r["rule"]
    for r in _all(tables["recovery"], subset="failed"):
        assert r["beam_any_low"] <= EFFECTS.beam_recovery <= r["beam_any_high"], r
    for r in _all(tables["rank-shift"], subset="all"):  # integer shifts: the limits sit on a jump, ± root tol.
        assert r["rank_hl_low"] - 2e-4 <= EFFECTS.rank_shift <= r["rank_hl_high"] + 2e-4, r


def test_glmm_has_size_by_sparsity_and_dataset(pooled) -> None:
    out, tables = pooled
    glmm = tables["glmm"]
    formula = glmm["notes"][0]
    assert "log_params + sparsity:log_params" in formula and "dataset" in formula
    assert any("size × sparsity" in n for n in glmm["notes"])
    inter = next(r for r in glmm["records"] if r["term"] == "sparsity:log_params")
    # planted on the logit scale: −2 per unit sparsity per tenfold parameters
    assert inter["or_low"] <= math.exp(EFFECTS.size_interaction) <= inter["or_high"]
    assert inter["or_high"] < 1
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "| dataset | model | condition |" in report


def test_studies_that_do_not_match_are_refused(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    plan = random_plan(EFFECTS, 0.5, 9.0, "x")
    write_study(a, [("dense", 0.0, "unstructured", plan), ("wanda", 0.5, "unstructured", plan)], 3)
    write_study(b, [("dense", 0.0, "unstructured", plan), ("wanda", 0.7, "unstructured", plan)], 3)
    assert main(["stats", str(a), str(b), "--no-glmm"]) != 0
    err = capsys.readouterr().err
    assert "same models and conditions" in err and "wanda-s70" in err


def test_run_folders_from_different_places_pair_directly(tmp_path: Path) -> None:
    from stats.load import load_study, transitions

    plan = random_plan(EFFECTS, 0.5, 9.0, "x")
    (dense,) = write_study(tmp_path / "a", [("dense", 0.0, "unstructured", plan)], 4)
    (pruned,) = write_study(tmp_path / "b", [("wanda", 0.5, "unstructured", plan)], 4)
    df = load_study([dense, pruned])
    assert sorted(df["run_id"].unique()) == ["model__dense", "model__wanda-s50"]  # not qualified: not pooled
    assert len(transitions(df)) == 4
