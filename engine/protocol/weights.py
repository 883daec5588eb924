"""Linear weights stored transposed on the CPU while the protocol runs.

`torch.nn.functional.linear(x, W)` multiplies by W^T. With W stored row-major (as loaded) MKL takes
its transposed-operand path, which for the few rows of a decoding step ran at about half the speed
of the plain path (8 rows, 1536x576: 0.52 ms vs 0.27 ms; for many rows the two are equal). Storing
each weight as a transposed view of a contiguous W^T gives the same values and the plain path.
`transposed_linears` does this for the block and restores the loaded layout after (on other devices
it does nothing); nested blocks are free.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch


def _cpu_linears(model: Any) -> list[torch.nn.Linear]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.weight.device.type == "cpu"]


@contextlib.contextmanager
def transposed_linears(model: Any) -> Iterator[None]:
    linears = _cpu_linears(model)
    params = list({id(m.weight): m.weight for m in linears}.values())  # tied weights once
    todo = [p for p in params if p.dim() == 2 and p.is_contiguous()]
    with torch.no_grad():
        for p in todo:
            p.data = p.data.t().contiguous().t()
    try:
        yield
    finally:
        with torch.no_grad():
            for p in todo:
                p.data = p.data.contiguous()


def _mkl_packs() -> bool:
    return bool(torch.backends.mkl.is_available()) and hasattr(torch.ops.mkl, "_mkl_linear")


def _available_bytes() -> int:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 0


@contextlib.contextmanager
def packed_linears(model: Any, rows: Sequence[int]) -> Iterator[None]:
    """Within the block, a CPU float32 linear layer fed `m` rows, where `rows` has a P with P/2 <= m <= P,
    multiplies through MKL's packed GEMM: its weight packed once for P rows, the input padded to P
    rows. Decoding steps feed the same few row counts (a batch's lanes) hundreds of times; an
    unpacked GEMM repacks the weight at every call, which at 16 rows made it about a third slower.
    A row count takes the packed path only where a check at packing time finds its outputs
    bit-identical to `torch.nn.functional.linear`'s (`_same_numbers`). Done only when MKL is there and
    the packed copies take at most a quarter of the memory available; otherwise nothing changes."""
    sizes = sorted({int(r) for r in rows if r > 0})
    linears = [m for m in _cpu_linears(model) if m.weight.dtype == torch.float32 and "forward" not in m.__dict__]
    need = len(sizes) * sum(m.weight.numel() * m.weight.element_size() for m in linears)
    if not sizes or not linears or not _mkl_packs() or need > _available_bytes() // 4:
        yield
        return
    with torch.no_grad():
        for m in linears:
            packs = {p: torch.ops.mkl._mkl_reorder_linear_weight(m.weight, p) for p in sizes}
            same = {(p, r) for p in sizes for r in range((p + 1) // 2, p + 1) if _same_numbers(m, packs[p], p, r)}
            m.forward = _packed_forward(m, packs, same)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for m in linears:
            del m.forward


_CHECKED: dict[tuple[Any, ...], bool] = {}


def _same_numbers(layer: torch.nn.Linear, pack: torch.Tensor, p: int, rows: int) -> bool:
    """Whether `rows` rows padded to `p` through the packed GEMM give exactly what `linear` gives for
    them. MKL picks its blocking of the inner dimension by shape and path (a 1536-wide inner
    dimension at 32 rows is summed in another order), and the blocking, not the values, decides
    whether the sums agree; so random rows show it, once per shape, layout and thread count."""
    w = layer.weight
    key = (tuple(w.shape), w.stride(), layer.bias is not None, p, rows, torch.get_num_threads())
    if key not in _CHECKED:
        gen = torch.Generator().manual_seed(rows)
        x = torch.randn(rows, layer.in_features, generator=gen)
        padded = torch.cat([x, x.new_zeros(p - rows, layer.in_features)])
        got = torch.ops.mkl._mkl_linear(padded, pack, w, layer.bias, p)[:rows]
        _CHECKED[key] = bool(torch.equal(got, torch.nn.functional.linear(x, w, layer.bias)))
    return _CHECKED[key]


def _packed_forward(layer: torch.nn.Linear, packs: dict[int, torch.Tensor], same: set[tuple[int, int]]) -> Any:
    sizes = sorted(packs)

    def forward(x: torch.Tensor) -> torch.Tensor:
        k = layer.in_features
        m = x.numel() // k if k else 0
        p = next((s for s in sizes if m <= s), 0)
        if (p, m) not in same:
            return torch.nn.functional.linear(x, layer.weight, layer.bias)
        flat = x.reshape(m, k)
        if m < p:
            flat = torch.cat([flat, flat.new_zeros(p - m, k)])
        out = torch.ops.mkl._mkl_linear(flat, packs[p], layer.weight, layer.bias, p)
        return out[:m].reshape(*x.shape[:-1], layer.out_features)

    return forward
