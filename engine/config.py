"""Typed settings shared by the study spec, the protocol and the pruning driver (torch-free)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.contract.labels import Method, condition_label, parse_pattern
from engine.matching import GUARDS


def cache_root() -> Path:
    """The user cache of prunescope (`$PRUNESCOPE_CACHE` or `~/.cache/prunescope`)."""
    env = os.environ.get("PRUNESCOPE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prunescope"


ProbeMode = Literal["failed", "all", "none"]
CALIBRATED_METHODS = ("wanda", "sparsegpt")  # the methods that read calibration data (magnitude does not)
MC_RULES = ("sum", "per_token", "per_char", "per_byte", "letter")
LENSES = ("logit",)
DTYPES = ("float32", "float16", "bfloat16", "auto")


@dataclass(frozen=True)
class ProtocolConfig:
    """How each item is evaluated; recorded whole in the manifest."""

    max_new_tokens: int = 32
    batch_size: int = 16
    use_chat_template: bool | None = None  # None: use it when the tokenizer has one (instruct models)
    with_context: bool = True  # show the passage for reading-comprehension items
    shown: bool = True  # run candidate-shown generation
    letter: bool = True  # score letter choice besides option log-likelihood
    mc_rule: str = "per_char"  # which normalisation decides "the" MC answer
    containment: bool = True  # gold contained in the normalised output counts as correct
    guards: tuple[str, ...] = GUARDS  # guards on containment: hedge, loop, short (engine/matching.py)
    probes: ProbeMode = "failed"  # run recovery probes on failed open generations, all, or none
    beam_width: int = 4
    n_samples: int = 8
    temperature: float = 0.7
    top_p: float = 1.0
    one_shot: bool = True
    demotion_max_rank: int = 10  # open failed and gold first-token rank <= this -> demoted
    seed: int = 0
    layer_trace: bool = False  # per layer, the gold first token's rank through a lens (engine/protocol/lens.py)
    lens: str = "logit"  # which lens: 'logit' (each layer through the final norm and unembedding)

    def to_dict(self) -> dict[str, Any]:
        """The settings as recorded in the manifest; the layer trace's only when it is on, so that runs
        made before it existed keep their resume identity."""
        d = asdict(self)
        d["guards"] = list(self.guards)
        if not self.layer_trace:
            del d["layer_trace"], d["lens"]
        return d


@dataclass(frozen=True)
class CalibrationSpec:
    """Where pruning calibration text comes from and how it is sampled."""

    source: str = (
        "bundled"  # 'bundled', a local path (.jsonl/.jsonl.gz/.txt/.npy/.pt/.safetensors), or 'hf:NAME[:CONFIG]'
    )
    nsamples: int = 128
    seqlen: int = 2048
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Condition:
    """One pruning condition of a model (method 'dense' means unpruned)."""

    method: Method = "dense"
    sparsity: float = 0.0
    pattern: str = "unstructured"  # or 'N:M'
    calibration: CalibrationSpec | None = None
    reference_compatible: bool = False  # reproduce the reference code's counting exactly

    @property
    def nm(self) -> tuple[int, int] | None:
        return parse_pattern(self.pattern)

    @property
    def uses_calibration(self) -> bool:
        return self.method in CALIBRATED_METHODS

    @property
    def slug(self) -> str:
        return condition_label(self.method, self.sparsity, self.pattern)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["calibration"] = self.calibration.to_dict() if self.calibration else None
        return d


@dataclass(frozen=True)
class ModelSpec:
    """A model to load: a hub id, a local folder, a .gguf file, or 'demo'."""

    id: str
    revision: str | None = None
    dtype: str = "float32"
    device: str = "auto"  # 'auto' = cuda if available else cpu; or 'cpu', 'cuda:0', …
    device_map: str | None = None  # e.g. 'auto' for accelerate placement of large models
    gguf_file: str | None = None
    trust_remote_code: bool = False
    baseline: bool = False  # its dense run is the reference of every other run of the study (engine.contract.pairing)

    @property
    def slug(self) -> str:
        base = self.id.rstrip("/").split("/")[-1]
        return "".join(c if c.isalnum() or c in "._-" else "-" for c in base)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ItemsSpec:
    """Where the items come from and which subset is used."""

    source: str = "bundled"  # 'bundled', a local .jsonl/.csv/.parquet, or 'hf:xquad' etc.
    languages: tuple[str, ...] = ()  # empty = every language of the source
    n_per_language: int = 200
    seed: int = 0
    split: str | None = None
    strict: bool = False  # reject unknown fields

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["languages"] = list(self.languages)
        return d


@dataclass(frozen=True)
class Study:
    """A parsed study spec: items × models × conditions, one run per (model, condition)."""

    name: str
    items: ItemsSpec
    models: tuple[ModelSpec, ...]
    conditions: tuple[Condition, ...]
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
