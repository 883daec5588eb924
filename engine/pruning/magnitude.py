"""Magnitude pruning: the data-free baseline of the Wanda and SparseGPT papers (docs/pruning.md §2)."""

from __future__ import annotations

import torch

from engine.pruning.masks import as_compute, check_sparsity_args, nm_group_mask, prune_count, smallest_k_mask


def magnitude_mask(
    weight: torch.Tensor,
    sparsity: float,
    nm: tuple[int, int] | None = None,
    reference_compatible: bool = False,
    name: str = "",
) -> torch.Tensor:
    """Mask (True = pruned) of the smallest-|W| weights of an `(out, in)` matrix.

    Unstructured: one threshold for the whole matrix. Reference mode reproduces
    `thresh = sort(|W|.flatten())[int(numel * p)]; prune |W| <= thresh`, which prunes
    `int(numel * p) + 1` weights plus any ties at the threshold (so even p = 0 prunes the smallest).
    Default: exactly `prune_count(numel, p)` weights, ties broken by lower row-major index.

    N:M (`nm=(n, m)`, n kept): the `m - n` smallest |W| of every group of `m` consecutive input
    columns of each row, ties to the lower column index; the same in both modes.
    """
    check_sparsity_args(sparsity, nm, weight.shape[-1], name)
    score = as_compute(weight, "weight", name).abs()
    if nm is not None:
        return nm_group_mask(score, *nm)
    k = prune_count(score.numel(), sparsity, reference_compatible)
    flat = score.reshape(1, -1)
    if reference_compatible:
        thresh = flat.kthvalue(k + 1, dim=-1).values
        return score <= thresh
    return smallest_k_mask(flat, k).reshape(score.shape)
