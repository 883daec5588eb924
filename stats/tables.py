"""The paired 2×2 table of two binary outcomes measured on the same items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import UserError


def _count(name: str, value: Any) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UserError(f"paired table: cell {name} = {value!r} is not a number") from None
    if not np.isfinite(f) or f < 0 or f != int(f):
        raise UserError(f"paired table: cell {name} = {value!r} must be a non-negative whole count")
    return int(f)


@dataclass(frozen=True)
class PairedTable:
    """Counts of a paired 2×2 table: rows = condition 1 (correct, wrong), columns = condition 2.

    `b = n12` (condition 1 right, condition 2 wrong) and `c = n21` are the discordant pairs.
    """

    n11: int
    n12: int
    n21: int
    n22: int
    labels: tuple[str, str] = ("condition 1", "condition 2")

    def __post_init__(self) -> None:
        for name in ("n11", "n12", "n21", "n22"):
            object.__setattr__(self, name, _count(name, getattr(self, name)))

    @classmethod
    def from_matrix(
        cls, table: Sequence[Sequence[float]] | np.ndarray, labels: tuple[str, str] = ("condition 1", "condition 2")
    ) -> PairedTable:
        """From `[[n11, n12], [n21, n22]]`; anything but a 2×2 table raises."""
        arr = np.asarray(table, dtype=object)
        if arr.shape != (2, 2):
            raise UserError(f"paired table: expected a 2×2 table, got shape {arr.shape}")
        return cls(arr[0, 0], arr[0, 1], arr[1, 0], arr[1, 1], labels)

    @classmethod
    def from_pairs(
        cls,
        first: Sequence[bool] | np.ndarray,
        second: Sequence[bool] | np.ndarray,
        labels: tuple[str, str] = ("condition 1", "condition 2"),
    ) -> PairedTable:
        """From two aligned 0/1 vectors (one entry per item)."""
        x = np.asarray(first, dtype=bool)
        y = np.asarray(second, dtype=bool)
        if x.shape != y.shape or x.ndim != 1:
            raise UserError(f"paired table: outcome vectors must be 1-D and aligned, got {x.shape} and {y.shape}")
        return cls(int(np.sum(x & y)), int(np.sum(x & ~y)), int(np.sum(~x & y)), int(np.sum(~x & ~y)), labels)

    @property
    def b(self) -> int:
        return self.n12

    @property
    def c(self) -> int:
        return self.n21

    @property
    def n(self) -> int:
        return self.n11 + self.n12 + self.n21 + self.n22

    @property
    def discordant(self) -> int:
        return self.n12 + self.n21

    @property
    def p1(self) -> float:
        """Rate of condition 1 (row margin)."""
        return (self.n11 + self.n12) / self.n if self.n else float("nan")

    @property
    def p2(self) -> float:
        """Rate of condition 2 (column margin)."""
        return (self.n11 + self.n21) / self.n if self.n else float("nan")

    def matrix(self) -> list[list[int]]:
        return [[self.n11, self.n12], [self.n21, self.n22]]
