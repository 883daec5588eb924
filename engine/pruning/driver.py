"""The layer-wise pruning driver: walks a transformers causal LM's decoder layers one at a time.

Order of operations (docs/pruning.md §6), batched instead of batch 1:

1. Capture: every decoder layer is swapped for a recorder; one forward of the model per calibration
   batch stores layer 0's input hidden states and, for every layer, the positional and keyword
   arguments the model passes it (position embeddings, masks that may be None, cache position …;
   they differ per layer for sliding/global attention). The last recorder raises a sentinel.
2. For each layer, on ``device``: forward pre-hooks on its prunable modules accumulate fp32
   statistics (TF32 off) over all batches; modules that read the same input tensor share one
   statistic. Each module is pruned; then the *pruned* layer is re-run to produce the next layer's
   inputs. Only one layer's weights are on the device at a time.

Only ``nn.Linear`` and ``transformers.Conv1D`` modules inside the decoder layers are pruned, so
embeddings and lm_head (and their tying) are untouched.

Memory: the model stays where it was loaded (CPU RAM for large models); the device holds the
embeddings during capture, then one decoder layer's weights and statistics at a time, plus the
activations (nsamples × seqlen × hidden in the model dtype).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from torch import nn

from engine.config import CALIBRATED_METHODS
from engine.errors import UserError
from engine.onednn import gram, packed_linears
from engine.reproducibility import full_fp32_matmuls
from engine.terminal import StepProgress

if TYPE_CHECKING:
    from engine.pruning.sparsegpt import HessianFactor

LAYER_PATHS = (
    "model.layers",
    "model.decoder.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.language_model.layers",
    "language_model.model.layers",
    "layers",
    "decoder.layers",
)
EXCLUDED_SUFFIXES = (".gate", "shared_expert_gate", ".router")  # MoE routers are never pruned
METHODS = ("magnitude", "wanda", "sparsegpt")


def _conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers always ships it
        return None
    return Conv1D


CONV1D = _conv1d_type()
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear,) + ((CONV1D,) if CONV1D else ())


class _StopForward(Exception):
    """Raised by the last recorder to end a capture forward pass."""


# ----------------------------------------------------------------------------- model walking


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder layers' ModuleList and its dotted path; a UserError naming the class otherwise."""
    for path in LAYER_PATHS:
        layers = _get_path(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return path, layers
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) and type(mod[0]).__name__ in no_split:
            return name, mod
    raise UserError(
        f"cannot find the decoder layers of {type(model).__name__} "
        f"(looked for {', '.join(LAYER_PATHS)} and a ModuleList of {sorted(no_split) or 'no _no_split_modules'}); "
        "this architecture is not supported by the pruning driver"
    )


def prunable_modules(layer: nn.Module) -> dict[str, nn.Module]:
    """Linear and Conv1D modules of one decoder layer, by name relative to the layer."""
    mods = {
        n: m
        for n, m in layer.named_modules()
        if n and isinstance(m, PRUNABLE_TYPES) and not n.endswith(EXCLUDED_SUFFIXES)
    }
    if not mods:
        raise UserError(f"decoder layer {type(layer).__name__} has no Linear or Conv1D modules to prune")
    left = [
        n
        for n, p in layer.named_parameters()
        if p.dim() >= 2 and n.rpartition(".")[0] not in mods and not n.rpartition(".")[0].endswith(EXCLUDED_SUFFIXES)
    ]
    if left:
        raise UserError(
            f"decoder layer {type(layer).__name__} holds weight matrices outside Linear and Conv1D modules "
            f"({', '.join(left[:4])}{', ...' if len(left) > 4 else ''}; e.g. MoE experts stored as one fused "
            "tensor): the pruning driver prunes Linear and Conv1D modules only, so these would stay dense and "
            "the reported sparsity would be wrong; this architecture is not supported by the pruning driver"
        )
    return mods


def is_conv1d(mod: nn.Module) -> bool:
    return CONV1D is not None and isinstance(mod, CONV1D)


