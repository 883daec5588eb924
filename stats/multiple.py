"""Multiple-comparison adjustment over a declared family (Holm by default, Benjamini–Hochberg).

NaN p-values are excluded from the family (and listed), never counted in m and never turned into
0 or 1; their adjusted value stays NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.errors import UserError

ADJUST_METHODS = ("holm", "bh", "none")
ADJUST_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "no correction"}


def _present(p: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The p-values as a float array and the mask of those that are not NaN."""
    arr = np.asarray(p, dtype=float).reshape(-1)
    return arr, ~np.isnan(arr)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values, as R's `p.adjust(p, "holm")`.

    With the m non-NaN p-values sorted, p(1) ≤ … ≤ p(m): adj(i) = min(1, max_{j ≤ i} (m − j + 1) p(j)).
    NaN p-values are left out of m and stay NaN (R's NA handling).
    """
    arr, keep = _present(p)
    out = np.full(arr.size, np.nan)
    q = arr[keep]
    m = q.size
    order = np.argsort(q, kind="stable")
    adj = np.empty(m)
    adj[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    out[keep] = adj
    return out


def benjamini_hochberg(p: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg step-up adjusted p-values, as R's `p.adjust(p, "BH")`.

    With the m non-NaN p-values sorted, p(1) ≤ … ≤ p(m): adj(i) = min(1, min_{j ≥ i} m p(j) / j).
    NaN p-values are left out of m and stay NaN (R's NA handling).
    """
    arr, keep = _present(p)
    out = np.full(arr.size, np.nan)
    q = arr[keep]
    m = q.size
    order = np.argsort(q, kind="stable")[::-1]
    adj = np.empty(m)
    adj[order] = np.minimum(1.0, np.minimum.accumulate(m / np.arange(m, 0, -1) * q[order]))
    out[keep] = adj
    return out


@dataclass(frozen=True)
class FamilyAdjustment:
    """Adjusted p-values of one declared family of tests."""

    family: str
    method: str
    labels: tuple[str, ...]
    raw: tuple[float, ...]
    adjusted: tuple[float, ...]
    m: int
    excluded: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def adjusted_of(self, label: str) -> float:
        return self.adjusted[self.labels.index(label)]

    def describe(self) -> str:
        """One line naming the correction, the family and its size (and any NaN left out)."""
        text = f"{ADJUST_NAMES[self.method]} correction over the family '{self.family}' (m = {self.m} tests)"
        if self.excluded:
            shown = ", ".join(self.excluded[:5]) + (" …" if len(self.excluded) > 5 else "")
            text += f"; {len(self.excluded)} test(s) without a p-value excluded: {shown}"
        return text


def adjust(
    pvalues: Sequence[float], labels: Sequence[str] | None = None, method: str = "holm", family: str = "all tests shown"
) -> FamilyAdjustment:
    """Adjust the p-values of a family; NaN p-values are excluded from m and stay NaN."""
    if method not in ADJUST_METHODS:
        raise UserError(f"unknown multiple-comparison method {method!r}; choose from {', '.join(ADJUST_METHODS)}")
    raw = [float(p) for p in pvalues]
    labels = tuple(str(x) for x in (labels if labels is not None else range(1, len(raw) + 1)))
    if len(labels) != len(raw):
        raise UserError(f"adjust: {len(labels)} labels for {len(raw)} p-values")
    for lab, p in zip(labels, raw):
        if not math.isnan(p) and not 0.0 <= p <= 1.0:
            raise UserError(f"adjust: p-value of {lab!r} is {p}, outside [0, 1]")
    fn = {"holm": holm, "bh": benjamini_hochberg, "none": lambda x: np.asarray(x, dtype=float)}[method]
    adjusted = tuple(float(v) for v in fn(raw))
    excluded = tuple(labels[i] for i, p in enumerate(raw) if math.isnan(p))
    return FamilyAdjustment(family, method, labels, tuple(raw), adjusted, len(raw) - len(excluded), excluded)
