"""Argument checks, prune counts and mask helpers shared by the pruning algorithms.

Conventions used throughout `engine.pruning`:

- weights are `(out, in)` matrices; a mask is a bool tensor of the same shape with True = pruned
  (the weight is set to zero);
- `nm=(n, m)` means N:M sparsity in the hardware convention: at most `n` weights are **kept** in
  every group of `m` consecutive input columns of a row (the references count the `m - n` pruned
  ones instead; for 2:4 and 4:8 both readings agree).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from engine.errors import UserError

# Rows narrower than this are ranked with a stable sort; wider ones with kthvalue (same result).
_SORT_MAX_COLS = 64


def module_suffix(name: str) -> str:
    """The suffix ' (module NAME)' that ends an error message, or '' without a name."""
    return f" (module {name})" if name else ""


def check_sparsity_args(
    sparsity: float, nm: tuple[int, int] | None, in_features: int | None = None, name: str = ""
) -> None:
    """Raise `UserError` unless `sparsity`, `nm` and `in_features` describe a prunable request.

    `sparsity` must lie in [0, 1). `nm=(n, m)` needs integers 1 <= n <= m, `in_features` divisible
    by m, and a `sparsity` equal to (m - n) / m (the references assert the same for 2:4 / 4:8).
    """
    where = module_suffix(name)
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise UserError(f"sparsity must be a number in [0, 1), got {sparsity!r}{where}")
    if not math.isfinite(sparsity) or not 0.0 <= sparsity < 1.0:
        raise UserError(f"sparsity must be in [0, 1), got {sparsity}{where}")
    if nm is None:
        return
    if not isinstance(nm, tuple) or len(nm) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in nm):
        raise UserError(f"pattern must be a pair of integers (N, M), got {nm!r}{where}")
    n, m = nm
    if n < 1 or m < 1:
        raise UserError(f"pattern {n}:{m}: N and M must both be at least 1{where}")
    if n > m:
        raise UserError(f"pattern {n}:{m}: N (weights kept per group) cannot exceed M (group size){where}")
    implied = (m - n) / m
    if abs(sparsity - implied) > 1e-9:
        raise UserError(
            f"sparsity {sparsity} conflicts with pattern {n}:{m}, which prunes {implied:g} "
            f"({m - n} of every {m} weights){where}"
        )
    if in_features is not None and in_features % m != 0:
        raise UserError(
            f"pattern {n}:{m} needs the number of input features to be divisible by {m}, got {in_features}{where}"
        )


def prune_count(total: int, sparsity: float, reference_compatible: bool) -> int:
    """How many of `total` weights a group loses at `sparsity`.

    Reference mode: `int(total * sparsity)`, the references' float product truncated (0.29 of 100
    gives 28 because 100 * 0.29 == 28.999...). Default: floor of `total` times the decimal value of
    `sparsity` as written (`repr`), computed exactly (0.29 of 100 gives 29).
    """
    if reference_compatible:
        return int(total * sparsity)
    return math.floor(Fraction(repr(float(sparsity))) * total)


def smallest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """True at the `k` smallest entries along the last dimension, ties to the lower index.

    Equal to scattering the first `k` indices of `torch.sort(scores, dim=-1, stable=True)`, which
    is the references' rule; wide rows use `kthvalue` instead of a full sort (faster, less memory).
    Scores must be finite.
    """
    cols = scores.shape[-1]
    if k <= 0:
        return torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    if k >= cols:
        return torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    if cols <= _SORT_MAX_COLS:
        idx = torch.sort(scores, dim=-1, stable=True).indices[..., :k]
        mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        return mask.scatter_(-1, idx, True)
    flat = scores.reshape(-1, cols)
    kth = flat.kthvalue(k, dim=-1, keepdim=True).values
    mask = flat < kth
    eq = flat == kth
    need = k - mask.sum(dim=-1, keepdim=True)
    exact = eq.sum(dim=-1, keepdim=True) == need
    mask |= eq & exact
    ragged = (~exact).squeeze(-1).nonzero().squeeze(-1)
    if ragged.numel():  # more ties at the k-th value than places left: take the lowest indices
        tie_row, tie_col = eq[ragged].nonzero(as_tuple=True)  # row-major: ascending column per row
        per_row = torch.bincount(tie_row, minlength=ragged.numel())
        rank = torch.arange(tie_row.numel(), device=flat.device) - (per_row.cumsum(0) - per_row)[tie_row]
        take = rank < need.squeeze(-1)[ragged][tie_row]
        mask[ragged[tie_row[take]], tie_col[take]] = True
    return mask.reshape(scores.shape)


def nm_group_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Per row, prune the `m - n` smallest scores of every group of `m` consecutive columns.

    Ties go to the lower column index (stable sort); the references use `topk`, whose tie order is
    unspecified, so the two can differ only between exactly equal scores.
    """
    rows, cols = scores.shape
    grouped = scores.reshape(rows, cols // m, m)
    return smallest_k_mask(grouped, m - n).reshape(rows, cols)


def group_mask_by_column(scores: torch.Tensor, n: int) -> torch.Tensor:
    """`nm_group_mask` for one group stored column-wise: `scores` is `(m, rows)`, entry `[j, r]`
    the score of row r's j-th weight in the group; True at the `m - n` lowest per row (ties to the
    lower j). Ranks by comparing all pairs: no sort and no transposes, for SparseGPT's per-group
    calls inside its column sweep.
    """
    m = scores.shape[0]
    earlier = torch.ones(m, m, dtype=torch.bool, device=scores.device).triu(1).unsqueeze(-1)
    a, b = scores.unsqueeze(1), scores.unsqueeze(0)  # [x, y, r]: compare entry x with entry y
    rank = ((a < b) | ((a == b) & earlier)).sum(dim=0)  # entries ahead of y in stable order
    return rank < m - n


def realized_sparsity(mask: torch.Tensor) -> float:
    """Fraction of True entries (pruned weights) in `mask`; 0.0 for an empty mask."""
    if mask.numel() == 0:
        return 0.0
    return mask.count_nonzero().item() / mask.numel()


def nm_valid(mask: torch.Tensor, n: int, m: int) -> bool:
    """Whether every group of `m` consecutive entries along the last dimension keeps at most `n`.

    `mask` is True where a weight is pruned (or zero: `weight == 0` works too). A last dimension not
    divisible by `m` is not N:M-valid.
    """
    if m < 1 or mask.shape[-1] % m != 0:
        return False
    kept = (~mask.bool()).reshape(*mask.shape[:-1], mask.shape[-1] // m, m).sum(dim=-1)
    return bool((kept <= n).all().item())


def as_compute(tensor: torch.Tensor, what: str, name: str) -> torch.Tensor:
    """`tensor` in float32 (float64 stays float64), after checking every entry is finite."""
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    out = tensor.to(dtype)
    if not torch.isfinite(out).all():
        raise UserError(f"{what} has NaN or infinite entries{module_suffix(name)}")
    return out
