"""Tiny random models and tokenizers built locally (no hub), saved as ordinary HF folders."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_CORPUS = [
    "What is the capital of France? Paris. The capital of Germany is Berlin.",
    "Was ist die Hauptstadt von Frankreich? Paris. Die Hauptstadt von Deutschland ist Berlin.",
    "¿Cuál es la capital de Francia? París. Quelle est la capitale de la France ? Paris.",
    "Какая столица Франции? Париж. Столица Германии — Берлин.",
    "法国的首都是哪里？巴黎。日本の首都はどこですか？東京です。",
    "Answer: A B C D Question: Options: Context: The answer is",
]


def make_tokenizer(chat: bool = True):
    """A byte-level BPE tokenizer trained on a few multilingual sentences (encodes any text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|pad|>", "<|bos|>", "<|eos|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_model_dir(path: Path, arch: str = "llama", seed: int = 0, chat: bool = True) -> Path:
    """Save a tiny random causal LM (`arch` llama | qwen2) and its tokenizer to `path`."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    path = Path(path)
    tok = make_tokenizer(chat=chat)
    common = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    config = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch](**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
