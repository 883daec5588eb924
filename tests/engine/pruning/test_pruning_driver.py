"""Integration tests of the layer-wise driver on tiny random models of every supported architecture
(checks E1-E3 of docs/pruning.md §10.6)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from engine.errors import UserError
from engine.pruning.driver import PruneSettings, find_decoder_layers, layer_output, prune_layers
from tests.engine.pruning.prune_fixtures import (
    ARCHS,
    layers_of,
    linear_modules,
    one_thread,
    oracle_prune,
    out_in,
    tiny_model,
)

NSAMPLES, SEQLEN = 5, 16  # batch size 2 below: batches of 2, 2 and a ragged 1


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _ids(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 300, (NSAMPLES, SEQLEN), generator=g)


def _masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{i}.{n}": out_in(m) == 0 for i, layer in enumerate(layers_of(model)) for n, m in linear_modules(layer).items()
    }


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{i}.{n}": out_in(m) for i, layer in enumerate(layers_of(model)) for n, m in linear_modules(layer).items()}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("nm", [None, (2, 4)], ids=["unstructured", "2of4"])
def test_wanda_driver_equals_batch1_reference_loop(arch: str, nm: tuple[int, int] | None) -> None:
    ids = _ids()
    engine, oracle = tiny_model(arch), tiny_model(arch)
    prune_layers(engine, PruneSettings("wanda", 0.5, nm=nm, batch_size=2), ids)
    oracle_prune(oracle, ids, "wanda", 0.5, nm=nm)
    em, om = _masks(engine), _masks(oracle)
    assert em.keys() == om.keys() and len(em) >= 8
    for name in em:
        assert torch.equal(em[name], om[name]), f"{arch} {name}: Wanda masks differ"
        assert abs(em[name].float().mean().item() - 0.5) < 0.02


@pytest.mark.parametrize("arch", ARCHS)
def test_sparsegpt_driver_within_e2_tolerances_of_batch1_reference_loop(arch: str) -> None:
    ids = _ids()
    engine, oracle = tiny_model(arch), tiny_model(arch)
    res = prune_layers(engine, PruneSettings("sparsegpt", 0.5, batch_size=2), ids)
    oracle_losses = oracle_prune(oracle, ids, "sparsegpt", 0.5)
    ew, ow = _weights(engine), _weights(oracle)
    agree = sum(int(((ew[n] == 0) == (ow[n] == 0)).sum()) for n in ew)
    total = sum(ew[n].numel() for n in ew)
    assert agree / total >= 0.999, f"{arch}: mask agreement {agree / total:.5f}"
    # A near-tie can put one weight on the other side of a row's threshold (batched vs one-by-one Hessian
    # sums differ in the last bits); SparseGPT's compensation then differs along that row only, so the
    # weights must agree on every row whose mask agrees, and those must be nearly all rows.
    rows = same = 0
    for n in ew:
        row_same = ((ew[n] == 0) == (ow[n] == 0)).all(dim=1)
        rows, same = rows + len(row_same), same + int(row_same.sum())
        diff = (ew[n] - ow[n])[row_same].abs()
        assert diff.numel() == 0 or diff.max() <= 1e-4 * ow[n].abs().max(), f"{arch} {n}: weights differ"
    assert same / rows >= 0.98, f"{arch}: {rows - same} of {rows} rows have a different mask"
    engine_loss = sum(r.loss for r in res.modules.values())
    assert engine_loss == pytest.approx(sum(oracle_losses.values()), rel=0.01)


def test_layer_statistics_come_from_pruned_previous_layers() -> None:
    """E1: layer 1 is scored on the outputs of the pruned layer 0, not on dense activations."""
    from engine.pruning.algorithms import wanda_mask

    ids = _ids()
    engine, dense = tiny_model("llama"), tiny_model("llama")
    prune_layers(engine, PruneSettings("wanda", 0.5, batch_size=4), ids)
    xs: list[torch.Tensor] = []
    down = layers_of(dense)[1].mlp.down_proj
    hook = down.register_forward_pre_hook(lambda m, a: xs.append(a[0].reshape(-1, a[0].shape[-1])))
    with torch.no_grad():
        dense(input_ids=ids)
    hook.remove()
    dense_fed = wanda_mask(out_in(down), torch.cat(xs).pow(2).sum(0), 0.5)
    assert not torch.equal(dense_fed, _masks(engine)["1.mlp.down_proj"])


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["magnitude", "wanda"])
def test_untargeted_parameters_bit_identical_and_ties_kept(arch: str, method: str) -> None:
    model = tiny_model(arch)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tied_before = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    res = prune_layers(model, PruneSettings(method, 0.5, batch_size=4), _ids())
    targeted = {f"{m}.weight" for m in res.modules}
    assert targeted and all(n in before for n in targeted)
    for n, p in model.named_parameters():
        if n in targeted:
            assert (p == 0).float().mean() >= 0.5
        else:
            assert torch.equal(p, before[n]), f"{arch}: untargeted {n} changed"
    assert not any("embed" in n or "lm_head" in n or "wte" in n or "wpe" in n for n in targeted)
    tied_after = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied_after == tied_before
    if arch in ("qwen2", "gemma2", "gemma3", "gpt2", "opt"):
        assert tied_after


class _TupleBlock(nn.Module):
    """An old-style decoder layer: returns a tuple, takes an optional mask that may be None."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(16, 32)
        self.down = nn.Linear(32, 16)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        assert attention_mask is None
        return h + self.down(torch.relu(self.up(h))), None


