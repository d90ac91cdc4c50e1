"""Nothing outlives a cancelled `ask`: not the run's thread, not a sandbox child (the one
running the step nor the one pre-started for the next), not a stream reader."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.model_server import ModelServer, Reply
from tests.test_e2e import code

mcp = pytest.importorskip("mcp")
import anyio  # noqa: E402

MODEL = "qwen2.5:3b"


def child_pids() -> set[int]:
    """This process's living children (zombies too: nobody reaped them)."""
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # fields: state, ppid, ...
            found.add(int(entry))
    return found


def runs_going() -> list[str]:
    """The threads still inside ``runner.run`` or one of our helper threads."""
    names = {t.ident: t.name for t in threading.enumerate()}
    going = []
    for ident, frame in sys._current_frames().items():
        current: Any = frame
        while current is not None:
            if current.f_code.co_filename.endswith(os.path.join("local_brain", "runner.py")):
                going.append(names.get(ident, str(ident)))
                break
            current = current.f_back
    return going + [n for n in names.values() if n.startswith("local-brain-")]


def settle(condition: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def cancelled_ask(server: Any, when: Any) -> None:
    async def go() -> None:
        with anyio.CancelScope() as scope:

            async def cancel() -> None:
                while not when():
                    await anyio.sleep(0.05)
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel)
                await server.call_tool("ask", {"prompt": "Where is main_q9?"})
        assert scope.cancelled_caught

    anyio.run(go)


@pytest.fixture
def server(model_server: ModelServer, make_repo: Any, tmp_path: Path) -> Any:
    from local_brain.config import load_settings
    from local_brain.mcp_server import build_server
    from local_brain.workspace import Workspace

    repo = make_repo({"src/app.py": "def main_q9():\n    return 1\n"})
    env = {"HOME": str(tmp_path), "OLLAMA_API_BASE": model_server.url,
           "LOCAL_BRAIN_MODEL": MODEL}  # fmt: skip
    return build_server(Workspace(repo), load_settings(None, environ=env))


def test_a_cancel_during_a_step_leaves_no_child_and_no_run(
    model_server: ModelServer, server: Any
) -> None:
    model_server.script(MODEL, [code("while True:\n    pass"), code('final_answer("late")')])
    before = child_pids()
    asked: list[float] = []

    def running_the_step() -> bool:  # the step's child has had a second to start the loop
        if model_server.chat_requests() and not asked:
            asked.append(time.monotonic())
        return bool(asked) and time.monotonic() - asked[0] > 1.5 and bool(child_pids() - before)

    cancelled_ask(server, running_the_step)

    assert settle(lambda: not runs_going()), runs_going()
    assert settle(lambda: not (child_pids() - before)), child_pids() - before
    assert len(model_server.chat_requests()) == 1


def test_a_cancel_during_a_streamed_reply_leaves_no_reader_and_no_run(
    model_server: ModelServer, server: Any
) -> None:
    slow = code("print(1)")
    model_server.script(
        MODEL,
        [Reply(slow, chunks=[slow[i : i + 4] for i in range(0, len(slow), 4)], chunk_delay=1.0)],
    )
    before = child_pids()
    cancelled_ask(server, lambda: len(model_server.chat_requests()) >= 1)

    assert settle(lambda: not runs_going()), runs_going()
    assert settle(lambda: not (child_pids() - before)), child_pids() - before
    assert settle(lambda: model_server.chat_requests()[0].client_gone)
