"""End to end: `local-brain` against the scripted model server over HTTP.

Most runs go through the CLI entry point in this process (the ``cli`` fixture); the few
whose point is the process boundary (piped stdin, a fresh interpreter's imports) spawn the
installed command with ``run_cli``.

litellm and smolagents run for real; tools run on real temporary git repositories. The
scripted model finds facts only by calling tools: its final answer is built from the
observations local-brain sent back, so a fact in the answer proves the tool ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import InProcessCli
from tests.fakes.model_server import Fault, ModelServer, RecordedRequest, closed_port_url
from tests.fakes.scripted_models import code, last_observation

LOCAL_BRAIN = str(Path(sys.executable).with_name("local-brain"))


def run_cli(
    *args: str,
    server: ModelServer | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    if server is not None:
        full_env["OLLAMA_API_BASE"] = server.url
    return subprocess.run(
        [LOCAL_BRAIN, *args],
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def answer_with_observation(request: RecordedRequest) -> str:
    """Responder: finish with exactly what the tools printed."""
    return code(f"final_answer({last_observation(request)!r})")


def test_answer_carries_facts_found_by_search(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    model_server.script(
        "qwen2.5:3b", [code('print(search_code(pattern="compute_total_cents_q7"))')]
    )
    model_server.responder = answer_with_observation

    result = cli("-m", "qwen2.5:3b", "--root", str(billing_repo), "Where are totals computed?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "src/billing/invoice.py:17:" in result.stdout
    assert "1 match in 1 file" in result.stdout
    chats = model_server.chat_requests()
    assert len(chats) == 2
    assert {request.model for request in chats} == {"qwen2.5:3b"}
    assert all(request.num_ctx for request in chats)  # num_ctx on every Ollama request
    assert "\x1b[" not in result.stdout  # no ANSI escapes when piped


def test_answer_carries_git_and_file_facts(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo(
        {"notes/plan.txt": "launch code: ORANGE-LANTERN\n"},
        commits=[("Add quarterly plan kiwi-33", {"notes/q3.txt": "q3\n"})],
    )
    model_server.script(
        None,
        [code('print(git_log(max_count=5))\nprint(read_file("notes/plan.txt"))')],
    )
    model_server.responder = answer_with_observation

    result = cli("-m", "qwen3:30b", "--root", str(repo), "What happened?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert "Add quarterly plan kiwi-33" in result.stdout
    assert "ORANGE-LANTERN" in result.stdout


def test_secrets_never_reach_the_model_or_stdout(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    attempts = "\n".join(
        [
            'print(read_file(".env"))',
            'print(search_code(pattern="sk_live"))',
            'print(list_directory(pattern="**"))',
            'print(git_diff(ref="HEAD~1"))',
            'print(git_log(max_count=5, path=".env"))',
            'print(file_info(path="src/../.env"))',
        ]
    )
    model_server.script(None, [code(attempts)])
    model_server.responder = answer_with_observation

    result = cli("-m", "qwen2.5:3b", "--root", str(billing_repo), "Show me the keys",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "may hold secrets" in result.stdout  # the refusal reached the model and the answer
    for request in model_server.requests:
        assert "SECRET_4242" not in json.dumps(request.body)
    assert "SECRET_4242" not in result.stdout + result.stderr


def test_json_output(cli: InProcessCli, model_server: ModelServer, billing_repo: Path) -> None:
    model_server.script(None, [code('final_answer("Totals live in src/billing/invoice.py")')])

    result = cli("--json", "-m", "qwen2.5:3b", "--root", str(billing_repo), "Where?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["answer"] == "Totals live in src/billing/invoice.py"
    assert document["model"] == "qwen2.5:3b"
    assert document["exit_code"] == 0
    reported = model_server.total_usage()
    usage = document["usage"]["qwen2.5:3b"]
    assert usage["requests"] == 1
    assert usage["prompt_tokens"] == reported.prompt_tokens
    assert usage["completion_tokens"] == reported.completion_tokens


def test_best_installed_model_is_chosen_when_none_is_named(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    model_server.script(None, [code('final_answer("ok")')])

    result = cli("--root", str(billing_repo), "Hi?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert [request.model for request in model_server.chat_requests()] == ["qwen2.5-coder:7b"]


@pytest.mark.slow  # spawns the installed command
def test_prompt_from_stdin_and_piped_context(model_server: ModelServer, billing_repo: Path) -> None:
    model_server.script(None, [code('final_answer("reviewed")'), code('final_answer("asked")')])

    # Subprocess: stdin must be a real pipe (the CLI checks S_ISFIFO on fd 0).
    reviewed = run_cli("-m", "qwen2.5:3b", "--root", str(billing_repo), "review this diff",
                       server=model_server, stdin="+added line PINEAPPLE\n")  # fmt: skip
    asked = run_cli("-m", "qwen2.5:3b", "--root", str(billing_repo), server=model_server,
                    stdin="question from a pipe MANGO\n")  # fmt: skip

    assert (reviewed.returncode, reviewed.stdout.strip()) == (0, "reviewed")
    assert (asked.returncode, asked.stdout.strip()) == (0, "asked")
    first, second = model_server.chat_requests()
    assert "review this diff" in json.dumps(first.messages)
    assert "PINEAPPLE" in json.dumps(first.messages)
    assert "question from a pipe MANGO" in json.dumps(second.messages)


def test_step_limit_exits_1(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    model_server.script(None, [code('print("still looking")')] * 3)

    result = cli("-m", "qwen2.5:3b", "--max-steps", "2", "--root", str(billing_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 1
    assert result.stdout == ""
    assert "step limit" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(model_server.chat_requests()) == 2


def test_missing_model_exits_3_with_pull_hint(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    result = cli("-m", "nosuch:7b", "--root", str(billing_repo), "Q?", server=model_server)

    assert result.returncode == 3
    assert "ollama pull nosuch:7b" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_unreachable_server_exits_3(cli: InProcessCli, billing_repo: Path) -> None:
    dead = closed_port_url()
    named = cli("-m", "qwen2.5:3b", "--root", str(billing_repo), "Q?",
                env={"OLLAMA_API_BASE": dead})  # fmt: skip
    unnamed = cli("--root", str(billing_repo), "Q?", env={"OLLAMA_API_BASE": dead})

    for result in (named, unnamed):
        assert result.returncode == 3, result.stderr
        assert "ollama serve" in result.stderr
        assert "Traceback" not in result.stderr


def test_server_error_exits_3(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    model_server.script(None, [Fault.status(500, "boom")] * 4)

    result = cli("-m", "qwen2.5:3b", "--root", str(billing_repo), "Q?", server=model_server)

    assert result.returncode == 3
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # spawns the installed command
def test_repo_dotenv_does_not_steer_requests(model_server: ModelServer, make_repo) -> None:
    """A .env in the explored repo must not change where requests go (design pitfall 11)."""
    trap = closed_port_url()
    repo = make_repo(
        {
            ".env": f"OLLAMA_API_BASE={trap}\nHTTP_PROXY={trap}\nHTTPS_PROXY={trap}\n"
            "ALL_PROXY={trap}\nLOCAL_BRAIN_MODEL=evil:1b\n",
            "a.py": "x = 1\n",
        }
    )
    model_server.script(None, [code('final_answer("safe")')])

    # Subprocess: litellm/smolagents read a .env only when first imported, once per process.
    result = run_cli("-m", "qwen2.5:3b", "Q?", server=model_server, cwd=repo)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "safe"
    assert len(model_server.chat_requests()) == 1


@pytest.mark.slow  # spawns the command
def test_help_and_tool_commands_do_not_import_litellm(billing_repo: Path) -> None:
    completion = {"COMP_WORDS": "local-brain do", "COMP_CWORD": "1",
                  "_LOCAL_BRAIN_COMPLETE": "bash_complete"}  # fmt: skip
    cases = [
        (["--help"], {}),
        (["--version"], {}),
        (["tools"], {}),
        (["tool", "search_code", "pattern=def "], {}),
        (["config", "show"], {}),
        (["config", "path"], {}),
        ([], completion),
    ]
    for args, env in cases:
        # Subprocess: what a fresh interpreter imports (this one has litellm loaded already).
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "local_brain", *args],
            cwd=billing_repo,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
        )
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
        assert "litellm" not in imported and "smolagents" not in imported, args
        assert result.returncode == 0
