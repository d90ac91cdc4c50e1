"""Fitting each request into the model's context window.

Ollama silently truncates a prompt longer than ``num_ctx``; the only trace is a
``prompt_eval_count`` lower than what was sent. So every Ollama request carries a
``num_ctx`` sized for that request plus room for the reply (capped by the configured
window), old observations are shortened before a request would overflow the cap, and a
server-reported prompt size far below what was sent counts as truncation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

CHARS_PER_TOKEN = 3.0  # code and JSON tokenize densely; err on the large side
REPLY_ROOM_TOKENS = 1024
MIN_NUM_CTX = 2048
NUM_CTX_STEP = 1024
SHORTENED_CHARS = 300
PLAUSIBLE_CHARS_PER_TOKEN = 6.0  # real tokenizers pack 3-4.5 characters per token


def message_text(message: Any) -> str:
    content = getattr(message, "content", None)
    if content is None and isinstance(message, dict):
        content = message.get("content")
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def estimate_tokens(messages: list[Any]) -> int:
    return int(sum(len(message_text(m)) for m in messages) / CHARS_PER_TOKEN) + 4 * len(messages)


def num_ctx_for(estimated_tokens: int, cap: int) -> int:
    """The window for one request: its prompt plus reply room, in steps, within the cap."""
    wanted = estimated_tokens + REPLY_ROOM_TOKENS
    rounded = -(-wanted // NUM_CTX_STEP) * NUM_CTX_STEP
    return max(min(rounded, cap), min(MIN_NUM_CTX, cap))


def fit_messages(messages: list[Any], cap: int) -> tuple[list[Any], int]:
    """Shorten the oldest messages (never the system prompt, the task or the last two)
    until the request fits ``cap`` with reply room. Returns the messages and how many were
    shortened."""
    fitted = list(messages)
    shortened = 0
    for index in range(2, max(2, len(fitted) - 2)):
        if estimate_tokens(fitted) + REPLY_ROOM_TOKENS <= cap:
            break
        text = message_text(fitted[index])
        if len(text) <= SHORTENED_CHARS:
            continue
        fitted[index] = _with_text(
            fitted[index], text[:SHORTENED_CHARS] + " […shortened to fit the context window]"
        )
        shortened += 1
    return fitted, shortened


def looks_truncated(reported_prompt_tokens: int, sent_chars: int) -> bool:
    """True when the server says it read far fewer tokens than the text it was sent."""
    return reported_prompt_tokens > 0 and (
        reported_prompt_tokens * PLAUSIBLE_CHARS_PER_TOKEN < sent_chars
    )


def _with_text(message: Any, text: str) -> Any:
    if isinstance(message, dict):
        return {**message, "content": text}
    content = message.content
    if isinstance(content, list):
        new_content: Any = [{"type": "text", "text": text}]
    else:
        new_content = text
    return dataclasses.replace(message, content=new_content)
