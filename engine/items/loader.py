"""`load_items`: the one entry point the study runner calls."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.config import ItemsSpec
from engine.errors import UserError
from engine.items.hf import HF_SOURCES, load_hf, parse_hf_source
from engine.items.languages import flores_config, flores_language
from engine.items.local import read_item_file
from engine.items.subset import subset_per_language
from engine.items.validate import validate_items

BUNDLED = Path(__file__).resolve().parent.parent / "data" / "bundled_qa.jsonl"


def _check_languages(wanted: Sequence[str], available: Sequence[str], source: str) -> None:
    missing = [lang for lang in wanted if lang not in set(available)]
    if missing:
        raise UserError(
            f"items source {source!r}: unknown language(s) {', '.join(missing)} "
            f"(available: {', '.join(sorted(available))})"
        )


def _from_hf(spec: ItemsSpec) -> list[dict[str, Any]]:
    name, local = parse_hf_source(spec.source)
    src = HF_SOURCES[name]
    wanted = list(spec.languages) or list(src.languages)
    if name == "belebele":
        wanted = [flores_language(flores_config(lang)) for lang in wanted]
    if not src.open_languages:
        _check_languages(wanted, src.languages, spec.source)
    items = load_hf(name, wanted, spec.split, spec.seed, local)
    # The adapters only build valid items; checking again names the record if one slips through.
    return validate_items(
        ((f"record {it['source']['native_id']} ({it['language']})", it) for it in items),
        where=spec.source,
        dataset=name,
        strict=True,
    )


def load_items(spec: ItemsSpec) -> list[dict[str, Any]]:
    """Validated items of `spec`: its languages, N per language drawn by seed, sorted by (language, uid).

    `spec.source` is 'bundled', a local .jsonl/.csv/.parquet file, or 'hf:NAME[:PATH]' with NAME one of
    xquad, tydiqa, mkqa, global_mmlu, global_mmlu_lite, belebele (PATH: local files in the native format).
    """
    if spec.source.startswith("hf:"):
        items = _from_hf(spec)
    else:
        path = BUNDLED if spec.source == "bundled" else Path(spec.source).expanduser()
        items = read_item_file(path, strict=spec.strict or spec.source == "bundled")
        if spec.split:
            items = [it for it in items if it["source"].get("split") == spec.split]
        if spec.languages:
            _check_languages(spec.languages, sorted({it["language"] for it in items}), spec.source)
            keep = set(spec.languages)
            items = [it for it in items if it["language"] in keep]
    if not items:
        raise UserError(f"items source {spec.source!r}: no items for languages {', '.join(spec.languages) or '(all)'}")
    return subset_per_language(items, spec.n_per_language, spec.seed)
