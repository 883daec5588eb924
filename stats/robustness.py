"""Does a result hang on the answer matcher? Open accuracy and the recognition-only rate of every run under
four matching rules, and how many items change category between them.

Every stored open output is graded again from its text under each rule (`RULES`; one tokenisation per
output, four verdicts: `engine.matching.Evidence`), against its item's answer, aliases and options. The
MC decision is the stored one, so an item changes category between rules exactly when its open verdict
does. The other report tables use the scoring stored in the run folders, named in this table's notes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.contract.index import hash64
from engine.contract.labels import graded_by_task
from engine.contract.reader import ITEMS, read_items
from engine.matching import DEFAULT_SCORING, AnswerKey, Evidence, Scoring, evidence
from stats.report import Column, ReportTable

# (key, header, scoring): exact, the engine's default, containment without guards, SQuAD-style F1 >= 0.5
RULES: tuple[tuple[str, str, Scoring], ...] = (
    ("exact", "exact", Scoring.parse("exact")),
    ("guarded", "guarded", DEFAULT_SCORING),
    ("contains", "contains", Scoring.parse("contains", "none")),
    ("f1", "F1 ≥ 0.5", Scoring.parse("f1>=0.5", "none")),
)
DEFAULT_KEY = "guarded"


def _keys(runs: Sequence[dict[str, Any]]) -> dict[tuple[str, int], AnswerKey]:
    """Answer keys by (item_uid, content key: `engine.contract.index.hash64` of the content hash), built
    once per item; an items file shared by runs is read once."""
    keys: dict[tuple[str, int], AnswerKey] = {}
    seen: set[str] = set()
    for info in runs:
        path = Path(info["path"]) / ITEMS
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        for it in read_items(path.parent):
            k = (it["item_uid"], hash64(it["content_hash"]))
            if k not in keys:
                keys[k] = AnswerKey.from_item(it)
    return keys


def graded(df: pd.DataFrame) -> pd.DataFrame:
    """One row per df row: `open_<rule>` for each rule and `degenerate` (the open output is a loop)."""
    keys = _keys(df.attrs.get("runs", []))
    cache: dict[tuple[str, int, str], Evidence] = {}
    verdicts = np.zeros((len(df), len(RULES)), dtype=bool)
    loops = np.zeros(len(df), dtype=bool)
    uids, hashes = df["item_uid"].astype(str).to_numpy(), df["content_key"].to_numpy().tolist()
    texts = df["open_text"].fillna("").astype(str).to_numpy()
    for i, (uid, h, text) in enumerate(zip(uids, hashes, texts)):
        ev = cache.get((uid, h, text))
        if ev is None:
            ev = cache[(uid, h, text)] = evidence(text, keys[(uid, h)])
        verdicts[i] = [ev.verdict(scoring).correct for _, _, scoring in RULES]
        loops[i] = ev.degenerate
    out = pd.DataFrame(verdicts, columns=[f"open_{k}" for k, _, _ in RULES], index=df.index)
    out["degenerate"] = loops
    return out


def stored_scoring(block: dict[str, Any] | None) -> str:
    """A phrase for a manifest's `matching` block (matching v1 had no version and no guards)."""
    if not block:
        return "not recorded"
    if "version" not in block:
        return ("contains" if block.get("containment", True) else "exact") + " without guards (matching v1)"
    scoring = Scoring.parse(
        f"f1>={block['f1_min']}" if block.get("rule") == "f1" else str(block.get("rule")), block.get("guards") or ()
    )
    return scoring.describe(int(block["version"]))


def _stored(info: dict[str, Any]) -> str:
    """How a run's stored open verdicts were made: its matching block, or an imported task's own metric."""
    if graded_by_task(info.get("open_correct")):
        return f"{info['open_correct']} (imported with --grade task)"
    return stored_scoring(info.get("matching"))


def _order(rec: dict[str, Any]) -> tuple[Any, ...]:
    return (rec["model"], rec["method"] != "dense", rec["method"], rec["sparsity"], rec["pattern"])


