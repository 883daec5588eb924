"""The pruning algorithms as pure tensor functions on `(out, in)` weights (True in a mask = pruned).

One import point for the driver; the code lives in `masks`, `magnitude`, `wanda` and `sparsegpt`.
"""

from engine.pruning.magnitude import magnitude_mask
from engine.pruning.masks import check_sparsity_args, nm_valid, prune_count, realized_sparsity
from engine.pruning.sparsegpt import HessianFactor, SparseGPTResult, factor_hessian, sparsegpt_prune
from engine.pruning.wanda import wanda_mask, wanda_scores

# Bump whenever a change alters any mask or weight these functions return (keys the pruning cache).
ALGORITHM_VERSION = "1"

__all__ = [
    "ALGORITHM_VERSION",
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
]
