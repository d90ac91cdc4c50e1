"""Fitting requests into the context window."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_brain.window import (
    MIN_NUM_CTX,
    estimate_tokens,
    fit_messages,
    looks_truncated,
    num_ctx_for,
)
from tests.fakes.model_server import ModelServer
from tests.test_e2e import code, run_cli


def messages(*texts: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text} for text in texts]


def test_num_ctx_grows_with_the_request_and_stays_under_the_cap() -> None:
    assert num_ctx_for(100, 8192) == MIN_NUM_CTX
    assert num_ctx_for(3000, 8192) == 4096  # 3000 + 1024 reply room, rounded up
    assert num_ctx_for(50_000, 8192) == 8192
    assert num_ctx_for(10, 1024) == 1024  # never above the cap


def test_old_observations_are_shortened_to_fit() -> None:
    history = messages("system", "task", "a" * 30_000, "b" * 30_000, "recent reply", "latest")
    fitted, shortened = fit_messages(history, cap=8192)
    assert shortened >= 1
    assert estimate_tokens(fitted) + 1024 <= 8192
    assert fitted[0]["content"] == "system" and fitted[1]["content"] == "task"
    assert fitted[-1]["content"] == "latest" and fitted[-2]["content"] == "recent reply"
    assert "shortened to fit" in fitted[2]["content"]
    untouched, none = fit_messages(messages("s", "t", "small"), cap=8192)
    assert none == 0 and untouched == messages("s", "t", "small")


def test_truncation_is_recognised() -> None:
    assert looks_truncated(reported_prompt_tokens=2048, sent_chars=60_000)
    assert not looks_truncated(reported_prompt_tokens=2048, sent_chars=8_000)


@pytest.mark.slow
def test_every_request_carries_a_fitting_num_ctx(
    model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"big.txt": "".join(f"line {n} " + "x" * 80 + "\n" for n in range(400))})
    config = tmp_path / "c.yaml"
    config.write_text("local_brain: {num_ctx: 12288}\n")
    model_server.script(None, [code('print(read_file("big.txt"))'), code('final_answer("done")')])
    model_server.max_prompt_tokens = 1500  # this server cuts long prompts

    result = run_cli("--config", str(config), "-m", "qwen2.5:3b", "--root", str(repo), "Q?",
                     server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    first, second = model_server.chat_requests()
    assert first.num_ctx == MIN_NUM_CTX or first.num_ctx == 3072  # just the prompt + reply room
    assert second.num_ctx > first.num_ctx  # the file content made the request bigger
    assert second.num_ctx <= 12288
    warnings = [line for line in result.stderr.splitlines() if "cut the context" in line]
    assert len(warnings) == 1  # warned once
