"""SparseGPT: OBS-based mask selection and weight update in one column sweep (docs/pruning.md §4).

The Hessian is what the driver accumulates, `H = (2/N) * sum over tokens of x x^T` (any positive
scale gives the same result: the dampening is relative and the updates use ratios).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from engine.errors import UserError
from engine.pruning.masks import (
    as_compute,
    check_sparsity_args,
    group_mask_by_column,
    module_suffix,
    prune_count,
    smallest_k_mask,
)
from engine.reproducibility import full_fp32_matmuls

log = logging.getLogger(__name__)


@dataclass
class SparseGPTResult:
    """Outcome of `sparsegpt_prune` for one weight matrix.

    weight: the updated `(out, in)` weight, zero wherever `mask` is True, in the input's dtype.
    mask: True = pruned; the selected weights plus every weight of a dead input column.
    loss: the reference's `sum(Losses)`, equal to 1/2 * sum over rows of dW H_damped dW^T with
        dW = W - W_new (dead columns zeroed in W first).
    damping: the relative dampening actually used, `percdamp * 10**retries`: the diagonal of H got
        that fraction of mean(diag H) added.
    retries: how many times the Cholesky factorization was retried with 10x the dampening.
    """

    weight: torch.Tensor
    mask: torch.Tensor
    loss: float
    damping: float
    retries: int


@dataclass(frozen=True)
class HessianFactor:
    """Upper Cholesky factor `U` of the damped inverse Hessian (`H^-1 = U^T U`).

    Modules that read the same input (q/k/v, gate/up) share one Hessian: compute this once with
    `factor_hessian` and pass it to `sparsegpt_prune` in place of the Hessian.
    """

    hinv_chol: torch.Tensor
    dead: torch.Tensor
    damping: float
    retries: int


def _upper_factor_of_inverse(damped: torch.Tensor) -> torch.Tensor | None:
    """`U` upper with `H^-1 = U^T U` from one Cholesky factorization (None when that fails).

    With `P` the exchange matrix and `P H P = L L^T`, `H = R R^T` for the upper `R = P L P`, so
    `H^-1 = R^-T R^-1` and `U = R^-1 = P L^-1 P` (the factor with a positive diagonal is unique).
    Equal to the reference's `cholesky(cholesky_inverse(cholesky(H)), upper=True)` up to rounding
    (closer to a float64 result than that, in our checks), without its second factorization, which
    could fail; on one CPU thread a 1536-column Hessian took 0.12 s against 0.23 s for `L^-T L^-1`
    and a second Cholesky (torch 2.13, AMD EPYC).
    """
    chol, info = torch.linalg.cholesky_ex(damped.flip(0, 1))
    if int(info) != 0:
        return None
    eye = torch.eye(chol.shape[0], dtype=chol.dtype, device=chol.device)
    return torch.linalg.solve_triangular(chol, eye, upper=False).flip(0, 1)


def factor_hessian(
    hessian: torch.Tensor, percdamp: float = 0.01, max_damping_retries: int = 4, name: str = ""
) -> HessianFactor:
    """Dead inputs (H_ii == 0) get H_ii = 1; add `percdamp * mean(diag H)` to the diagonal; return the
    upper Cholesky factor of the inverse, the reference's `cholesky(cholesky_inverse(cholesky(H)),
    upper=True)` (computed from one factorization: `_upper_factor_of_inverse`).

    On a failed factorization the relative dampening is multiplied by 10 (logged) up to
    `max_damping_retries` times; past that a `UserError` names the module. The input is not changed.
    """
    where = module_suffix(name)
    if hessian.dim() != 2 or hessian.shape[0] != hessian.shape[1]:
        raise UserError(f"Hessian must be a square matrix, got shape {tuple(hessian.shape)}{where}")
    if not (math.isfinite(percdamp) and percdamp >= 0):
        raise UserError(f"percdamp must be a finite number >= 0, got {percdamp}{where}")
    if max_damping_retries < 0:
        raise UserError(f"max_damping_retries must be >= 0, got {max_damping_retries}{where}")
    h = as_compute(hessian, "Hessian", name)
    diag = h.diagonal()
    if (diag < 0).any():
        raise UserError(f"Hessian has negative diagonal entries, so it is not X X^T{where}")
    dead = diag == 0
    base = torch.where(dead, torch.ones_like(diag), diag)
    mean = base.mean()
    frac = percdamp
    with full_fp32_matmuls():
        for attempt in range(max_damping_retries + 1):
            if attempt:
                frac *= 10
                log.warning("Cholesky failed%s; retry %d with dampening %g", where, attempt, frac)
            damped = h.clone()
            damped.diagonal().copy_(base + frac * mean)
            upper = _upper_factor_of_inverse(damped)
            del damped
            if upper is not None:
                return HessianFactor(upper, dead, frac, attempt)
    raise UserError(
        f"Cholesky factorization of the Hessian failed{where} even with dampening {frac:g} "
        f"(percdamp {percdamp:g} x 10^{max_damping_retries}); the calibration statistics are "
        "degenerate: use more or different calibration samples, or a larger percdamp"
    )


def _unstructured_block_mask(score: torch.Tensor, sparsity: float, reference_compatible: bool) -> torch.Tensor:
    """One threshold over the whole block (all rows x block columns)."""
    flat = score.reshape(1, -1)
    k = prune_count(flat.numel(), sparsity, reference_compatible)
    if reference_compatible:  # sort(score)[int(numel * p)], prune <=: int(numel * p) + 1 plus ties
        return score <= flat.kthvalue(k + 1, dim=-1).values
    return smallest_k_mask(flat, k).reshape(score.shape)


def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor | HessianFactor,
    sparsity: float,
    nm: tuple[int, int] | None = None,
    blocksize: int = 128,
    percdamp: float = 0.01,
    reference_compatible: bool = False,
    max_damping_retries: int = 4,
    name: str = "",
) -> SparseGPTResult:
    """Prune an `(out, in)` weight with SparseGPT; the inputs are not changed.

    `hessian` is the `(in, in)` Hessian, or a `HessianFactor` shared by modules reading the same
    input (then `percdamp` and `max_damping_retries` were applied when it was made).
    Columns are swept in blocks of `blocksize`: OBS update of the rest of the block after each
    column, one lazy GEMM update of all later columns per block. Mask selection is adaptive:

    - unstructured: once per block, scores `W^2 / diag(U_block)^2` over all rows x block columns
      against one threshold. Reference mode reproduces `sort(score)[int(numel * p)]` with `<=`,
      i.e. `int(numel * p) + 1` pruned per block plus ties (even at p = 0); the default prunes
      exactly `prune_count(numel, p)` per block, ties to the lower row-major index.
    - N:M (`nm=(n, m)`, n kept): at every m-th column of a block, the `m - n` lowest scores of the
      next m columns per row, using the weights as updated so far; ties to the lower column index
      in both modes (the reference's `topk` leaves tie order unspecified). Needs
      `blocksize % m == 0`.
    """
    rows, cols = weight.shape
    where = module_suffix(name)
    check_sparsity_args(sparsity, nm, cols, name)
    if blocksize < 1 or (nm is not None and blocksize % nm[1] != 0):
        raise UserError(f"blocksize must be a positive multiple of the N:M group size, got {blocksize}{where}")
    factor = (
        hessian if isinstance(hessian, HessianFactor) else factor_hessian(hessian, percdamp, max_damping_retries, name)
    )
    if factor.hinv_chol.shape != (cols, cols):
        raise UserError(
            f"Hessian has shape {tuple(factor.hinv_chol.shape)}, expected ({cols}, {cols}) "
            f"for a weight of shape {(rows, cols)}{where}"
        )
    # The sweep runs on W^T (in, out): a column of W is then a contiguous row, so every per-column
    # operation and the lazy update touch contiguous memory (strided column updates were measured
    # 10-100x slower on a loaded 2-core CPU). The arithmetic is the reference's, element by element.
    wt = as_compute(weight, "weight", name).t().contiguous()
    upper = factor.hinv_chol.to(device=wt.device, dtype=wt.dtype)
    dead = factor.dead.to(wt.device)
    mask_t = torch.zeros(wt.shape, dtype=torch.bool, device=wt.device)
    losses = torch.zeros(rows, dtype=wt.dtype, device=wt.device)
    zero = torch.zeros((), dtype=wt.dtype, device=wt.device)
    with full_fp32_matmuls():
        wt[dead] = 0
        for i1 in range(0, cols, blocksize):
            i2 = min(i1 + blocksize, cols)
            w1 = wt[i1:i2].clone()
            diff1 = torch.zeros_like(w1)
            err1 = torch.zeros_like(w1)
            hinv1 = upper[i1:i2, i1:i2]
            d = hinv1.diagonal()
            if nm is None:
                score = (w1**2 / d.reshape(-1, 1) ** 2).t()  # (out, block) as in the reference
                mask1 = _unstructured_block_mask(score, sparsity, reference_compatible).t().contiguous()
            else:
                mask1 = torch.zeros(w1.shape, dtype=torch.bool, device=w1.device)
            for i in range(i2 - i1):
                if nm is not None and i % nm[1] == 0:
                    j = i + nm[1]
                    mask1[i:j] = group_mask_by_column(w1[i:j] ** 2 / d[i:j].reshape(-1, 1) ** 2, nm[0])
                diff = torch.where(mask1[i], w1[i], zero, out=diff1[i])  # w - q: the column's pruned entries
                err = torch.div(diff, d[i], out=err1[i])
                w1[i:].addmm_(hinv1[i, i:].unsqueeze(1), err.unsqueeze(0), alpha=-1)
            # A kept entry's err is 0, so its column's own update leaves it as it was: q is w1 with the
            # pruned entries zeroed. The losses are the reference's diff^2 / d^2, element by element.
            wt[i1:i2] = w1.masked_fill_(mask1, 0)
            losses += (diff1**2 / d.reshape(-1, 1) ** 2).sum(dim=0) / 2
            mask_t[i1:i2] = mask1
            if i2 < cols:
                wt[i2:].addmm_(upper[i1:i2, i2:].t(), err1, alpha=-1)
    mask_t[dead] = True
    return SparseGPTResult(
        weight=wt.t().to(weight.dtype).contiguous(),
        mask=mask_t.t().contiguous(),
        loss=float(losses.sum(dtype=torch.float64)),
        damping=factor.damping,
        retries=factor.retries,
    )
