"""Pruning: the algorithms (`engine.pruning.algorithms`) and the layer-wise driver around them.

The algorithm names are re-exported lazily, so importing `engine.pruning` (as the CLI does to
register `engine.pruning.commands`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_ALGORITHM_NAMES = frozenset(
    {
        "HessianFactor",
        "SparseGPTResult",
        "check_sparsity_args",
        "factor_hessian",
        "magnitude_mask",
        "nm_valid",
        "prune_count",
        "realized_sparsity",
        "sparsegpt_prune",
        "wanda_mask",
        "wanda_scores",
    }
)

__all__ = sorted(_ALGORITHM_NAMES)


def __getattr__(name: str) -> Any:
    if name in _ALGORITHM_NAMES:
        return getattr(importlib.import_module("engine.pruning.algorithms"), name)
    raise AttributeError(f"module 'engine.pruning' has no attribute {name!r}")
