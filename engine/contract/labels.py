"""Names and codes shared by every layer: paired categories, transitions, conditions and N:M patterns.

A category is the paired outcome of one item in one run (open generation × multiple choice); a
transition is the pair (category in the reference run, category in the run). Codes are small
integers so that columns of a million rows stay numpy arrays; the labels are what people read.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

import numpy as np

CATEGORIES = ("both_correct", "recognition_only", "generation_only", "both_wrong")
CATEGORY_SHORT = ("BC", "RO", "GO", "BW")
DEMOTIONS = ("demoted", "erased", "not_probed")  # an open-generation failure: the gold near the top, gone, or unknown
UNSTRUCTURED = "unstructured"
TASK_METRIC = "the task's own metric"  # how an import graded open answers under --grade task (`imported.open_correct`)
Method = Literal["dense", "wanda", "sparsegpt", "magnitude"]  # a run's pruning method (the manifest's condition.method)


class Category(IntEnum):
    """Code of a paired category (the index into CATEGORIES)."""

    BOTH_CORRECT = 0
    RECOGNITION_ONLY = 1
    GENERATION_ONLY = 2
    BOTH_WRONG = 3

    @property
    def label(self) -> str:
        return CATEGORIES[self]

    @property
    def short(self) -> str:
        return CATEGORY_SHORT[self]


NO_REFERENCE = 4  # the "reference category" of a row that has no reference run


def category(open_correct: bool, mc_correct: bool) -> str:
    """Paired outcome category of one item in one run."""
    return CATEGORIES[category_code(open_correct, mc_correct)]


def category_code(open_correct: bool, mc_correct: bool) -> Category:
    if mc_correct:
        return Category.BOTH_CORRECT if open_correct else Category.RECOGNITION_ONLY
    return Category.GENERATION_ONLY if open_correct else Category.BOTH_WRONG


def category_codes(open_correct: np.ndarray, mc_correct: np.ndarray) -> np.ndarray:
    """`category_code` over boolean arrays (int8)."""
    o, m = np.asarray(open_correct, dtype=bool), np.asarray(mc_correct, dtype=bool)
    return np.where(m, np.where(o, 0, 1), np.where(o, 2, 3)).astype(np.int8)


def category_from_short(text: str) -> str:
    """'RO', 'ro' or 'recognition_only' → 'recognition_only'; ValueError names the choices."""
    low = text.lower()
    for full, short in zip(CATEGORIES, CATEGORY_SHORT):
        if low in (full, short.lower()):
            return full
    raise ValueError(f"unknown category {text!r}; one of {', '.join(CATEGORIES)} or {'/'.join(CATEGORY_SHORT)}")


# ------------------------------------------------------------------ transitions

N_TRANSITIONS = 4 * (NO_REFERENCE + 1)


def transition_code(reference: int | np.ndarray, category: int | np.ndarray) -> np.ndarray:
    """Code of (reference category, category); reference NO_REFERENCE when there is none."""
    return (4 * np.asarray(reference, dtype=np.int8) + np.asarray(category, dtype=np.int8)).astype(np.int8)


def transition_parts(code: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference category, category) of transition codes."""
    c = np.asarray(code)
    return c // 4, c % 4


def discordant(code: int | np.ndarray) -> np.ndarray:
    """Rows whose category differs from the reference run's (no reference: never discordant)."""
    ref, cat = transition_parts(code)
    return (ref < NO_REFERENCE) & (ref != cat)


def transition_label(code: int) -> str:
    """'BC→RO'; '·→RO' when there is no reference."""
    ref, cat = divmod(int(code), 4)
    return ("·" if ref >= NO_REFERENCE else CATEGORY_SHORT[ref]) + "→" + CATEGORY_SHORT[cat]


TRANSITION_LABELS = tuple(transition_label(c) for c in range(N_TRANSITIONS))


# ------------------------------------------------------------------ conditions


def parse_pattern(pattern: str, prunes: bool = False) -> tuple[int, int] | None:
    """'unstructured' → None; 'N:M' (N weights kept of every M) → (N, M); ValueError otherwise.

    N may equal M (nothing pruned) unless `prunes`: a study's condition must prune something."""
    if pattern == UNSTRUCTURED:
        return None
    parts = str(pattern).split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"pattern {pattern!r}: expected 'unstructured' or N:M such as 2:4")
    n, m = int(parts[0]), int(parts[1])
    if prunes and not 0 < n < m:
        raise ValueError(f"pattern {pattern!r}: N:M needs 0 < N < M (N weights kept of every M; some must be pruned)")
    if not 0 < n <= m:
        raise ValueError(f"pattern {pattern!r}: N:M needs 0 < N <= M (N, the weights kept, cannot exceed M)")
    return n, m


def pattern_sparsity(pattern: str) -> float | None:
    """The fraction an N:M pattern prunes, (M - N) / M; None for unstructured."""
    nm = parse_pattern(pattern)
    return None if nm is None else (nm[1] - nm[0]) / nm[1]


def condition_label(method: str, sparsity: float, pattern: str = UNSTRUCTURED) -> str:
    """'dense', 'wanda-s50' or 'wanda-2of4': the condition's name in tables, run ids and the TUI."""
    if method == "dense":
        return "dense"
    nm = parse_pattern(pattern)
    if nm is not None:
        return f"{method}-{nm[0]}of{nm[1]}"
    return f"{method}-s{round(sparsity * 100):02d}"


def graded_by_task(open_correct: object) -> bool:
    """Whether an imported run's `imported.open_correct` says the harness task's metric decided (not the matcher)."""
    return isinstance(open_correct, str) and open_correct.startswith(TASK_METRIC)
