"""The layer trace (logit lens) against a direct computation on tiny random models of every
architecture the pruning driver walks: each layer's hidden state of a plain full forward
(`output_hidden_states`) through the model's final norm and unembedding (softcapped where the model
softcaps), log-softmax; the last entry is the model's own logits. Both backends, tied and untied
embeddings, OPT with a projection after its final norm and OPT without a final norm.

Ranks and top-1 tokens are compared exactly: on these models the gold log-prob's nearest other
log-prob is at least 5.9e-5 away (top-1 vs top-2: 6.4e-4), some 60 times the float noise between the
two computations, so equality does not hang on a near-tie."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from engine.config import ProtocolConfig
from engine.errors import UserError
from engine.models import LoadedModel
from engine.prompts import PromptBuilder
from engine.protocol import evaluate_batch, plan_batches, protocol_manifest
from engine.protocol import lens as lens_module
from engine.protocol.kvcache import supports_slot_cache
from engine.reproducibility import outcome_differences
from tests.engine.pruning.prune_fixtures import one_thread, tiny_model
from tests.tiny import make_tokenizer

from .conftest import ITEMS, pool_of

TRACE = ProtocolConfig(max_new_tokens=3, batch_size=4, probes="none", shown=False, letter=False, layer_trace=True)
# name: (architecture, config overrides)
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("llama", {}),
    "qwen2-tied": ("qwen2", {}),
    "qwen3-tied": ("qwen3", {}),
    "mistral": ("mistral", {}),
    "gemma2-softcap30": ("gemma2", {}),
    "gemma3-softcap2": ("gemma3", {"final_logit_softcapping": 2.0}),
    "gpt2-tied": ("gpt2", {}),
    "opt-project-out": ("opt", {"word_embed_proj_dim": 32}),
    "opt-post-ln": ("opt", {"do_layer_norm_before": False}),
    "phi3": ("phi3", {}),
}


def _final_norm(model: Any) -> tuple[Any, Any]:
    """The final norm and the projection after it, by architecture (written out, not searched)."""
    if hasattr(model, "transformer"):  # GPT-2
        return model.transformer.ln_f, None
    decoder = getattr(model.model, "decoder", None)
    if decoder is not None:  # OPT
        return decoder.final_layer_norm, decoder.project_out
    return model.model.norm, None


def _direct(model: Any, ids: list[int]) -> torch.Tensor:
    """[layers + 1, vocab] log-probs of the next token after `ids`: hidden state -> final norm ->
    unembedding (-> softcap) -> log-softmax for entries 0..L-1, the model's logits for entry L."""
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True)
        norm, project = _final_norm(model)
        cap = getattr(model.config, "final_logit_softcapping", None)
        rows = []
        for h in out.hidden_states[:-1]:  # the last one is already normed; the model's logits stand for it
            x = h[0, -1]
            x = norm(x) if norm is not None else x
            x = project(x) if project is not None else x
            logits = model.lm_head(x)
            rows.append(torch.tanh(logits / cap) * cap if cap else logits)
        rows.append(out.logits[0, -1])
        return torch.log_softmax(torch.stack(rows).float(), dim=-1)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    tok = make_tokenizer(chat=True)
    tok.padding_side = "left"
    return tok


def _loaded(name: str, tokenizer: Any) -> LoadedModel:
    arch, overrides = MODELS[name]
    return LoadedModel(tiny_model(arch, vocab=len(tokenizer), **overrides), tokenizer)


def _records(loaded: LoadedModel, config: ProtocolConfig, plain: bool) -> list[dict]:
    pool = pool_of(ITEMS)
    with one_thread():
        return [
            r
            for batch in plan_batches(loaded, ITEMS, config)
            for r in evaluate_batch(loaded, batch, config, pool, plain=plain)
        ]


