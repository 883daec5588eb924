"""Wanda and magnitude masks, checks of docs/pruning.md §10: hand-computed cases (H1-H3), exact counts
(C1, C2, C4), agreement with re-implementations of the reference code paths (R1) and invariances
(I1-I3)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import UserError
from engine.pruning import magnitude_mask, nm_valid, wanda_mask


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _scaler_row(batches: list[torch.Tensor]) -> torch.Tensor:
    """The reference `WrappedGPT.add_batch` running mean, one (b, seq, cols) batch at a time."""
    cols = batches[0].shape[-1]
    scaler_row, nsamples = torch.zeros(cols), 0
    for inp in batches:
        tmp = inp.shape[0]
        x = inp.reshape(-1, cols).t().float()
        scaler_row *= nsamples / (nsamples + tmp)
        nsamples += tmp
        scaler_row += torch.norm(x, p=2, dim=1) ** 2 / nsamples
    return scaler_row


def _reference_wanda(w: torch.Tensor, scaler_row: torch.Tensor, p: float, prune_n: int = 0, prune_m: int = 0):
    """`lib/prune.py:prune_wanda` mask rule (prune_n = number pruned per group)."""
    metric = torch.abs(w) * torch.sqrt(scaler_row.reshape((1, -1)))
    mask = torch.zeros_like(metric) == 1
    if prune_n != 0:
        for ii in range(metric.shape[1]):
            if ii % prune_m == 0:
                tmp = metric[:, ii : ii + prune_m].float()
                mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
    else:
        indices = torch.sort(metric, dim=-1, stable=True)[1][:, : int(metric.shape[1] * p)]
        mask.scatter_(1, indices, True)
    return mask


def _reference_magnitude(w: torch.Tensor, p: float) -> torch.Tensor:
    """`lib/prune.py:prune_magnitude`, unstructured."""
    thresh = torch.sort(w.abs().flatten())[0][int(w.numel() * p)]
    return w.abs() <= thresh


# --- hand-computed cases (H1-H3) -------------------------------------------------------------


@pytest.mark.parametrize("ref", [False, True])
def test_wanda_hand_case_scores_decide_not_weights(ref):
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    norms = torch.tensor([100.0, 10.0, 1.0, 0.1])  # scores 100, 20, 3, 0.4
    mask = wanda_mask(w, norms**2, 0.5, reference_compatible=ref)
    assert mask.tolist() == [[False, False, True, True]]
    assert magnitude_mask(w, 0.5).tolist() == [[True, True, False, False]]


def test_wanda_is_row_local():
    w = torch.tensor([[1000.0, 2000.0, 3000.0, 4000.0], [0.001, 0.004, 0.003, 0.002]])
    mask = wanda_mask(w, torch.ones(4), 0.5)
    assert mask.tolist() == [[True, True, False, False], [True, False, False, True]]
    # magnitude is per matrix: the small row goes entirely
    assert magnitude_mask(w, 0.5).tolist() == [[False, False, False, False], [True, True, True, True]]


@pytest.mark.parametrize("method", ["wanda", "magnitude"])
def test_two_four_hand_case(method):
    w = torch.arange(1.0, 9.0).reshape(1, 8)
    mask = wanda_mask(w, torch.ones(8), 0.5, (2, 4)) if method == "wanda" else magnitude_mask(w, 0.5, (2, 4))
    assert torch.where(mask, 0.0, w).tolist() == [[0, 0, 3, 4, 0, 0, 7, 8]]


def test_magnitude_reference_off_by_one_and_ties():
    w = torch.tensor([[1.0, -2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    assert magnitude_mask(w, 0.25).sum() == 2  # exactly int(8 * 0.25)
    assert magnitude_mask(w, 0.25, reference_compatible=True).sum() == 3  # int(8 * 0.25) + 1
    assert magnitude_mask(w, 0.0, reference_compatible=True).sum() == 1  # even p = 0 prunes the smallest
    assert magnitude_mask(w, 0.0).sum() == 0
    tied = torch.tensor([[2.0, 1.0, 1.0, 1.0], [1.0, 3.0, 4.0, 5.0]])
    assert magnitude_mask(tied, 0.25).tolist() == [[False, True, True, False], [False] * 4]  # lowest index first
    assert magnitude_mask(tied, 0.25, reference_compatible=True).sum() == 4  # <= thresh takes every tie


# --- exact counts ------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 9),
    cols=st.integers(1, 150),
    p=st.floats(0, 0.99),
    seed=st.integers(0, 10**6),
    ref=st.booleans(),
)
def test_wanda_prunes_exactly_floor_cols_p_per_row(rows, cols, p, seed, ref):
    w = _rand(rows, cols, seed=seed).round(decimals=1)  # rounding makes ties
    s = _rand(cols, seed=seed + 1).abs().round(decimals=1)
    mask = wanda_mask(w, s, p, reference_compatible=ref)
    k = int(cols * p) if ref else math.floor(Fraction(repr(p)) * cols)
    assert mask.sum(dim=1).tolist() == [k] * rows
    if ref:
        assert torch.equal(mask, _reference_wanda(w, s, p))


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 80), p=st.floats(0, 0.99), seed=st.integers(0, 10**6))
def test_magnitude_counts_and_reference_rule(rows, cols, p, seed):
    w = _rand(rows, cols, seed=seed).round(decimals=1)
    assert magnitude_mask(w, p).sum() == math.floor(Fraction(repr(p)) * w.numel())
    assert torch.equal(magnitude_mask(w, p, reference_compatible=True), _reference_magnitude(w, p))


@pytest.mark.parametrize("nm", [(2, 4), (4, 8), (1, 4)])
@pytest.mark.parametrize("ref", [False, True])
def test_nm_counts_validity_and_reference_topk(nm, ref):
    n, m = nm
    w, s = _rand(12, 64, seed=3), _rand(64, seed=4).abs()
    p = (m - n) / m
    for mask in (wanda_mask(w, s, p, nm, ref), magnitude_mask(w, p, nm, ref)):
        assert nm_valid(mask, n, m)
        assert torch.all(mask.reshape(12, 64 // m, m).sum(-1) == m - n)
    # continuous scores have no ties, so the reference's topk order does not matter
    assert torch.equal(wanda_mask(w, s, p, nm, ref), _reference_wanda(w, s, p, m - n, m))
    assert torch.equal(magnitude_mask(w, p, nm, ref), _reference_wanda(w, torch.ones(64), p, m - n, m))


def test_wanda_equals_reference_on_reference_accumulated_statistic():
    batches = [_rand(1, 17, 96, seed=i) * torch.linspace(0.1, 3, 96) for i in range(5)]
    s = _scaler_row(batches)
    w = _rand(40, 96, seed=9)
    for p in (0.3, 0.5, 0.7):
        assert torch.equal(wanda_mask(w, s, p, reference_compatible=True), _reference_wanda(w, s, p))


# --- invariances (I1-I3) --------------------------------------------------------------------


def test_wanda_invariant_to_activation_scale_duplication_and_sample_order():
    x = _rand(6, 20, 48, seed=1)
    w = _rand(16, 48, seed=2)
    base = wanda_mask(w, _scaler_row([x[i : i + 1] for i in range(6)]), 0.5)
    scaled = wanda_mask(w, _scaler_row([3.7 * x[i : i + 1] for i in range(6)]), 0.5)
    dup = wanda_mask(w, _scaler_row([x[i % 6 : i % 6 + 1] for i in range(12)]), 0.5)
    perm = wanda_mask(w, _scaler_row([x[i : i + 1] for i in (5, 2, 0, 4, 1, 3)]), 0.5)
    assert torch.equal(base, scaled) and torch.equal(base, dup) and torch.equal(base, perm)


def test_unstructured_masks_follow_a_column_permutation():
    w, s = _rand(10, 40, seed=5), _rand(40, seed=6).abs()
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(7))
    assert torch.equal(wanda_mask(w[:, perm], s[perm], 0.6), wanda_mask(w, s, 0.6)[:, perm])
    assert torch.equal(magnitude_mask(w[:, perm], 0.6), magnitude_mask(w, 0.6)[:, perm])


@pytest.mark.parametrize("ref", [False, True])
def test_existing_zeros_are_pruned_first_so_a_pruned_matrix_is_unchanged(ref):
    w = _rand(8, 32, seed=11)
    s = _rand(32, seed=12).abs() + 0.1
    pruned = torch.where(wanda_mask(w, s, 0.5, reference_compatible=ref), 0.0, w)
    again = wanda_mask(pruned, s, 0.5, reference_compatible=ref)
    assert torch.equal(again, pruned == 0)


# --- inputs, dtypes and bad arguments ----------------------------------------------------------


def test_inputs_are_not_changed_and_float64_is_accepted():
    w, s = _rand(6, 16, seed=1), _rand(16, seed=2).abs()
    w0, s0 = w.clone(), s.clone()
    wanda_mask(w, s, 0.5)
    magnitude_mask(w, 0.5, (2, 4))
    assert torch.equal(w, w0) and torch.equal(s, s0)
    assert torch.equal(wanda_mask(w.double(), s.double(), 0.5), wanda_mask(w, s, 0.5))


def test_bad_inputs_name_the_module():
    w = torch.ones(4, 8)
    with pytest.raises(UserError, match=r"shape \(7,\).*module m\.q"):
        wanda_mask(w, torch.ones(7), 0.5, name="m.q")
    with pytest.raises(UserError, match=r"NaN or infinite.*module m\.q"):
        wanda_mask(w, torch.full((8,), float("nan")), 0.5, name="m.q")
    with pytest.raises(UserError, match="negative"):
        wanda_mask(w, -torch.ones(8), 0.5)
    with pytest.raises(UserError, match="NaN or infinite"):
        magnitude_mask(torch.full((2, 4), float("inf")), 0.5)
    with pytest.raises(UserError, match="divisible by 4"):
        magnitude_mask(torch.ones(2, 6), 0.5, (2, 4))
