"""Keeping a conversation inside the window without rewriting its prefix (unit level; the
end-to-end checks against the scripted server are in test_serving.py)."""

from __future__ import annotations

import pytest

from local_brain.window import (
    LOW_WATER,
    Compactor,
    WindowTooSmall,
    estimate_tokens,
    looks_truncated,
)


def messages(*texts: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text} for text in texts]


def test_a_request_that_fits_is_sent_as_it_is() -> None:
    compactor = Compactor(window=8192, reply_room=1024)
    history = messages("system", "task", "small")
    assert compactor.fit(history) == history
    assert compactor.sweeps == 0


def test_one_sweep_shortens_the_oldest_messages_down_to_the_low_water_mark() -> None:
    compactor = Compactor(window=8192, reply_room=1024)
    history = messages("system", "task", *("x" * 6000 for _ in range(6)))
    fitted = compactor.fit(history)
    assert compactor.sweeps == 1
    assert estimate_tokens(fitted) <= (8192 - 1024) * LOW_WATER
    assert fitted[0] == history[0] and fitted[1] == history[1]  # never rewritten
    assert "shortened to fit" in fitted[2]["content"]
    assert fitted[-1] == history[-1]  # the latest exchange is kept while the rest can go


def test_later_requests_repeat_the_shortenings_and_extend_the_same_prefix() -> None:
    compactor = Compactor(window=8192, reply_room=1024)
    history = messages("system", "task", *("y" * 6000 for _ in range(6)))
    first = compactor.fit(history)
    second = compactor.fit([*history, *messages("a new observation")])
    assert second[: len(first)] == first  # same prefix: the server's cache stays valid
    assert compactor.sweeps == 1


def test_a_message_that_changed_is_not_replaced_by_an_old_shortening() -> None:
    compactor = Compactor(window=8192, reply_room=1024)
    history = messages("system", "task", *("z" * 6000 for _ in range(6)))
    compactor.fit(history)
    changed = [*history[:2], *messages("different"), *history[3:]]
    assert compactor.fit(changed)[2]["content"] == "different"


def test_a_huge_latest_message_is_cut_to_what_is_left() -> None:
    compactor = Compactor(window=4096, reply_room=1024)
    fitted = compactor.fit(messages("system", "task", "w" * 40_000))
    assert estimate_tokens(fitted) <= 4096 - 1024
    assert fitted[-1]["content"].startswith("w" * 100)


def test_instructions_larger_than_the_window_are_refused() -> None:
    compactor = Compactor(window=2048, reply_room=512)
    with pytest.raises(WindowTooSmall):
        compactor.fit(messages("s" * 20_000, "task"))


def test_truncation_is_recognised() -> None:
    assert looks_truncated(read_tokens=2048, sent_chars=60_000)
    assert not looks_truncated(read_tokens=2048, sent_chars=8_000)
