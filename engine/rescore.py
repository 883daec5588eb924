"""`prunescope rescore`: grade a study's stored outputs again under another scoring, into a derived study.

Nothing is re-run and the source run folders are only read. A source run that `prunescope validate`
finds invalid is refused, its first problem named, before anything is written; a valid one may be
running or failed, and its derived run folder keeps that status. `prunescope stats`, `tui` and
`validate` read the derived study like any other:

- `items.jsonl`: copied;
- `outcomes.jsonl`: every line graded again by `engine.grading.regrade` (open and shown correctness
  and match records, the probes' hits, category, demotion); texts, MC scores and gold traces unchanged;
- `manifest.json`: the source manifest with the new `matching` block and a `derived_from` block (the
  source run folder, the SHA-256 and count of the lines read, the source's matching block).

A run folder is written whole into a staging folder and then moved into place, so a killed rescore
leaves the previous derived folder or the new one, never half of one. Torch-free.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contract.reader import (
    ITEMS,
    MANIFEST,
    OUTCOMES,
    RunFolderError,
    Scan,
    discover_runs,
    read_items,
    read_manifest,
    scan_jsonl,
)
from engine.errors import UserError, os_error_line
from engine.grading import demotion_rule, regrade
from engine.matching import Scoring
from engine.runfolder import dumps_line, validate_run, validate_study, write_json_atomic

STAGING = Path(".prunescope") / "rescore-staging"


@dataclass
class RescoreSummary:
    """What changed in one run."""

    run_id: str
    status: str
    n: int = 0
    open_before: int = 0
    open_after: int = 0
    shown_before: int = 0
    shown_after: int = 0
    category_changed: int = 0
    probe_hits_changed: int = 0
    not_probed: int = 0  # open failures without probes whose recovery is now unknown


def _max_rank(manifest: dict[str, Any], path: Path) -> int:
    rank = (manifest.get("demotion_rule") or {}).get("max_rank")
    if rank is None:
        rank = ((manifest.get("resume_identity") or {}).get("protocol") or {}).get("demotion_max_rank")
    if not isinstance(rank, int) or isinstance(rank, bool):
        raise UserError(f"{path}: no demotion_rule.max_rank (needed to decide demoted / erased again)")
    return rank


def _check_out(out: Path, sources: list[Path]) -> None:
    """The derived study never overlaps a source run, and replaces only earlier derived runs."""
    out = out.resolve()
    for run in sources:
        r = run.resolve()
        if out == r or out in r.parents or r in out.parents:
            raise UserError(
                f"--out {out}: holds or is inside the source run {run}; rescore writes a new folder and "
                "never rewrites the original lines"
            )
    for existing in discover_runs(out) if out.is_dir() else []:
        try:
            derived = "derived_from" in read_manifest(existing)
        except RunFolderError:
            derived = False
        if not derived:
            raise UserError(
                f"--out {out}: {existing.name} is a run folder that rescore did not write; choose an empty or "
                "derived folder"
            )


def _hits(probes: dict[str, Any] | None) -> tuple[Any, ...]:
    p = probes or {}
    return (
        (p.get("beam") or {}).get("hit_any"),
        (p.get("beam") or {}).get("hit_top"),
        (p.get("sampling") or {}).get("hits"),
        (p.get("one_shot") or {}).get("correct"),
    )


def _check_sources(runs: list[Path], advance: Callable[[int], None] | None = None) -> None:
    """Refuse the source study where `prunescope validate` finds a problem, naming the first one."""
    for run in runs:
        problems = validate_run(run)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UserError(f"{problems[0]}{more}; rescore reads only run folders that `prunescope validate` accepts")
        if advance:
            advance(1)
    across = validate_study(runs)
    if across:
        raise UserError(f"{across[0]}; rescore reads only studies that `prunescope validate` accepts")


def _read_source(run: Path) -> tuple[dict[str, Any], dict[str, Any], Scan[Any]]:
    """The manifest, the items by uid and the outcome lines of a source run."""
    try:
        manifest = read_manifest(run)
        items = {it["item_uid"]: it for it in read_items(run)}
        return manifest, items, scan_jsonl(run / OUTCOMES, strict=True)
    except RunFolderError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(os_error_line(exc) or f"{run / OUTCOMES}: cannot read ({exc.strerror})") from None


def rescore_run(run: Path, out: Path, scoring: Scoring, advance: Callable[[int], None] | None = None) -> RescoreSummary:
    """Write `<out>/<run_id>/` graded under `scoring` from the source run folder `run` (which
    `rescore_study` has validated; lines are named by their line number in the file)."""
    manifest, items, scan = _read_source(run)
    path = run / OUTCOMES
    max_rank = _max_rank(manifest, run / MANIFEST)
    run_id = str(manifest.get("run_id") or run.name)
    summary = RescoreSummary(run_id, str(manifest.get("status", "unknown")))
    lines = []
    seen: set[str] = set()
    for k, (n, rec) in enumerate(zip(scan.lines, scan.records), 1):
        item = items.get(rec.get("item_uid"))
        if item is None:
            raise UserError(f"{path}:{n}: item {rec.get('item_uid')!r} is not in {run / ITEMS}")
        if item["item_uid"] in seen:
            raise UserError(
                f"{path}:{n}: item {item['item_uid']!r} appears twice (`prunescope validate --repair` removes "
                "exact duplicates)"
            )
        seen.add(item["item_uid"])
        try:
            new = regrade(rec, item, scoring, max_rank)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise UserError(
                f"{path}:{n}: cannot grade item {item['item_uid']!r}: this line or its item in {run / ITEMS} lacks "
                "a field rescoring needs, or has one of the wrong type"
            ) from None
        _count(summary, rec, new)
        lines.append(dumps_line(new))
        if advance and k % 256 == 0:
            advance(256)
    if advance:
        advance(len(lines) % 256)
    with open(path, "rb") as f:
        read_bytes = f.read(scan.end)
    manifest = dict(manifest)
    source_matching = manifest.get("matching")
    manifest["matching"] = scoring.to_dict()
    manifest["demotion_rule"] = demotion_rule(max_rank)
    manifest["derived_from"] = {
        "run": str(run.resolve()),
        "outcomes_sha256": "sha256:" + hashlib.sha256(read_bytes).hexdigest(),
        "n_outcomes": len(lines),
        "matching": source_matching,
    }
    _write_run(out, run_id, run / ITEMS, "".join(lines), manifest)
    return summary


def _count(summary: RescoreSummary, rec: dict[str, Any], new: dict[str, Any]) -> None:
    """Add one line's changes to `summary`."""
    summary.n += 1
    summary.open_before += bool(rec["open"]["correct"])
    summary.open_after += bool(new["open"]["correct"])
    summary.shown_before += bool((rec.get("shown") or {}).get("correct"))
    summary.shown_after += bool((new.get("shown") or {}).get("correct"))
    summary.category_changed += new["category"] != rec.get("category")
    summary.probe_hits_changed += _hits(new.get("probes")) != _hits(rec.get("probes"))
    summary.not_probed += new["demotion"] == "not_probed" and rec.get("demotion") != "not_probed"


