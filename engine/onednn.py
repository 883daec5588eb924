"""Float32 products on the CPU through oneDNN: linear layers with their weights packed once, and the
Gram matrix `x^T x` of SparseGPT's Hessian.

On the CPU, `torch.nn.functional.linear` and `torch.mm` on float32 go to the BLAS torch was built
with (MKL on x86). For the shapes of a decoding step (a few rows against a wide weight) and of the
prompt passes, oneDNN's GEMM on a weight reordered once into its blocked layout was 2 to 4 times as
fast on an AMD EPYC (SmolLM2's output layer at 16 rows: 3.7 ms vs 17.5 ms; a 1536 x 576 layer at 16
rows: 0.11 ms vs 0.29 ms); for calibration's products (2,048 tokens) about 1.8 times. In our checks a
row's result did not depend on how many rows the call had (but for single rows against a 1536-wide
input) or on the thread count (1 or 2).

The values differ from MKL's in the last bits (another summation order: about 1e-4 absolute on
sums of 576 unit-variance products), as those of another machine would; runs on one machine
configuration stay byte-identical because the path is a function of that configuration: it is taken
for every float32 CPU product named here whenever oneDNN is available and enabled
(`hardware.numerics.mkldnn` in the manifest), and never under autograd.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch


def onednn_enabled() -> bool:
    """Whether this torch can and may use oneDNN (what `hardware.numerics.mkldnn` records)."""
    return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def _available_bytes() -> int:
    """Memory a new allocation can get: the kernel's MemAvailable (free pages plus the page cache it can
    reclaim) where there is one, else the free pages. Free pages alone shrink as files are cached, which
    would make the choice of path (and so the floats) depend on what was read before."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 0


@contextlib.contextmanager
def packed_linears(model: Any) -> Iterator[None]:
    """Within the block, every CPU float32 `nn.Linear` of `model` multiplies through oneDNN with its
    weight packed once at the start (tied weights once); the loaded weights are untouched and the
    layers are restored after. Nested blocks are free. The packed copies take as much memory as the
    weights; when that is more than half the memory available, the layers are left as they are, with
    a warning (their numbers are then MKL's)."""
    linears = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
        and m.weight.device.type == "cpu"
        and m.weight.dtype == torch.float32
        and "forward" not in m.__dict__
    ]
    if not linears or not onednn_enabled():
        yield
        return
    weights = {id(m.weight): m.weight for m in linears}
    need = sum(w.numel() * w.element_size() for w in weights.values())
    if need > _available_bytes() // 2:
        warnings.warn(
            f"packing the linear weights for oneDNN needs {need / 2**30:.1f} GiB, more than half the memory "
            "available: the linear layers use torch's default path, whose float32 results differ in the last bits",
            stacklevel=3,
        )
        yield
        return
    with torch.no_grad():
        packs = {key: torch.ops.mkldnn._reorder_linear_weight(w.detach()) for key, w in weights.items()}
    for m in linears:
        m.forward = _packed_forward(m, packs[id(m.weight)])  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m in linears:
            del m.forward


def _packed_forward(layer: torch.nn.Linear, pack: torch.Tensor) -> Any:
    def forward(x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.dtype != torch.float32:
            return torch.nn.functional.linear(x, layer.weight, layer.bias)
        return torch.ops.mkldnn._linear_pointwise(x, pack, layer.bias, "none", [], "")

    return forward


def gram(x: torch.Tensor) -> torch.Tensor:
    """`x^T x` for a 2-D `x` (tokens, features): through oneDNN for CPU float32 without autograd, else
    `torch.mm`."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_grad_enabled() or not onednn_enabled():
        return x.t() @ x
    xt = x.t().contiguous()
    return torch.ops.mkldnn._linear_pointwise(xt, xt, None, "none", [], "")
