"""Routing end to end: fallbacks that cost once, load balancing, exact usage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import InProcessCli
from tests.fakes.model_server import Fault, ModelServer, Reply, closed_port_url
from tests.test_e2e import code

PRIMARY = "qwen3:30b"
BACKUP = "qwen2.5:3b"


def write_config(path: Path, primary_base: str, backup_base: str, *, timeout: float = 30) -> Path:
    path.write_text(
        f"""
model_list:
  - model_name: primary
    litellm_params: {{model: ollama_chat/{PRIMARY}, api_base: "{primary_base}"}}
  - model_name: backup
    litellm_params: {{model: ollama_chat/{BACKUP}, api_base: "{backup_base}"}}
router_settings:
  fallbacks: [{{primary: [backup]}}]
  timeout: {timeout}
local_brain:
  model: primary
"""
    )
    return path


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo({"src/app.py": "def handler_q4():\n    return 'pong'\n"})


def two_step_script(server: ModelServer, model: str) -> None:
    server.script(
        model,
        [
            code('print(search_code(pattern="handler_q4"))'),
            code('final_answer("found handler_q4")'),
        ],
    )


@pytest.mark.parametrize(
    "fault",
    [Fault.status(500, "boom"), Fault.hang(30), "not-installed"],
    ids=["500", "hang", "404"],
)
def test_failing_primary_falls_back_and_costs_once(
    cli: InProcessCli, model_server: ModelServer, repo: Path, tmp_path: Path, fault: object
) -> None:
    if fault == "not-installed":
        model_server.installed.remove(PRIMARY)
    else:
        model_server.script(PRIMARY, [fault] * 6)
    two_step_script(model_server, BACKUP)
    config = write_config(tmp_path / "c.yaml", model_server.url, model_server.url, timeout=3)

    result = cli("--config", str(config), "--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "found handler_q4"
    assert len(model_server.chat_requests(PRIMARY)) == 1  # not tried again after failing
    assert len(model_server.chat_requests(BACKUP)) == 2
    notices = [line for line in result.stderr.splitlines() if "took over" in line]
    assert notices == [notices[0]] and "model primary failed" in notices[0]
    assert "backup took over" in notices[0]


def test_refusing_primary_is_skipped_without_a_request(
    cli: InProcessCli, model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    two_step_script(model_server, BACKUP)
    config = write_config(tmp_path / "c.yaml", closed_port_url(), model_server.url)

    result = cli("--config", str(config), "--root", str(repo), "--json", "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["answer"] == "found handler_q4"
    assert [f["failed"] for f in document["fallbacks"]] == ["primary"]
    assert "cannot connect" in document["fallbacks"][0]["reason"]
    assert set(document["usage"]) == {"backup"}
    assert "backup took over" in result.stderr


def test_without_fallback_a_dead_server_exits_3(
    cli: InProcessCli, repo: Path, tmp_path: Path
) -> None:
    dead = closed_port_url()
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model_list:\n  - model_name: only\n    litellm_params: {{model: ollama_chat/x, "
        f'api_base: "{dead}"}}\nlocal_brain: {{model: only}}\n'
    )

    result = cli("--config", str(config), "--root", str(repo), "Q?")

    assert result.returncode == 3
    assert "cannot connect" in result.stderr and "ollama serve" in result.stderr
    assert "Traceback" not in result.stderr


def test_two_hosts_share_the_load_and_survive_one_dying(
    cli: InProcessCli, repo: Path, tmp_path: Path
) -> None:
    with ModelServer() as host_a, ModelServer() as host_b:
        config = tmp_path / "c.yaml"
        config.write_text(
            f"""
model_list:
  - model_name: pool
    litellm_params: {{model: ollama_chat/{BACKUP}, api_base: "{host_a.url}"}}
  - model_name: pool
    litellm_params: {{model: ollama_chat/{BACKUP}, api_base: "{host_b.url}"}}