def _write_run(out: Path, run_id: str, items: Path, outcomes: str, manifest: dict[str, Any]) -> None:
    """Build the run folder in the staging area, then move it into place."""
    stage = out / STAGING / run_id
    if stage.exists():
        shutil.rmtree(stage)  # left by a killed rescore
    stage.mkdir(parents=True)
    shutil.copyfile(items, stage / ITEMS)
    (stage / OUTCOMES).write_text(outcomes, encoding="utf-8")
    write_json_atomic(stage / MANIFEST, manifest)
    target = out / run_id
    old = out / STAGING / f"{run_id}.old"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    stage.rename(target)
    if old.exists():
        shutil.rmtree(old)


def rescore_study(source: Path, out: Path, scoring: Scoring, progress: bool = False) -> list[RescoreSummary]:
    """Every run folder of `source` graded under `scoring` into the derived study `out`."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise UserError(f"{source}: no such study or run folder")
    runs = discover_runs(source)
    if not runs:
        raise UserError(f"{source}: no run folders (a run folder holds manifest.json and outcomes.jsonl)")
    _check_out(out, runs)
    if not progress:
        _check_sources(runs)
        out.mkdir(parents=True, exist_ok=True)
        return [rescore_run(run, out, scoring) for run in runs]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    total = sum(_count_lines(run / OUTCOMES) for run in runs)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as bar:
        check = bar.add_task("validate", total=len(runs))
        _check_sources(runs, lambda k: bar.advance(check, k))
        out.mkdir(parents=True, exist_ok=True)
        task = bar.add_task("rescore", total=total)
        return [rescore_run(run, out, scoring, lambda k: bar.advance(task, k)) for run in runs]


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
