"""Fixtures: a tiny random Llama (hidden 64, 2 layers) and tokenizer saved locally, loaded through
engine.models, plus a small multilingual item set in the item schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.config import ModelSpec
from engine.runfolder import sha256_text
from tests.tiny import make_tiny_model_dir

SCHEMA = Path(__file__).resolve().parents[3] / "engine" / "schema" / "outcome.schema.json"


def make_item(
    uid: str,
    lang: str,
    question: str,
    answer: str,
    options: list[str],
    gold: int,
    aliases: tuple[str, ...] = (),
    parallel_id: str | None = None,
    context: str | None = None,
) -> dict:
    item: dict[str, Any] = {
        "item_uid": uid,
        "language": lang,
        "question": question,
        "context": context,
        "answer": answer,
        "aliases": list(aliases),
        "options": options,
        "gold_index": gold,
        "parallel_id": parallel_id,
        "source": {"dataset": "test", "config": None, "split": "test", "native_id": uid},
    }
    item["content_hash"] = sha256_text(json.dumps(item, sort_keys=True, ensure_ascii=False))
    return item


ITEMS = [
    make_item(
        "t/en/1",
        "en",
        "What is the capital of France?",
        "Paris",
        ["London", "Paris", "Rome", "Berlin"],
        1,
        parallel_id="cap-fr",
    ),
    make_item(
        "t/de/1",
        "de",
        "Was ist die Hauptstadt von Frankreich?",
        "Paris",
        ["London", "Paris", "Rom", "Berlin"],
        1,
        parallel_id="cap-fr",
    ),
    make_item(
        "t/ru/1", "ru", "Какая столица Франции?", "Париж", ["Лондон", "Париж", "Рим", "Берлин"], 1, parallel_id="cap-fr"
    ),
    make_item("t/zh/1", "zh", "法国的首都是哪里？", "巴黎", ["伦敦", "巴黎", "罗马", "柏林"], 1, parallel_id="cap-fr"),
    make_item(
        "t/en/2",
        "en",
        "What is the capital of Germany?",
        "Berlin",
        ["Berlin", "Madrid", "Paris", "Oslo"],
        0,
        parallel_id="cap-de",
        context="Berlin is the capital and largest city of Germany.",
    ),
    make_item(
        "t/de/2",
        "de",
        "Was ist die Hauptstadt von Deutschland?",
        "Berlin",
        ["Wien", "Madrid", "Berlin", "Oslo"],
        2,
        parallel_id="cap-de",
    ),
    make_item(
        "t/ru/2",
        "ru",
        "Какая столица Германии?",
        "Берлин",
        ["Вена", "Мадрид", "Осло", "Берлин"],
        3,
        parallel_id="cap-de",
    ),
    make_item(
        "t/zh/2",
        "zh",
        "德国的首都是哪里？",
        "柏林",
        ["柏林", "马德里", "维也纳", "奥斯陆"],
        0,
        aliases=("柏林市",),
        parallel_id="cap-de",
    ),
    make_item(
        "t/en/3",
        "en",
        "How many legs does a spider have?",
        "8",
        ["6", "8", "10"],
        1,
        aliases=("eight",),
        parallel_id="legs",
    ),
    make_item(
        "t/de/3",
        "de",
        "Wie viele Beine hat eine Spinne?",
        "8",
        ["6", "10", "8", "4", "12"],
        2,
        aliases=("acht",),
        parallel_id="legs",
    ),
]


def pool_of(items: list[dict]) -> dict[str, list[dict]]:
    pool: dict[str, list[dict]] = {}
    for it in items:
        pool.setdefault(it["language"], []).append(it)
    return pool


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "chat": make_tiny_model_dir(root / "chat", chat=True),
        "base": make_tiny_model_dir(root / "base", chat=False),
    }


@pytest.fixture(scope="session")
def chat_model(tiny_dirs: dict[str, Path]):
    from engine.models import load_model

    return load_model(ModelSpec(str(tiny_dirs["chat"]), device="cpu"))


@pytest.fixture(scope="session")
def base_model(tiny_dirs: dict[str, Path]):
    from engine.models import load_model

    return load_model(ModelSpec(str(tiny_dirs["base"]), device="cpu"))


@pytest.fixture(scope="session")
def outcome_validator():
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)
