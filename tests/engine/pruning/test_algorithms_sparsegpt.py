"""SparseGPT, checks of docs/pruning.md §10: float64 oracle and identities (S1-S5), the closed-form OBS
case (H4), agreement with a re-implementation of the reference loop (R2), counts (C3, C4),
invariances (I1) and damping retries."""

from __future__ import annotations

import math

import pytest
import torch

from engine.errors import UserError
from engine.pruning import factor_hessian, nm_valid, realized_sparsity, sparsegpt_prune


def _layer(rows: int, cols: int, tokens: int, seed: int, dtype=torch.float64):
    """A weight and H = 2/N X X^T from correlated activations with uneven column scales."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g, dtype=dtype)
    mix = torch.eye(cols, dtype=dtype) + 0.3 * torch.randn(cols, cols, generator=g, dtype=dtype)
    x = (torch.randn(tokens, cols, generator=g, dtype=dtype) @ mix) * torch.linspace(0.2, 2.0, cols, dtype=dtype)
    h = 2.0 / tokens * x.t() @ x
    return w, h, x


def _damped(h: torch.Tensor, percdamp: float) -> torch.Tensor:
    h = h.clone()
    dead = h.diagonal() == 0
    h[dead, dead] = 1
    h.diagonal().add_(percdamp * h.diagonal().mean())
    return h


def _reference_fasterprune(w, h, sparsity, prunen=0, prunem=0, blocksize=128, percdamp=0.01):
    """IST-DASLab `SparseGPT.fasterprune` (docs/pruning.md §4), in its order of operations
    (prunen = number pruned per group; masks by sort/topk; eager outer products)."""
    W, H = w.clone(), h.clone()
    rows, columns = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    Losses = torch.zeros(rows, dtype=W.dtype)
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1, Err1, Losses1 = torch.zeros_like(W1), torch.zeros_like(W1), torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
            mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(count):
            w_col = W1[:, i]
            d = Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i : (i + prunem)] ** 2 / (torch.diag(Hinv1)[i : (i + prunem)].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = w_col.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            Losses1[:, i] = (w_col - q) ** 2 / d**2
            err1 = (w_col - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        Losses += torch.sum(Losses1, 1) / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, W == 0, torch.sum(Losses).item()


def _oracle(w, h, sparsity, nm=None, blocksize=128, percdamp=0.01):
    """Float64 OBS sweep from the formulas: explicit inverse of H over the remaining columns, one
    column at a time, eager updates; exact-count masks (our default rule)."""
    W = w.clone().double()
    H = _damped(h.double(), percdamp)
    dead = h.diagonal() == 0
    W[:, dead] = 0
    rows, cols = W.shape
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    dsq = torch.stack([torch.linalg.inv(H[c:, c:])[0, 0] for c in range(cols)])  # [H_F^-1]_cc
    loss = 0.0
    for c in range(cols):
        b0 = c - c % blocksize
        if nm is None and c == b0:
            b1 = min(b0 + blocksize, cols)
            score = (W[:, b0:b1] ** 2 / dsq[b0:b1]).flatten()
            k = math.floor(sparsity * score.numel() + 1e-9)
            idx = torch.sort(score, stable=True).indices[:k]
            mask[:, b0:b1] = torch.zeros(score.numel(), dtype=torch.bool).scatter_(0, idx, True).reshape(rows, -1)
        if nm is not None and c % nm[1] == 0:
            score = W[:, c : c + nm[1]] ** 2 / dsq[c : c + nm[1]]
            idx = torch.sort(score, dim=1, stable=True).indices[:, : nm[1] - nm[0]]
            mask[:, c : c + nm[1]] = torch.zeros_like(score, dtype=torch.bool).scatter_(1, idx, True)
        hinv_f = torch.linalg.inv(H[c:, c:])
        delta = torch.where(mask[:, c], W[:, c], 0.0)
        loss += float((delta**2).sum() / hinv_f[0, 0] / 2)
        W[:, c:] -= torch.outer(delta / hinv_f[0, 0], hinv_f[0, :])
        W[:, c] = torch.where(mask[:, c], 0.0, W[:, c])
    return W, mask | dead, loss


def _loss_identity(w, h, res, percdamp=0.01):
    hd = _damped(h.double(), percdamp)
    w0 = w.double().clone()
    w0[:, h.diagonal() == 0] = 0
    dw = w0 - res.weight.double()
    return 0.5 * float(torch.einsum("ri,ij,rj->", dw, hd, dw))


# --- float64 oracle ----------------------------------------------------------------------------


@pytest.mark.parametrize(("nm", "blocksize"), [(None, 16), (None, 64), ((2, 4), 16), ((4, 8), 32)])
def test_matches_float64_oracle(nm, blocksize):
    w, h, _ = _layer(12, 48, 300, seed=1)
    res = sparsegpt_prune(w, h, 0.5, nm, blocksize=blocksize)
    ow, omask, oloss = _oracle(w, h, 0.5, nm, blocksize)
    assert torch.equal(res.mask, omask)
    assert torch.allclose(res.weight, ow, rtol=0, atol=1e-10 * w.abs().max())
    assert res.loss == pytest.approx(oloss, rel=1e-10)


@pytest.mark.parametrize("nm", [None, (2, 4)])
@pytest.mark.parametrize("ref", [False, True])
def test_loss_is_half_dw_h_dwT(nm, ref):
    w, h, _ = _layer(10, 64, 400, seed=2)
    res64 = sparsegpt_prune(w, h, 0.5, nm, blocksize=32, reference_compatible=ref)
    assert res64.loss == pytest.approx(_loss_identity(w, h, res64), rel=1e-10)
    res32 = sparsegpt_prune(w.float(), h.float(), 0.5, nm, blocksize=32, reference_compatible=ref)
    assert res32.weight.dtype == torch.float32
    assert res32.loss == pytest.approx(_loss_identity(w.float(), h.float(), res32), rel=1e-4)


@pytest.mark.parametrize(("a", "b", "c", "w0", "w1"), [(2.0, 1.0, 3.0, 0.1, 1.0), (5.0, -2.0, 1.5, -0.2, 0.7)])
def test_single_pruned_weight_gets_the_closed_form_obs_update(a, b, c, w0, w1):
    h = torch.tensor([[a, b], [b, c]], dtype=torch.float64)
    w = torch.tensor([[w0, w1]], dtype=torch.float64)
    res = sparsegpt_prune(w, h, 0.5, percdamp=0.0)
    assert res.mask.tolist() == [[True, False]]
    assert res.weight[0, 0] == 0
    assert res.weight[0, 1].item() == pytest.approx(w1 + w0 * b / c, rel=1e-12)
    assert res.loss == pytest.approx(0.5 * w0**2 * (a * c - b * b) / c, rel=1e-12)


@pytest.mark.parametrize("nm", [(2, 4), (4, 8)])
def test_nm_result_does_not_depend_on_blocksize(nm):
    w, h, _ = _layer(8, 64, 300, seed=3)
    results = [sparsegpt_prune(w, h, 0.5, nm, blocksize=bs) for bs in (8, 32, 64, 128)]
    for r in results[1:]:
        assert torch.equal(r.mask, results[0].mask)
        assert torch.allclose(r.weight, results[0].weight, rtol=1e-12, atol=1e-12)
    r32 = [sparsegpt_prune(w.float(), h.float(), 0.5, nm, blocksize=bs) for bs in (8, 64)]
    assert torch.equal(r32[0].mask, r32[1].mask)
    assert torch.allclose(r32[0].weight, r32[1].weight, rtol=1e-4, atol=1e-6)


# --- reference loop (R2: >= 99.9% mask agreement in float32, 1e-4 max|W|, loss within 1%) --------


@pytest.mark.parametrize(
    ("nm", "blocksize", "shape"),
    [(None, 128, (64, 256)), (None, 32, (20, 100)), ((2, 4), 128, (64, 256)), ((4, 8), 64, (24, 128))],
)
def test_reference_mode_matches_the_reference_loop_in_float32(nm, blocksize, shape):
    w, h, _ = _layer(*shape, 600, seed=4, dtype=torch.float32)
    p = 0.5
    rw, rmask, rloss = _reference_fasterprune(w, h, p, *((nm[1] - nm[0], nm[1]) if nm else (0, 0)), blocksize)
    res = sparsegpt_prune(w, h, p, nm, blocksize=blocksize, reference_compatible=True)
    assert (res.mask == rmask).float().mean() >= 0.999
    assert (res.weight - rw).abs().max() <= 1e-4 * w.abs().max()
    assert res.loss == pytest.approx(rloss, rel=0.01)


def test_reference_mode_equals_the_reference_loop_in_float64():
    w, h, _ = _layer(16, 64, 300, seed=5)
    for args, nm in (((0, 0), None), ((2, 4), (2, 4))):
        rw, rmask, rloss = _reference_fasterprune(w, h, 0.5, *args, blocksize=16)
        res = sparsegpt_prune(w, h, 0.5, nm, blocksize=16, reference_compatible=True)
        assert torch.equal(res.mask, rmask)
        assert torch.allclose(res.weight, rw, rtol=0, atol=1e-12)
        assert res.loss == pytest.approx(rloss, rel=1e-12)


# --- counts ------------------------------------------------------------------------------------


def test_counts_per_block_in_both_modes():
    w, h, _ = _layer(16, 64, 300, seed=6, dtype=torch.float32)
    default = sparsegpt_prune(w, h, 0.5, blocksize=16)
    ref = sparsegpt_prune(w, h, 0.5, blocksize=16, reference_compatible=True)
    for b in range(4):
        cols = slice(16 * b, 16 * b + 16)
        assert default.mask[:, cols].sum() == 128
        assert ref.mask[:, cols].sum() == 129  # int(256 * 0.5) + 1
    assert realized_sparsity(ref.mask) == 0.50390625  # docs/pruning.md §7 (C3)
    assert torch.equal(default.weight == 0, default.mask)
    tail = sparsegpt_prune(w[:, :40], h[:40, :40], 0.3, blocksize=16)  # last block is 8 wide
    assert [int(tail.mask[:, i : i + 16].sum()) for i in (0, 16, 32)] == [76, 76, 38]


def test_nm_groups_and_zero_sparsity():
    w, h, _ = _layer(16, 64, 300, seed=7, dtype=torch.float32)
    res = sparsegpt_prune(w, h, 0.5, (2, 4))
    assert nm_valid(res.mask, 2, 4) and torch.all(res.mask.reshape(16, 16, 4).sum(-1) == 2)
    assert nm_valid(res.weight == 0, 2, 4)
    none = sparsegpt_prune(w, h, 0.0)
    assert not none.mask.any() and torch.equal(none.weight, w)
    assert sparsegpt_prune(w, h, 0.0, reference_compatible=True).mask.sum() == 1  # one per 128-column block


def test_dead_columns_are_zeroed_and_masked():
    w, h, x = _layer(8, 32, 200, seed=8)
    x[:, [3, 17]] = 0
    h = 2.0 / 200 * x.t() @ x
    res = sparsegpt_prune(w, h, 0.25, blocksize=16)
    assert torch.all(res.weight[:, [3, 17]] == 0) and torch.all(res.mask[:, [3, 17]])
    assert res.loss == pytest.approx(_loss_identity(w, h, res), rel=1e-10)
    ow, omask, _ = _oracle(w, h, 0.25, None, 16)
    assert torch.equal(res.mask, omask) and torch.allclose(res.weight, ow, atol=1e-10)


# --- invariances (docs/pruning.md §10.5, I1) --------------------------------------------------


@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_invariant_to_activation_scale_duplication_and_order(nm):
    w, h, x = _layer(16, 64, 256, seed=9, dtype=torch.float32)
    base = sparsegpt_prune(w, h, 0.5, nm)
    pow2 = sparsegpt_prune(w, h * 16.0, 0.5, nm)  # X * 4: exact in floating point
    assert torch.equal(pow2.mask, base.mask) and torch.equal(pow2.weight, base.weight)
    xs = 3.7 * x
    for h2 in (
        2.0 / 256 * xs.t() @ xs,
        2.0 / 512 * torch.cat([x, x]).t() @ torch.cat([x, x]),
        2.0 / 256 * x.flip(0).t() @ x.flip(0),
    ):
        other = sparsegpt_prune(w, h2, 0.5, nm)
        assert torch.equal(other.mask, base.mask)
        assert torch.allclose(other.weight, base.weight, rtol=1e-3, atol=1e-4)


# --- shared factorization, damping retries, inputs, errors -------------------------------------


def test_shared_factor_gives_the_same_result_and_inputs_are_unchanged():
    w, h, _ = _layer(12, 32, 200, seed=10, dtype=torch.float32)
    w0, h0 = w.clone(), h.clone()
    direct = sparsegpt_prune(w, h, 0.5, blocksize=16)
    shared = sparsegpt_prune(w, factor_hessian(h), 0.5, blocksize=16)
    assert torch.equal(direct.weight, shared.weight) and torch.equal(direct.mask, shared.mask)
    assert torch.equal(w, w0) and torch.equal(h, h0)
    assert (direct.damping, direct.retries) == (0.01, 0)


def test_cholesky_failure_retries_with_ten_times_the_damping(caplog):
    h = torch.tensor([[1.0, 1.05], [1.05, 1.0]])  # eigenvalue -0.05: needs dampening > 0.05
    res = sparsegpt_prune(torch.tensor([[0.3, 1.0]]), h, 0.5, name="layers.3.mlp.down_proj")
    assert res.retries == 1 and res.damping == pytest.approx(0.1)
    assert "layers.3.mlp.down_proj" in caplog.text
    with pytest.raises(UserError, match=r"Cholesky.*module layers\.3\.mlp\.down_proj.*dampening 0\.01"):
        sparsegpt_prune(torch.tensor([[0.3, 1.0]]), h, 0.5, max_damping_retries=0, name="layers.3.mlp.down_proj")


def test_bad_arguments():
    w, h, _ = _layer(4, 8, 50, seed=11, dtype=torch.float32)
    with pytest.raises(UserError, match="expected \\(8, 8\\)"):
        sparsegpt_prune(w, h[:4, :4], 0.5)
    with pytest.raises(UserError, match="square"):
        sparsegpt_prune(w, h[:4], 0.5)
    with pytest.raises(UserError, match="multiple of the N:M group size"):
        sparsegpt_prune(w, h, 0.5, (2, 4), blocksize=6)
    with pytest.raises(UserError, match="NaN"):
        sparsegpt_prune(w, h * float("nan"), 0.5)
    with pytest.raises(UserError, match="negative diagonal"):
        sparsegpt_prune(w, -h, 0.5)
    with pytest.raises(UserError, match="in \\[0, 1\\)"):
        sparsegpt_prune(w, h, 1.0)
    with pytest.raises(UserError, match="percdamp"):
        sparsegpt_prune(w, h, 0.5, percdamp=-1.0)