def module_weight(mod: nn.Module) -> torch.Tensor:
    """The weight of a Linear or Conv1D module (typed: nn.Module's attributes are not)."""
    w = mod.weight
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{type(mod).__name__}.weight is not a tensor")
    return w


def weight_out_in(mod: nn.Module) -> torch.Tensor:
    """A fp32 copy of the module's weight in (out, in) layout (Conv1D stores (in, out))."""
    w = module_weight(mod).data
    return (w.t() if is_conv1d(mod) else w).to(torch.float32).clone()


def write_weight(mod: nn.Module, w_out_in: torch.Tensor) -> None:
    """Write an (out, in) weight back into the module in its own layout and dtype."""
    w = w_out_in.t() if is_conv1d(mod) else w_out_in
    weight = module_weight(mod)
    weight.data.copy_(w.to(weight.dtype))


def zero_masked(mod: nn.Module, mask_out_in: torch.Tensor) -> None:
    mask = mask_out_in.t() if is_conv1d(mod) else mask_out_in
    weight = module_weight(mod)
    weight.data.masked_fill_(mask.to(weight.device), 0)


def pruned_mask(mod: nn.Module) -> torch.Tensor:
    """Zeros of the module's weight as an (out, in) bool mask (True = pruned)."""
    w = module_weight(mod).data
    return (w.t() if is_conv1d(mod) else w) == 0


# ----------------------------------------------------------------------------- statistics


class RowNormStat:
    """Wanda's ``scaler_row``: per input column, Σ x² over all tokens divided by the sequence count."""

    def __init__(self, cols: int, device: torch.device) -> None:
        self.sum = torch.zeros(cols, dtype=torch.float32, device=device)
        self.nseq = 0

    def add(self, x: torch.Tensor, nseq: int) -> None:
        self.nseq += nseq
        x = x.reshape(-1, x.shape[-1]).to(torch.float32)
        self.sum += x.pow(2).sum(dim=0)

    def value(self) -> torch.Tensor:
        return self.sum / max(self.nseq, 1)


class HessianStat:
    """SparseGPT's ``H = 2/N · Σ x xᵀ`` (N = number of sequences), accumulated in fp32."""

    def __init__(self, cols: int, device: torch.device) -> None:
        self.h = torch.zeros((cols, cols), dtype=torch.float32, device=device)
        self.nseq = 0
        self._final = False

    def add(self, x: torch.Tensor, nseq: int) -> None:
        self.nseq += nseq
        self.h += gram(x.reshape(-1, x.shape[-1]).to(torch.float32))

    def value(self) -> torch.Tensor:
        if not self._final:
            self.h.mul_(2.0 / max(self.nseq, 1))
            self._final = True
        return self.h


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a is b) or (
        a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype
    )


class StatsCollector:
    """Forward pre-hooks feeding per-input-group statistics.

    In the first batch, modules whose input is the same tensor view (q/k/v, gate/up, GPT-2's c_attn
    alone) form one group with one statistic; the group's first module updates it thereafter. The
    inputs seen in a batch are held until ``end_batch`` so their addresses cannot be reused.
    """

    def __init__(self, modules: dict[str, nn.Module], kind: str, device: torch.device) -> None:
        self.modules = modules
        self.kind = kind
        self.device = device
        self.groups: list[list[str]] = []
        self.stats: list[RowNormStat | HessianStat | None] = []  # the driver drops each one once used
        self.group_of: dict[str, int] = {}
        self._seen: list[tuple[torch.Tensor, int]] = []
        self._first = True
        self._handles: list[Any] = []
        self.batch_sequences = 0  # calibration sequences in the current layer call (N counts sequences)

    def _new_stat(self, cols: int) -> RowNormStat | HessianStat:
        return RowNormStat(cols, self.device) if self.kind == "wanda" else HessianStat(cols, self.device)

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            if self._first:
                for seen, g in self._seen:
                    if _same_view(seen, x):
                        self.group_of[name] = g
                        self.groups[g].append(name)
                        return
                g = len(self.groups)
                self.groups.append([name])
                self.group_of[name] = g
                self.stats.append(self._new_stat(x.shape[-1]))
            else:
                g = self.group_of[name]
                if self.groups[g][0] != name:
                    leader = next(t for t, gg in self._seen if gg == g)
                    if not _same_view(leader, x):
                        raise RuntimeError(f"module {name} changed its input group between batches")
                    return
            self._seen.append((x, g))
            stat = self.stats[g]
            assert stat is not None, "statistics are collected before the driver uses them"
            stat.add(x, self.batch_sequences)

        return hook

    def __enter__(self) -> StatsCollector:
        for name, mod in self.modules.items():
            self._handles.append(mod.register_forward_pre_hook(self._hook(name)))
        return self

    def begin_batch(self, hidden: torch.Tensor) -> None:
        self.batch_sequences = hidden.shape[0]

    def end_batch(self) -> None:
        self._seen.clear()
        self._first = False

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._seen.clear()


