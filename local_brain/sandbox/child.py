"""The sandbox child: runs one step of model-written code, confined, reaching the tools only
through the parent. Started as ``python -I -m local_brain.sandbox.child PARENT_PID`` with an
empty environment, in its own session; killed (with its process group) when the step ends.

    parent -> child: Init, Run, then Return/Raise answering each Call
    child -> parent: Ready, then Call* and finally Done or Failed
"""

from __future__ import annotations

import sys

from local_brain.sandbox.confinement import die_with_parent

if __name__ == "__main__":
    die_with_parent(int(sys.argv[1]))

# Everything the interpreter may need is imported before confinement takes file access away.
import ast
import collections  # noqa: F401
import contextlib
import datetime  # noqa: F401
import importlib
import itertools  # noqa: F401
import math  # noqa: F401
import queue  # noqa: F401
import random  # noqa: F401
import re  # noqa: F401
import statistics  # noqa: F401
import time  # noqa: F401
import types
import unicodedata  # noqa: F401
from typing import Any

from smolagents.local_python_executor import LocalPythonExecutor

from local_brain.code_policy import CodePolicyError, check_code
from local_brain.sandbox import protocol
from local_brain.sandbox.confinement import confine
from local_brain.sandbox.protocol import (
    Call,
    Done,
    Failed,
    Init,
    Raise,
    Ready,
    Return,
    Run,
)

STDIN, STDOUT = 0, 1
MAX_OUTPUT_CHARS = protocol.MAX_OUTPUT_CHARS


class _Calls:
    """Forwards tool calls to the parent, numbering them so every reply is matched."""

    def __init__(self) -> None:
        self.count = 0

    def proxy(self, name: str) -> Any:
        def call_in_parent(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            number = self.count
            protocol.write_message(
                STDOUT,
                Call(
                    call=number,
                    tool=name,
                    args=[protocol.pack_or_text(arg) for arg in args],
                    kwargs={key: protocol.pack_or_text(value) for key, value in kwargs.items()},
                ),
            )
            reply = protocol.read_message(STDIN, None, (Return, Raise))
            if reply.call != number:  # type: ignore[attr-defined]
                raise protocol.ProtocolError("a reply to another call")
            if isinstance(reply, Raise):
                raise RuntimeError(reply.message)
            return protocol.unpack(reply.value)  # type: ignore[attr-defined]

        call_in_parent.__name__ = name
        return call_in_parent


def _definitions(code: str) -> list[str]:
    """The source of the step's top-level imports, functions and classes."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    kinds = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    snippets = [ast.get_source_segment(code, node) for node in tree.body if isinstance(node, kinds)]
    return [snippet for snippet in snippets if snippet]


def _carried(executor: LocalPythonExecutor, tools: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Plain-data variables to carry, and the names that are lost (modules, functions and
    classes come back from their definitions, so they are not reported)."""
    values = {
        name: value
        for name, value in executor.state.items()
        if not name.startswith("_")
        and name not in tools
        and not isinstance(value, (types.ModuleType, types.FunctionType, type, BaseException))
        and not callable(value)
    }
    return protocol.pack_variables(values)


def _replay(executor: LocalPythonExecutor, definitions: list[str]) -> None:
    """Re-run earlier steps' definitions (each evaluation starts a fresh print buffer, so
    nothing they print reaches this step's logs); one that fails now is skipped."""
    for snippet in definitions:
        try:
            check_code(snippet)
            executor(snippet)
        except Exception:
            continue


# Loaded lazily by the standard library (datetime.strptime, str.encode) from files that the
# confined child, an unprivileged user under Landlock, can no longer read: load them now.
LAZY_MODULES = (
    "_strptime", "stat", "encodings.ascii", "encodings.latin_1", "encodings.cp1252",
    "encodings.cp437", "encodings.utf_16", "encodings.utf_32", "encodings.utf_8_sig",
    "encodings.idna", "encodings.punycode", "encodings.unicode_escape",
    "encodings.raw_unicode_escape", "encodings.base64_codec", "encodings.hex_codec",
)  # fmt: skip


def main() -> None:
    init = protocol.read_message(STDIN, None, (Init,))
    assert isinstance(init, Init)
    for name in (*LAZY_MODULES, *init.authorized_imports):  # no file access after confining
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    executor = LocalPythonExecutor(
        additional_authorized_imports=init.authorized_imports,
        max_print_outputs_length=init.max_print_outputs_length,
        timeout_seconds=None,  # the parent kills a step that runs too long
    )
    calls = _Calls()
    executor.send_tools({name: calls.proxy(name) for name in init.tools})
    variables = {name: protocol.unpack(value) for name, value in init.variables.items()}
    if variables:
        executor.send_variables(variables)
    missing = confine(init.readable_paths, int(sys.argv[1]))
    protocol.write_message(STDOUT, Ready(missing=missing))
    run = protocol.read_message(STDIN, None, (Run,))
    assert isinstance(run, Run)
    _replay(executor, init.definitions)
    definitions = _definitions(run.code)
    try:
        check_code(run.code)
        result = executor(run.code)
    except protocol.ProtocolError:
        raise
    except (CodePolicyError, Exception) as error:  # reported to the model as an error
        carried, dropped = _carried(executor, init.tools)
        logs = str(executor.state.get("_print_outputs", ""))
        failed = Failed(
            error=str(error), logs=logs, variables=carried, definitions=definitions, dropped=dropped
        )
        protocol.write_message(STDOUT, failed)
    else:
        carried, dropped = _carried(executor, init.tools)
        output = protocol.pack_or_text(result.output)
        if isinstance(output, str) and len(output) > MAX_OUTPUT_CHARS:
            output = output[:MAX_OUTPUT_CHARS] + " …[output truncated]"
        protocol.write_message(
            STDOUT,
            Done(
                output=output,
                logs=result.logs,
                is_final_answer=result.is_final_answer,
                variables=carried,
                definitions=definitions,
                dropped=dropped,
            ),
        )


if __name__ == "__main__":
    main()
