"""The escape vehicle used by OS-layer attack tests still gets native code run in the child."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_brain.code_policy import check_code
from local_brain.sandbox import SandboxError, SandboxExecutor
from tests.attacks import ESCAPED_MARKER, assert_escaped, escape


@pytest.fixture(scope="module")
def executor() -> Iterator[SandboxExecutor]:
    """One child for the whole module: starting one costs more than these steps."""
    with tempfile.TemporaryDirectory() as workspace:
        sandbox = SandboxExecutor(
            authorized_imports=[],  # as local-brain's agents configure it
            step_timeout=10,
            max_print_outputs_length=5000,
            workspace_root=Path(workspace),
        )
        sandbox.send_tools({"final_answer": lambda answer: answer})
        yield sandbox
        sandbox.cleanup()


def child_pid(executor: SandboxExecutor) -> int:
    """The pid of the child that will run the next step (one fresh child per step)."""
    pid = executor.next_child_pid
    assert pid is not None
    return pid


def test_vehicle_passes_the_code_policy() -> None:
    check_code(escape("import os"))


def test_native_code_runs_in_the_child_with_real_builtins(executor: SandboxExecutor) -> None:
    payload = 'import os\nprint("native pid", os.getpid())\nprint("exec is", exec.__module__)'
    pid = child_pid(executor)
    logs = executor(escape(payload)).logs
    assert assert_escaped(logs, pid) == pid
    assert f"native pid {pid}" in logs
    assert "exec is builtins" in logs


def test_vehicle_can_be_used_again_and_leaves_the_loader_unpatched(
    executor: SandboxExecutor,
) -> None:
    assert_escaped(executor(escape('print("again")')).logs)
    logs = executor("from random import __loader__ as loader\nprint(loader.get_code)").logs
    assert "bound method" in logs  # the class's method again, not our lambda


def test_payload_exceptions_fail_the_step(executor: SandboxExecutor) -> None:
    with pytest.raises(SandboxError, match="ValueError: boom"):
        executor(escape('print("before")\nraise ValueError("boom")'))
    assert_escaped(executor.state["_print_outputs"])
    assert "before" in executor.state["_print_outputs"]


def test_assert_escaped_fails_without_the_marker() -> None:
    with pytest.raises(AssertionError, match="did not run native code"):
        assert_escaped("Execution logs:\nnothing native here")
    with pytest.raises(AssertionError, match="expected 2"):
        assert_escaped(f"{ESCAPED_MARKER} 1", pid=2)
