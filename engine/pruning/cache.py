"""Cache of pruned weights, so re-running a study does not prune again.

Key: sha256 of the model identity and revision, a fingerprint of its weights, the method, sparsity,
pattern, calibration hash, algorithm settings and versions. An entry is a folder holding the pruned
tensors of the targeted modules (``weights.safetensors``) and the pruning report (``report.json``),
built and verified as `engine.cache_entry` describes: an entry that fails its checksums is named,
removed and pruned again, and a crashed write leaves no entry (its temp folder goes on the next run).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine import cache_entry
from engine.config import cache_root
from engine.errors import UserError

CACHE_FORMAT = 1
WEIGHTS_FILE = "weights.safetensors"
REPORT_FILE = "report.json"


def default_cache_dir() -> Path:
    """``$PRUNESCOPE_CACHE/pruned`` or ``~/.cache/prunescope/pruned``."""
    return cache_root() / "pruned"


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over every parameter and buffer (name, dtype, shape, bytes), in name order."""
    h = hashlib.sha256()
    tensors: dict[str, torch.Tensor] = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    for name in sorted(tensors):
        t = tensors[name].detach()
        if t.device.type == "meta":
            raise UserError(f"cannot fingerprint {name}: weights are not loaded (meta device)")
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().cpu().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps({"cache_format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def entry_dir(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / key[:2] / key


def load_entry(cache_dir: Path, key: str, model: nn.Module) -> dict[str, Any] | None:
    """Copy the cached tensors into ``model`` and return the cached report; None on a miss, and on an
    entry that fails verification (named on stderr and removed, so the caller prunes again)."""
    folder = entry_dir(cache_dir, key)
    cache_entry.sweep_stale_builds(folder.parent)
    if not folder.exists() or not cache_entry.verified_or_discarded(folder, "pruning cache entry", "pruning again"):
        return None
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
        report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
    except Exception as exc:
        raise UserError(f"{folder}: unreadable pruning cache entry ({exc}); delete the folder to prune again") from None
    params = dict(model.named_parameters())
    for name, t in tensors.items():
        if name not in params or params[name].shape != t.shape:
            raise UserError(f"{folder}: cached tensor {name} does not fit the model; delete the folder to prune again")
    with torch.no_grad():
        for name, t in tensors.items():
            params[name].data.copy_(t.to(params[name].dtype))
    return report


def store_entry(cache_dir: Path, key: str, model: nn.Module, module_names: list[str], report: dict[str, Any]) -> Path:
    """Write the targeted modules' weights and the report as a verified entry; returns the entry folder."""
    from safetensors.torch import save_file

    folder = entry_dir(cache_dir, key)
    params = dict(model.named_parameters())
    tensors = {f"{m}.weight": params[f"{m}.weight"].detach().cpu().contiguous() for m in module_names}
    with cache_entry.build_entry(folder) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=1, sort_keys=True), encoding="utf-8")
    return folder
