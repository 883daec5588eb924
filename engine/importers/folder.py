"""Writing imported runs into a study folder, through the same writer as `prunescope run`.

Each run is written inside a staged folder of the study (`engine.staging.StagedFolder`, `.import-XXXX`,
hidden from readers of the study): items.jsonl, its outcome lines through `engine.runfolder.OutcomeWriter`
(with the run index), the manifest marked `complete`; then the run folder is renamed into place. A
killed import leaves no half run: the runs it finished, and a staged folder that the next import removes.
Every run of a study holds the same item set, in uid order (or the order the study already has),
whatever order each log lists its documents in: an import that would give two item sets, or a run
folder that is already there, is refused before anything is written.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import engine
from engine.atomic import write_bytes_atomic
from engine.contract.reader import ITEMS, MANIFEST, SCHEMA_VERSION, read_json
from engine.errors import UserError
from engine.runfolder import OutcomeWriter, items_hash, jsonl_bytes, write_json_atomic
from engine.safe_text import inert
from engine.staging import StagedFolder, sweep_stale

STAGE_PREFIX = ".import-"  # the staged folder an import writes its runs in, inside the study


@dataclass
class ImportedRun:
    """One run to write: its id, items, outcome lines and what its manifest says besides."""

    run_id: str
    model: dict[str, Any]  # the manifest's `model` block
    items: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    manifest: dict[str, Any]  # prompts, decoding, matching, seeds, versions, hardware, timings, imported


def run_id_of(name: str) -> str:
    """A run id from a model name: its last path part, characters outside [A-Za-z0-9._-] as '-'."""
    tail = name.rstrip("/").split("/")[-1] or name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip("-") or "model"


def finite_json(value: Any) -> Any:
    """JSON with non-finite floats as null (manifests are strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_json(v) for v in value]
    return value


def manifest_of(run: ImportedRun, baseline: bool) -> dict[str, Any]:
    """The manifest of a whole imported run (status `complete`)."""
    languages = sorted({i["language"] for i in run.items})
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "status": "complete",
        "error": None,
        "model": run.model,
        "condition": {
            "method": "dense",
            "sparsity": 0.0,
            "pattern": "unstructured",
            "calibration": None,
            "pruning_report": None,
        },
        "items": {"n": len(run.items), "hash": items_hash(run.items), "languages": languages},
        "counts": {"done": len(run.outcomes), "total": len(run.items)},
        **finite_json(run.manifest),
    }
    manifest["versions"] = {"prunescope": engine.__version__, **manifest.get("versions", {})}
    if baseline:
        manifest["baseline"] = True
    return manifest


def _in_uid_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda it: str(it["item_uid"]))


def _parsed(data: bytes, path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in data.splitlines() if line.strip()]
    except ValueError:
        raise UserError(f"{path}: not valid JSONL (`prunescope validate` says where)") from None


def write_study(out: Path, runs: list[ImportedRun], baseline: str | None) -> list[Path]:
    """Write `runs` under `out` (see the module docstring); `baseline` names the run marked as the baseline."""
    if not runs:
        raise UserError("nothing to import")
    ids = [r.run_id for r in runs]
    for rid in ids:
        if ids.count(rid) > 1:
            raise UserError(
                f"two imported models give the run id {rid!r} (the last part of their names); "
                "import them into separate studies or rename one model folder"
            )
    if baseline is not None and baseline not in ids:
        raise UserError(f"--baseline {baseline!r}: not among the imported runs ({', '.join(ids)})")
    # One item set whatever order each log lists its documents in (lm-eval on several GPUs writes its
    # samples rank by rank): the items in uid order, or in the order the study already has them.
    study_items = _in_uid_order(runs[0].items)
    items_bytes = jsonl_bytes(study_items)
    for r in runs[1:]:
        if jsonl_bytes(_in_uid_order(r.items)) != items_bytes:
            raise UserError(
                f"runs {runs[0].run_id} and {r.run_id} ask different items (different tasks or documents): "
                "the runs of one study share one item set; import them into separate studies"
            )
    for rid in ids:
        if (out / rid).exists():
            raise UserError(
                f"{out / rid}: a run of this name is already in the study; remove that folder to import it again, "
                "or choose another --out"
            )
    existing = (
        [p for p in sorted(out.iterdir()) if not p.name.startswith(".") and (p / MANIFEST).exists()]
        if out.is_dir()
        else []
    )
    if baseline is not None:
        for p in existing:
            if read_json(p / MANIFEST).get("baseline") is True:
                raise UserError(
                    f"--baseline {baseline!r}: the study already has its baseline, {p.name} ({p / MANIFEST}); "
                    "two baselines on one item set are ambiguous (`prunescope stats --baseline RUN` picks "
                    "another run for one analysis)"
                )
    if existing:  # the new runs get the study's items.jsonl as it is
        theirs = (existing[0] / ITEMS).read_bytes()
        if theirs != items_bytes:
            kept = _parsed(theirs, existing[0] / ITEMS)
            if jsonl_bytes(_in_uid_order(kept)) != items_bytes:
                raise UserError(
                    f"{existing[0] / ITEMS}: the study's item set differs from the imported one; choose another --out"
                )
            study_items, items_bytes = kept, theirs
    paths = []
    sweep_stale(out, STAGE_PREFIX)  # what a killed import left (a running one's is kept)
    with StagedFolder(out, STAGE_PREFIX) as stage:  # its lock is the writer's lock of the runs in it
        for r in runs:
            r.items = study_items  # what its items.jsonl holds, and its manifest's hash
            staged, path = stage.path / r.run_id, out / r.run_id
            staged.mkdir()
            write_bytes_atomic(staged / ITEMS, items_bytes)  # every run asks these items
            with OutcomeWriter(staged) as writer:
                writer.append(r.outcomes)
            write_json_atomic(staged / MANIFEST, manifest_of(r, r.run_id == baseline))
            os.rename(staged, path)  # fails if another import put a run there meanwhile
            print(inert(f"prunescope import: wrote {path} ({len(r.outcomes)} items)"), file=sys.stderr)
            paths.append(path)
    return paths