local_brain: {{model: pool}}
"""
        )
        steps = [code('print("looking")')] * 3 + [code('final_answer("done")')]
        for _ in range(3):
            for host in (host_a, host_b):
                host.clear_script()
                host.script(None, steps)
            # Each host answers from its own script, so any split of the 4 steps works.
            host_a.responder = host_b.responder = lambda request: code('final_answer("done")')
            result = cli("--config", str(config), "--root", str(repo), "Q?")
            assert result.returncode == 0, result.stderr
        assert host_a.chat_requests() and host_b.chat_requests()

        host_b.stop()
        served_before = len(host_a.chat_requests())
        result = cli("--config", str(config), "--root", str(repo), "Q?")
        assert result.returncode == 0, result.stderr
        assert len(host_a.chat_requests()) > served_before


def test_json_usage_equals_what_the_servers_reported(
    cli: InProcessCli, model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(
        "qwen3:30b",
        [
            Reply(
                code('print(code_search(task="find x"))'), prompt_tokens=1001, completion_tokens=17
            ),
            Reply(code('final_answer("x is 1")'), prompt_tokens=1203, completion_tokens=9),
        ],
    )
    model_server.script(
        "qwen2.5:3b",
        [Reply(code('final_answer("a.py:1")'), prompt_tokens=777, completion_tokens=5)],
    )

    result = cli("--manager", "qwen3:30b", "--worker", "qwen2.5:3b", "--root", str(repo),
                 "--json", "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    usage = json.loads(result.stdout)["usage"]
    for model in ("qwen3:30b", "qwen2.5:3b"):
        reported = model_server.total_usage(model)
        assert usage[model]["requests"] == len(model_server.chat_requests(model))
        assert usage[model]["prompt_tokens"] == reported.prompt_tokens
        assert usage[model]["completion_tokens"] == reported.completion_tokens
        assert usage[model]["cost_usd"] == 0
    counts = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")
    assert {key: usage["qwen3:30b"][key] for key in counts} == {
        "requests": 2, "prompt_tokens": 2204, "completion_tokens": 26, "cost_usd": 0
    }  # fmt: skip
    assert usage["qwen3:30b"]["loads"] == usage["qwen2.5:3b"]["loads"] == 1  # one load each
    by_agent = json.loads(result.stdout)["usage_by_agent"]
    assert by_agent["code_search"]["prompt_tokens"] == 777
    assert "usage: qwen3:30b 2 req 2204+26 tok" in result.stderr


@pytest.mark.parametrize("prefix", ["openai", "hosted_vllm", "lm_studio"])
def test_openai_compatible_servers(
    cli: InProcessCli, model_server: ModelServer, repo: Path, prefix: str
) -> None:
    two_step_script(model_server, BACKUP)

    result = cli("-m", f"{prefix}/{BACKUP}", "--api-base", model_server.openai_url,
                 "--root", str(repo), "--json", "Q?")  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["answer"] == "found handler_q4"
    requests = model_server.chat_requests(BACKUP)
    assert len(requests) == 2 and {request.api for request in requests} == {"openai"}
    assert document["usage"][f"{prefix}/{BACKUP}"]["prompt_tokens"] == (
        model_server.total_usage(BACKUP).prompt_tokens
    )


def test_litellm_settings_apply_and_missing_callbacks_are_skipped(
    model_server: ModelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from local_brain.config import load_settings
    from local_brain.models import Routing

    config = tmp_path / "c.yaml"
    config.write_text(
        "litellm_settings:\n  drop_params: true\n  callbacks: [langfuse]\n  request_timeout: 42\n"
    )
    settings = load_settings(str(config), environ={"HOME": str(tmp_path),
                                                   "OLLAMA_API_BASE": model_server.url})  # fmt: skip
    routing = Routing(settings, [BACKUP])
    try:
        import litellm

        assert litellm.drop_params is True and litellm.request_timeout == 42
        assert "langfuse" not in litellm.callbacks
        assert "callback 'langfuse' skipped" in capsys.readouterr().err
    finally:
        routing.close()
        litellm.drop_params = False
        litellm.request_timeout = 6000
