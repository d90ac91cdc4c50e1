"""Hints that fit the provider, and error lines free of litellm's own output (issue 16,
items 3, 4 and 12): runs through the CLI in this process, against the scripted server."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.conftest import InProcessCli
from tests.fakes.model_server import Fault, ModelServer, closed_port_url
from tests.fakes.scripted_models import code

LITELLM_NOISE = ("LiteLLM Router", "Debug Information", "Give Feedback", "LiteLLM:", "Cooldown")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("local-brain: error:")]


def hint_of(stderr: str) -> str:
    hints = [line for line in stderr.splitlines() if line.startswith("local-brain: hint:")]
    assert len(hints) == 1, stderr
    return hints[0]


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


# -- item 3: the hint fits where the model is served --------------------------------------


def test_an_openai_compatible_model_not_found_names_the_served_ids(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    result = cli("-m", "hosted_vllm/qwen2.5", "--api-base", model_server.openai_url,
                 "--root", str(billing_repo), "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 3
    hint = hint_of(result.stderr)
    assert "ollama" not in result.stderr.split("hint:", 1)[1]
    assert "did you mean qwen2.5:3b?" in hint and "qwen3:30b" in hint  # what /v1/models says
    assert "--api-base" in hint
    (line,) = error_lines(result.stderr)
    assert "model not found" in line and "{" not in line and "LiteLLM" not in line


def test_an_unreachable_openai_compatible_server_points_at_api_base(
    cli: InProcessCli, billing_repo: Path
) -> None:
    dead = closed_port_url() + "/v1"

    result = cli("-m", "hosted_vllm/qwen2.5:3b", "--api-base", dead,
                 "--root", str(billing_repo), "Q?")  # fmt: skip

    assert result.returncode == 3
    hint = hint_of(result.stderr)
    assert "--api-base" in hint and "ollama" not in hint


def test_a_mistyped_config_group_lists_the_groups(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        f"""
model_list:
  - model_name: main
    litellm_params: {{model: ollama_chat/qwen2.5:3b, api_base: "{model_server.url}"}}
  - model_name: backup
    litellm_params: {{model: ollama_chat/qwen3:30b, api_base: "{model_server.url}"}}
""",
    )

    result = cli("--config", config, "-m", "mian", "--root", str(billing_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 3
    hint = hint_of(result.stderr)
    assert hint.startswith("local-brain: hint: did you mean main?")
    assert "main, backup" in hint
    assert not model_server.chat_requests()


def test_a_wrong_proxy_key_names_the_key_variable(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        f"""
model_list:
  - model_name: team
    litellm_params: {{model: litellm_proxy/qwen2.5:3b, api_base: "{model_server.openai_url}"}}
""",
    )
    model_server.script(None, Fault.status(401, "Authentication Error, Invalid proxy token"))

    result = cli("--config", config, "-m", "team", "--root", str(billing_repo), "Q?",
                 server=model_server, env={"LITELLM_PROXY_API_KEY": "sk-wrong"})  # fmt: skip

    assert result.returncode == 3
    assert "LITELLM_PROXY_API_KEY" in hint_of(result.stderr)
    (line,) = error_lines(result.stderr)
    assert line.endswith("Authentication Error, Invalid proxy token")  # distilled: no JSON
    assert not any(noise in result.stderr for noise in LITELLM_NOISE)


def test_a_missing_proxy_key_names_the_key_variable(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("LITELLM_PROXY_API_KEY", raising=False)
    config = write_config(
        tmp_path,
        f"""
model_list:
  - model_name: team
    litellm_params: {{model: litellm_proxy/qwen2.5:3b, api_base: "{model_server.openai_url}"}}