@pytest.mark.parametrize("name", list(MODELS))
def test_lens_equals_the_direct_computation(name: str, tokenizer: Any, outcome_validator) -> None:
    loaded = _loaded(name, tokenizer)
    model = loaded.model
    n_layers = model.config.get_text_config().num_hidden_layers
    backends = [True, False] if supports_slot_cache(model) else [True]
    by_backend = {plain: _records(loaded, TRACE, plain) for plain in backends}
    builder = PromptBuilder(tokenizer, TRACE)
    items = {it["item_uid"]: it for it in ITEMS}
    for records in by_backend.values():
        for r in records:
            outcome_validator.validate(r)
            trace, gold = r["layer_trace"], r["gold_trace"]["token_ids"][0]
            want = _direct(model, builder.open(items[r["item_uid"]]).ids)
            assert len(trace["ranks"]) == len(trace["logprobs"]) == len(trace["top1"]) == n_layers + 1
            ranks = (1 + (want > want[:, gold : gold + 1]).sum(-1)).tolist()
            assert trace["ranks"] == ranks, (name, r["item_uid"])
            assert trace["top1"] == want.argmax(-1).tolist(), (name, r["item_uid"])
            assert trace["logprobs"] == pytest.approx(want[:, gold].tolist(), abs=2e-4), (name, r["item_uid"])
            assert trace["ranks"][-1] == r["gold_trace"]["first_token_rank"]
    if len(by_backend) == 2:  # the fast backend keeps the plain one's trace (the determinism contract)
        for a, b in zip(by_backend[True], by_backend[False]):
            assert outcome_differences(a, b, same_config=False) == [], a["item_uid"]


def test_the_manifest_names_the_readout(tokenizer: Any) -> None:
    qwen = protocol_manifest(_loaded("qwen2-tied", tokenizer), TRACE)["layer_trace"]
    assert qwen["readout"]["final_norm"] == "model.norm (Qwen2RMSNorm)"
    assert qwen["readout"]["tied_to"] == "model.embed_tokens (Embedding)"
    assert qwen["entries"].startswith("3: entry 0 is the residual stream entering the first decoder layer")
    opt = protocol_manifest(_loaded("opt-project-out", tokenizer), TRACE)["layer_trace"]["readout"]
    assert opt["project_out"] == "model.decoder.project_out (Linear)" and opt["tied_to"] is not None
    gemma = protocol_manifest(_loaded("gemma2-softcap30", tokenizer), TRACE)["layer_trace"]["readout"]
    assert gemma["final_logit_softcapping"] == 30.0 and gemma["tied_to"] is not None
    llama = _loaded("llama", tokenizer)
    assert protocol_manifest(llama, TRACE)["layer_trace"]["readout"]["tied_to"] is None
    off = ProtocolConfig()
    assert "layer_trace" not in protocol_manifest(llama, off) and "layer_trace" not in off.to_dict()
    assert not any("layer_trace" in r for r in _records(llama, ProtocolConfig(max_new_tokens=2, probes="none"), False))


def test_a_readout_that_is_not_the_models_stops_the_run(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = _loaded("gemma3-softcap2", tokenizer)
    real = lens_module.Readout.of

    def without_softcap(model: Any) -> lens_module.Readout:
        readout = real(model)
        readout.softcap = None
        return readout

    monkeypatch.setattr(lens_module.Readout, "of", without_softcap)
    with pytest.raises(UserError, match="lens of the last layer gives the gold token log-prob"):
        _records(loaded, TRACE, plain=True)


def test_an_unknown_lens_is_named() -> None:
    from engine.protocol.evaluate import check_config

    with pytest.raises(UserError, match=r"protocol\.lens: 'tuned' is not one of logit"):
        check_config(ProtocolConfig(layer_trace=True, lens="tuned"))


def test_lens_ranks_may_move_by_float_noise_across_configurations() -> None:
    """A near-tie in a middle layer reorders under other kernels: the contract allows 1 + rtol·max."""
    line = {"layer_trace": {"ranks": [20603, 13523, 1], "logprobs": [-9.5, -8.25, -0.5], "top1": [5, 6, 7]}}
    moved = {"layer_trace": {"ranks": [20602, 13524, 1], "logprobs": [-9.5, -8.25, -0.5], "top1": [5, 6, 7]}}
    assert outcome_differences(line, moved, same_config=False) == []
    assert outcome_differences(line, moved, same_config=True) != []  # same configuration: the same bytes
    far = {"layer_trace": {"ranks": [20603, 13523, 3], "logprobs": [-9.5, -8.25, -0.5], "top1": [5, 6, 7]}}
    assert outcome_differences(line, far, same_config=False) == [
        "layer_trace.ranks[2]: 1 expected, 3 found (must be within 1 + rtol 0.001 × the larger)"
    ]
    gold = {"gold_trace": {"ranks": [20603]}}
    assert outcome_differences(gold, {"gold_trace": {"ranks": [20602]}}, same_config=False) != []  # others exact
