"""SandboxExecutor: smolagents' executor interface, running each step in a confined child.

Every step gets a fresh child process (``sandbox.child``), started while the model is still
thinking, in its own session and process group, with an empty environment; it confines
itself (``confinement``) and reaches the repository only through the jailed tools, whose
calls it forwards here. When the step ends, however it ends, the whole process group is
killed. What the step's code left in plain-data variables is carried to the next child;
anything else (functions, generators) ends with the step, and the model is told so.

Bounds: the child's own running time per step (``step_timeout``, not counting tool calls),
the tools' total time per step (``tool_time``, each call bounded by what remains), every
read of the channel has a deadline, and every frame has a size cap (``protocol``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_brain.cancel import CancelToken
from local_brain.code_policy import CodePolicyError, check_code
from local_brain.sandbox import protocol
from local_brain.sandbox.protocol import (
    Call,
    Done,
    Failed,
    Init,
    Message,
    ProtocolError,
    Raise,
    Ready,
    Return,
    Run,
)

START_TIMEOUT_S = 60.0
DEFAULT_TOOL_TIME_S = 120.0
MAX_DEFINITIONS_CHARS = 64_000
MAX_OUTPUT_CHARS = protocol.MAX_OUTPUT_CHARS  # the child caps it too; the child may lie
MAX_ERROR_CHARS = 20_000


class SandboxError(Exception):
    """The step could not run to completion in the sandbox; the message goes to the model."""


class _Child:
    """One confined child process and its end of the channel."""

    def __init__(self, init: Init) -> None:
        environment = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-m", "local_brain.sandbox.child", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            cwd="/",
            close_fds=True,
            start_new_session=True,  # its own session and process group, no terminal
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        try:
            self.send(init)
        except BaseException:
            self.kill()
            raise

    def send(self, message: Message) -> None:
        try:
            protocol.write_message(self._in, message)
        except OSError:
            raise protocol.Closed("the sandbox process ended unexpectedly") from None

    def receive(self, deadline: float | None, *expected: type[Message]) -> Message:
        return protocol.read_message(self._out, deadline, expected)

    def stop(self) -> None:
        """Kill the child's process group from any thread (the thread running the step
        then reads the end of the channel, and reaps it with :meth:`kill`)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill the child's whole process group and reap the child."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class SandboxExecutor:
    """A drop-in for smolagents' ``LocalPythonExecutor`` (``send_tools``,
    ``send_variables``, ``__call__`` -> CodeOutput, ``cleanup``)."""

    def __init__(
        self,
        *,
        authorized_imports: list[str],
        step_timeout: float | None,
        max_print_outputs_length: int,
        workspace_root: Path,
        on_reduced: Callable[[list[str]], None] | None = None,
        tool_time: float | None = DEFAULT_TOOL_TIME_S,
        cancel: CancelToken | None = None,
    ) -> None:
        self.workspace_root = workspace_root
        self.authorized_imports = authorized_imports
        self.step_timeout = step_timeout
        self.tool_time = tool_time
        self.max_print_outputs_length = max_print_outputs_length
        self.on_reduced = on_reduced
        self.tools: dict[str, Any] = {}
        self.variables: dict[str, Any] = {}  # packed: what the next step's child starts with
        self.definitions: list[str] = []  # earlier steps' imports, functions and classes
        self.state: dict[str, Any] = {"_print_outputs": ""}
        self._next: _Child | None = None
        self._reported_reduced = False
        self.cancel = cancel  # once cancelled, no step starts and a running one is killed

    @property
    def next_child_pid(self) -> int | None:
        """The pid of the prewarmed child that will run the next step, if one is ready."""
        return None if self._next is None else self._next.process.pid

    # -- smolagents' executor interface ------------------------------------------------

    def send_tools(self, tools: dict[str, Any]) -> None:
        self.tools = dict(tools)
        self._restart()

    def send_variables(self, variables: dict[str, Any]) -> None:
        packed, _dropped = protocol.pack_variables(variables)
        if packed:  # the waiting child was started without them
            self.variables.update(packed)
            self._restart()

    def __call__(self, code_action: str) -> Any:
        from smolagents.local_python_executor import CodeOutput

        self.state["_print_outputs"] = ""
        try:
            check_code(code_action)
        except CodePolicyError as error:
            raise SandboxError(f"refused: {error}") from None
        if self.cancel is not None and self.cancel.cancelled:
            raise SandboxError("cancelled: the code was not run")
        try:
            child = self._next or _Child(self._init())
        except (OSError, ProtocolError) as error:
            raise SandboxError(f"the sandbox process could not start ({error})") from None
        self._next = None
        forget = self.cancel.on_cancel(child.stop) if self.cancel is not None else None
        try:
            result = self._run_step(child, code_action)
        except ProtocolError as error:
            result = SandboxError(_protocol_failure(error, self.step_timeout))
        finally:
            if forget is not None:
                forget()
            child.kill()
        if not isinstance(result, SandboxError):
            # The child checked these caps too, but the child may be hostile.
            self.variables, dropped = protocol.pack_variables(result.variables, packed=True)
            self.definitions = merge_definitions(self.definitions, result.definitions)
        self._prewarm()
        if isinstance(result, SandboxError):
            raise result
        logs = _capped(result.logs, self.max_print_outputs_length)
        logs += _dropped_note([*result.dropped, *dropped])
        self.state["_print_outputs"] = logs
        if isinstance(result, Failed):
            raise SandboxError(_capped(result.error, MAX_ERROR_CHARS))
        try:
            output = protocol.unpack(result.output)
        except ProtocolError as error:
            raise SandboxError(_protocol_failure(error, self.step_timeout)) from None
        if isinstance(output, str):
            output = _capped(output, MAX_OUTPUT_CHARS)
        return CodeOutput(output=output, logs=logs, is_final_answer=result.is_final_answer)

    def cleanup(self) -> None:
        if self._next is not None:
            self._next.kill()
            self._next = None

    # -- one step ------------------------------------------------------------------------

    def _init(self) -> Init:
        return Init(
            authorized_imports=list(self.authorized_imports),
            max_print_outputs_length=self.max_print_outputs_length,
            readable_paths=readable_python_paths(self.workspace_root),
            tools=list(self.tools),
            variables=dict(self.variables),
            definitions=list(self.definitions),
        )

    def _restart(self) -> None:
        self.cleanup()
        self._prewarm()

    def _prewarm(self) -> None:
        """Start the next step's child now: it imports while the model thinks. If it cannot
        start, the next step tries again and reports why."""
        if self.cancel is not None and self.cancel.cancelled:
            return
        try:
            self._next = _Child(self._init())
        except (OSError, ProtocolError):
            self._next = None

    def _run_step(self, child: _Child, code: str) -> Done | Failed:
        ready = child.receive(time.monotonic() + START_TIMEOUT_S, Ready)
        assert isinstance(ready, Ready)
        if ready.missing and not self._reported_reduced and self.on_reduced is not None:
            self._reported_reduced = True
            self.on_reduced(ready.missing)
        child.send(Run(code=code))
        budget = self.step_timeout
        tool_budget = self.tool_time
        expected_call = 1
        while True:
            started = time.monotonic()
            deadline = None if budget is None else started + max(0.0, budget)
            message = child.receive(deadline, Call, Done, Failed)
            if budget is not None:
                budget -= time.monotonic() - started
            if not isinstance(message, Call):
                return message  # type: ignore[return-value]
            if message.call != expected_call:
                raise ProtocolError("tool calls out of order")
            expected_call += 1
            started = time.monotonic()
            child.send(self._forward(message, tool_budget))
            if tool_budget is not None:
                tool_budget -= time.monotonic() - started

    def _forward(self, message: Call, tool_budget: float | None) -> Return | Raise:
        """Run a tool call for the child, outside the step's own time budget but within the
        step's tool-time budget."""
        tool = self.tools.get(message.tool)
        if tool is None:
            return Raise(call=message.call, message=f"unknown tool {message.tool[:60]!r}")
        if _is_helper_agent(tool):  # a whole agent run, bounded by its own limits
            tool_budget = None
        elif tool_budget is not None and tool_budget <= 0:
            return Raise(
                call=message.call,
                message=f"tool time for this step is used up ({self.tool_time:g} s); "
                "finish with what you have or continue in the next step",
            )
        try:
            args = [protocol.unpack(arg) for arg in message.args]
            kwargs = {key: protocol.unpack(value) for key, value in message.kwargs.items()}
        except ProtocolError:
            return Raise(call=message.call, message="the arguments are not plain data")
        outcome = _call_with_deadline(lambda: tool(*args, **kwargs), tool_budget)
        if isinstance(outcome, BaseException):
            if isinstance(outcome, TimeoutError):
                text = f"{message.tool} did not finish within the step's tool time; stopped"
            else:
                text = f"{type(outcome).__name__}: {outcome}"
            return Raise(call=message.call, message=text[:2000])
        return Return(call=message.call, value=protocol.pack_or_text(outcome))


