"""The MCP server's `ask` over its life: progress, log messages, cancellation, shutdown, and
twenty asks in one process leaving nothing behind."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.model_server import Fault, ModelServer, Reply
from tests.test_e2e import LOCAL_BRAIN, code

mcp = pytest.importorskip("mcp")
import anyio  # noqa: E402
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

MODEL = "qwen2.5:3b"


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo({"src/app.py": "def main_q9():\n    return 1\n"})


def env_for(server: ModelServer) -> dict[str, str]:
    return {"OLLAMA_API_BASE": server.url, "LOCAL_BRAIN_MODEL": MODEL}


def text_of(result: Any) -> str:
    return "\n".join(part.text for part in result.content if hasattr(part, "text"))


def parameters(repo: Path, env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(
        command=LOCAL_BRAIN, args=["mcp", "--root", str(repo)], env={**os.environ, **env}
    )


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def await_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await anyio.sleep(0.05)


# -- progress and log messages ---------------------------------------------------------------


@pytest.mark.slow
def test_ask_reports_progress_and_logs_warnings(model_server: ModelServer, repo: Path) -> None:
    model_server.script(
        MODEL,
        [
            # cut at the output cap: the run warns (an MCP log message), the step fails
            Reply(code('print(search_code(pattern="main_q9"))'), finish_reason="length"),
            code('print(search_code(pattern="main_q9"))'),
            code('final_answer("main_q9 is in src/app.py:1")'),
        ],
    )
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list[Any] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_log(params: Any) -> None:
        logs.append(params)

    async def go() -> tuple[Any, Any]:
        async with (
            stdio_client(parameters(repo, env_for(model_server))) as (read, write),
            ClientSession(read, write, logging_callback=on_log) as session,
        ):
            initialized = await session.initialize()
            result = await session.call_tool(
                "ask", {"prompt": "Where is main_q9?"}, progress_callback=on_progress
            )
            return initialized, result

    initialized, result = anyio.run(go)

    assert not result.is_error and "main_q9 is in src/app.py:1" in text_of(result)
    assert initialized.capabilities.logging is not None
    values = [value for value, _, _ in progress]
    assert len(values) >= 5 and values == sorted(set(values))  # increasing, as the spec says
    messages = [message or "" for _, _, message in progress]
    assert any(f"asking {MODEL}" in message for message in messages)
    assert any("tool search_code" in message for message in messages)
    assert any("step 2 done" in message for message in messages)
    assert "1 tool calls" in messages[-1] and "tokens" in messages[-1]
    warnings = [entry for entry in logs if entry.level == "warning"]
    assert len(warnings) == 1 and "output cap" in str(warnings[0].data)
    assert warnings[0].logger == "local-brain"


def test_heartbeat_while_a_model_request_is_in_flight() -> None:
    """Nothing happens for a while (a model thinking): progress still goes out."""
    from local_brain.cancel import CancelToken
    from local_brain.events import ModelCallStarted
    from local_brain.mcp_lifecycle import ProgressReporter, run_reported

    sent: list[tuple[float, str | None]] = []

    class Context:
        async def report_progress(
            self, value: float, total: float | None = None, message: str | None = None
        ) -> None:
            sent.append((value, message))

    reporter = ProgressReporter()

    def slow_run() -> str:
        reporter(ModelCallStarted("solo", MODEL, 2, 100))
        time.sleep(1.5)
        return "answer"

    async def go() -> str:
        return await run_reported(
            slow_run, CancelToken(), Context(), reporter, None, heartbeat_s=0.3
        )

    assert anyio.run(go) == "answer"
    assert [value for value, _ in sent] == list(range(1, len(sent) + 1))
    heartbeats = [message for _, message in sent if message and "waiting for" in message]
    assert len(heartbeats) >= 3, sent
    assert heartbeats[-1].startswith(f"waiting for {MODEL} (")


# -- cancellation ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_cancelled_ask_makes_no_further_model_request(
    model_server: ModelServer, repo: Path
) -> None:
    slow = code("print(1)")
    model_server.script(
        MODEL,
        [
            code('print(search_code(pattern="main_q9"))'),
            # streamed slowly (about 3 s): cancelled while it comes in
            Reply(slow, chunks=[slow[i : i + 6] for i in range(0, len(slow), 6)], chunk_delay=0.4),
            code('print(search_code(pattern="main_q9"))'),
            code('final_answer("too late")'),
        ],
    )

    async def go() -> Any:
        async with (
            stdio_client(parameters(repo, env_for(model_server))) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            with anyio.CancelScope() as scope:

                async def cancel_during_the_second_request() -> None:
                    await await_until(lambda: len(model_server.chat_requests()) >= 2)
                    await anyio.sleep(0.5)
                    scope.cancel()  # the client sends notifications/cancelled

                async with anyio.create_task_group() as group:
                    group.start_soon(cancel_during_the_second_request)
                    await session.call_tool("ask", {"prompt": "Where is main_q9?"})
            assert scope.cancelled_caught
            await anyio.sleep(6)  # what the run would do next, had it not stopped
            requests_after_cancel = len(model_server.chat_requests())
            # the server still serves, and a new ask starts afresh
            listing = await session.call_tool("list_directory", {"path": "src"})
            return requests_after_cancel, listing

    requests_after_cancel, listing = anyio.run(go)

    assert requests_after_cancel == 2
    second = model_server.chat_requests()[1]
    assert second.client_gone  # the streamed reply was abandoned, not read to its end
    assert "app.py" in text_of(listing)


def test_cancel_token_stops_what_is_under_way() -> None:
    from local_brain.cancel import Cancelled, CancelToken

    token = CancelToken()
    stopped: list[str] = []
    forget = token.on_cancel(lambda: stopped.append("stream"))
    token.on_cancel(lambda: stopped.append("child"))
    forget()
    token.check()  # nothing yet
    token.cancel("cancelled by the client")
    token.cancel("again")  # once only
    assert stopped == ["child"] and token.cancelled
    with pytest.raises(Cancelled, match="cancelled by the client") as raised:
        token.check()
    assert raised.value.exit_status == 130
    token.on_cancel(lambda: stopped.append("late"))  # already cancelled: at once
    assert stopped == ["child", "late"]


# -- shutdown --------------------------------------------------------------------------------


class RawServer:
    """`local-brain mcp` spoken to line by line, so the test decides when stdin closes."""

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [LOCAL_BRAIN, "mcp", "--root", str(repo)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )
        self.next_id = 1

    def send(self, method: str, params: dict[str, Any] | None = None, notify: bool = False) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notify:
            message["id"] = self.next_id
            self.next_id += 1
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        return json.loads(self.process.stdout.readline())

    def start_ask(self) -> None:
        self.send(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        )
        assert "result" in self.read()
        self.send("notifications/initialized", notify=True)
        self.send("tools/call", {"name": "ask", "arguments": {"prompt": "Where is main_q9?"}})

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["stdin closes", "SIGTERM", "SIGINT"])
def test_server_exits_promptly_with_an_ask_on_a_stuck_model(
    model_server: ModelServer, repo: Path, how: str
) -> None:
    model_server.script(MODEL, [Fault.hang(3600)])  # a model that never answers
    server = RawServer(repo, env_for(model_server))
    try:
        server.start_ask()
        wait_until(lambda: len(model_server.chat_requests()) == 1)
        started = time.monotonic()
        if how == "stdin closes":
            assert server.process.stdin is not None
            server.process.stdin.close()
        else:
            server.process.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
        status = server.process.wait(timeout=15)
        took = time.monotonic() - started
    finally:
        server.kill()

    assert took < 6, f"took {took:.1f} s"
    expected = {"stdin closes": 0, "SIGTERM": 128 + signal.SIGTERM, "SIGINT": 130}[how]
    assert status == expected
    assert server.process.stderr is not None
    assert "Traceback" not in server.process.stderr.read().decode()
    wait_until(lambda: model_server.chat_requests()[0].client_gone, timeout=5)


# -- no leaks --------------------------------------------------------------------------------


@pytest.mark.slow
def test_twenty_asks_in_one_server_leave_litellm_and_memory_flat(
    model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    from local_brain.config import load_settings
    from local_brain.mcp_server import build_server
    from local_brain.workspace import Workspace
    from tests.test_routing_lifecycle import litellm_state

    settings = load_settings(None, environ={"HOME": str(tmp_path), **env_for(model_server)})
    server = build_server(Workspace(repo), settings)
    model_server.responder = lambda request: code(
        f'final_answer("answer {len(model_server.chat_requests())}")'
    )

    async def ask(times: int) -> None:
        for _ in range(times):
            result = await server.call_tool("ask", {"prompt": "Where is main_q9?"})
            assert not result.is_error and "answer" in text_of(result)

    anyio.run(ask, 3)  # warm up: imports, caches, the first Router
    before, responses = litellm_state(), live_responses()
    tracemalloc.start(10)
    try:
        start = ours(tracemalloc.take_snapshot())
        anyio.run(ask, 20)
        gc.collect()
        end = ours(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()

    assert litellm_state() == before
    assert live_responses() == responses  # no HTTP response (nor its client) kept
    assert len(model_server.chat_requests()) == 23
    assert end - start < 1_000_000, f"grew {end - start} bytes over twenty asks"


def live_responses() -> int:
    import httpx

    gc.collect()
    return sum(isinstance(o, httpx.Response) for o in gc.get_objects())


def ours(snapshot: Any) -> int:
    """Bytes allocated outside the scripted model server (which records every request, and
    runs in this process)."""
    kept = snapshot.filter_traces(
        [
            tracemalloc.Filter(False, "*/tests/fakes/*", all_frames=True),
            tracemalloc.Filter(False, "*/socketserver.py", all_frames=True),
            tracemalloc.Filter(False, tracemalloc.__file__),
        ]
    )
    return sum(stat.size for stat in kept.statistics("filename"))


def test_a_cancel_kills_the_running_step_and_starts_no_other(tmp_path: Path) -> None:
    import threading

    from local_brain.cancel import CancelToken
    from local_brain.sandbox import SandboxExecutor
    from local_brain.sandbox.executor import SandboxError

    token = CancelToken()
    sandbox = SandboxExecutor(
        authorized_imports=[],
        step_timeout=60,
        max_print_outputs_length=5000,
        workspace_root=tmp_path,
        cancel=token,
    )
    sandbox.send_tools({})
    try:
        threading.Timer(1.0, token.cancel).start()
        started = time.monotonic()
        with pytest.raises(SandboxError):
            sandbox("while True:\n    pass\n")  # would run for its whole minute
        assert time.monotonic() - started < 10
        assert sandbox.next_child_pid is None  # no child waits for a next step
        with pytest.raises(SandboxError, match="cancelled"):
            sandbox("print(1)")
    finally:
        sandbox.cleanup()


def test_ctrl_c_cancels_the_run_it_interrupts(repo: Path, tmp_path: Path) -> None:
    """Ctrl-C (KeyboardInterrupt in the thread running the run) cancels the run's token, so
    whatever the run left going (a stream reader, a sandbox child) stops too."""
    from local_brain.config import load_settings
    from local_brain.session import RunSession
    from local_brain.workspace import Workspace

    session = RunSession(
        "Q?", Workspace(repo), load_settings(None, environ={"HOME": str(tmp_path)})
    )

    def interrupted() -> Any:
        raise KeyboardInterrupt

    session.plan = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        session.run()
    assert session.cancel.cancelled and session.cancel.reason == "interrupted"


@pytest.mark.slow
def test_a_cancelled_ask_abandons_a_request_the_model_never_answers(
    model_server: ModelServer, repo: Path
) -> None:
    model_server.script(MODEL, [Fault.hang(3600)])  # connected, but not a byte comes back

    async def go() -> float:
        async with (
            stdio_client(parameters(repo, env_for(model_server))) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            async with anyio.create_task_group() as group:

                async def cancel_once_asked() -> None:
                    await await_until(lambda: len(model_server.chat_requests()) == 1)
                    await anyio.sleep(0.3)
                    group.cancel_scope.cancel()  # the client sends notifications/cancelled

                group.start_soon(cancel_once_asked)
                await session.call_tool("ask", {"prompt": "Where is main_q9?"})
            cancelled = time.monotonic()
            # the server hangs up on the model at once (its first-token wait is minutes)
            await await_until(lambda: model_server.chat_requests()[0].client_gone, timeout=10)
            return time.monotonic() - cancelled

    assert anyio.run(go) < 5
    assert len(model_server.chat_requests()) == 1
