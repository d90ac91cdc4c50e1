"""Keeping a conversation inside the model's context window without spoiling its cache.

Model servers (Ollama, llama.cpp) keep the previous prompt's KV cache and evaluate only what
follows the longest prefix shared with it (design.md pitfall 15). So a conversation is
compacted rarely and in one sweep: when a request would not fit, old messages between the
task and the latest one are shortened, and when that is not enough the oldest whole
exchanges (a model step and what it observed) are left out, until the request fills at most
``LOW_WATER`` of the room that the system prompt and the task leave. Every later request
repeats exactly those shortenings and omissions, so it extends the same prefix.

The system prompt is never rewritten, nor is the task, nor the latest message (the newest
observation): only a latest message (or, on the first request, a task) that cannot fit
beside the instructions at all is cut, to what is left.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 3.0  # ASCII: code and JSON tokenize densely; err on the large side
NON_ASCII_TOKENS = 1.0  # CJK and other scripts: about a token per character, often more
LOW_WATER = 0.6  # a sweep leaves this fraction of the room after the system prompt and task
SHORTENED_TOKENS = 100  # an old message keeps about this much
SHORTENED_NOTE = " […shortened to fit the context window]"
LEFT_OUT_NOTE = "[{count} earlier messages were left out to fit the context window]"
PLAUSIBLE_CHARS_PER_TOKEN = 6.0  # real tokenizers pack 3-4.5 characters per token
KEPT_AT_START = 2  # the system prompt and the task
MIN_KEPT_TOKENS = 70  # a message cut shorter than this is no use to the model
MESSAGE_OVERHEAD = 4  # the chat template's tokens around each message


class WindowTooSmall(Exception):
    """The system prompt, the task and the latest message cannot fit the window."""

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


def _text_cost(text: str) -> float:
    """Tokens ``text`` may take: ASCII at ``CHARS_PER_TOKEN`` characters per token, every
    other character (CJK, Cyrillic, emoji...) about a token of its own."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return ascii_chars / CHARS_PER_TOKEN + (len(text) - ascii_chars) * NON_ASCII_TOKENS


def text_tokens(text: str) -> int:
    return int(_text_cost(text) + 0.999)


def estimate_tokens(messages: list[Any]) -> int:
    cost = sum(_text_cost(message_text(m)) for m in messages)
    return int(cost + 0.999) + MESSAGE_OVERHEAD * len(messages)


