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
    _, tools, results = session_run(repo, env, calls)
    return tools, results


def session_run(repo: Path, env: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """As session_calls, with the initialize result first."""

    async def go() -> tuple[Any, list[Any], list[Any]]:
        parameters = StdioServerParameters(
            command=LOCAL_BRAIN, args=["mcp", "--root", str(repo)], env={**os.environ, **env}
        )
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            initialized = await session.initialize()
            tools = (await session.list_tools()).tools
            results = [await session.call_tool(name, arguments) for name, arguments in calls]
            return initialized, tools, results

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
    assert models.is_error and "not reachable" in text_of(models)


def test_mcp_needs_no_stdout_noise(repo: Path) -> None:
    """Nothing but protocol on stdout: a plain initialize round trip parses."""
    tools, results = session_calls(repo, {}, [("list_directory", {"path": "src"})])
    assert len(tools) == len(EXPECTED_TOOLS)  # stray stdout would have broken the session
    assert "app.py" in text_of(results[0])


REPOSITORY_TOOLS = EXPECTED_TOOLS - {"ask", "list_models"}


def test_mcp_metadata(repo: Path) -> None:
    import local_brain
    from local_brain.tools import all_tools

    initialized, tools, _ = session_run(repo, {}, [])

    assert initialized.server_info.name == "local-brain"
    assert initialized.server_info.version == local_brain.__version__
    capabilities = initialized.capabilities
    assert capabilities.tools is not None
    assert capabilities.prompts is None and capabilities.resources is None  # none to offer
    specs = all_tools()
    for tool in tools:
        assert tool.title, tool.name
        hints = tool.annotations
        assert hints is not None and hints.read_only_hint is True, tool.name
        assert hints.open_world_hint is False, tool.name
        if tool.name in REPOSITORY_TOOLS:
            assert hints.idempotent_hint is True, tool.name
        assert tool.output_schema is None, tool.name  # text results only
        properties = tool.input_schema.get("properties", {})
        for name, schema in properties.items():
            assert schema.get("description"), f"{tool.name}.{name}"
        if tool.name in specs:
            expected = {param.name: param.description for param in specs[tool.name].params}
            assert {name: schema["description"] for name, schema in properties.items()} == expected
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name["ask"].input_schema["properties"]) == {"prompt", "multi_agent", "session"}
    assert by_name["list_models"].input_schema.get("properties", {}) == {}


def test_mcp_arguments(repo: Path) -> None:
    _, results = session_calls(
        repo,
        {},
        [
            ("read_file", {"path": "src/app.py", "start_line": None, "end_line": None}),
            ("search_code", {"pattern": "def main_q9", "max_results": None, "glob": None}),
            ("git_log", {"max_count": None, "path": None}),
            ("read_file", {"path": "src/app.py", "bogus": 1}),
            ("read_file", {"path": "src/app.py", "start_line": "x"}),
            ("search_code", {"pattern": "main_q9", "max_results": [3]}),
            ("read_file", {"path": None}),
            ("git_status", {"verbose": True}),
            ("read_file", {"path": "src/app.py", "start_line": "2"}),
            ("list_directory", {"path": "null"}),  # a path, not JSON
        ],
    )

    read, search, log, unknown, wrong, wrong_list, missing, no_params, loose, json_like = results
    assert not read.is_error and "def main_q9" in text_of(read)
    assert not search.is_error and "src/app.py:1: def main_q9" in text_of(search)
    assert not log.is_error and "Add the parrot module (mango-88)" in text_of(log)
    for result in (unknown, wrong, wrong_list, missing, no_params):
        assert result.is_error
        assert len(text_of(result).splitlines()) == 1, text_of(result)
        assert "Traceback" not in text_of(result)
    assert "'bogus'" in text_of(unknown) and "start_line" in text_of(unknown)
    assert text_of(wrong) == "read_file: start_line must be an integer, got 'x'"
    assert "max_results" in text_of(wrong_list)
    assert text_of(missing) == "read_file needs 'path'"
    assert "'verbose'" in text_of(no_params)
    assert not loose.is_error and "return 1" in text_of(loose)
    assert (
        json_like.is_error and "null" in text_of(json_like) and "app.py" not in text_of(json_like)
    )


def test_mcp_results_are_text_only(repo: Path) -> None:
    _, results = session_calls(
        repo, {}, [("list_directory", {"path": "src"}), ("read_file", {"path": ".env"})]
    )

    for result in results:
        assert result.structured_content is None
        assert [part.type for part in result.content] == ["text"]
    listing, secret = results
    assert not listing.is_error and "app.py" in text_of(listing)
    assert secret.is_error and not text_of(secret).startswith("Error executing tool")


def test_mcp_list_models_unreachable_is_an_error(repo: Path) -> None:
    from tests.fakes.model_server import closed_port_url

    url = closed_port_url()
    _, results = session_calls(repo, {"OLLAMA_API_BASE": url}, [("list_models", {})])

    (models,) = results
    assert models.is_error
    assert text_of(models).startswith(f"Ollama at {url}: not reachable")
    assert "ollama serve" in text_of(models) and len(text_of(models).splitlines()) == 1
