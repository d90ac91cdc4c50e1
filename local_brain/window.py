"""Keeping a conversation inside the model's context window without spoiling its cache.

Model servers (Ollama, llama.cpp) keep the previous prompt's KV cache and evaluate only what
follows the longest prefix shared with it (design.md pitfall 15). So a conversation is
compacted rarely and in one sweep: when a request would not fit, the oldest messages after
the system prompt and the task are shortened until it fills at most ``LOW_WATER`` of the
window, and every later request repeats exactly those shortenings, so it extends the same
prefix. The system prompt is never rewritten, nor is the task, unless the task alone is
longer than the window allows (then it is cut once, on the first request).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 3.0  # code and JSON tokenize densely; err on the large side
LOW_WATER = 0.6  # a compacting sweep leaves the prompt at this fraction of its budget
SHORTENED_CHARS = 300
SHORTENED_NOTE = " […shortened to fit the context window]"
PLAUSIBLE_CHARS_PER_TOKEN = 6.0  # real tokenizers pack 3-4.5 characters per token
KEPT_AT_START = 2  # the system prompt and the task
MIN_KEPT_CHARS = 200  # a message cut shorter than this is no use to the model


class WindowTooSmall(Exception):
    """The system prompt and the task alone do not fit the window."""

    def __init__(self, needed_tokens: int, budget_tokens: int) -> None:
        super().__init__(f"needs about {needed_tokens} tokens, the window leaves {budget_tokens}")
        self.needed_tokens = needed_tokens
        self.budget_tokens = budget_tokens


def message_text(message: Any) -> str:
    content = getattr(message, "content", None)
    if content is None and isinstance(message, dict):
        content = message.get("content")
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def estimate_tokens(messages: list[Any]) -> int:
    return int(sum(len(message_text(m)) for m in messages) / CHARS_PER_TOKEN) + 4 * len(messages)


@dataclass
class Compactor:
    """One agent's conversation against one window: ``window`` tokens of context of which
    ``reply_room`` are kept for the answer. Remembers what it shortened, by position and
    original text, and shortens it the same way in every later request."""

    window: int
    reply_room: int
    sweeps: int = 0
    _shortened: dict[int, tuple[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def budget(self) -> int:
        return max(self.window - self.reply_room, 0)

    def fit(self, messages: list[Any]) -> list[Any]:
        """The messages to send: earlier shortenings repeated, and a new sweep when the
        request would not fit. Raises :class:`WindowTooSmall` when nothing can make it fit."""
        fitted = [self._repeat(index, message) for index, message in enumerate(messages)]
        if estimate_tokens(fitted) <= self.budget:
            return fitted
        self.sweeps += 1
        target = int(self.budget * LOW_WATER)
        last_two = max(KEPT_AT_START, len(fitted) - 2)
        # Oldest first, the latest exchange last: it is what the model needs most.
        for index in [*range(KEPT_AT_START, last_two), *range(last_two, len(fitted))]:
            if estimate_tokens(fitted) <= target:
                break
            fitted[index] = self._shorten(index, messages[index], SHORTENED_CHARS)
        # Even a line per message is too much: cut the latest message, then (a question
        # longer than the window: this happens on the first request, before anything is
        # cached) the task, to what is left.
        for index in dict.fromkeys([len(fitted) - 1, 1]):
            if index >= 1 and estimate_tokens(fitted) > self.budget:
                self._cut_to_fit(fitted, messages, index)
        if estimate_tokens(fitted) > self.budget:
            raise WindowTooSmall(estimate_tokens(fitted), self.budget)
        return fitted

    def _cut_to_fit(self, fitted: list[Any], messages: list[Any], index: int) -> None:
        others = fitted[:index] + fitted[index + 1 :]
        spare_chars = int((self.budget - estimate_tokens(others) - 4) * CHARS_PER_TOKEN)
        if spare_chars > len(SHORTENED_NOTE) + MIN_KEPT_CHARS:
            fitted[index] = self._shorten(index, messages[index], spare_chars - len(SHORTENED_NOTE))

    def _repeat(self, index: int, message: Any) -> Any:
        kept = self._shortened.get(index)
        if kept is not None and kept[0] == _fingerprint(message):
            return kept[1]
        return message

    def _shorten(self, index: int, original: Any, keep_chars: int) -> Any:
        text = message_text(original)
        if len(text) <= keep_chars + len(SHORTENED_NOTE):
            return self._repeat(index, original)
        shortened = _with_text(original, text[:keep_chars] + SHORTENED_NOTE)
        self._shortened[index] = (_fingerprint(original), shortened)
        return shortened


def looks_truncated(read_tokens: int, sent_chars: int) -> bool:
    """True when the server says it read far fewer tokens than the text it was sent.
    ``read_tokens`` must count the tokens it took from its cache as read."""
    return read_tokens > 0 and read_tokens * PLAUSIBLE_CHARS_PER_TOKEN < sent_chars


def _fingerprint(message: Any) -> str:
    role = message.get("role") if isinstance(message, dict) else getattr(message, "role", "")
    digest = hashlib.blake2b(message_text(message).encode("utf-8", "replace"), digest_size=16)
    return f"{role}:{digest.hexdigest()}"


def _with_text(message: Any, text: str) -> Any:
    if isinstance(message, dict):
        return {**message, "content": text}
    content = message.content
    if isinstance(content, list):
        new_content: Any = [{"type": "text", "text": text}]
    else:
        new_content = text
    return dataclasses.replace(message, content=new_content)
