"""Run a study: every (model, condition) into its own crash-safe, resumable run folder."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.atomic import remove_leftover_temps, write_bytes_atomic
from engine.config import ProtocolConfig, Study
from engine.contract.reader import ITEMS, MANIFEST, SCHEMA_VERSION, read_items, read_manifest
from engine.errors import UserError
from engine.matching import MATCHING_VERSION
from engine.runfolder import (
    REPAIR_KEYS,
    OutcomeWriter,
    items_hash,
    jsonl_bytes,
    record_repairs,
    write_json_atomic,
    write_jsonl_atomic,
    writer_lock,
)
from engine.study import RunPlan, plan_runs
from engine.terminal import StepProgress, layer_task, library_bars, progress_bars, stdout_console
from engine.threads import ThreadChoice, apply_threads, choose_threads


@dataclass
class RunResult:
    run_id: str
    path: Path
    status: str  # 'complete' | 'skipped' (already complete)
    n_items: int
    n_new: int
    seconds: float


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _git_hash() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("prunescope", "torch", "transformers", "accelerate", "gguf", "datasets", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _hardware(device: str, dtype: str, threads: ThreadChoice) -> dict[str, Any]:
    """Where the run ran; `numerics` is what decides its floats (engine.reproducibility)."""
    import torch

    from engine.reproducibility import numerics

    hw: dict[str, Any] = {
        "device": device,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "threads": threads.as_dict(),
        "numerics": numerics(device, dtype),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        hw["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return hw


def _identity(plan: RunPlan, protocol: ProtocolConfig, ihash: str) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    return {
        "model": plan.model.id,
        "revision": plan.model.revision,
        "condition": plan.condition.to_dict(),
        "protocol": protocol.to_dict(),
        "matching_version": MATCHING_VERSION,  # a resumed run never mixes two matchers
        "items_hash": ihash,
    }


def _check_resumable(run_dir: Path, manifest: dict[str, Any], ident: dict[str, Any]) -> None:
    old = manifest.get("resume_identity")
    if old != ident:
        diff = sorted(k for k in ident if (old or {}).get(k) != ident[k])
        why = ""
        if diff == ["items_hash"]:
            why = (
                " (with the same spec: the item source's rows changed, or this prunescope reads them otherwise;"
                " it keeps answers, aliases and options stripped and in NFC; `prunescope rescore` regrades"
                " finished runs)"
            )
        raise UserError(
            f"{run_dir / MANIFEST}: this run folder was made with a different "
            f"{', '.join(diff) or 'spec'}{why}; resume only with the same spec, or write to a new --out"
        )


def one_shot_pool(items: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    pool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        pool[it["language"]].append(it)
    return dict(pool)


def _check_items_file(path: Path, items: list[dict[str, Any]]) -> None:
    """A resumed run's items.jsonl must be exactly the study's items (content, not only the hashes)."""
    if path.read_bytes() == jsonl_bytes(items):
        return
    have = read_items(path.parent)
    for n, (old, new) in enumerate(zip(have, items), 1):
        if old != new:
            what = "content_hash" if old.get("content_hash") != new.get("content_hash") else "content"
            raise UserError(
                f"{path}:{n}: item {old.get('item_uid')!r} differs from the study's item ({what}); "
                "the file was edited or the item source changed: write to a new --out"
            )
    raise UserError(f"{path}: has {len(have)} items, the study has {len(items)}; write to a new --out")


def run_one(
    study_dir: Path,
    plan: RunPlan,
    items: list[dict[str, Any]],
    protocol: ProtocolConfig,
    progress: StepProgress | None = None,
    cache_dir: Path | None = None,
    stop_after_batches: int | None = None,
    prune_progress: StepProgress | None = None,
    threads: int | None = None,
    processes: int = 1,
) -> RunResult:
    """Evaluate one (model, condition) into `<study_dir>/<run_id>/`, resuming what is there.

    The run folder's writer lock is held throughout: a second writer fails at once, naming this one.
    `progress(items done, items)` follows the evaluation, `prune_progress(layers done, layers)` the
    pruning. `threads`: torch threads (default: `engine.threads.choose_threads` for a process beside
    `processes - 1` others; a resumed run keeps its recorded count). `stop_after_batches` ends the
    run early after that many new batches (for tests of resumption).
    """
    run_dir = Path(study_dir) / plan.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    with writer_lock(run_dir):
        return _run_locked(
            study_dir,
            plan,
            items,
            protocol,
            progress,
            cache_dir,
            stop_after_batches,
            prune_progress,
            threads,
            processes,
        )


def _run_locked(
    study_dir: Path,
    plan: RunPlan,
    items: list[dict[str, Any]],
    protocol: ProtocolConfig,
    progress: StepProgress | None,
    cache_dir: Path | None,
    stop_after_batches: int | None,
    prune_progress: StepProgress | None,
    threads: int | None,
    processes: int,
) -> RunResult:
    from engine.models import load_model, resolve_device
    from engine.protocol import evaluate_batch, plan_batches, protocol_manifest
    from engine.protocol.evaluate import check_positions
    from engine.protocol.session import protocol_session

    t0 = time.time()
    run_dir = Path(study_dir) / plan.run_id
    ihash = items_hash(items)
    ident = _identity(plan, protocol, ihash)
    manifest: dict[str, Any] | None = None
    for name in (MANIFEST, ITEMS):  # this process is their one writer (it holds the run's lock)
        remove_leftover_temps(run_dir / name)
    if (run_dir / MANIFEST).exists():
        manifest = read_manifest(run_dir)
        _check_resumable(run_dir, manifest, ident)
        if manifest.get("status") == "complete":
            return RunResult(plan.run_id, run_dir, "skipped", len(items), 0, 0.0)
    if (run_dir / ITEMS).exists():
        _check_items_file(run_dir / ITEMS, items)
    else:
        write_jsonl_atomic(run_dir / ITEMS, items)

    writer = OutcomeWriter(run_dir)
    before = (manifest or {}).get("timings") or {}
    recorded = ((manifest or {}).get("hardware") or {}).get("threads") or {}
    thread_choice = choose_threads(threads, processes, recorded.get("threads") if writer.done else None)
    apply_threads(thread_choice)
    # Repairs of every attempt so far, recorded before anything else can stop this one.
    timings = {"started": before.get("started", _now()), "updated": _now()}
    timings.update((k, before[k]) for k in REPAIR_KEYS if k in before)
    record_repairs(timings, writer.repaired_bytes, len(writer.removed_duplicates))
    # Written before the model loads, so a failure there is recorded in the run folder too.
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": plan.run_id,
        "status": "running",
        "error": None,
        "model": {"id": plan.model.id, "revision": plan.model.revision, "n_params": 0, "dtype": plan.model.dtype},
        "condition": {**plan.condition.to_dict(), "pruning_report": None},
        "items": {"n": len(items), "hash": ihash, "languages": sorted({i["language"] for i in items})},
        "prompts": {"templates": {}, "hashes": {}},
        "decoding": {},
        "seeds": {
            "protocol": protocol.seed,
            "calibration": plan.condition.calibration.seed if plan.condition.calibration else None,
        },
        "versions": _versions(),
        "git": _git_hash(),
        "hardware": {"threads": thread_choice.as_dict()},  # the rest once the model is loaded; a resume keeps it
        "timings": timings,
        "counts": {"done": len(writer.done), "total": len(items)},
        "resume_identity": ident,
    }
    if plan.model.baseline and plan.condition.method == "dense":  # every other run is paired with this one
        manifest["baseline"] = True
    try:
        write_json_atomic(run_dir / MANIFEST, manifest)
        device = resolve_device(plan.model.device)
        library_bars(progress is not None)
        t_load = time.time()
        loaded = load_model(plan.model)
        load_s = time.time() - t_load
        pool = one_shot_pool(items)
        check_positions(loaded, items, protocol, pool)
        pruning_report = None
        prune_s = 0.0
        if plan.condition.method != "dense":
            from engine.pruning.apply import prune_model

            t_prune = time.time()
            pruning_report = prune_model(
                loaded.model,
                loaded.tokenizer,
                plan.condition,
                device=device,
                cache_dir=cache_dir,
                progress=prune_progress,
                model_id=loaded.info["id"],
                revision=loaded.info.get("revision"),
            )
            prune_s = time.time() - t_prune
        manifest.update(protocol_manifest(loaded, protocol))
        manifest["model"] = loaded.info
        manifest["condition"]["pruning_report"] = pruning_report
        manifest["hardware"] = _hardware(device, loaded.info["dtype"], thread_choice)
        manifest["timings"].update(load_s=round(load_s, 3), prune_s=round(prune_s, 3))
        write_json_atomic(run_dir / MANIFEST, manifest)

        batches = plan_batches(loaded, items, protocol)
        n_new = 0
        new_batches = 0
        t_eval = time.time()
        if progress:
            progress(len(writer.done), len(items))
        with protocol_session(loaded.model):
            for batch in batches:
                todo = [it for it in batch if it["item_uid"] not in writer.done]
                if not todo:
                    continue
                if stop_after_batches is not None and new_batches >= stop_after_batches:
                    return RunResult(plan.run_id, run_dir, "running", len(items), n_new, time.time() - t0)
                # The whole planned batch is recomputed so its numbers do not depend on what was resumed.
                records = [r for r in evaluate_batch(loaded, batch, protocol, pool) if r["item_uid"] not in writer.done]
                writer.append(records)
                n_new += len(records)
                new_batches += 1
                manifest["counts"]["done"] = len(writer.done)
                manifest["timings"]["updated"] = _now()
                elapsed = time.time() - t_eval
                manifest["timings"]["items_per_s"] = round(n_new / elapsed, 4) if elapsed > 0 else None
                write_json_atomic(run_dir / MANIFEST, manifest)
                if progress:
                    progress(len(writer.done), len(items))
        missing = len(items) - len(writer.done)
        if missing:
            raise RuntimeError(f"{missing} items were planned but not evaluated")
        manifest["status"] = "complete"
        manifest["timings"].update(finished=_now(), eval_s=round(time.time() - t_eval, 3))
        write_json_atomic(run_dir / MANIFEST, manifest)
        return RunResult(plan.run_id, run_dir, "complete", len(items), n_new, time.time() - t0)
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            manifest["status"] = "failed"
            manifest["error"] = f"{exc.__class__.__name__}: {exc}"[:2000]
            manifest["timings"]["updated"] = _now()
            write_json_atomic(run_dir / MANIFEST, manifest)
        raise
    finally:
        writer.close()


def _spec_difference(kept: str, new: str) -> str:
    """Where a spec differs from the kept one: its command-line overrides, or its first differing line."""
    kept_body, _, kept_over = kept.partition(OVERRIDES_MARK)
    new_body, _, new_over = new.partition(OVERRIDES_MARK)
    if kept_body == new_body:

        def listed(block: str) -> str:
            return ", ".join(line.removeprefix("# ") for line in block.splitlines() if line.startswith("# ")) or "none"

        return f"command-line overrides then: {listed(kept_over)}; now: {listed(new_over)}"
    old_lines, new_lines = kept_body.splitlines(), new_body.splitlines()
    n = next((i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b), min(len(old_lines), len(new_lines)))
    then = repr(old_lines[n][:80]) if n < len(old_lines) else "the end"
    now = repr(new_lines[n][:80]) if n < len(new_lines) else "the end"
    return f"line {n + 1}: {then} then, {now} now"


def load_study_items(study: Study) -> list[dict[str, Any]]:
    from engine.items import load_items

    items = load_items(study.items)
    if not items:
        raise UserError(
            f"the item source {study.items.source!r} gave no items for languages {list(study.items.languages)}"
        )
    return items


OVERRIDES_MARK = "\n# command-line overrides\n"  # what follows in a kept spec: the overrides, one comment each


def recorded_spec(spec_text: str, overrides: Mapping[str, Any]) -> str:
    """The spec as a study folder keeps it: its text, then the command-line overrides as comments."""
    if not overrides:
        return spec_text
    return spec_text + OVERRIDES_MARK + "".join(f"# {k} = {v!r}\n" for k, v in sorted(overrides.items()))


def check_study_spec(study_dir: Path, spec_text: str) -> None:
    """Refuse a study folder made from another spec (or other overrides), saying where they differ."""
    path = Path(study_dir) / "study.toml"
    kept = path.read_text(encoding="utf-8") if path.exists() else None
    if kept is not None and kept != spec_text:
        raise UserError(
            f"{path}: the study folder was made from a different spec ({_spec_difference(kept, spec_text)}); "
            "use a new --out, or the same spec and overrides"
        )


def write_study_spec(study_dir: Path, spec_text: str) -> None:
    """Keep the spec that produced the study beside its runs (refuse a different one)."""
    check_study_spec(study_dir, spec_text)
    path = Path(study_dir) / "study.toml"
    if not path.exists():  # a temp file of its own: two commands may start on one study at once
        write_bytes_atomic(path, spec_text.encode("utf-8"))
        check_study_spec(study_dir, spec_text)  # the other one may have kept another spec meanwhile


def run_study(
    study: Study,
    study_dir: Path,
    plans: Sequence[RunPlan] | None = None,
    show_progress: bool = True,
    cache_dir: Path | None = None,
    items: list[dict[str, Any]] | None = None,
    threads: int | None = None,
) -> list[RunResult]:
    """Run every planned run of `study` in this process, one after another (`items`: already loaded)."""
    items = items if items is not None else load_study_items(study)
    plans = list(plans if plans is not None else plan_runs(study))
    results = []
    if not show_progress:
        for plan in plans:
            results.append(run_one(study_dir, plan, items, study.protocol, None, cache_dir, threads=threads))
        return results
    with progress_bars() as bars:
        for plan in plans:
            task = bars.add_task(plan.run_id, total=len(items), unit="- items/s")
            t_start = time.time()
            first: list[int] = []

            def update(done: int, total: int, task=task, t_start=t_start, first=first) -> None:
                if not first:
                    first.append(done)
                dt = time.time() - t_start
                rate = (done - first[0]) / dt if dt > 0 else 0.0
                bars.update(task, completed=done, total=total, unit=f"{rate:.2f} items/s")

            pruning = layer_task(bars, f"{plan.run_id}: pruning {plan.condition.method}")
            results.append(
                run_one(
                    study_dir, plan, items, study.protocol, update, cache_dir, prune_progress=pruning, threads=threads
                )
            )
    return results


def language_summary(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """Per run and language: n, open / shown / MC accuracy and recognition-only rate."""
    from engine.contract.reader import iter_outcomes

    rows = []
    for run_dir in run_dirs:
        agg: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for rec in iter_outcomes(run_dir):
            a = agg[rec["language"]]
            a["n"] += 1
            a["open"] += rec["open"]["correct"]
            a["shown"] += bool(rec.get("shown") and rec["shown"]["correct"])
            a["mc"] += rec["mc"]["correct"]
            a["ro"] += rec["category"] == "recognition_only"
        for lang in sorted(agg):
            a = agg[lang]
            n = a["n"]
            rows.append(
                {
                    "run": Path(run_dir).name,
                    "language": lang,
                    "n": n,
                    "open": a["open"] / n,
                    "shown": a["shown"] / n,
                    "mc": a["mc"] / n,
                    "recognition_only": a["ro"] / n,
                }
            )
    return rows


def print_language_summary(run_dirs: Sequence[Path]) -> None:
    from rich.table import Table

    from engine.safe_text import rich_text

    table = Table(title="Per-language accuracy", title_justify="left")
    for col in ("run", "lang", "n", "open", "shown", "MC", "RO"):
        table.add_column(col, justify="left" if col in ("run", "lang") else "right")
    for r in language_summary(run_dirs):
        table.add_row(
            rich_text(r["run"]),
            rich_text(r["language"]),
            str(r["n"]),
            f"{r['open']:.3f}",
            f"{r['shown']:.3f}",
            f"{r['mc']:.3f}",
            f"{r['recognition_only']:.3f}",
        )
    console = stdout_console()
    console.print(table)
    console.print(
        "shown = generation with the options in the prompt; RO = recognition-only rate (MC right, open wrong)"
    )
