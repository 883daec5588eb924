"""Argument checks, prune counts and the shared mask helpers of engine.pruning."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import UserError
from engine.pruning.masks import (
    check_sparsity_args,
    group_mask_by_column,
    nm_group_mask,
    nm_valid,
    prune_count,
    realized_sparsity,
    smallest_k_mask,
)


@pytest.mark.parametrize(
    ("sparsity", "nm", "in_features", "message"),
    [
        (1.0, None, None, "in [0, 1)"),
        (-0.1, None, None, "in [0, 1)"),
        (float("nan"), None, None, "in [0, 1)"),
        ("0.5", None, None, "must be a number"),
        (True, None, None, "must be a number"),
        (0.5, (3, 2), 8, "cannot exceed M"),
        (0.5, (0, 4), 8, "at least 1"),
        (0.5, (2, 0), 8, "at least 1"),
        (0.5, (2, 4), 10, "divisible by 4"),
        (0.6, (2, 4), 8, "conflicts with pattern 2:4"),
        (0.5, (2.0, 4), 8, "pair of integers"),
        (0.5, [2, 4], 8, "pair of integers"),
    ],
)
def test_bad_arguments_raise_user_error(sparsity, nm, in_features, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        check_sparsity_args(sparsity, nm, in_features)


def test_error_names_the_module():
    with pytest.raises(UserError, match=r"module layers\.0\.mlp\.up_proj"):
        check_sparsity_args(0.5, (2, 4), 6, name="layers.0.mlp.up_proj")


@pytest.mark.parametrize(
    ("sparsity", "nm", "in_features"),
    [(0.0, None, 7), (0.5, (2, 4), 8), (0.5, (4, 8), 16), (0.75, (1, 4), 4), (0.0, (4, 4), 12), (0.999, None, None)],
)
def test_good_arguments_pass(sparsity, nm, in_features):
    check_sparsity_args(sparsity, nm, in_features)


def test_prune_count_reference_truncates_the_float_product():
    assert 100 * 0.29 < 29  # the float product lands just below the integer
    assert prune_count(100, 0.29, reference_compatible=True) == 28
    assert prune_count(100, 0.29, reference_compatible=False) == 29
    assert prune_count(4096, 0.5, True) == prune_count(4096, 0.5, False) == 2048
    assert prune_count(7, 0.5, False) == 3
    assert prune_count(10, 0.0, False) == 0


def _stable_sort_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    idx = torch.sort(scores, dim=-1, stable=True).indices[..., :k]
    return torch.zeros(scores.shape, dtype=torch.bool).scatter_(-1, idx, True)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 5),
    cols=st.sampled_from([1, 3, 4, 8, 9, 64, 65, 200]),
    levels=st.integers(1, 6),
    frac=st.floats(0, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_smallest_k_equals_stable_sort_even_with_many_ties(rows, cols, levels, frac, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (rows, cols), generator=g).float()  # few distinct values: ties
    k = int(frac * cols)
    assert torch.equal(smallest_k_mask(scores, k), _stable_sort_mask(scores, k))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    groups=st.integers(1, 6),
    nm=st.sampled_from([(2, 4), (4, 8), (1, 4), (3, 4), (1, 2)]),
    seed=st.integers(0, 2**31 - 1),
)
def test_nm_group_mask_prunes_exactly_m_minus_n_per_group(rows, groups, nm, seed):
    n, m = nm
    scores = torch.randint(0, 3, (rows, groups * m), generator=torch.Generator().manual_seed(seed)).float()
    mask = nm_group_mask(scores, n, m)
    per_group = mask.reshape(rows, groups, m).sum(-1)
    assert torch.all(per_group == m - n)
    assert nm_valid(mask, n, m)
    by_column = torch.cat([group_mask_by_column(scores[:, g * m : g * m + m].t(), n).t() for g in range(groups)], 1)
    assert torch.equal(by_column, mask)
    # the pruned entries of a group never score above its kept ones
    s = scores.reshape(rows, groups, m)
    pm = mask.reshape(rows, groups, m)
    top_pruned = torch.where(pm, s, torch.full_like(s, -1)).amax(-1)
    low_kept = torch.where(~pm, s, torch.full_like(s, 99)).amin(-1)
    assert torch.all(top_pruned <= low_kept)


def test_nm_valid_and_realized_sparsity():
    ok = torch.tensor([[True, True, False, False, False, True, True, False]])
    assert nm_valid(ok, 2, 4)
    assert not nm_valid(ok, 1, 4)
    bad = torch.tensor([[True, False, False, False, True, True, False, False]])
    assert not nm_valid(bad, 2, 4)
    assert not nm_valid(torch.ones(2, 6, dtype=torch.bool), 2, 4)  # 6 not divisible by 4
    assert nm_valid(torch.ones(2, 8, dtype=torch.bool), 2, 4)  # more pruned than needed is still valid
    assert realized_sparsity(ok) == 0.5
    assert realized_sparsity(torch.zeros(0, dtype=torch.bool)) == 0.0


def test_package_import_does_not_import_torch():
    code = "import sys, engine.pruning; assert 'torch' not in sys.modules; print(engine.pruning.__all__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "wanda_mask" in out.stdout