""",
    )

    result = cli("--config", config, "-m", "team", "--root", str(billing_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 3
    assert error_lines(result.stderr) == ["local-brain: error: no API key for model team"]
    assert "set LITELLM_PROXY_API_KEY (the LiteLLM Proxy's key)" in hint_of(result.stderr)
    assert not any(noise in result.stderr for noise in LITELLM_NOISE), result.stderr


@pytest.mark.parametrize("fault", [Fault.garbage(), Fault.truncated()], ids=["garbage", "cut"])
@pytest.mark.parametrize("route", ["ollama", "openai"])
def test_a_server_that_answers_badly_is_not_told_to_start(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, fault: Fault, route: str
) -> None:
    model_server.script(None, [fault] * 3)
    model = "qwen2.5:3b" if route == "ollama" else "hosted_vllm/qwen2.5:3b"
    extra = [] if route == "ollama" else ["--api-base", model_server.openai_url]

    result = cli("-m", model, *extra, "--root", str(billing_repo), "Q?", server=model_server)

    assert result.returncode == 3
    assert "ollama serve" not in result.stderr
    assert "cannot reach" not in result.stderr  # it was reached: it answered badly
    if fault.kind == "truncated":
        assert "broke off its reply" in error_lines(result.stderr)[0]


# -- item 4: litellm's own output stays off stderr ----------------------------------------


def test_litellm_logging_and_raw_bodies_stay_off_stderr(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        f"""
model_list:
  - model_name: main
    litellm_params: {{model: hosted_vllm/qwen2.5:3b, api_base: "{model_server.openai_url}"}}
  - model_name: backup
    litellm_params: {{model: openai/qwen3:30b, api_base: "{model_server.openai_url}",
                      api_key: sk-local}}
router_settings:
  fallbacks: [{{main: [backup]}}]
""",
    )
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    model_server.script(None, [Fault.status(500, page)] * 6)

    result = cli("--config", config, "-m", "main", "--root", str(billing_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 3
    assert not any(noise in result.stderr for noise in LITELLM_NOISE), result.stderr
    (line,) = error_lines(result.stderr)
    assert line.endswith("an HTML page: 502 Bad Gateway")
    assert "<" not in line and "model group" not in line
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):  # given back after the run
        assert not logging.getLogger(name).filters or all(
            type(f).__name__ != "_Silencer" for f in logging.getLogger(name).filters
        )

    model_server.script(None, [Fault.status(500, page)] * 6)
    verbose = cli("-v", "--config", config, "-m", "main", "--root", str(billing_repo), "Q?",
                  server=model_server)  # fmt: skip
    assert "local-brain: litellm: error:" in verbose.stderr  # details under -v, one line each
    assert "Debug Information" not in verbose.stderr


def test_distill_keeps_the_providers_message() -> None:
    from local_brain.models.failures import distill

    assert distill(
        'litellm.AuthenticationError: AuthenticationError: Hosted_vllmException - {"error": '
        '{"message": "Invalid key", "type": "auth"}} LiteLLM: model group \'m\' failed with '
        "the error above. No fallback was attempted."
    ) == "Invalid key"  # fmt: skip
    assert distill('Ollama_chatException - {"error": "model \\"x\\" not found"}') == (
        'model "x" not found'
    )
    assert distill("<!DOCTYPE html><html><h1>Service &amp; Co down</h1></html>") == (
        "an HTML page: Service & Co down"
    )
    assert distill("model not found: nope") == "model not found: nope"


# -- item 12: a model whose replies never run ---------------------------------------------


def test_unusable_replies_are_named_as_the_cause(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    model_server.script(None, ["I think the total is computed somewhere in billing."] * 3)

    result = cli("-m", "qwen2.5:3b", "--max-steps", "3", "--root", str(billing_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "unusable" in line and "code block" in line
    hint = hint_of(result.stderr)
    assert "local-brain eval" in hint and "stronger model" in hint
    assert "--max-steps" not in hint


def test_a_real_step_limit_still_says_raise_max_steps(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    model_server.script(None, [code('print("still looking")'), "no code here", code("x = 1")])

    result = cli("-m", "qwen2.5:3b", "--max-steps", "3", "--root", str(billing_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "step limit reached" in line and "1 of 3 replies held no code" in line
    assert "--max-steps" in hint_of(result.stderr)


def test_a_busy_server_is_reported_as_busy_in_a_run(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    model_server.script(None, [Fault.status(503, "server busy, please try again")] * 5)

    result = cli("-m", "qwen2.5:3b", "--root", str(billing_repo), "Q?", server=model_server)

    assert result.returncode == 3
    (line,) = error_lines(result.stderr)
    assert "is busy (503)" in line and line.endswith("server busy, please try again")
    assert "try again shortly" in hint_of(result.stderr)
    assert "ollama serve" not in result.stderr and "cannot reach" not in result.stderr