def matching_report(df: pd.DataFrame) -> ReportTable:
    """Per run: n, open accuracy and recognition-only rate under each rule, items changing category, loops."""
    g = graded(df)
    mc = df["mc_correct"].to_numpy(bool)
    opens = g[[f"open_{k}" for k, _, _ in RULES]].to_numpy(bool)
    records = []
    for run_id, idx in df.groupby("run_id", observed=True, sort=True).indices.items():
        row = df.iloc[idx[0]]
        o, m = opens[idx], mc[idx][:, None]
        rec: dict[str, Any] = {
            "model": str(row["model"]),
            "run_id": str(run_id),
            "condition": str(row["condition"]),
            "method": str(row["method"]),
            "sparsity": float(row["sparsity"]),
            "pattern": str(row["pattern"]),
            "n": len(idx),
        }
        for j, (key, _, _) in enumerate(RULES):
            rec[f"open_{key}"] = float(o[:, j].mean())
            rec[f"ro_{key}"] = float((m[:, 0] & ~o[:, j]).mean())
        default = [k for k, _, _ in RULES].index(DEFAULT_KEY)
        for j, (key, _, _) in enumerate(RULES):
            if key != DEFAULT_KEY:
                rec[f"changed_vs_{DEFAULT_KEY}_{key}"] = int((o[:, j] != o[:, default]).sum())
        rec["changed"] = int((o.min(axis=1) != o.max(axis=1)).sum())
        rec["loops"] = int(g["degenerate"].to_numpy(bool)[idx].sum())
        records.append(rec)
    records.sort(key=_order)
    cols = [Column("model", "model", "text", "left"), Column("condition", "condition", "text", "left")]
    cols += [Column("n", "n", "int")]
    cols += [Column(f"open: {h}", f"open_{k}", "rate") for k, h, _ in RULES]
    cols += [Column(f"RO: {h}", f"ro_{k}", "rate") for k, h, _ in RULES]
    cols += [Column("changed", "changed", "int"), Column("loops", "loops", "int")]
    stored = sorted({_stored(info) for info in df.attrs.get("runs", [])})
    notes = [
        "Open accuracy and recognition-only rate (RO: MC right, open wrong) of each run, every stored open "
        "output graded again under four rules: exact = the normalised token sequences are equal; guarded = "
        "containment with the hedge, loop and short guards (the engine's default, "
        f"{DEFAULT_SCORING.describe()}); contains = containment without guards; F1 ≥ 0.5 = token F1 with a "
        "gold of at least 0.5, without guards. MC decisions are the stored ones.",
        "changed = items whose category (both correct, recognition-only, generation-only, both wrong) is not "
        "the same under all four rules; loops = open outputs that are repetition loops (the loop guard's "
        "test). CSV/JSON also carry, per rule, the items whose category differs from the guarded rule's.",
        "The other tables use the scoring stored in the run folders: " + "; ".join(stored) + ".",
    ]
    return ReportTable("robustness-matching", "Open-generation matching rules (robustness)", cols, records, notes)


def _pct(values: Sequence[float]) -> str:
    lo, hi = 100 * min(values), 100 * max(values)
    return f"{lo:.1f}%" if lo == hi else f"{lo:.1f}–{hi:.1f}%"


def matching_findings(table: ReportTable) -> list[str]:
    """Per model: open accuracy of the dense run and the range over pruned runs under each rule, and the
    items that change category between rules."""
    lines = []
    names = ", ".join(h for _, h, _ in RULES)
    for model in sorted({r["model"] for r in table.records}):
        recs = [r for r in table.records if r["model"] == model]
        dense = [r for r in recs if r["method"] == "dense"]
        pruned = [r for r in recs if r["method"] != "dense"]
        parts = []
        if dense:
            parts.append("dense " + " / ".join(_pct([dense[0][f"open_{k}"]]) for k, _, _ in RULES))
        if pruned:
            parts.append(
                f"{len(pruned)} pruned run{'s' if len(pruned) > 1 else ''} "
                + " / ".join(_pct([r[f"open_{k}"] for r in pruned]) for k, _, _ in RULES)
            )
        n, changed = sum(r["n"] for r in recs), sum(r["changed"] for r in recs)
        lines.append(
            f"{model}, open accuracy under the matching rules {names}: {'; '.join(parts)}; "
            f"{changed} of {n} item outcomes (item × run) change category between the rules."
        )
    return lines
