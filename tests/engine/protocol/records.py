"""Comparing outcome records made on different paths: everything equal but floats, floats close."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

# log-probabilities (nats) and their sums may differ by float rounding between kernels and batch shapes
ABS_TOL = 1e-3
REL_TOL = 1e-4


def _leaves(x: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, x


def record_differences(a: dict[str, Any], b: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    """Where two records differ: a different structure or non-float value, or floats not close."""
    la, lb = dict(_leaves(a)), dict(_leaves(b))
    out = [f"{p}: only in one record" for p in sorted(set(la) ^ set(lb))]
    for p in sorted(set(la) & set(lb)):
        if any(s in p for s in skip):
            continue
        x, y = la[p], lb[p]
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=REL_TOL, abs_tol=ABS_TOL):
                out.append(f"{p}: {x!r} vs {y!r}")
        elif x != y or type(x) is not type(y):
            out.append(f"{p}: {x!r} vs {y!r}")
    return out


def max_float_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    la, lb = dict(_leaves(a)), dict(_leaves(b))
    return max(
        (abs(la[p] - lb[p]) for p in la if isinstance(la[p], float) and isinstance(lb.get(p), float)), default=0.0
    )