class _TupleLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Module()
        self.model.embed = nn.Embedding(50, 16)
        self.model.layers = nn.ModuleList([_TupleBlock(), _TupleBlock()])

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> torch.Tensor:
        h = self.model.embed(input_ids)
        for layer in self.model.layers:
            h = layer(h, attention_mask=None)[0]
        return h


def test_tuple_returning_layers_and_none_kwargs() -> None:
    torch.manual_seed(0)
    model = _TupleLM()
    ids = torch.randint(0, 50, (5, 6))
    ref = copy.deepcopy(model)
    prune_layers(model, PruneSettings("wanda", 0.5, batch_size=2), ids)
    from engine.pruning.algorithms import wanda_mask

    with torch.no_grad():  # hand-written reference: sequential, each layer fed the pruned outputs
        h = ref.model.embed(ids)
        for layer in ref.model.layers:
            x_up = h.reshape(-1, 16)
            x_down = torch.relu(layer.up(h)).reshape(-1, 32)  # statistics of the dense layer
            layer.up.weight[wanda_mask(layer.up.weight, x_up.pow(2).sum(0), 0.5)] = 0
            layer.down.weight[wanda_mask(layer.down.weight, x_down.pow(2).sum(0), 0.5)] = 0
            h = layer(h)[0]
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a == 0, b == 0)
    assert layer_output((torch.ones(1), None)).shape == (1,)


def test_unwalkable_architecture_named() -> None:
    class Mystery(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)

    with pytest.raises(UserError, match="Mystery"):
        find_decoder_layers(Mystery())
    with pytest.raises(UserError, match="Mystery"):
        prune_layers(Mystery(), PruneSettings("magnitude", 0.5), None)


def test_fused_moe_experts_are_refused_not_left_dense() -> None:
    """transformers 5 stores Mixtral's experts as fused 3-D tensors, not Linear modules: they stayed
    dense while the report claimed 50% (5.5% of the decoder's weight-matrix entries were zero)."""
    import transformers as tf

    cfg = tf.MixtralConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=64, num_local_experts=2, num_experts_per_tok=1,
    )  # fmt: skip
    model = tf.MixtralForCausalLM(cfg).eval()
    fused = [n for n, p in find_decoder_layers(model)[1][0].named_parameters() if p.dim() == 3]
    assert fused  # the layout this test is about
    with pytest.raises(UserError, match=rf"weight matrices outside Linear and Conv1D modules \({fused[0]}"):
        prune_layers(model, PruneSettings("magnitude", 0.5), None)


def test_bad_sparsity_and_patterns_are_user_errors() -> None:
    model = tiny_model("llama")
    for settings, pattern in [
        (PruneSettings("wanda", 1.0), "0, 1"),
        (PruneSettings("wanda", -0.1), "0, 1"),
        (PruneSettings("magnitude", 0.0, nm=(5, 4)), "cannot exceed"),
        (PruneSettings("magnitude", 0.4, nm=(3, 5)), "divisible by 5"),
    ]:
        with pytest.raises(UserError, match=pattern):
            prune_layers(model, settings, _ids())
    with pytest.raises(UserError, match="unknown pruning method"):
        prune_layers(model, PruneSettings("random", 0.5), _ids())
