"""The MCP server, driven by the official MCP SDK's client over stdio."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.model_server import ModelServer
from tests.test_e2e import LOCAL_BRAIN, code

pytestmark = pytest.mark.slow  # each test starts `local-brain mcp` over stdio

mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

EXPECTED_TOOLS = {
    "read_file", "list_directory", "file_info", "search_code", "list_definitions",
    "git_status", "git_diff", "git_log", "git_changed_files", "ask", "list_models",
}  # fmt: skip


def session_calls(repo: Path, env: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """Spawn `local-brain mcp --root REPO`, list its tools and make the calls in order."""

    async def go() -> tuple[list[Any], list[Any]]:
        parameters = StdioServerParameters(
            command=LOCAL_BRAIN, args=["mcp", "--root", str(repo)], env={**os.environ, **env}
        )
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            results = [await session.call_tool(name, arguments) for name, arguments in calls]
            return tools, results

    return asyncio.run(go())


def text_of(result: Any) -> str:
    return "\n".join(part.text for part in result.content if hasattr(part, "text"))


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {"src/app.py": "def main_q9():\n    return 1\n", ".env": "TOKEN=mcp-secret-5150\n"},
        commits=[("Add the parrot module (mango-88)", {"src/parrot.py": "SQUAWK = 1\n"})],
    )


def test_mcp_server_tools_and_ask(model_server: ModelServer, repo: Path) -> None:
    model_server.script(
        "qwen2.5:3b",
        [
            code('print(search_code(pattern="main_q9"))'),
            code('final_answer("main_q9 is in src/app.py:1")'),
        ],
    )
    env = {"OLLAMA_API_BASE": model_server.url, "LOCAL_BRAIN_MODEL": "qwen2.5:3b"}

    tools, results = session_calls(
        repo,
        env,
        [
            ("search_code", {"pattern": "def main_q9"}),
            ("read_file", {"path": ".env"}),
            ("git_log", {"max_count": 5}),
            ("ask", {"prompt": "Where is main_q9?"}),
            ("read_file", {"path": "src/app.py", "start_line": 1, "end_line": 1}),
        ],
    )

    assert {tool.name for tool in tools} == EXPECTED_TOOLS
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name["search_code"].input_schema["properties"]) == {
        "pattern", "path", "glob", "ignore_case", "max_results"
    }  # fmt: skip
    assert by_name["search_code"].input_schema["required"] == ["pattern"]
    search, secret, log, ask, read = results
    assert not search.is_error and "src/app.py:1: def main_q9" in text_of(search)
    assert secret.is_error and "may hold secrets" in text_of(secret)
    assert "mcp-secret-5150" not in text_of(secret)
    assert "Add the parrot module (mango-88)" in text_of(log)
    assert not ask.is_error and "main_q9 is in src/app.py:1" in text_of(ask)
    assert "usage: qwen2.5:3b 2 req" in text_of(ask)
    assert text_of(read).splitlines()[1].strip().startswith("1  def main_q9")
    assert {request.model for request in model_server.chat_requests()} == {"qwen2.5:3b"}


def test_mcp_ask_errors_are_tool_errors(repo: Path) -> None:
    from tests.fakes.model_server import closed_port_url

    _, results = session_calls(
        repo,
        {"OLLAMA_API_BASE": closed_port_url(), "LOCAL_BRAIN_MODEL": "qwen2.5:3b"},
        [("ask", {"prompt": "Q?"}), ("list_models", {})],
    )

    ask, models = results
    assert ask.is_error and "ollama serve" in text_of(ask)
    assert "Traceback" not in text_of(ask)
    assert "not reachable" in text_of(models) or "cannot" in text_of(models).lower()


def test_mcp_needs_no_stdout_noise(repo: Path) -> None:
    """Nothing but protocol on stdout: a plain initialize round trip parses."""
    tools, results = session_calls(repo, {}, [("list_directory", {"path": "src"})])
    assert len(tools) == len(EXPECTED_TOOLS)  # stray stdout would have broken the session
    assert "app.py" in text_of(results[0])
