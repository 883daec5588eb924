"""Wanda: prune by |W_ij| * ||X_j||_2, compared within each output row (docs/pruning.md §3)."""

from __future__ import annotations

import torch

from engine.errors import UserError
from engine.pruning.masks import (
    as_compute,
    check_sparsity_args,
    module_suffix,
    nm_group_mask,
    prune_count,
    smallest_k_mask,
)


def wanda_scores(weight: torch.Tensor, act_sq_norm: torch.Tensor, name: str = "") -> torch.Tensor:
    """`|W| * sqrt(act_sq_norm)` broadcast over rows, in float32 (float64 for float64 input)."""
    w = as_compute(weight, "weight", name)
    if act_sq_norm.shape != (w.shape[-1],):
        raise UserError(
            f"activation statistic has shape {tuple(act_sq_norm.shape)}, expected ({w.shape[-1]},) "
            f"for a weight of shape {tuple(w.shape)}" + module_suffix(name)
        )
    s = as_compute(act_sq_norm, "activation statistic", name).to(device=w.device, dtype=w.dtype)
    if (s < 0).any():
        raise UserError(f"activation statistic has negative entries{module_suffix(name)}")
    return w.abs() * torch.sqrt(s.reshape(1, -1))


def wanda_mask(
    weight: torch.Tensor,
    act_sq_norm: torch.Tensor,
    sparsity: float,
    nm: tuple[int, int] | None = None,
    reference_compatible: bool = False,
    name: str = "",
) -> torch.Tensor:
    """Wanda mask (True = pruned) of an `(out, in)` weight.

    `act_sq_norm` is the `(in,)` running mean of squared input-column norms (the reference's
    `scaler_row`; any positive constant factor leaves the mask unchanged). The score
    `|W_ij| * sqrt(act_sq_norm_j)` is computed as the reference does.

    Unstructured: each row loses its `k` lowest scores, ties to the lower column index (the
    reference's stable sort). Reference mode: `k = int(in * p)` (float truncation); default:
    `k = prune_count(in, p)`, floor of the exact decimal product; the two differ only when
    `in * p` lands just below an integer in floating point.
    N:M (`nm=(n, m)`, n kept): the `m - n` lowest scores of every group of `m` consecutive input
    columns per row, ties to the lower index (the reference's `topk` leaves tie order unspecified).
    """
    check_sparsity_args(sparsity, nm, weight.shape[-1], name)
    score = wanda_scores(weight, act_sq_norm, name)
    if nm is not None:
        return nm_group_mask(score, *nm)
    return smallest_k_mask(score, prune_count(score.shape[-1], sparsity, reference_compatible))
