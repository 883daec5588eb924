"""Perplexity on a held-out text, in the GPTQ/SparseGPT/Wanda convention (docs/pruning.md §9):
the documents are joined with a blank line, tokenized once, cut into non-overlapping windows of
``seqlen`` tokens (the ragged tail is dropped), and ppl = exp(mean of the windows' mean NLL)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from engine.errors import UserError
from engine.pruning.calibration import BUNDLED_HELDOUT, bundled_texts, load_documents


def heldout_text(source: str | None = None) -> str:
    """The bundled held-out text, or the documents of a local .jsonl/.jsonl.gz/.txt, joined by blank lines."""
    docs = bundled_texts(BUNDLED_HELDOUT) if source in (None, "bundled") else load_documents(str(source))
    return "\n\n".join(docs)


def perplexity(
    model: Any,
    tokenizer: Any,
    text: str,
    seqlen: int = 256,
    batch_size: int = 4,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Perplexity of ``model`` on ``text``; returns ppl, window count and token count."""
    ids = torch.tensor(tokenizer(text, add_special_tokens=True)["input_ids"], dtype=torch.long)
    nwin = ids.numel() // seqlen
    if nwin < 1:
        raise UserError(f"perplexity: the text has {ids.numel()} tokens, fewer than one window of seqlen={seqlen}")
    windows = ids[: nwin * seqlen].view(nwin, seqlen)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    losses: list[float] = []
    with torch.no_grad():
        for start in range(0, nwin, batch_size):
            batch = windows[start : start + batch_size].to(device)
            logits = model(input_ids=batch, use_cache=False).logits.float()
            nll = (
                F.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="none"
                )
                .view(batch.shape[0], -1)
                .mean(dim=1)
            )
            losses.extend(nll.tolist())
    mean = sum(losses) / len(losses)
    return {"ppl": math.exp(mean), "mean_nll": mean, "windows": nwin, "seqlen": seqlen, "tokens": nwin * seqlen}


def perplexity_of_file(model: Any, tokenizer: Any, path: Path | None, **kw: Any) -> dict[str, Any]:
    return perplexity(model, tokenizer, heldout_text(None if path is None else str(path)), **kw)