# ----------------------------------------------------------------------------- capture


def _to(obj: Any, device: torch.device) -> Any:
    """Move tensors nested in tuples/lists/dicts to ``device``; other objects unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(_to(o, device) for o in obj)
    if isinstance(obj, list):
        return [_to(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


class _Recorder(nn.Module):
    """Stands in for decoder layer ``idx`` during capture: records what the model passes it."""

    def __init__(
        self, idx: int, layer: nn.Module, sink: Callable[[int, torch.Tensor, tuple, dict], None], last: bool
    ) -> None:
        super().__init__()
        object.__setattr__(self, "_orig", layer)
        object.__setattr__(self, "_sink", sink)
        self.idx, self.last = idx, last

    def __getattr__(self, name: str) -> Any:  # layer attributes the model's loop may read (attention_type …)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_orig"], name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            hidden, rest = args[0], args[1:]
        else:
            hidden, rest = kwargs.pop("hidden_states"), ()
        self._sink(self.idx, hidden, rest, kwargs)
        if self.last:
            raise _StopForward
        return hidden


@dataclass
class Captured:
    """Layer-0 inputs per batch and each layer's call arguments per batch size."""

    hidden: list[torch.Tensor]
    calls: list[dict[int, tuple[tuple, dict]]]  # calls[layer][batch_size] = (extra args, kwargs)

    def call(self, layer: int, hidden: torch.Tensor) -> tuple[tuple, dict]:
        return self.calls[layer][hidden.shape[0]]


def capture_inputs(
    model: nn.Module, layers: nn.ModuleList, ids: torch.Tensor, batch_size: int, device: torch.device
) -> Captured:
    """Run the model's own forward with recorder layers on ``device``; layers' weights stay put."""
    n = len(layers)
    hidden: list[torch.Tensor] = []
    calls: list[dict[int, tuple[tuple, dict]]] = [{} for _ in range(n)]
    current = {"bsz": 0}

    def sink(idx: int, h: torch.Tensor, rest: tuple, kwargs: dict) -> None:
        if idx == 0:
            hidden.append(h.detach())
        if current["bsz"] not in calls[idx]:
            kw = {k: v for k, v in kwargs.items() if k not in ("past_key_value", "past_key_values", "cache")}
            calls[idx][current["bsz"]] = (_to(rest, device), _to(kw, device))

    originals = list(layers)
    model_device = _module_device(model)
    for i, layer in enumerate(originals):
        layers[i] = _Recorder(i, layer, sink, last=(i == n - 1))
    try:
        model.to(device)  # moves only the non-layer modules: the layers are recorders now
        with torch.no_grad():
            for start in range(0, ids.shape[0], batch_size):
                batch = ids[start : start + batch_size].to(device)
                current["bsz"] = batch.shape[0]
                try:
                    model(input_ids=batch, use_cache=False)
                except _StopForward:
                    pass
                else:
                    raise RuntimeError("the model's forward did not reach its last decoder layer")
    finally:
        model.to(model_device)
        for i, layer in enumerate(originals):
            layers[i] = layer
    if len(hidden) != math.ceil(ids.shape[0] / batch_size):
        raise UserError(f"{type(model).__name__}: the first decoder layer was not called once per batch")
    return Captured(hidden=hidden, calls=calls)


