"""The logit lens of the gold trace: at which layer the gold answer's first token is promoted.

At the open prompt's last position (the one whose logits predict the gold answer's first token), the
residual stream entering the first decoder layer (entry 0: the embeddings as the model feeds them to
its layers, scaled or projected where the model does) and leaving each decoder layer (entries
1..L) is read out the way the model reads out its last layer: its final norm, the projection after
it where there is one (OPT's `project_out`), its unembedding (`lm_head`, which is the embedding
matrix when the weights are tied) and its final-logit softcapping (Gemma 2), then a log-softmax
over the vocabulary. Entry L is therefore the model's own prediction; every item checks that it
reproduces the model's log-prob of the gold token (`layer_traces`), so a readout that misses a step
of some architecture fails loudly instead of writing wrong curves.

The states come from the open-prompt pass the backends already run: forward hooks on the decoder
layers keep one position of each layer's input and outputs during that pass (`LayerCapture`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engine.errors import UserError
from engine.protocol.scoring import TokenScores, token_scores

NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f")  # beside the decoder layers
LOGPROB_DECIMALS = 4
# |lens log-prob at the last layer - the model's log-prob of the gold token| allowed, by model dtype
CHECK_TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-6}
CHECK_TOLERANCE_HALF = 0.5  # float16 / bfloat16 logits are rounded to 8-11 bits


def _hidden(value: Any) -> torch.Tensor:
    """The hidden states of a decoder layer's input or output (a tensor, or a tuple starting with one)."""
    return value[0] if isinstance(value, tuple) else value