def _protocol_failure(error: ProtocolError, step_timeout: float | None) -> str:
    if isinstance(error, protocol.Timeout):
        seconds = f"{step_timeout:g}" if step_timeout else "?"
        return (
            f"the code ran longer than the step timeout ({seconds} s) and was stopped; "
            "variables it set in this step are lost"
        )
    if isinstance(error, protocol.Closed):
        return (
            "the code's process died (memory limit or crash); variables it set in this step "
            "are lost"
        )
    return f"the code's process broke the sandbox protocol ({error}) and was stopped"


def _is_helper_agent(tool: Any) -> bool:
    return hasattr(tool, "memory") and hasattr(tool, "max_steps")


def _call_with_deadline(function: Callable[[], Any], seconds: float | None) -> Any:
    """Run ``function`` in a daemon thread and wait at most ``seconds``; its result, the
    exception it raised, or TimeoutError. (The tools bound their own work; a call that
    overruns is abandoned, never waited for.)"""
    if seconds is None:
        try:
            return function()
        except Exception as error:
            return error
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(function())
        except Exception as error:
            outcome.append(error)

    worker = threading.Thread(target=target, name="local-brain-tool", daemon=True)
    worker.start()
    worker.join(max(0.0, seconds))
    return outcome[0] if outcome else TimeoutError()


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " …[output truncated]"


