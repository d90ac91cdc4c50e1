"""Model-name rules and the Ollama client: pure rules, and real HTTP to the scripted server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from local_brain.errors import ConfigError
from local_brain.models.names import litellm_providers, provider_of, served_name
from local_brain.models.ollama import OllamaClient, ServerError
from local_brain.safe_import import import_model_stack
from tests.fakes.model_server import FakeModel, Fault, ModelServer, closed_port_url


def test_the_provider_list_is_litellms_own_and_read_without_importing_it() -> None:
    script = (
        "import json, sys\n"
        "from local_brain.models.names import litellm_providers\n"
        "names = sorted(litellm_providers())\n"
        "print(json.dumps([names, 'litellm' in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    names, imported = json.loads(result.stdout)

    litellm, _ = import_model_stack()
    assert imported is False
    assert set(names) == {provider.value for provider in litellm.provider_list}
    assert litellm_providers() == set(names)


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("ai21/jamba-1.5-mini", "ai21"),
        ("ollama_chat/qwen3:30b", "ollama_chat"),
        ("hosted_vllm/qwen2.5:3b", "hosted_vllm"),
        ("litellm_proxy/worker", "litellm_proxy"),
        ("qwen3:30b", None),
        ("someuser/custom-model", None),  # an Ollama namespace, not a provider
    ],
)
def test_provider_of(name: str, provider: str | None) -> None:
    assert provider_of(name) == provider


def test_served_name_strips_only_a_provider() -> None:
    assert served_name("ollama_chat/user/model:7b") == "user/model:7b"
    assert served_name("user/model:7b") == "user/model:7b"


def test_a_bare_name_with_spaces_is_a_config_error() -> None:
    from local_brain.config import load_settings
    from local_brain.models.names import deployments_for

    with pytest.raises(ConfigError, match="invalid model name"):
        deployments_for("qwen 3", load_settings(environ={"HOME": "/nonexistent"}))


def test_the_ollama_client_against_the_scripted_server(model_server: ModelServer) -> None:
    model_server.installed = [FakeModel("tiny:1b", context_length=2048)]
    client = OllamaClient(model_server.url, timeout=2)

    assert [model.name for model in client.tags()] == ["tiny:1b"]
    assert client.context_length("tiny:1b") == 2048
    assert client.loaded() == []
    with pytest.raises(ServerError) as missing:
        client.context_length("nope:1b")
    assert missing.value.status == 404 and missing.value.reason.startswith("HTTP 404")


def test_ollama_client_failures_say_why_in_a_few_words(model_server: ModelServer) -> None:
    dead = closed_port_url()
    with pytest.raises(ServerError) as refused:
        OllamaClient(dead).tags()
    assert refused.value.reason == "connection refused" and refused.value.status is None
    assert f"cannot reach Ollama at {dead}" in refused.value.message
    assert "ollama serve" in (refused.value.hint or "")

    model_server.route_faults["/api/tags"] = Fault.garbage("[1, 2]")
    with pytest.raises(ServerError, match="unexpected answer to GET /api/tags"):
        OllamaClient(model_server.url).tags()
    model_server.route_faults["/api/tags"] = Fault.garbage("<html>")
    with pytest.raises(ServerError, match="not JSON"):
        OllamaClient(model_server.url).tags()


def test_litellm_failures_become_exit_status_3_with_a_hint() -> None:
    from local_brain.errors import ExitStatus
    from local_brain.models import backend_error_from

    litellm, _ = import_model_stack()
    timeout = litellm.Timeout("no reply", model="ollama_chat/qwen3:30b", llm_provider="ollama")
    refused = litellm.APIConnectionError("refused", llm_provider="ollama", model="x")
    missing = litellm.NotFoundError("gone", model="ollama_chat/qwen9:70b", llm_provider="ollama")
    wrapped = RuntimeError("the agent's own wrapper")
    wrapped.__cause__ = missing

    slow = backend_error_from(timeout, "qwen3:30b")
    assert slow is not None and slow.exit_status == ExitStatus.BACKEND_UNAVAILABLE
    assert slow.message.startswith(
        "the model did not finish in time (still loading, generating, or stalled) for model "
        "qwen3:30b"
    )
    assert "router_settings.timeout" in (slow.hint or "")
    assert "max_output_tokens" in (slow.hint or "") and "ollama serve" not in (slow.hint or "")
    unreachable = backend_error_from(refused, "qwen3:30b")
    assert unreachable is not None and "cannot reach the model server" in unreachable.message
    absent = backend_error_from(wrapped, "ollama_chat/qwen9:70b")
    assert absent is not None and absent.message.startswith("model not found")
    assert "ollama pull qwen9:70b" in (absent.hint or "")
    assert backend_error_from(ValueError("a bug of ours"), "qwen3:30b") is None