@dataclass
class Readout:
    """How a model turns its last layer's residual stream into logits, applicable to any layer's."""

    layers: torch.nn.ModuleList
    norm: torch.nn.Module | None  # None: the model has no final norm (post-LN OPT)
    project_out: torch.nn.Module | None
    head: torch.nn.Module
    softcap: float | None
    described: dict[str, Any]  # the modules used, by name, for the manifest

    @classmethod
    def of(cls, model: Any) -> Readout:
        """The readout of a causal LM whose decoder layers the pruning driver finds; a UserError
        naming the architecture when its final norm or unembedding cannot be found."""
        from engine.pruning.driver import find_decoder_layers

        arch = type(model).__name__
        path, layers = find_decoder_layers(model)
        base_path = path.rpartition(".")[0]
        base = model.get_submodule(base_path) if base_path else model
        norm_name = next((n for n in NORM_NAMES if hasattr(base, n)), None)
        if norm_name is None:
            raise UserError(
                f"protocol.layer_trace: cannot find the final norm of {arch} "
                f"(looked for {', '.join(NORM_NAMES)} beside {path})"
            )
        head = model.get_output_embeddings()
        weight = getattr(head, "weight", None)
        if not isinstance(head, torch.nn.Module) or not isinstance(weight, torch.Tensor):
            raise UserError(f"protocol.layer_trace: {arch} has no output embedding (unembedding) to read out with")
        norm = getattr(base, norm_name)
        project_out = getattr(base, "project_out", None)
        softcap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
        names = {id(m): n for n, m in model.named_modules()}
        embed = model.get_input_embeddings()
        tied = embed is not None and weight.data_ptr() == embed.weight.data_ptr()

        def name(mod: Any, fallback: str) -> str | None:
            return None if mod is None else f"{names.get(id(mod), fallback)} ({type(mod).__name__})"

        described = {
            "layers": f"{path} ({len(layers)} {type(layers[0]).__name__})",
            "final_norm": name(norm, f"{base_path}.{norm_name}".lstrip(".")),
            "project_out": name(project_out, f"{base_path}.project_out"),
            "unembedding": name(head, "lm_head"),
            "tied_to": name(embed, "input embeddings") if tied else None,
            "final_logit_softcapping": softcap,
        }
        return cls(layers, norm, project_out, head, softcap, described)

    @property
    def device(self) -> torch.device:
        """Where the unembedding is (the last stage of a model spread over devices)."""
        weight = self.head.weight
        assert isinstance(weight, torch.Tensor)  # checked in `of`
        return weight.device

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits [..., vocab] of residual streams `hidden` [..., hidden], in the model's dtype
        up to the last step, as the model computes its own."""
        h = hidden
        if self.norm is not None:
            h = self.norm(h)
        if self.project_out is not None:
            h = self.project_out(h)
        logits = self.head(h)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float()


class LayerCapture:
    """The residual streams of chosen prompts at one query position: entry 0 entering the first
    decoder layer, entry l leaving layer l; gathered over passes (`one_pass`), read with `states`."""

    def __init__(self, layers: torch.nn.ModuleList, device: torch.device) -> None:
        self.layers, self.device = layers, device  # states are kept on `device` (layers may be spread out)
        self._kept: list[tuple[list[int], torch.Tensor]] = []

    @contextlib.contextmanager
    def one_pass(self, position: int, prompts: Sequence[int]) -> Iterator[None]:
        """Within the block, one forward pass whose rows hold `prompts` (indices), read at query
        `position` (negative counts from the end)."""
        taken: list[torch.Tensor] = []

        def entry(module: Any, args: tuple, kwargs: dict) -> None:
            taken.append(_hidden(args[0] if args else kwargs["hidden_states"])[:, position].to(self.device, copy=True))

        def leave(module: Any, args: tuple, output: Any) -> None:
            taken.append(_hidden(output)[:, position].to(self.device, copy=True))

        handles = [self.layers[0].register_forward_pre_hook(entry, with_kwargs=True)]
        handles += [layer.register_forward_hook(leave) for layer in self.layers]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
        if len(taken) != len(self.layers) + 1:
            raise RuntimeError(
                f"layer trace: {len(taken)} states captured in one pass, expected {len(self.layers) + 1}"
            )
        self._kept.append((list(prompts), torch.stack(taken, dim=1)))

    def states(self) -> torch.Tensor:
        """[prompts, layers + 1, hidden] in prompt order (every prompt index 0..n-1 captured once)."""
        n = sum(len(p) for p, _ in self._kept)
        first = self._kept[0][1]
        out = first.new_empty((n, *first.shape[1:]))
        for prompts, states in self._kept:
            out[torch.tensor(prompts, device=out.device)] = states
        return out


def layer_traces(readout: Readout, states: torch.Tensor, gold: Sequence[TokenScores]) -> list[dict[str, Any]]:
    """Per prompt: the gold first token's rank and log-prob through the lens at every entry of
    `states` [prompts, layers + 1, hidden], and the lens's top-1 token id; `gold[i]` is prompt i's
    gold trace (its first token is the target; its first log-prob, the model's own, checks the
    last entry)."""
    tol = CHECK_TOLERANCE.get(states.dtype, CHECK_TOLERANCE_HALF)
    out = []
    for i, g in enumerate(gold):
        logits = readout.logits(states[i])  # [layers + 1, vocab]
        target = torch.full((logits.shape[0],), g.token_ids[0], dtype=torch.long, device=logits.device)
        lp, rk = token_scores(logits, target)
        last, own = float(lp[-1]), g.logprobs[0]
        if not abs(last - own) <= tol:
            raise UserError(
                f"protocol.layer_trace: the lens of the last layer gives the gold token log-prob {last:.6g}, "
                f"the model {own:.6g} (allowed difference {tol:g}): the readout {readout.described} "
                "is not how this model computes its logits"
            )
        out.append(
            {
                "ranks": [int(r) for r in rk.tolist()],
                "logprobs": [round(float(x), LOGPROB_DECIMALS) for x in lp.tolist()],
                "top1": [int(t) for t in logits.argmax(-1).tolist()],
            }
        )
    return out


def lens_manifest(model: Any) -> dict[str, Any]:
    """The definition of the layer trace and the readout used, for the manifest."""
    readout = Readout.of(model)
    n = len(readout.layers)
    return {
        "lens": "logit",
        "position": "the open prompt's last token (its logits predict the gold answer's first token); "
        "taken from the open-prompt pass the protocol already runs",
        "entries": f"{n + 1}: entry 0 is the residual stream entering the first decoder layer (the embeddings), "
        f"entry l the residual stream leaving decoder layer l (1..{n}); entry {n} is the model's own prediction",
        "readout": readout.described,
        "logits": "final norm, then project_out (if any), then the unembedding, then final-logit softcapping "
        "cap * tanh(logits / cap) (if any), in the model's dtype; log-softmax in float32",
        "ranks": "gold first token: 1 + number of vocabulary entries with a strictly greater lens logit",
        "logprobs": f"gold first token: lens log-softmax, rounded to {LOGPROB_DECIMALS} decimals",
        "top1": "the lens's argmax token id (first index on ties)",
        "check": "entry L's gold log-prob equals the model's (gold_trace.logprobs[0]) within "
        f"{CHECK_TOLERANCE[torch.float32]:g} nats in float32 ({CHECK_TOLERANCE_HALF:g} in 16-bit dtypes), "
        "else the run stops",
    }
