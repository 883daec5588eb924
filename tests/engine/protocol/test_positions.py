"""Items longer than the model's positions: refused before any work where the model fails past them
(learned position embeddings), named on stderr where positions are rotary; the same for perplexity."""

from __future__ import annotations

import pytest

from engine.config import ProtocolConfig
from engine.errors import UserError
from engine.models import LoadedModel, prepare_tokenizer
from engine.protocol.evaluate import check_positions, position_limit
from tests.engine.pruning.prune_fixtures import tiny_model
from tests.tiny import make_tokenizer

from .conftest import ITEMS, make_item, pool_of

LONG = make_item(
    "x/en/long", "en", "What is the capital of Germany?", "Berlin", ["Berlin", "Paris"], 0,
    context=" ".join(["The capital of Germany is Berlin."] * 40),
)  # fmt: skip
CONFIG = ProtocolConfig(max_new_tokens=4, batch_size=2, probes="none")


def _loaded(arch: str) -> LoadedModel:
    tok = make_tokenizer(chat=False)
    model = tiny_model(arch, vocab=len(tok))
    prepare_tokenizer(tok, model)
    return LoadedModel(model, tok)


def test_learned_positions_refuse_an_item_past_them_and_name_it() -> None:
    loaded = _loaded("gpt2")  # n_positions 256: the long item's prompt is past it
    assert position_limit(loaded.model.config) == (256, True)
    items = [*ITEMS, LONG]
    check_positions(loaded, ITEMS, CONFIG, pool_of(ITEMS))  # the short items fit
    with pytest.raises(
        UserError, match=r"1 item\(s\) need more positions than the model's 256 \(the most, \d+: x/en/long"
    ):
        check_positions(loaded, items, CONFIG, pool_of(items))
    probing = ProtocolConfig(max_new_tokens=4, batch_size=2, probes="failed")  # one-shot prompts are longer
    with pytest.raises(
        UserError, match=r"1 item\(s\) need more positions than the model's 256 \(the most, 281: t/en/2"
    ):
        check_positions(loaded, ITEMS, probing, pool_of(ITEMS))


def test_rotary_positions_past_the_limit_are_named_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    loaded = _loaded("llama")  # max_position_embeddings 256, rotary
    assert position_limit(loaded.model.config) == (256, False)
    items = [*ITEMS, LONG]
    check_positions(loaded, items, CONFIG, pool_of(items))
    err = capsys.readouterr().err
    assert "x/en/long" in err and "outside the model's trained range" in err
