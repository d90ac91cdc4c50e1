"""The sandbox child: runs model-written code, confined, reaching tools only through the parent.

Started by ``local_brain.sandbox.SandboxExecutor`` as ``python -I -m local_brain.sandbox_child``
with an empty environment. It imports what it needs, confines itself (see
``confinement``), then serves JSON-lines requests on stdin/stdout:

    parent -> child: init, tools, variables, run, and return/raise (answers to calls)
    child -> parent: ready, call (a tool call to forward), done, failed
"""

from __future__ import annotations

# Everything the interpreter may need is imported before confinement takes file access away.
import collections  # noqa: F401
import datetime  # noqa: F401
import itertools  # noqa: F401
import json
import math  # noqa: F401
import queue  # noqa: F401
import random  # noqa: F401
import re  # noqa: F401
import statistics  # noqa: F401
import sys
import time  # noqa: F401
import unicodedata  # noqa: F401
from typing import Any

from smolagents.local_python_executor import LocalPythonExecutor

from local_brain.code_policy import CodePolicyError, check_code
from local_brain.confinement import confine


class _Channel:
    def __init__(self) -> None:
        self.incoming = sys.stdin
        self.outgoing = sys.stdout

    def send(self, message: dict[str, Any]) -> None:
        self.outgoing.write(json.dumps(message, default=str) + "\n")
        self.outgoing.flush()

    def receive(self) -> dict[str, Any]:
        line = self.incoming.readline()
        if not line:
            raise SystemExit(0)
        return json.loads(line)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def _proxy(channel: _Channel, name: str) -> Any:
    def call_in_parent(*args: Any, **kwargs: Any) -> Any:
        channel.send(
            {
                "op": "call",
                "tool": name,
                "args": [_jsonable(arg) for arg in args],
                "kwargs": {key: _jsonable(value) for key, value in kwargs.items()},
            }
        )
        reply = channel.receive()
        if reply["op"] == "raise":
            raise RuntimeError(reply["message"])
        return reply["value"]

    call_in_parent.__name__ = name
    return call_in_parent


def main() -> None:
    channel = _Channel()
    init = channel.receive()
    executor = LocalPythonExecutor(
        additional_authorized_imports=init.get("authorized_imports", []),
        max_print_outputs_length=init.get("max_print_outputs_length"),
        timeout_seconds=None,  # the parent kills a step that runs too long
    )
    missing = confine(init.get("readable_paths", []))
    channel.send({"op": "ready", "missing": missing})
    while True:
        message = channel.receive()
        op = message["op"]
        if op == "tools":
            executor.send_tools({name: _proxy(channel, name) for name in message["names"]})
        elif op == "variables":
            executor.send_variables(message["values"])
        elif op == "run":
            try:
                check_code(message["code"])
                result = executor(message["code"])
            except (CodePolicyError, Exception) as error:  # reported to the model as an error
                logs = str(executor.state.get("_print_outputs", ""))
                channel.send({"op": "failed", "error": str(error), "logs": logs})
            else:
                channel.send(
                    {
                        "op": "done",
                        "output": _jsonable(result.output),
                        "logs": result.logs,
                        "is_final_answer": result.is_final_answer,
                    }
                )


if __name__ == "__main__":
    main()
