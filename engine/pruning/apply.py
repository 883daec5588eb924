"""The entry the study runner calls: prune a loaded model in place for one condition and return the
pruning report recorded in the run manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import CalibrationSpec, Condition
from engine.contract.labels import parse_pattern
from engine.errors import UserError
from engine.onednn import onednn_enabled
from engine.pruning import cache as pcache
from engine.pruning.calibration import load_calibration
from engine.pruning.driver import METHODS, PruneSettings, prune_layers
from engine.terminal import StepProgress

DRIVER_VERSION = "1"
# How Wanda and SparseGPT compute, in their cache keys and reports only (magnitude's keys stay): "2" =
# layer forwards and Hessians through oneDNN on the CPU where torch has it (engine/onednn.py), and
# SparseGPT's factor from one Cholesky factorization; "1" (no record) = torch's BLAS and three steps.
CALIBRATED_NUMERICS_VERSION = "2"


def effective_sparsity(condition: Condition) -> float:
    """The condition's sparsity; for N:M with sparsity left at 0, the pattern's (M-N)/M."""
    nm = _parse_nm(condition.pattern)
    if nm is not None and condition.sparsity == 0:
        return (nm[1] - nm[0]) / nm[1]
    return float(condition.sparsity)


def _parse_nm(pattern: str) -> tuple[int, int] | None:
    try:
        return parse_pattern(pattern)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def settings_for(
    condition: Condition, batch_size: int = 8, blocksize: int = 128, percdamp: float = 0.01
) -> PruneSettings:
    """Validated driver settings for a condition (UserError on bad method, sparsity or pattern)."""
    from engine.pruning.algorithms import check_sparsity_args

    if condition.method not in METHODS:
        raise UserError(f"condition method {condition.method!r}: expected one of {', '.join(METHODS)}")
    nm = _parse_nm(condition.pattern)
    sparsity = effective_sparsity(condition)
    check_sparsity_args(sparsity, nm)
    if nm and condition.method == "sparsegpt" and blocksize % nm[1]:
        raise UserError(f"blocksize {blocksize} must be a multiple of M={nm[1]}")
    return PruneSettings(
        method=condition.method,
        sparsity=sparsity,
        nm=nm,
        reference_compatible=condition.reference_compatible,
        blocksize=blocksize,
        percdamp=percdamp,
        batch_size=batch_size,
    )


def _algorithm_version() -> str:
    from engine.pruning import algorithms

    return str(getattr(algorithms, "ALGORITHM_VERSION", "1"))


def calibrated_numerics(condition: Condition, device: str | torch.device) -> dict[str, Any] | None:
    """What decides a calibrated method's floats beyond its inputs (None for magnitude)."""
    if not condition.uses_calibration:
        return None
    cpu = torch.device(device).type == "cpu"
    return {"version": CALIBRATED_NUMERICS_VERSION, "onednn": cpu and onednn_enabled()}


def _sparsity_totals(model: nn.Module, modules: list[str]) -> dict[str, float]:
    params = dict(model.named_parameters())
    zeros = total = 0
    for m in modules:
        w = params[f"{m}.weight"]
        zeros += int((w == 0).sum())
        total += w.numel()
    all_zero = all_total = 0
    for p in model.parameters():  # parameters() yields tied weights once
        all_zero += int((p == 0).sum())
        all_total += p.numel()
    return {
        "decoder_linear_sparsity": zeros / max(total, 1),
        "decoder_linear_params": total,
        "all_params_sparsity": all_zero / max(all_total, 1),
        "all_params": all_total,
    }


def prune_model(
    model: nn.Module,
    tokenizer: Any,
    condition: Condition,
    device: str = "cpu",
    cache_dir: Path | None = None,
    progress: StepProgress | None = None,
    batch_size: int = 8,
    model_id: str | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """Prune ``model`` in place per ``condition``; return the pruning report (for the manifest).

    With ``cache_dir``, a previous result for the same model weights, condition and calibration ids
    is loaded instead of pruning again (``report["cache"]["hit"]``). ``progress(layers done, layers)``
    follows the pruning.
    """
    if condition.method == "dense":
        raise UserError("condition method 'dense' is not a pruning method")
    spread = sorted({str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()})
    if len(spread) > 1:  # each layer is moved to `device`, while accelerate's hooks send its inputs elsewhere
        raise UserError(
            f"the model is spread over {len(spread)} devices by its device_map ({', '.join(spread)}); pruning "
            "takes one layer at a time to one device: load the model without device_map, or on one device"
        )
    t0 = time.perf_counter()
    settings = settings_for(condition, batch_size=batch_size)
    calib = None
    if condition.uses_calibration:
        spec = condition.calibration or CalibrationSpec()
        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        calib = load_calibration(spec, tokenizer, vocab_size=vocab)
    model_id = model_id or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
    key = None
    numerics = calibrated_numerics(condition, device)
    if cache_dir is not None:
        key = pcache.cache_key(
            {
                "model": model_id,
                "revision": revision,
                "weights": pcache.weights_fingerprint(model),
                "method": settings.method,
                "sparsity": settings.sparsity,
                "pattern": condition.pattern,
                "reference_compatible": settings.reference_compatible,
                "blocksize": settings.blocksize,
                "percdamp": settings.percdamp,
                "calibration": calib.sha256 if calib else None,
                "algorithm_version": _algorithm_version(),
                "driver_version": DRIVER_VERSION,
                **({"calibrated_numerics": numerics} if numerics else {}),
            }
        )
        cached = pcache.load_entry(Path(cache_dir), key, model)
        if cached is not None:
            cached["cache"] = {"hit": True, "key": key, "dir": str(pcache.entry_dir(Path(cache_dir), key))}
            cached["timings"] = {**cached.get("timings", {}), "cache_load_s": time.perf_counter() - t0}
            return cached
    was_training = model.training
    model.eval()
    try:
        result = prune_layers(model, settings, calib.ids if calib else None, device=device, progress=progress)
    finally:
        model.train(was_training)
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    names = list(result.modules)
    records = result.modules
    report: dict[str, Any] = {
        "method": settings.method,
        "sparsity": settings.sparsity,
        "pattern": condition.pattern,
        "reference_compatible": settings.reference_compatible,
        "blocksize": settings.blocksize,
        "percdamp": settings.percdamp,
        "batch_size": settings.batch_size,
        "architecture": type(model).__name__,
        "layers_path": result.layers_path,
        "n_layers": result.n_layers,
        "calibration": calib.to_dict() if calib else None,
        "modules": {n: r.to_dict() for n, r in records.items()},
        **_sparsity_totals(model, names),
        "nm_valid": all(r.nm_valid for r in records.values()) if settings.nm else None,
        "sparsegpt_total_loss": sum(r.loss or 0.0 for r in records.values())
        if settings.method == "sparsegpt"
        else None,
        "damping_retries": sum(r.retries or 0 for r in records.values()),
        "warnings": [f"{n}: {w}" for n, r in records.items() for w in r.warnings],
        "timings": {**result.timings, "total_s": time.perf_counter() - t0},
        "device": str(device),
        "algorithm_version": _algorithm_version(),
        "driver_version": DRIVER_VERSION,
        "calibrated_numerics": numerics,
        "versions": {"torch": torch.__version__, "transformers": _transformers_version()},
        "cache": {"hit": False, "key": key},
    }
    if cache_dir is not None and key is not None:
        folder = pcache.store_entry(Path(cache_dir), key, model, names, report)
        report["cache"]["dir"] = str(folder)
    return report


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
