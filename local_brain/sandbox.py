"""SandboxExecutor: smolagents' executor interface, running the code in a confined child.

The child (``sandbox_child``) has an empty environment, cannot write files, start programs
or open sockets (``confinement``), and reaches the repository only through the jailed tools:
each tool call is forwarded here and run by the parent. A step that runs longer than the
step timeout (not counting time spent in forwarded tool calls, such as a helper agent's
whole run) is killed, not waited for; the next step starts a fresh child.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_brain.code_policy import CodePolicyError, check_code

START_TIMEOUT_S = 60.0


class SandboxError(Exception):
    """The step could not run to completion in the sandbox; the message goes to the model."""


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
    ) -> None:
        self.workspace_root = workspace_root
        self.authorized_imports = authorized_imports
        self.step_timeout = step_timeout
        self.max_print_outputs_length = max_print_outputs_length
        self.on_reduced = on_reduced
        self.tools: dict[str, Any] = {}
        self.variables: dict[str, Any] = {}
        self.state: dict[str, Any] = {"_print_outputs": ""}
        self._child: subprocess.Popen[str] | None = None
        self._awaiting_ready = False
        self._reported_reduced = False

    # -- smolagents' executor interface ------------------------------------------------

    def send_tools(self, tools: dict[str, Any]) -> None:
        self.tools = dict(tools)
        if self._child is not None:
            self._send({"op": "tools", "names": list(self.tools)})
        else:
            self._start()

    def send_variables(self, variables: dict[str, Any]) -> None:
        self.variables.update(variables)
        if self._child is not None:
            self._send({"op": "variables", "values": _jsonable_dict(variables)})

    def __call__(self, code_action: str) -> Any:
        from smolagents.local_python_executor import CodeOutput

        self.state["_print_outputs"] = ""
        try:
            check_code(code_action)
        except CodePolicyError as error:
            raise SandboxError(f"refused: {error}") from None
        if self._child is None:
            self._start()
        if self._awaiting_ready:
            self._await_ready()
        self._send({"op": "run", "code": code_action})
        budget = self.step_timeout
        while True:
            started = time.monotonic()
            message = self._receive(budget)
            if budget is not None:
                budget -= time.monotonic() - started
            op = message["op"]
            if op == "call":
                self._send(self._forward(message))
            elif op == "done":
                self.state["_print_outputs"] = message["logs"]
                return CodeOutput(
                    output=message["output"],
                    logs=message["logs"],
                    is_final_answer=message["is_final_answer"],
                )
            elif op == "failed":
                self.state["_print_outputs"] = message["logs"]
                raise SandboxError(message["error"])

    def cleanup(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            self._child = None

    # -- the child -------------------------------------------------------------------------

    def _start(self) -> None:
        environment = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-m", "local_brain.sandbox_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            env=environment,
            cwd="/",
            close_fds=True,
        )
        self._send(
            {
                "op": "init",
                "authorized_imports": self.authorized_imports,
                "max_print_outputs_length": self.max_print_outputs_length,
                "readable_paths": readable_python_paths(self.workspace_root),
            }
        )
        self._awaiting_ready = True  # the child imports while the model thinks
        self._send({"op": "tools", "names": list(self.tools)})
        if self.variables:
            self._send({"op": "variables", "values": _jsonable_dict(self.variables)})

    def _await_ready(self) -> None:
        ready = self._receive(START_TIMEOUT_S)
        self._awaiting_ready = False
        missing = ready.get("missing") or []
        if missing and not self._reported_reduced and self.on_reduced is not None:
            self._reported_reduced = True
            self.on_reduced(missing)

    def _forward(self, message: dict[str, Any]) -> dict[str, Any]:
        """Run a tool call for the child, outside the step's time budget."""
        tool = self.tools.get(message["tool"])
        if tool is None:
            return {"op": "raise", "message": f"unknown tool {message['tool']!r}"}
        try:
            value = tool(*message["args"], **message["kwargs"])
        except Exception as error:  # reported in the child as the tool's exception
            return {"op": "raise", "message": f"{type(error).__name__}: {error}"}
        return {"op": "return", "value": _jsonable(value)}

    def _send(self, message: dict[str, Any]) -> None:
        assert self._child is not None and self._child.stdin is not None
        try:
            self._child.stdin.write(json.dumps(message, default=str) + "\n")
            self._child.stdin.flush()
        except (BrokenPipeError, OSError):
            self._lost("the sandbox process ended unexpectedly")

    def _receive(self, timeout: float | None) -> dict[str, Any]:
        assert self._child is not None and self._child.stdout is not None
        stream = self._child.stdout
        if timeout is not None:
            ready, _, _ = select.select([stream], [], [], max(0.0, timeout))
            if not ready:
                seconds = f"{self.step_timeout:g}" if self.step_timeout else "?"
                self._lost(
                    f"the code ran longer than the step timeout ({seconds} s) and was stopped; "
                    "variables from earlier steps are gone"
                )
        line = stream.readline()
        if not line:
            self._lost("the code's process died (memory limit or crash); it was restarted")
        return json.loads(line)

    def _lost(self, reason: str) -> None:
        self.cleanup()
        raise SandboxError(reason)


def readable_python_paths(workspace_root: Path) -> list[str]:
    """Directories the child may read: the Python installation and its packages, but never
    the repository (whose secrets only the jailed tools may decide about) nor a directory
    holding it. A virtual environment inside the repository stays readable."""
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
        if path == root or root in path.parents:
            continue  # would expose the whole repository
        if root in path.parents and not (path == environment or environment in path.parents):
            continue  # inside the repository and not part of its virtual environment
        readable.append(str(path))
    return sorted(readable)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def _jsonable_dict(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _jsonable(value) for key, value in values.items()}
