"""Prefill: a request whose last message is the assistant's asks the model to continue it.

Kept apart from vllm.py so that it can be tested with any tokenizer that has a chat template,
without vLLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..types import CodalError, Request

# Any text that no chat template rewrites and no prompt contains.
PREFILL_SPLITTER = "-[[codal-eval: the prefill ends here]]-"


def is_prefill(request: Request) -> bool:
    return bool(request.messages) and request.messages[-1].role == "assistant"


def render_prefill(tokenizer: Any, messages: Sequence[Any]) -> str:
    """The prompt text that ends inside the final assistant message, as EvalPlus renders it.

    `make_raw_chat_prompt` applies the chat template to the conversation with the assistant turn
    followed by a splitter and cuts there; so do we, so the model continues the assistant text.
    """
    conv = [{"role": m.role, "content": m.content} for m in messages]
    conv[-1] = {"role": "assistant", "content": messages[-1].content + PREFILL_SPLITTER}
    text = tokenizer.apply_chat_template(conv, tokenize=False)
    if not isinstance(text, str) or PREFILL_SPLITTER not in text:
        raise CodalError(
            "the chat template drops or rewrites the assistant message: cannot continue it"
        )
    return text.split(PREFILL_SPLITTER)[0]