def chars_within(text: str, tokens: int) -> int:
    """The longest prefix of ``text`` (in characters) estimated at most ``tokens``."""
    if _text_cost(text) <= tokens:
        return len(text)
    low, high = 0, min(len(text), int(tokens * CHARS_PER_TOKEN) + 1)
    while low < high:
        middle = (low + high + 1) // 2
        if _text_cost(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass
class Compactor:
    """One agent's conversation against one window: ``window`` tokens of context of which
    ``reply_room`` are kept for the answer. Remembers what it shortened (by position and
    original text) and which leading exchanges it left out, and repeats both in every later
    request."""

    window: int
    reply_room: int
    sweeps: int = 0
    _shortened: dict[int, tuple[str, Any]] = dataclasses.field(default_factory=dict)
    _left_out: tuple[str, ...] = ()  # fingerprints of the messages after the task left out

    @property
    def budget(self) -> int:
        return max(self.window - self.reply_room, 0)

    def fit(self, messages: list[Any]) -> list[Any]:
        """The messages to send: earlier shortenings repeated, and a new sweep when the
        request would not fit. Raises :class:`WindowTooSmall` when the system prompt, the
        task and the latest message cannot fit at all."""
        fitted = [self._repeat(index, message) for index, message in enumerate(messages)]
        left_out = self._repeat_left_out(messages)
        request = self._assemble(messages, fitted, left_out)
        if estimate_tokens(request) <= self.budget:
            return request
        self.sweeps += 1
        latest = len(messages) - 1
        fixed = estimate_tokens(fitted[:KEPT_AT_START])
        target = fixed + int(max(self.budget - fixed, 0) * LOW_WATER)
        # Old messages first, oldest first; the latest message is never shortened here.
        for index in range(KEPT_AT_START + left_out, latest):
            if estimate_tokens(self._assemble(messages, fitted, left_out)) <= target:
                break
            fitted[index] = self._shorten(index, messages[index], SHORTENED_TOKENS)
        # Not enough: leave out the oldest whole exchanges, never the latest one.
        for start in _exchange_starts(messages, KEPT_AT_START + left_out + 1):
            if estimate_tokens(self._assemble(messages, fitted, left_out)) <= target:
                break
            left_out = start - KEPT_AT_START
        # Still too much: leave out everything before the latest message, and cut that
        # only if it does not fit beside the instructions even alone; then (a task longer
        # than the window, on the first request) the task.
        if latest > KEPT_AT_START and self._over(messages, fitted, left_out):
            left_out = latest - KEPT_AT_START
        if latest >= KEPT_AT_START and self._over(messages, fitted, left_out):
            self._cut_to_fit(messages, fitted, left_out, latest)
        if self._over(messages, fitted, left_out):
            self._cut_to_fit(messages, fitted, left_out, 1)
        self._left_out = tuple(
            _fingerprint(m) for m in messages[KEPT_AT_START : KEPT_AT_START + left_out]
        )
        request = self._assemble(messages, fitted, left_out)
        if estimate_tokens(request) > self.budget:
            raise WindowTooSmall(estimate_tokens(request), self.budget)
        return request

    def _over(self, messages: list[Any], fitted: list[Any], left_out: int) -> bool:
        return estimate_tokens(self._assemble(messages, fitted, left_out)) > self.budget

    def _assemble(self, messages: list[Any], fitted: list[Any], left_out: int) -> list[Any]:
        if left_out <= 0:
            return list(fitted)
        first = messages[KEPT_AT_START]
        note = _with_text(first, LEFT_OUT_NOTE.format(count=left_out), drop_tool_calls=True)
        return [*fitted[:KEPT_AT_START], note, *fitted[KEPT_AT_START + left_out :]]

    def _repeat_left_out(self, messages: list[Any]) -> int:
        count = len(self._left_out)
        if not count or len(messages) < KEPT_AT_START + count + 1:
            return 0
        seen = tuple(_fingerprint(m) for m in messages[KEPT_AT_START : KEPT_AT_START + count])
        return count if seen == self._left_out else 0

    def _cut_to_fit(
        self, messages: list[Any], fitted: list[Any], left_out: int, index: int
    ) -> None:
        others = [m for m in self._assemble(messages, fitted, left_out) if m is not fitted[index]]
        note = text_tokens(SHORTENED_NOTE) + 1  # and one for rounding
        spare = self.budget - estimate_tokens(others) - MESSAGE_OVERHEAD - note
        if spare >= MIN_KEPT_TOKENS:
            fitted[index] = self._shorten(index, messages[index], spare)

    def _repeat(self, index: int, message: Any) -> Any:
        kept = self._shortened.get(index)
        if kept is not None and kept[0] == _fingerprint(message):
            return kept[1]
        return message

    def _shorten(self, index: int, original: Any, keep_tokens: int) -> Any:
        text = message_text(original)
        keep = chars_within(text, keep_tokens)
        if keep >= len(text) or _text_cost(text) <= keep_tokens + text_tokens(SHORTENED_NOTE):
            return self._repeat(index, original)
        shortened = _with_text(original, text[:keep] + SHORTENED_NOTE)
        self._shortened[index] = (_fingerprint(original), shortened)
        return shortened


def looks_truncated(read_tokens: int, sent_chars: int) -> bool:
    """True when the server says it read far fewer tokens than the text it was sent.
    ``read_tokens`` must count the tokens it took from its cache as read."""
    return read_tokens > 0 and read_tokens * PLAUSIBLE_CHARS_PER_TOKEN < sent_chars


def _role(message: Any) -> str:
    role = message.get("role") if isinstance(message, dict) else getattr(message, "role", "")
    return str(getattr(role, "value", role))


def _exchange_starts(messages: list[Any], first: int) -> list[int]:
    """Where exchanges (a model step and what followed it) begin, from ``first`` up to the
    start of the latest exchange. Without model messages, every message is one."""
    latest = len(messages) - 1
    middle = range(first, latest + 1)
    starts = [i for i in middle if _role(messages[i]) == "assistant"]
    if not any(_role(m) == "assistant" for m in messages[KEPT_AT_START:]):
        starts = list(range(first, latest + 1))
    return starts


def _fingerprint(message: Any) -> str:
    digest = hashlib.blake2b(message_text(message).encode("utf-8", "replace"), digest_size=16)
    return f"{_role(message)}:{digest.hexdigest()}"


def _with_text(message: Any, text: str, drop_tool_calls: bool = False) -> Any:
    if isinstance(message, dict):
        updated = {**message, "content": text}
        if drop_tool_calls:
            updated.pop("tool_calls", None)
        return updated
    content = message.content
    if isinstance(content, list):
        new_content: Any = [{"type": "text", "text": text}]
    else:
        new_content = text
    changes: dict[str, Any] = {"content": new_content}
    if drop_tool_calls and hasattr(message, "tool_calls"):
        changes["tool_calls"] = None
    return dataclasses.replace(message, **changes)
