"""The determinism contract of outcome lines: what must be identical where, and the float tolerance.

A run's numbers are decided by the machine configuration recorded in `manifest.hardware.numerics`
(device, torch's CPU kernel level or the GPU, BLAS and oneDNN, thread count, dtype, torch and
transformers versions, and the environment variables that change kernels). On the same
configuration re-running a batch gives byte-identical outcome lines. On another one (another CPU
generation, `ATEN_CPU_CAPABILITY=avx2`, a GPU) kernels sum in another order, so floats move in their
last digits: texts, token ids, decisions, categories, ranks and counts must still be identical, and
every float must agree within `RTOL`/`ATOL`.

Torch-free at import (`stats`, `tui` and tests use the comparison); `numerics` imports torch itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Iterator
from typing import Any

from engine.runfolder import dumps_line

RTOL = 1e-3
"""Relative float tolerance across machine configurations (observed across CPU kernels: ≤ 2e-4)."""
ATOL = 1e-4
"""Absolute float tolerance (nats), for values near zero such as a margin between two log-probs."""

LENS_RANKS = "layer_trace.ranks"
"""Ranks compared like floats across configurations (within 1 + RTOL·max): the logit lens's middle
layers spread tens of thousands of logits over a few nats, so float noise reorders near-ties (the demo
model's fast and plain backends: 2 of 496 such ranks off by 1)."""

SAMPLING = "sampling"
"""The sampling probe (`probes.sampling`), of which one sample per line may read differently across
configurations: a draw takes the token whose cumulative probability first passes its seeded uniform,
so a uniform within float noise of a boundary takes the neighbouring token (the demo, MKL's GEMM vs
oneDNN's: 3 of 296 samples, one per line)."""

# Environment variables that change which kernels torch, MKL, oneDNN or cuBLAS run.
KERNEL_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "CUBLAS_WORKSPACE_CONFIG",
    "NVIDIA_TF32_OVERRIDE",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build_setting(key: str) -> str | None:
    """A `KEY=value` of torch's build settings (e.g. BLAS_INFO), or None."""
    import torch

    for part in torch.__config__.show().replace("\n", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name == key:
            return value.strip() or None
    return None


def fp32_matmul_precision(backend: str) -> str:
    """How torch computes fp32 matmuls on `backend` ("cuda", or "mkldnn": oneDNN, the CPU's linear
    layers): "ieee" (full fp32), "tf32" or "bf16". Read through torch's per-backend `fp32_precision`
    where torch has it (it reflects `torch.set_float32_matmul_precision` too), because the legacy
    getters raise once that newer API was used."""
    import torch

    node: Any = torch.backends.cuda.matmul if backend == "cuda" else torch.backends.mkldnn.matmul  # type: ignore[attr-defined]
    value = getattr(node, "fp32_precision", None)
    if value is None:  # a torch before the per-backend API
        if backend == "cuda":
            return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"
        return "bf16" if torch.get_float32_matmul_precision() == "medium" else "ieee"
    if value == "none":  # inherits the global setting, whose "none" is full fp32
        value = getattr(torch.backends, "fp32_precision", "none")
    return "ieee" if value == "none" else str(value)


@contextlib.contextmanager
def full_fp32_matmuls() -> Iterator[None]:
    """fp32 matmuls in full fp32 inside the block, on the GPU (no TF32, matmuls and cuDNN) and on the
    CPU (no bf16 in oneDNN), as the pruning references compute; the settings are restored after."""
    import torch

    nodes: tuple[Any, ...] = (torch.backends.cuda.matmul, torch.backends.cudnn, torch.backends.mkldnn.matmul)  # type: ignore[attr-defined]
    if all(hasattr(n, "fp32_precision") for n in nodes):
        before = [n.fp32_precision for n in nodes]
        for n in nodes:
            n.fp32_precision = "ieee"
        try:
            yield
        finally:
            for n, value in zip(nodes, before):
                n.fp32_precision = value
        return
    legacy = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    precision = torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = legacy
        torch.set_float32_matmul_precision(precision)


def numerics(device: str, dtype: str) -> dict[str, Any]:
    """What decides the floats of a run on `device` with parameters of `dtype` (the manifest record)."""
    import torch
    import transformers

    from engine.onednn import onednn_enabled

    rec: dict[str, Any] = {
        "device": "cuda" if device.startswith("cuda") else device,
        "dtype": dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": _build_setting("BLAS_INFO"),
        "mkldnn": onednn_enabled(),
        "env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
    }
    cpu_matmuls = fp32_matmul_precision("mkldnn")
    if cpu_matmuls != "ieee":  # set away from full fp32 (`torch.set_float32_matmul_precision` in a script)
        rec["cpu_fp32_matmuls"] = cpu_matmuls
    if rec["device"] == "cuda" and torch.cuda.is_available():
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        rec.update(
            gpu=torch.cuda.get_device_name(index),
            gpu_capability=f"{major}.{minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            tf32_matmul=fp32_matmul_precision("cuda") == "tf32",
            tf32_cudnn=bool(torch.backends.cudnn.allow_tf32),
            float32_matmul_precision=fp32_matmul_precision("cuda"),
            deterministic_algorithms=bool(torch.are_deterministic_algorithms_enabled()),
        )
    return rec


def machine_config(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded configuration of a run, or None when its manifest predates the record."""
    rec = (manifest.get("hardware") or {}).get("numerics")
    return rec if isinstance(rec, dict) and rec else None


def same_machine_config(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Byte identity is promised only between two recorded, equal configurations."""
    return a is not None and b is not None and a == b


def outcome_differences(
    expected: str | dict[str, Any],
    actual: str | dict[str, Any],
    same_config: bool,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> list[str]:
    """Where two outcome lines of one item break the contract; [] when they keep it.

    Strings, integers, booleans, nulls, keys and list lengths must be equal. Floats must satisfy
    |a − b| ≤ atol + rtol·max(|a|, |b|), and the layer trace's ranks |a − b| ≤ 1 + rtol·max(a, b)
    (`LENS_RANKS`), and one sample of the sampling probe may differ in text and correctness, its hit
    count moving with it (`SAMPLING`), unless `same_config`, where the whole line must be the same
    bytes (canonical `dumps_line` form). Each difference names its path, e.g. `mc.scores.sum[2]`.
    """
    exp = json.loads(expected) if isinstance(expected, str) else expected
    act = json.loads(actual) if isinstance(actual, str) else actual
    if not same_config:
        act = _one_draw_forgiven(exp, act)
    tol = (0.0, 0.0) if same_config else (rtol, atol)
    out: list[str] = []
    _walk(exp, act, "", tol, out)
    if same_config and not out and dumps_line(exp) != dumps_line(act):
        out.append("the lines differ in bytes but not in value")
    return out


def _one_draw_forgiven(exp: dict[str, Any], act: dict[str, Any]) -> dict[str, Any]:
    """`act` with its one differing sample taken from `exp`, when exactly one differs and the hit count
    differs by that sample's correctness alone; otherwise `act` as it is."""
    a = (exp.get("probes") or {}).get(SAMPLING)
    b = (act.get("probes") or {}).get(SAMPLING)
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return act
    sa, sb = a.get("samples"), b.get("samples")
    if not (isinstance(sa, list) and isinstance(sb, list) and len(sa) == len(sb)):
        return act
    moved = [i for i, (x, y) in enumerate(zip(sa, sb)) if x != y]
    if len(moved) != 1 or not (isinstance(sa[moved[0]], dict) and isinstance(sb[moved[0]], dict)):
        return act
    i = moved[0]
    sampling = {**b, "samples": [*sb[:i], sa[i], *sb[i + 1 :]]}
    if isinstance(a.get("hits"), int) and isinstance(b.get("hits"), int):
        if b["hits"] - bool(sb[i].get("correct")) + bool(sa[i].get("correct")) != a["hits"]:
            return act  # the hit count did not move with the draw: every difference is named
        sampling["hits"] = a["hits"]
    return {**act, "probes": {**act["probes"], SAMPLING: sampling}}


def _walk(a: Any, b: Any, path: str, tol: tuple[float, float], out: list[str]) -> None:
    where = path or "(line)"
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                out.append(f"{sub}: only in the {'actual' if key not in a else 'expected'} line")
            else:
                _walk(a[key], b[key], sub, tol, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} entries expected, {len(b)} found")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                _walk(x, y, f"{path}[{i}]", tol, out)
    elif type(a) is float and type(b) is float:
        rtol, atol = tol
        if not (a == b or abs(a - b) <= atol + rtol * max(abs(a), abs(b))):
            rel = abs(a - b) / max(abs(a), abs(b))
            limit = "identical" if rtol == atol == 0 else f"within rtol {rtol:g} + atol {atol:g}"
            out.append(f"{where}: {a!r} expected, {b!r} found (relative difference {rel:.2g}; must be {limit})")
    elif type(a) is int and type(b) is int and path.startswith(LENS_RANKS + "[") and tol != (0.0, 0.0):
        if abs(a - b) > 1 + tol[0] * max(a, b):
            out.append(f"{where}: {a} expected, {b} found (must be within 1 + rtol {tol[0]:g} × the larger)")
    elif type(a) is not type(b) or a != b:
        out.append(f"{where}: {_show(a)} expected, {_show(b)} found")


def _show(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "…"
