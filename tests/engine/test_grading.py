"""Grading outcome records: demotion verdicts and re-grading a stored record."""

from __future__ import annotations

import copy

import pytest

from engine.grading import demotion, regrade
from engine.matching import Scoring

ITEM = {
    "item_uid": "t/x/1/en",
    "language": "en",
    "answer": "K",
    "aliases": [],
    "options": ["K", "P", "Po", "Kr"],
    "gold_index": 0,
}


def _gen(text: str, correct: bool) -> dict:
    match = {"rule": "contains" if correct else "none", "alias": "K" if correct else None, "normalizer": "en"}
    return {"text": text, "correct": correct, "match": match, "em": 0.0, "f1": 0.5, "n_new_tokens": 4, "stop": "eos"}


def _record(open_text: str, open_ok: bool, rank: int, probes: dict | None) -> dict:
    return {
        "item_uid": ITEM["item_uid"],
        "content_hash": "sha256:" + "0" * 64,
        "language": "en",
        "open": _gen(open_text, open_ok),
        "shown": _gen("K or Kr", True),
        "mc": {"correct": True, "choice": 0},
        "gold_trace": {"first_token_rank": rank, "seq_logprob": -3.0},
        "category": "both_correct" if open_ok else "recognition_only",
        "demotion": None,
        "probes": probes,
    }


PROBED = {
    "beam": {
        "k": 2,
        "beams": [{"text": "M K M K M K", "score": -1.0, "correct": True}],
        "hit_top": True,
        "hit_any": True,
    },
    "sampling": {
        "n": 1,
        "temperature": 0.7,
        "top_p": 1.0,
        "seed": 1,
        "samples": [{"text": "P", "correct": False}],
        "hits": 0,
    },
    "one_shot": {"example_uid": "t/x/2/en", "text": "K-pop", "correct": True},
}


@pytest.mark.parametrize(
    ("open_ok", "rank", "probes", "expected"),
    [
        (True, 50, None, None),
        (False, 3, None, "demoted"),  # near the top: demoted whether or not probes ran
        (False, 50, {"one_shot": {"example_uid": "e", "text": "K", "correct": True}}, "demoted"),
        (False, 50, {"beam": {"k": 1, "beams": [], "hit_top": False, "hit_any": False}}, "erased"),
        (False, 50, None, "not_probed"),  # never 'erased' when no probe ran
        (False, 50, {}, "not_probed"),
    ],
)
def test_demotion(open_ok: bool, rank: int, probes: dict | None, expected: str | None) -> None:
    assert demotion(_record("x", open_ok, rank, probes), max_rank=10) == expected


def test_regrade_recomputes_every_matching_field_and_keeps_the_rest() -> None:
    rec = _record("Sou C M K M K M K M K", True, 50, copy.deepcopy(PROBED))
    source = copy.deepcopy(rec)
    new = regrade(rec, ITEM, Scoring.parse("contains"), max_rank=10)
    assert rec == source  # the stored record is not modified
    assert new["open"]["correct"] is False and new["open"]["match"]["guards"] == ["loop"]
    assert new["open"]["match"]["degenerate"] is True and new["open"]["match"]["alias"] == "K"
    assert new["shown"]["correct"] is False and new["shown"]["match"]["other_options"] == ["Kr"]
    assert new["category"] == "recognition_only"
    beam, one = new["probes"]["beam"], new["probes"]["one_shot"]
    assert (beam["beams"][0]["correct"], beam["hit_top"], beam["hit_any"]) == (False, False, False)
    assert one["correct"] is False  # 'K-pop': a short gold inside a word
    assert new["demotion"] == "erased"  # probes ran and, graded again, none recovers the gold
    for key in ("item_uid", "content_hash", "mc", "gold_trace"):
        assert new[key] == rec[key]
    assert new["open"]["text"] == rec["open"]["text"] and new["open"]["n_new_tokens"] == 4

    unguarded = regrade(rec, ITEM, Scoring.parse("contains", "none"), max_rank=10)
    assert unguarded["open"]["correct"] and unguarded["demotion"] is None
    assert unguarded["probes"]["sampling"]["hits"] == 0 and unguarded["probes"]["beam"]["hit_any"]


def test_an_open_answer_that_fails_only_after_regrading_and_was_not_probed_is_not_probed() -> None:
    rec = _record("by by by M and M. M K M K", True, 50, None)
    assert regrade(rec, ITEM, Scoring.parse("contains"), max_rank=10)["demotion"] == "not_probed"
    assert regrade(rec, ITEM, Scoring.parse("contains"), max_rank=50)["demotion"] == "demoted"
