"""Calibration token ids for pruning: local JSONL(.gz) / text / pre-tokenized files, the bundled
multilingual text, or a Hugging Face dataset, sampled exactly like the reference C4 sampler.

The reference sampler (`get_c4` in the Wanda and SparseGPT repositories, docs/pruning.md §8):
``random.seed(seed)``; per sample, draw a document index with ``randint(0, len-1)`` until the
tokenized document is longer than ``seqlen``, then draw ``start = randint(0, ntok - seqlen - 1)`` and
take ``ids[start:start+seqlen]``. ``random.Random(seed)`` yields the same draws as the global seed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.config import CalibrationSpec
from engine.errors import UserError

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data" / "calibration"
BUNDLED_CALIBRATION = "calibration.jsonl"
BUNDLED_HELDOUT = "heldout.jsonl"
MAX_DRAWS_PER_SAMPLE = 10_000
TOKEN_FILE_SUFFIXES = (".npy", ".pt", ".safetensors")


@dataclass
class CalibrationData:
    """Sampled calibration ids ``(nsamples, seqlen)`` (int64) and their provenance."""

    ids: torch.Tensor
    sha256: str
    spec: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.spec, "ids_sha256": self.sha256}


def ids_sha256(ids: torch.Tensor) -> str:
    """SHA-256 of the ids as little-endian int64, row-major (shape included)."""
    arr = np.ascontiguousarray(ids.detach().cpu().numpy().astype("<i8"))
    h = hashlib.sha256(json.dumps(list(arr.shape)).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def read_jsonl_texts(path: Path, field_name: str = "text") -> list[str]:
    """Documents of a JSONL or gzip-compressed JSONL file (one JSON object per line), in file order."""
    opener = gzip.open if path.suffix == ".gz" else open
    docs: list[str] = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}: line {lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get(field_name), str):
                    raise UserError(f"{path}: line {lineno}: expected an object with a string field {field_name!r}")
                docs.append(row[field_name])
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read calibration file ({exc})") from None
    if not docs:
        raise UserError(f"{path}: no documents")
    return docs


def bundled_texts(name: str = BUNDLED_CALIBRATION) -> list[str]:
    """Documents of a bundled text file in ``engine/data/calibration``."""
    return read_jsonl_texts(BUNDLED_DIR / name)


def load_documents(source: str) -> list[str]:
    """Documents (file order) of a text source: 'bundled', a local .jsonl/.jsonl.gz/.json.gz/.txt, or hf:NAME[:CONFIG]."""
    if source == "bundled":
        return bundled_texts()
    if source.startswith("hf:"):
        return _hf_documents(source[3:])
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"calibration source {source!r}: no such file")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".json")):
        return read_jsonl_texts(path)
    if name.endswith(".txt"):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read calibration text ({exc})") from None
        if not text.strip():
            raise UserError(f"{path}: empty calibration text")
        return [text]
    raise UserError(
        f"calibration source {source!r}: unknown file type (expected .jsonl, .jsonl.gz, .txt, .npy, .pt or .safetensors)"
    )


def _hf_documents(spec: str) -> list[str]:
    """``NAME[:CONFIG]``, or ``NAME:FILE`` for one data file of a dataset repository (the references
    read ``hf:allenai/c4:en/c4-train.00000-of-01024.json.gz``, not the whole of C4)."""
    name, _, config = spec.partition(":")
    data_files = (
        {"train": config} if config.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz", ".parquet")) else None
    )
    try:
        import datasets
    except ImportError:
        raise UserError("calibration source hf:…: the 'datasets' package is not installed") from None
    try:
        if data_files:
            ds = datasets.load_dataset(name, data_files=data_files, split="train")
        else:
            ds = datasets.load_dataset(name, config or None, split="train")
    except Exception as exc:  # offline, unknown name, …: one clear line
        raise UserError(
            f"calibration source hf:{spec}: cannot load the dataset ({exc.__class__.__name__}: {exc})"
        ) from None
    if "text" not in ds.column_names:
        raise UserError(f"calibration source hf:{spec}: no 'text' column (columns: {', '.join(ds.column_names)})")
    return list(ds["text"])


def sample_reference(
    docs: Sequence[str],
    tokenize: Callable[[str], list[int]],
    nsamples: int,
    seqlen: int,
    seed: int,
    max_draws_per_sample: int = MAX_DRAWS_PER_SAMPLE,
    source: str = "calibration",
) -> torch.Tensor:
    """The reference C4 sampler, with a bounded search: ``(nsamples, seqlen)`` int64 ids."""
    if nsamples < 1 or seqlen < 1:
        raise UserError(f"calibration: nsamples and seqlen must be positive (got {nsamples}, {seqlen})")
    rng = random.Random(seed)
    cache: dict[int, list[int]] = {}
    longest = 0
    out = torch.empty((nsamples, seqlen), dtype=torch.long)
    for s in range(nsamples):
        for _ in range(max_draws_per_sample):
            i = rng.randint(0, len(docs) - 1)
            if i not in cache:
                cache[i] = tokenize(docs[i])
                longest = max(longest, len(cache[i]))
            ids = cache[i]
            if len(ids) > seqlen:
                break
            if len(cache) == len(docs) and longest <= seqlen:
                break  # every document is known to be too short: no draw can succeed
        else:
            ids = []
        if len(ids) <= seqlen:
            raise UserError(
                f"{source}: no document longer than seqlen={seqlen} tokens found (sample {s}, "
                f"{len(docs)} documents, longest seen {longest} tokens); use a shorter --seqlen or longer documents"
            )
        start = rng.randint(0, len(ids) - seqlen - 1)
        out[s] = torch.tensor(ids[start : start + seqlen], dtype=torch.long)
    return out


def load_token_file(path: Path, nsamples: int, seqlen: int) -> torch.Tensor:
    """Pre-tokenized ids (.npy / .pt with weights_only / .safetensors): the first ``nsamples`` rows of a
    2-D ``(rows, seqlen)`` integer array."""
    name = path.name.lower()
    arr: object  # checked to be an integer tensor below
    try:
        if name.endswith(".npy"):
            arr = torch.from_numpy(np.load(path, allow_pickle=False))
        elif name.endswith(".pt"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            arr = obj.get("input_ids") if isinstance(obj, dict) else obj
        else:
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if "input_ids" in tensors:
                arr = tensors["input_ids"]
            elif len(tensors) == 1:
                arr = next(iter(tensors.values()))
            else:
                raise UserError(f"{path}: expected one tensor or one named 'input_ids' (found {', '.join(tensors)})")
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: cannot read token ids ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(arr, torch.Tensor):
        raise UserError(f"{path}: expected a tensor of token ids, found {type(arr).__name__}")
    if arr.is_floating_point() or arr.is_complex() or arr.dtype == torch.bool:
        raise UserError(f"{path}: token ids must be integers (found {arr.dtype})")
    if arr.dim() != 2:
        raise UserError(f"{path}: token ids must have shape (nsamples, seqlen); found {tuple(arr.shape)}")
    if arr.shape[1] != seqlen:
        raise UserError(f"{path}: rows have {arr.shape[1]} tokens but seqlen={seqlen} was asked for")
    if arr.shape[0] < nsamples:
        raise UserError(f"{path}: {arr.shape[0]} rows but nsamples={nsamples} were asked for")
    if (arr < 0).any():
        raise UserError(f"{path}: negative token ids")
    return arr[:nsamples].to(torch.long).contiguous()


def tokenizer_fn(tokenizer: Any) -> Callable[[str], list[int]]:
    """Tokenize a document as the reference does: the tokenizer's default special tokens, no truncation."""

    def tok(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    return tok


def load_calibration(spec: CalibrationSpec, tokenizer: Any, vocab_size: int | None = None) -> CalibrationData:
    """Sample (or read) calibration ids per ``spec`` and record their provenance and hash."""
    source = spec.source
    desc: dict[str, Any] = {**spec.to_dict()}
    path = Path(source).expanduser()
    if not source.startswith("hf:") and source != "bundled" and path.name.lower().endswith(TOKEN_FILE_SUFFIXES):
        if not path.is_file():
            raise UserError(f"calibration source {source!r}: no such file")
        ids = load_token_file(path, spec.nsamples, spec.seqlen)
        desc["sampler"] = "pretokenized"
    else:
        if tokenizer is None:
            raise UserError(f"calibration source {source!r} needs the model's tokenizer")
        docs = load_documents(source)
        ids = sample_reference(docs, tokenizer_fn(tokenizer), spec.nsamples, spec.seqlen, spec.seed, source=source)
        desc.update(
            sampler="c4_reference",
            n_documents=len(docs),
            tokenizer=getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__,
        )
    if vocab_size is not None and int(ids.max()) >= vocab_size:
        raise UserError(
            f"calibration source {source!r}: token id {int(ids.max())} is outside the model's vocabulary ({vocab_size})"
        )
    return CalibrationData(ids=ids, sha256=ids_sha256(ids), spec=desc)