def merge_definitions(earlier: list[str], new: list[str]) -> list[str]:
    """Earlier definitions then this step's, without repeats, newest kept within the cap."""
    merged = [snippet for snippet in earlier if snippet not in new] + list(dict.fromkeys(new))
    while merged and sum(len(snippet) for snippet in merged) > MAX_DEFINITIONS_CHARS:
        merged.pop(0)
    return merged


def _dropped_note(dropped: list[str]) -> str:
    if not dropped:
        return ""
    names = ", ".join(sorted(dropped)[:10])
    return f"\n(note: {names} will not exist in the next step: only plain data is kept)"


def readable_python_paths(workspace_root: Path) -> list[str]:
    """Directories the child may read: the Python installation and its packages, but never
    the repository (whose secrets only the jailed tools may decide about) nor any directory
    holding it. A virtual environment inside the repository stays readable (its own
    directories only)."""
    root = workspace_root.resolve()
    environment = Path(sys.prefix).resolve()
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    candidates |= {
        sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")
    }
    candidates |= {path for path in sys.path if path and os.path.isdir(path)}
    readable = []
    for candidate in candidates - {None, ""}:
        path = Path(candidate).resolve()
        if path == root or path in root.parents:
            continue  # would expose the whole repository
        if root in path.parents and not (path == environment or environment in path.parents):
            continue  # inside the repository and not part of its virtual environment
        if root in path.parents and environment in (root, *root.parents):
            continue  # the "environment" holds the repository: not a venv inside it
        readable.append(str(path))
    return sorted(readable)
