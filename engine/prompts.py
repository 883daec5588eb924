"""Prompt templates of the protocol and their rendering, as chat turns or as plain text.

Every template is a `str.format` string recorded verbatim (with its hash) in the run manifest.
Instruct models (a tokenizer with a chat template) get the user text as one user turn followed by
the generation prompt, and the answer follows with no delimiter. Base models get the user text
followed by `PLAIN_CUE` ("\nAnswer:"), and the answer follows after one space.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from engine.config import ProtocolConfig
from engine.errors import UserError
from engine.runfolder import sha256_text

TEMPLATES: dict[str, str] = {
    "open": (
        "Answer the question with a short answer only (a name, a number, a date or a few words), "
        "in the language of the question.\n\n{context_block}Question: {question}"
    ),
    "shown": (
        "Answer the question. The correct answer is one of the candidates below; reply with the text "
        "of the correct candidate only.\n\n{context_block}Question: {question}\nCandidates:\n{candidates}"
    ),
    "letter": (
        "Choose the correct option for the question. Reply with its letter only.\n\n"
        "{context_block}Question: {question}\n{lettered}"
    ),
    "context_block": "Context: {context}\n\n",
    "candidate_line": "- {option}",
    "letter_line": "{letter}. {option}",
    "plain_cue": "\nAnswer:",
    "plain_one_shot": "{example_prompt} {example_answer}\n\n{prompt}",
}
LETTERS = string.ascii_uppercase
PLAIN_DELIMITER = " "
CHAT_DELIMITER = ""


def check_item(item: dict[str, Any], config: ProtocolConfig) -> None:
    """An item the protocol can evaluate: gold_index within its options, no more options than letters."""
    n = len(item["options"])
    if not 0 <= item["gold_index"] < n:
        raise UserError(f"item {item['item_uid']}: gold_index {item['gold_index']} outside its {n} options")
    if config.letter and n > len(LETTERS):
        raise UserError(
            f"item {item['item_uid']}: {n} options, letter choice allows at most {len(LETTERS)} "
            "(set [protocol].letter = false, or drop options)"
        )


def template_hashes() -> dict[str, str]:
    return {name: sha256_text(text) for name, text in TEMPLATES.items()}


def wants_chat(tokenizer: Any, config: ProtocolConfig) -> bool:
    """Chat prompts when the tokenizer has a template and the config does not turn them off."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if config.use_chat_template and not has_template:
        raise UserError("protocol: use_chat_template = true but the tokenizer has no chat template")
    return has_template and config.use_chat_template is not False


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its text and token ids, and the delimiter an answer continues it with."""

    text: str
    ids: tuple[int, ...]
    delimiter: str
    add_special_tokens: bool


class PromptBuilder:
    """Renders the protocol's prompts for one tokenizer and config."""

    def __init__(self, tokenizer: Any, config: ProtocolConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.chat = wants_chat(tokenizer, config)
        self.delimiter = CHAT_DELIMITER if self.chat else PLAIN_DELIMITER

    # ---- user texts
    def _context_block(self, item: dict[str, Any]) -> str:
        ctx = item.get("context")
        if ctx and self.config.with_context:
            return TEMPLATES["context_block"].format(context=ctx)
        return ""

    def open_user(self, item: dict[str, Any]) -> str:
        return TEMPLATES["open"].format(context_block=self._context_block(item), question=item["question"])

    def shown_user(self, item: dict[str, Any]) -> str:
        cands = "\n".join(TEMPLATES["candidate_line"].format(option=o) for o in item["options"])
        return TEMPLATES["shown"].format(
            context_block=self._context_block(item), question=item["question"], candidates=cands
        )

    def letter_user(self, item: dict[str, Any]) -> str:
        lettered = "\n".join(
            TEMPLATES["letter_line"].format(letter=LETTERS[i], option=o) for i, o in enumerate(item["options"])
        )
        return TEMPLATES["letter"].format(
            context_block=self._context_block(item), question=item["question"], lettered=lettered
        )

    # ---- rendered prompts
    def render(self, turns: list[tuple[str, str]]) -> Prompt:
        """Render (user, assistant) turns; the last turn's assistant text is empty (to be generated)."""
        if self.chat:
            messages: list[dict[str, str]] = []
            for user, assistant in turns:
                messages.append({"role": "user", "content": user})
                if assistant:
                    messages.append({"role": "assistant", "content": assistant})
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            special = False
        else:
            text = self._plain_join(turns)
            special = True
        ids = tuple(self.tokenizer(text, add_special_tokens=special)["input_ids"])
        return Prompt(text=text, ids=ids, delimiter=self.delimiter, add_special_tokens=special)

    @staticmethod
    def _plain_join(turns: list[tuple[str, str]]) -> str:
        text = ""
        for user, assistant in turns:
            block = user + TEMPLATES["plain_cue"]
            if assistant:
                text = TEMPLATES["plain_one_shot"].format(
                    example_prompt=text + block, example_answer=assistant, prompt=""
                )
            else:
                text += block
        return text

    def open(self, item: dict[str, Any]) -> Prompt:
        return self.render([(self.open_user(item), "")])

    def shown(self, item: dict[str, Any]) -> Prompt:
        return self.render([(self.shown_user(item), "")])

    def letter(self, item: dict[str, Any]) -> Prompt:
        return self.render([(self.letter_user(item), "")])

    def one_shot(self, item: dict[str, Any], example: dict[str, Any]) -> Prompt:
        return self.render([(self.open_user(example), example["answer"]), (self.open_user(item), "")])

    def continuation(self, prompt: Prompt, text: str) -> list[int]:
        """Token ids of `delimiter + text` after `prompt`, tokenized as part of the whole string when
        the prompt's tokens stay a prefix of it (as lm-evaluation-harness does), else on their own."""
        cont = prompt.delimiter + text
        whole = self.tokenizer(prompt.text + cont, add_special_tokens=prompt.add_special_tokens)["input_ids"]
        n = len(prompt.ids)
        if len(whole) > n and tuple(whole[:n]) == prompt.ids:
            return list(whole[n:])
        return list(self.tokenizer(cont, add_special_tokens=False)["input_ids"])
