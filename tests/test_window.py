"""Keeping a conversation inside the window without rewriting its prefix (unit level; the
end-to-end checks against the scripted server are in test_serving.py)."""

from __future__ import annotations

import random

import pytest

from local_brain.window import (
    LEFT_OUT_NOTE,
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


def run_of(steps: int, observation_chars: int, char: str = "o") -> list[dict[str, str]]:
    """A system prompt, a task, then ``steps`` exchanges: a model step and what it saw."""
    history = [{"role": "system", "content": "s" * 3000}, {"role": "user", "content": "task"}]
    for step in range(steps):
        history.append({"role": "assistant", "content": f"step {step}: " + "c" * 200})
        history.append({"role": "user", "content": f"seen {step}: " + char * observation_chars})
    return history


def test_a_long_run_keeps_every_latest_observation_whole_and_never_gives_up() -> None:
    compactor = Compactor(window=8192, reply_room=1500)
    previous: list = []
    for steps in range(1, 80):
        history = run_of(steps, 6000)
        sweeps = compactor.sweeps
        fitted = compactor.fit(history)  # never WindowTooSmall: the latest always fits
        assert estimate_tokens(fitted) <= 8192 - 1500
        assert fitted[:2] == history[:2]  # the system prompt and the task are never rewritten
        assert fitted[-1] == history[-1], f"step {steps}: the newest observation was cut"
        if compactor.sweeps == sweeps:
            assert fitted[: len(previous)] == previous  # no sweep: the same prefix, extended
        previous = fitted
    assert 1 < compactor.sweeps < 40  # compacted now and then, not at every step


def test_when_shortening_is_not_enough_the_oldest_exchanges_are_left_out() -> None:
    compactor = Compactor(window=4096, reply_room=1024)
    history = run_of(60, 100)  # many small exchanges: shortening them frees nothing
    fitted = compactor.fit(history)
    budget = 4096 - 1024
    fixed = estimate_tokens(history[:2])
    assert estimate_tokens(fitted) <= fixed + (budget - fixed) * LOW_WATER
    assert fitted[:2] == history[:2] and fitted[-2:] == history[-2:]
    assert "earlier messages were left out" in fitted[2]["content"]
    kept = fitted[3:]
    assert kept == history[len(history) - len(kept) :]  # whole exchanges, the newest ones
    assert kept[0]["role"] == "assistant"  # an exchange is never split
    later = compactor.fit([*history, *run_of(61, 100)[-2:]])
    assert later[: len(fitted)] == fitted and compactor.sweeps == 1  # the same prefix


def test_the_window_is_too_small_only_when_instructions_and_latest_cannot_fit() -> None:
    compactor = Compactor(window=2048, reply_room=512)
    history = run_of(30, 1000)
    assert compactor.fit(history)[-1] == history[-1]  # fits beside the instructions
    with pytest.raises(WindowTooSmall):
        Compactor(window=1024, reply_room=256).fit(messages("s" * 20_000, "task", "x"))


CJK = "数据库连接池配置错误导致服务启动失败"


def test_cjk_text_counts_about_a_token_per_character() -> None:
    text = CJK * 200
    assert estimate_tokens(messages(text)) >= len(text)
    assert estimate_tokens(messages("x" * 3000)) <= 1010  # ASCII keeps its 3 characters


def test_a_cjk_heavy_history_is_compacted_to_fit() -> None:
    compactor = Compactor(window=8192, reply_room=1024)
    history = run_of(12, 0)
    for message in history[3::2]:
        message["content"] += CJK * 100  # 1,800 characters, about as many tokens
    fitted = compactor.fit(history)
    sent = "".join(m["content"] for m in fitted)
    non_ascii = sum(1 for ch in sent if ord(ch) > 127)
    assert non_ascii + (len(sent) - non_ascii) / 4 <= 8192 - 1024  # a real tokenizer's view
    assert fitted[-1] == history[-1]


def test_random_runs_keep_the_window_the_prefix_and_the_newest_observation() -> None:
    rng = random.Random(13)
    note = {"role": "assistant", "content": LEFT_OUT_NOTE.format(count=999)}
    for _ in range(120):
        window = rng.choice([2048, 4096, 8192, 16384])
        compactor = Compactor(window=window, reply_room=window // 4)
        history = [{"role": "system", "content": "s" * rng.randint(100, 4000)},
                   {"role": "user", "content": "t" * rng.randint(5, 300)}]  # fmt: skip
        previous: list = []
        for _ in range(rng.randint(1, 40)):
            history.append({"role": "assistant", "content": "a" * rng.randint(10, 1500)})
            history.append({"role": "user", "content": rng.choice("o数") * rng.randint(10, 8000)})
            sweeps = compactor.sweeps
            fitted = compactor.fit(history)
            assert estimate_tokens(fitted) <= compactor.budget
            assert fitted[:2] == history[:2]
            if estimate_tokens([*history[:2], note, history[-1]]) <= compactor.budget:
                assert fitted[-1] == history[-1]  # whole whenever it can be
            if compactor.sweeps == sweeps:
                assert fitted[: len(previous)] == previous
            previous = fitted