def _module_device(mod: nn.Module) -> torch.device:
    for p in mod.parameters():
        return p.device
    return torch.device("cpu")


def layer_output(out: Any) -> torch.Tensor:
    """Decoder layers return a tensor (recent transformers) or a tuple whose first item is the output."""
    return out[0] if isinstance(out, (tuple, list)) else out


def run_layer(
    layer: nn.Module, captured: Captured, idx: int, hidden: list[torch.Tensor], collector: StatsCollector | None = None
) -> list[torch.Tensor]:
    """Layer ``idx`` over every batch (its outputs, or only statistics when ``collector`` is given)."""
    outs = []
    with torch.no_grad(), packed_linears(layer):
        for h in hidden:
            rest, kw = captured.call(idx, h)
            if collector is not None:
                collector.begin_batch(h)
            out = layer_output(layer(h, *rest, **kw))
            if collector is not None:
                collector.end_batch()
            else:
                outs.append(out)
    return outs


# ----------------------------------------------------------------------------- pruning loop


@dataclass
class PruneSettings:
    method: str
    sparsity: float
    nm: tuple[int, int] | None = None
    reference_compatible: bool = False
    blocksize: int = 128
    percdamp: float = 0.01
    batch_size: int = 8


@dataclass
class _DeadFactor:
    """A shared SparseGPT factor whose Hessian was all zero (reported per module)."""

    factor: HessianFactor


# What a module is pruned with: nothing (magnitude), Wanda's row norms or SparseGPT's Hessian
# statistic, a Hessian factor shared by an input group, or such a factor of an all-zero Hessian.
PruneStat: TypeAlias = "torch.Tensor | HessianFactor | _DeadFactor | None"


@dataclass
class ModuleRecord:
    name: str
    shape: list[int]
    group: str
    sparsity: float = 0.0
    nm_valid: bool | None = None
    loss: float | None = None
    damping: float | None = None
    retries: int | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("name", "warnings")}
        if self.warnings:
            d["warnings"] = self.warnings
        return d


@dataclass
class DriverResult:
    modules: dict[str, ModuleRecord]
    timings: dict[str, float]
    n_layers: int
    layers_path: str


