"""Checks of a study before anything heavy starts: devices, local model files, the items against the
protocol, and the output folder. Each failure is one `UserError` naming the file and key or path, raised
before a model loads or `--out` is touched, so a refused study leaves no trace."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.config import ModelSpec, ProtocolConfig, Study
from engine.errors import UserError

DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICES = "'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'"


def check_device(device: str, where: str) -> None:
    """A device name torch knows; `cuda`/`cuda:N` must exist here (imports torch only when CUDA is asked for)."""
    if not isinstance(device, str) or not DEVICE_RE.fullmatch(device):
        raise UserError(f"{where} = {device!r}: not a device; use {DEVICES}")
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise UserError(
            f"{where} = {device!r}, but CUDA is not available here (torch {torch.__version__}, {build}); "
            "use 'auto' or 'cpu', or run on a GPU machine"
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise UserError(f"{where} = {device!r}, but this machine has {torch.cuda.device_count()} CUDA device(s)")


def check_calibration_source(source: str, where: str) -> None:
    """A local calibration file exists ('bundled' and hf:NAME are checked when they are read)."""
    if source == "bundled" or source.startswith("hf:"):
        if source.startswith("hf:") and not source[3:].strip(":"):
            raise UserError(f"{where} = {source!r} names no dataset (hf:NAME[:CONFIG])")
        return
    file = Path(source).expanduser()
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise UserError(f"{where} = {source!r} {what} (give a file, 'bundled' or hf:NAME)")


def check_models(models: Sequence[ModelSpec], spec_path: Path) -> None:
    from engine.models import check_model_source

    for i, model in enumerate(models, 1):
        check_device(model.device, f"{spec_path}: [[models]] #{i}.device")
        check_model_source(model, f"{spec_path}: [[models]] #{i}.id")


def check_items(items: Sequence[dict[str, Any]], protocol: ProtocolConfig, source: str, spec_path: Path) -> None:
    """Every item can be evaluated under the protocol (e.g. no more options than letters)."""
    from engine.prompts import check_item

    for item in items:
        try:
            check_item(item, protocol)
        except UserError as exc:
            raise UserError(f"items source {source!r} (from {spec_path}): {exc}") from None


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """`out` is a writable folder or can be made as one; nothing is created here."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{flag} {out}: exists and is not a folder; give a folder")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {out}: the folder is not writable (permission denied); choose another folder")
        return
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{flag} {out}: cannot be made, {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out}: cannot be made, {parent} is not writable (permission denied)")


def preflight(study: Study, spec_path: Path, out: Path, items: Sequence[dict[str, Any]]) -> None:
    """Everything checkable about a study run before a model loads or `out` is touched."""
    check_models(study.models, spec_path)
    check_items(items, study.protocol, study.items.source, spec_path)
    check_out_dir(out)
