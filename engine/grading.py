"""Grading outcome records with the answer matcher (torch-free).

The protocol grades a record when it writes it; `prunescope rescore` grades a stored record again under
another scoring. Both go through these functions: the open and candidate-shown generations, the
probes' hits (beam, sampling, one-shot), the paired category and the demotion verdict.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from engine.config import ProtocolConfig
from engine.contract.labels import category
from engine.matching import AnswerKey, Scoring, grade

DEMOTION_VALUES = ("demoted", "erased", "not_probed")


def scoring_of(config: ProtocolConfig) -> Scoring:
    """The scoring a protocol configuration asks for (`containment`, `guards`)."""
    return Scoring.parse("contains" if config.containment else "exact", config.guards)


def generation_fields(text: str, key: AnswerKey, scoring: Scoring) -> dict[str, Any]:
    """The graded fields of a generation record: correct, match, em, f1."""
    m = grade(text, key, scoring)
    return {"correct": bool(m.correct), "match": m.to_dict(), "em": float(m.em), "f1": float(m.f1)}


def is_correct(text: str, key: AnswerKey, scoring: Scoring) -> bool:
    """Whether a probe's text is credited."""
    return bool(grade(text, key, scoring).correct)


def _regrade_probes(out: dict[str, Any], key: AnswerKey, scoring: Scoring) -> None:
    """Grade every hit of a probes record again, in place."""
    beam = out.get("beam")
    if beam:
        for b in beam["beams"]:
            b["correct"] = is_correct(b["text"], key, scoring)
        beam["hit_top"] = bool(beam["beams"]) and beam["beams"][0]["correct"]
        beam["hit_any"] = any(b["correct"] for b in beam["beams"])
    samp = out.get("sampling")
    if samp:
        for s in samp["samples"]:
            s["correct"] = is_correct(s["text"], key, scoring)
        samp["hits"] = sum(s["correct"] for s in samp["samples"])
    one = out.get("one_shot")
    if one:
        one["correct"] = is_correct(one["text"], key, scoring)


def recovered(probes: Mapping[str, Any] | None) -> bool:
    """Did any probe produce the gold answer?"""
    if not probes:
        return False
    return bool(
        probes.get("beam", {}).get("hit_any")
        or probes.get("sampling", {}).get("hits")
        or probes.get("one_shot", {}).get("correct")
    )


def demotion(record: Mapping[str, Any], max_rank: int) -> str | None:
    """None when open generation was right; else `demoted` (gold first-token rank <= `max_rank`, or a
    probe recovered the gold), `erased` (probes ran and none did), or `not_probed` (no probe ran, so
    recovery is unknown). None too when neither a gold trace nor a probe was recorded (imported runs):
    nothing tells a demotion from an erasure there."""
    if record["open"]["correct"]:
        return None
    trace = record.get("gold_trace")
    if (trace is not None and trace["first_token_rank"] <= max_rank) or recovered(record.get("probes")):
        return "demoted"
    if record.get("probes"):
        return "erased"
    return "not_probed" if trace is not None else None


def demotion_rule(max_rank: int) -> dict[str, Any]:
    """The manifest's `demotion_rule` block: what `demotion` decides."""
    return {
        "applies_to": "items whose open generation failed",
        "demoted": f"gold first-token rank <= {max_rank}, or any probe recovered the gold",
        "erased": "otherwise, when probes ran",
        "not_probed": "otherwise, when no probe ran (recovery unknown)",
        "max_rank": max_rank,
    }


def regrade(record: Mapping[str, Any], item: Mapping[str, Any], scoring: Scoring, max_rank: int) -> dict[str, Any]:
    """A stored outcome record graded under `scoring`: generations, probes, category, demotion. Fields
    that do not depend on matching (texts, MC, gold trace) are kept as they are."""
    key = AnswerKey.from_item(item)
    out = copy.deepcopy(dict(record))
    for fmt in ("open", "shown"):
        if out.get(fmt) is not None:
            out[fmt].update(generation_fields(out[fmt]["text"], key, scoring))
    if out.get("probes"):
        _regrade_probes(out["probes"], key, scoring)
    out["category"] = category(out["open"]["correct"], out["mc"]["correct"])
    out["demotion"] = demotion(out, max_rank)
    return out
