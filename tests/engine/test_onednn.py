"""oneDNN products (engine/onednn.py): packed linears agree with `linear` to float noise and leave the
layers as they were; the Gram matrix agrees with `x.t() @ x`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from engine import onednn
from engine.onednn import gram, onednn_enabled, packed_linears


def test_packed_linears_match_linear_and_restore_the_layers() -> None:
    torch.manual_seed(0)
    layers = torch.nn.ModuleList(
        [torch.nn.Linear(64, 96, bias=False), torch.nn.Linear(1536, 64, bias=True), torch.nn.Linear(96, 48)]
    )
    xs = {layer: [torch.randn(m, layer.in_features) for m in (1, 2, 7, 16, 33)] for layer in layers}
    with torch.inference_mode():
        want = {layer: [torch.nn.functional.linear(x, layer.weight, layer.bias) for x in xs[layer]] for layer in layers}
        with packed_linears(layers):
            replaced = ["forward" in layer.__dict__ for layer in layers]
            with packed_linears(layers):  # nested: nothing more to do
                pass
            assert ["forward" in layer.__dict__ for layer in layers] == replaced
            got = {layer: [layer(x) for x in xs[layer]] for layer in layers}
            got3d = layers[0](xs[layers[0]][4].reshape(3, 11, 64))
    assert all(replaced) == onednn_enabled()  # without oneDNN the block changes nothing
    assert not any("forward" in layer.__dict__ for layer in layers)  # restored
    for layer in layers:
        for a, b in zip(got[layer], want[layer]):
            assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5), layer
    assert torch.equal(got3d.reshape(33, 96), got[layers[0]][4])


def test_packed_linears_leave_autograd_and_other_dtypes_to_linear() -> None:
    layer = torch.nn.Linear(32, 8)
    x = torch.randn(4, 32)
    with packed_linears(layer):
        with torch.enable_grad():
            y = layer(x)
        assert torch.equal(y, torch.nn.functional.linear(x, layer.weight, layer.bias))
        y.sum().backward()  # a graph was built: the packed path is inference-only
    assert layer.weight.grad is not None
    half = torch.nn.Linear(32, 8).to(torch.bfloat16)
    with torch.inference_mode(), packed_linears(half):
        assert "forward" not in half.__dict__


def test_packed_linears_warn_and_do_nothing_without_the_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onednn, "_available_bytes", lambda: 1000)
    layer = torch.nn.Linear(32, 8)
    with pytest.warns(UserWarning, match="more than half the memory"), packed_linears(layer):
        assert "forward" not in layer.__dict__


def test_available_memory_counts_the_reclaimable_page_cache() -> None:  # Linux, as every machine of this project
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines())
    assert onednn._available_bytes() == int(meminfo["MemAvailable"].split()[0]) * 1024
    free = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    assert onednn._available_bytes() >= free * 0.9  # available = free + what the kernel can reclaim


@pytest.mark.parametrize("cols", [64, 576])
def test_gram_matches_the_product(cols: int) -> None:
    torch.manual_seed(2)
    x = torch.randn(300, cols)
    with torch.no_grad():
        g = gram(x)
    want = x.t() @ x
    assert g.shape == (cols, cols) and torch.allclose(g, want, rtol=1e-5, atol=1e-3)
    assert torch.equal(gram(x.double()), x.double().t() @ x.double())  # other dtypes: torch's product
    with torch.enable_grad():
        assert torch.equal(gram(x), want)  # and under autograd
