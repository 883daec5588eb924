"""Tiny random models of each architecture the driver supports, a local tokenizer, and a batch-1
oracle of the reference pruning loop (docs/pruning.md §3, §4, §6) for comparison."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

VOCAB = 320


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models run faster single-threaded, and the suite runs two workers on two cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


ARCHS = ("llama", "qwen2", "mistral", "gemma2", "gemma3", "gpt2", "opt")


def tiny_model(arch: str, seed: int = 0, vocab: int = VOCAB, **overrides: Any) -> nn.Module:
    """A 2-layer, hidden-64 random model in fp32, eval mode (`arch` one of ARCHS, qwen3 or phi3;
    `overrides` set config attributes)."""
    import transformers as tf

    common = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=256,
    )
    if arch == "llama":
        cfg, cls = tf.LlamaConfig(**common), tf.LlamaForCausalLM
    elif arch == "qwen2":
        cfg, cls = tf.Qwen2Config(**common, tie_word_embeddings=True), tf.Qwen2ForCausalLM
    elif arch == "qwen3":
        cfg, cls = tf.Qwen3Config(**common, head_dim=16, tie_word_embeddings=True), tf.Qwen3ForCausalLM
    elif arch == "phi3":
        ids = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
        cfg, cls = tf.Phi3Config(**common, **ids), tf.Phi3ForCausalLM
    elif arch == "mistral":
        cfg, cls = tf.MistralConfig(**common, sliding_window=8), tf.MistralForCausalLM
    elif arch == "gemma2":
        cfg, cls = tf.Gemma2Config(**common, head_dim=16, sliding_window=8), tf.Gemma2ForCausalLM
    elif arch == "gemma3":
        cfg, cls = tf.Gemma3TextConfig(**common, head_dim=16, sliding_window=8), tf.Gemma3ForCausalLM
    elif arch == "gpt2":
        cfg = tf.GPT2Config(
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_inner=128,
            vocab_size=vocab,
            n_positions=256,
            bos_token_id=0,
            eos_token_id=0,
        )
        cls = tf.GPT2LMHeadModel
    elif arch == "opt":
        cfg = tf.OPTConfig(
            hidden_size=64,
            ffn_dim=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=vocab,
            max_position_embeddings=256,
            word_embed_proj_dim=64,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=0,
        )
        cls = tf.OPTForCausalLM
    else:
        raise ValueError(arch)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    torch.manual_seed(seed)
    model = cls(cfg)
    with torch.no_grad():  # larger than the 0.02 init so that activations and scores spread out
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    return model.eval()


def layers_of(model: nn.Module) -> nn.ModuleList:
    """The decoder layers, found independently of the driver."""
    base = getattr(model, "transformer", None) or model.model
    return base.h if hasattr(base, "h") else (base.decoder.layers if hasattr(base, "decoder") else base.layers)


def linear_modules(layer: nn.Module) -> dict[str, nn.Module]:
    from transformers.pytorch_utils import Conv1D

    return {n: m for n, m in layer.named_modules() if isinstance(m, (nn.Linear, Conv1D))}


def out_in(mod: nn.Module) -> torch.Tensor:
    from transformers.pytorch_utils import Conv1D

    w = mod.weight.data
    return (w.t() if isinstance(mod, Conv1D) else w).float().clone()


def set_out_in(mod: nn.Module, w: torch.Tensor) -> None:
    from transformers.pytorch_utils import Conv1D

    mod.weight.data.copy_(w.t() if isinstance(mod, Conv1D) else w)


class _Caught(Exception):
    pass


def oracle_prune(
    model: nn.Module,
    ids: torch.Tensor,
    method: str,
    sparsity: float,
    nm: tuple[int, int] | None = None,
    per_layer_kwargs: bool = True,
) -> dict[str, float]:
    """The references' loop: batch 1, forward hooks on every linear module of a layer with the
    running-average statistics of WrappedGPT / SparseGPT.add_batch, prune, re-run the pruned layer.
    Modifies ``model`` in place; returns the SparseGPT loss per module.

    Capture: with ``per_layer_kwargs`` every layer's own call arguments are recorded in a dense
    pass (needed where layers differ: sliding/global attention); without it, the references'
    Catcher stops at layer 0 and its arguments are reused for every layer (fine for Llama)."""
    from engine.pruning import algorithms as alg

    layers = layers_of(model)
    inps: list[torch.Tensor] = []
    calls: list[list[tuple[tuple, dict]]] = [[] for _ in layers]
    handles = []
    for li, layer in enumerate(layers if per_layer_kwargs else layers[:1]):

        def rec(mod: nn.Module, args: tuple, kwargs: dict, li: int = li) -> None:
            if li == 0:
                inps.append(args[0].detach().clone())
            calls[li].append((args[1:], dict(kwargs)))
            if not per_layer_kwargs:
                raise _Caught

        handles.append(layer.register_forward_pre_hook(rec, with_kwargs=True))
    with torch.no_grad():
        for j in range(ids.shape[0]):
            with contextlib.suppress(_Caught):
                model(input_ids=ids[j : j + 1], use_cache=False)
    for h in handles:
        h.remove()
    if not per_layer_kwargs:
        calls = [calls[0]] * len(layers)
    losses: dict[str, float] = {}
    for li, layer in enumerate(layers):
        subset = linear_modules(layer)
        state: dict[str, dict[str, Any]] = {n: {"n": 0, "stat": None} for n in subset}

        def add_batch(name: str, state: dict[str, dict[str, Any]] = state) -> Any:
            def hook(mod: nn.Module, inp: tuple, out: Any) -> None:
                x = inp[0].detach()
                if x.dim() == 2:
                    x = x.unsqueeze(0)
                tmp = x.shape[0]
                x = x.reshape(-1, x.shape[-1]).t().float()
                st = state[name]
                cols = x.shape[0]
                if method == "wanda":
                    if st["stat"] is None:
                        st["stat"] = torch.zeros(cols)
                    st["stat"] *= st["n"] / (st["n"] + tmp)
                    st["n"] += tmp
                    st["stat"] += torch.norm(x, p=2, dim=1) ** 2 / st["n"]
                else:
                    if st["stat"] is None:
                        st["stat"] = torch.zeros(cols, cols)
                    st["stat"] *= st["n"] / (st["n"] + tmp)
                    st["n"] += tmp
                    x = math.sqrt(2 / st["n"]) * x
                    st["stat"] += x.matmul(x.t())

            return hook

        hs = [m.register_forward_hook(add_batch(n)) for n, m in subset.items()]
        with torch.no_grad():
            for j, h in enumerate(inps):
                layer(h, *calls[li][j][0], **calls[li][j][1])
        for h in hs:
            h.remove()
        for name, mod in subset.items():
            w = out_in(mod)
            if method == "wanda":
                mask = alg.wanda_mask(w, state[name]["stat"], sparsity, nm=nm)
                w[mask] = 0
            else:
                res = alg.sparsegpt_prune(w, state[name]["stat"], sparsity, nm=nm)
                w = res.weight
                losses[f"{li}.{name}"] = res.loss
            set_out_in(mod, w)
        outs = []
        with torch.no_grad():
            for j, h in enumerate(inps):
                o = layer(h, *calls[li][j][0], **calls[li][j][1])
                outs.append(o[0] if isinstance(o, tuple) else o)
        inps = outs
    return losses


def train_tokenizer(folder: Path, texts: list[str], vocab: int = VOCAB - 20) -> Any:
    """A byte-level BPE tokenizer trained locally on ``texts`` (no hub), saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")
    fast.save_pretrained(folder)
    return fast