def prune_layers(
    model: nn.Module,
    settings: PruneSettings,
    ids: torch.Tensor | None,
    device: str | torch.device = "cpu",
    progress: StepProgress | None = None,
) -> DriverResult:
    """Prune every decoder layer of ``model`` in place; ``ids`` (nsamples, seqlen) is the calibration
    set (unused by magnitude). ``progress(layers done, layers)`` is called before the calibration
    capture and after each layer. Returns per-module records and timings."""
    from engine.pruning import algorithms as alg

    device = torch.device(device)
    if settings.method not in METHODS:
        raise UserError(f"unknown pruning method {settings.method!r} (expected one of {', '.join(METHODS)})")
    path, layers = find_decoder_layers(model)
    offloaded = next((n for n, p in model.named_parameters() if p.device.type == "meta"), None)
    if offloaded is not None:
        raise UserError(
            f"{offloaded} is not loaded (meta device, e.g. accelerate disk offload); load the model "
            f"on the CPU instead: the driver moves one decoder layer at a time to {device}"
        )
    targets = [prunable_modules(layer) for layer in layers]
    for i, mods in enumerate(targets):
        for name, mod in mods.items():
            shape = module_weight(mod).shape
            cols = shape[0] if is_conv1d(mod) else shape[1]
            alg.check_sparsity_args(settings.sparsity, settings.nm, in_features=cols, name=f"{path}.{i}.{name}")
    timings = {"capture_s": 0.0, "statistics_s": 0.0, "prune_s": 0.0, "propagate_s": 0.0}
    records: dict[str, ModuleRecord] = {}
    needs_data = settings.method in CALIBRATED_METHODS
    captured: Captured | None = None
    hidden: list[torch.Tensor] = []
    if progress:
        progress(0, len(layers))
    if needs_data:
        if ids is None:
            raise UserError(f"{settings.method} needs calibration data")
        t = time.perf_counter()
        captured = capture_inputs(model, layers, ids, settings.batch_size, device)
        hidden = captured.hidden
        timings["capture_s"] = time.perf_counter() - t
    with full_fp32_matmuls():
        for i, layer in enumerate(layers):
            home = _module_device(layer)
            layer.to(device)
            mods = targets[i]
            groups: list[list[str]]
            stats: list[RowNormStat | HessianStat | None]
            if needs_data:
                assert captured is not None
                t = time.perf_counter()
                with StatsCollector(mods, settings.method, device) as col:
                    run_layer(layer, captured, i, hidden, collector=col)
                groups, stats = col.groups, col.stats
                missing = [n for n in mods if n not in col.group_of]
                if missing:
                    raise UserError(
                        f"{path}.{i}: modules {', '.join(missing)} received no calibration input "
                        "(e.g. MoE experts no token was routed to); use more calibration samples"
                    )
                timings["statistics_s"] += time.perf_counter() - t
            else:
                groups, stats = [[n] for n in mods], [None] * len(mods)
            t = time.perf_counter()
            for g, names in enumerate(groups):
                collected = stats[g]
                value = collected.value() if collected is not None else None
                stat: PruneStat = value
                if value is not None and settings.method == "sparsegpt":
                    # one damped Cholesky factor of H^-1 per input group (q/k/v, gate/up)
                    dead_all = not bool(value.diagonal().any())
                    factor = alg.factor_hessian(value, settings.percdamp, name=f"{path}.{i}.{names[0]}")
                    stats[g] = None
                    stat = _DeadFactor(factor) if dead_all else factor
                for name in names:
                    full = f"{path}.{i}.{name}"
                    records[full] = _prune_module(alg, mods[name], full, f"{path}.{i}.{names[0]}", stat, settings)
            timings["prune_s"] += time.perf_counter() - t
            if needs_data:
                assert captured is not None
                t = time.perf_counter()
                hidden = run_layer(layer, captured, i, hidden)
                timings["propagate_s"] += time.perf_counter() - t
            layer.to(home)
            del stats
            if progress:
                progress(i + 1, len(layers))
    return DriverResult(modules=records, timings=timings, n_layers=len(layers), layers_path=path)


def _prune_module(alg: Any, mod: nn.Module, full: str, group: str, stat: PruneStat, s: PruneSettings) -> ModuleRecord:
    t = time.perf_counter()
    w = weight_out_in(mod)
    rec = ModuleRecord(name=full, shape=list(w.shape), group=group)
    if isinstance(stat, _DeadFactor):
        stat = stat.factor
        rec.warnings.append("all-zero calibration statistic (no tokens reached this module): every weight is pruned")
    elif isinstance(stat, torch.Tensor) and not bool(stat.any()):
        rec.warnings.append("all-zero calibration statistic (no tokens reached this module)")
    if s.method == "magnitude":
        mask = alg.magnitude_mask(w, s.sparsity, nm=s.nm, reference_compatible=s.reference_compatible)
        zero_masked(mod, mask)
    elif s.method == "wanda":
        mask = alg.wanda_mask(w, stat, s.sparsity, nm=s.nm, reference_compatible=s.reference_compatible)
        zero_masked(mod, mask)
    else:
        res = alg.sparsegpt_prune(
            w,
            stat,
            s.sparsity,
            nm=s.nm,
            blocksize=s.blocksize,
            percdamp=s.percdamp,
            reference_compatible=s.reference_compatible,
            name=full,
        )
        write_weight(mod, res.weight)
        zero_masked(mod, res.mask)  # exact zeros even if the dtype cast rounded
        mask = res.mask
        rec.loss, rec.damping, rec.retries = float(res.loss), float(res.damping), int(res.retries)
        if res.retries:
            rec.warnings.append(
                f"Cholesky failed; succeeded after {res.retries} damping increase(s) (damping {res.damping:g})"
            )
    zeros = pruned_mask(mod)
    rec.sparsity = float(zeros.float().mean())
    if s.nm is not None:
        rec.nm_valid = bool(alg.nm_valid(mask.cpu(), *s.nm))
    rec.seconds = time.perf_counter() - t
    return rec
