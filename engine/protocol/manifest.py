"""The protocol's part of the run manifest: prompts, decoding, probes, matching, demotion rule."""

from __future__ import annotations

from typing import Any

from engine.config import ProtocolConfig
from engine.grading import demotion_rule, scoring_of
from engine.models import LoadedModel
from engine.prompts import CHAT_DELIMITER, PLAIN_DELIMITER, TEMPLATES, template_hashes, wants_chat
from engine.protocol.generation import END_OF_TURN, stop_token_ids
from engine.protocol.kvcache import supports_slot_cache
from engine.runfolder import sha256_text


def protocol_manifest(loaded: LoadedModel, config: ProtocolConfig) -> dict[str, Any]:
    """Everything needed to reproduce the prompts and decisions of a run, for manifest.json."""
    tok = loaded.tokenizer
    chat = wants_chat(tok, config)
    chat_template = getattr(tok, "chat_template", None) or None
    hashes = template_hashes()
    if chat_template:
        hashes["chat_template"] = sha256_text(chat_template)
    stops = stop_token_ids(tok, loaded.model)
    return {
        "prompts": {
            "templates": dict(TEMPLATES),
            "hashes": hashes,
            "chat_template": chat_template,
            "mode": "chat" if chat else "plain",
            "answer_delimiter": CHAT_DELIMITER if chat else PLAIN_DELIMITER,
            "with_context": config.with_context,
            "formats": {
                "open": "open (no options); the gold trace and the cloze MC options are scored after it",
                "shown": "shown (candidates listed, free generation)" if config.shown else None,
                "letter": "letter (lettered options; log-prob of each letter continuation)" if config.letter else None,
                "one_shot": "one example turn (open template + its answer) before the open prompt",
            },
        },
        "decoding": {
            "greedy": True,
            "max_new_tokens": config.max_new_tokens,
            "stop": {
                "token_ids": stops,
                "tokens": [tok.convert_ids_to_tokens(i) for i in stops],
                "end_of_turn_candidates": list(END_OF_TURN),
                "newline_after_answer": True,
            },
            "answer_text": "decoded new tokens before the stop, cut at the first newline after leading "
            "whitespace, stripped",
            "batch_size": config.batch_size,
            "batching": "items sorted by prompt tokens over the formats (most first, item_uid breaks ties), "
            "cut into batch_size; in a batch, each format's prompts share their common token prefix (run once) "
            "and go in length buckets",
            "backend": "fast" if supports_slot_cache(loaded.model) else "plain",
            "mc": {
                "cloze": "sum of continuation token log-probs after the open prompt",
                "normalisations": {
                    "sum": "loglik",
                    "per_token": "loglik / n_tokens",
                    "per_char": "loglik / n_chars",
                    "per_byte": "loglik / n_bytes (UTF-8)",
                },
                "decision": "argmax, first index on ties",
                "rule": config.mc_rule,
                "letter": config.letter,
            },
            "gold_trace": {
                "rank": "1 + number of vocabulary entries with a strictly greater logit",
                "greedy_seq_logprob": "sum of log-probs of the greedy answer's tokens (stop token "
                "and trailing whitespace tokens excluded)",
                "margin": "seq_logprob - greedy_seq_logprob",
            },
        },
        "probes": {
            "mode": config.probes,
            "beam": {
                "k": config.beam_width,
                "score": "sum log-prob / length (stop token included), length_penalty 1.0, "
                "done when k hypotheses finished",
                "stop_rules": "as greedy",
                "hit_top": "best beam matches",
                "hit_any": "any beam matches",
            }
            if config.beam_width >= 1
            else None,
            "sampling": {
                "n": config.n_samples,
                "temperature": config.temperature,
                "top_p": config.top_p,
                "top_k": None,
                "seed": "per item: first 31 bits of sha256(protocol seed, 'sampling', item_uid)",
                "sampler": "inverse CDF of softmax(logits / T) (nucleus top_p when < 1): the first token whose "
                "cumulative probability exceeds u x the total; u[j, t] for sample j at step t from "
                "torch.Generator(seed).rand(n, max_new_tokens), float64, on the CPU",
                "stop_rules": "as greedy",
            }
            if config.n_samples >= 1
            else None,
            "one_shot": {
                "pool": "same language, excluding the item and its parallel_id",
                "choice": "min sha256(seed, item_uid, candidate_uid)",
                "seed": config.seed,
            }
            if config.one_shot
            else None,
        },
        "matching": scoring_of(config).to_dict(),
        "demotion_rule": demotion_rule(config.demotion_max_rank),
    }
