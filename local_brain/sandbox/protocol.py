"""The one wire format between the parent and the sandbox child, shared by both ends.

Each message is a frame: a 4-byte big-endian length, then that many bytes of UTF-8 JSON
holding one object. A frame over ``MAX_FRAME_BYTES``, a read that misses its deadline, bad
JSON, an unknown ``op``, a missing, extra or mistyped field, or a reply to the wrong call is
a ``ProtocolError``: the parent kills the child and fails the step with one line. Nothing a
child sends can shift a later observation, and a child lives for exactly one step.

Values that cross (tool arguments and results, the step's output, variables carried to the
next step) are plain data: JSON types plus tuples, sets, frozensets and bytes, tagged.
"""

from __future__ import annotations

import base64
import json
import os
import select
import struct
import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

MAX_FRAME_BYTES = 8 * 1024 * 1024
MAX_OUTPUT_CHARS = 1_000_000  # a step's output as text (a final answer)
MAX_VARIABLE_BYTES = 1024 * 1024  # one carried variable, encoded
MAX_VARIABLES_BYTES = 4 * 1024 * 1024  # all carried variables together
_HEADER = struct.Struct(">I")
_MAX_DEPTH = 32


class ProtocolError(Exception):
    """The other end broke the protocol (or went silent past a deadline)."""


# -- messages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    op: ClassVar[str]


@dataclass(frozen=True)
class Init(Message):
    """Parent -> child, first: what to import, what it may read, tools and carried state."""

    op: ClassVar[str] = "init"
    authorized_imports: list[str]
    max_print_outputs_length: int
    readable_paths: list[str]
    tools: list[str]
    variables: dict[str, Any] = field(default_factory=dict)
    definitions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ready(Message):
    """Child -> parent: imported and confined; ``missing`` names layers that failed."""

    op: ClassVar[str] = "ready"
    missing: list[str]


@dataclass(frozen=True)
class Run(Message):
    """Parent -> child: the step's code; the child answers with Calls, then a StepEnd."""

    op: ClassVar[str] = "run"
    code: str


@dataclass(frozen=True)
class Call(Message):
    """Child -> parent: run a tool. ``call`` counts up from 1 within the step."""

    op: ClassVar[str] = "call"
    call: int
    tool: str
    args: list[Any]
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class CallEnd(Message):
    """Parent -> child: how call number ``call`` ended."""

    call: int


@dataclass(frozen=True)
class Return(CallEnd):
    """The tool's result, packed as plain data (or its text)."""

    op: ClassVar[str] = "return"
    value: Any


@dataclass(frozen=True)
class Raise(CallEnd):
    """The tool failed; the child raises ``message`` in the model's code."""

    op: ClassVar[str] = "raise"
    message: str


@dataclass(frozen=True)
class StepEnd(Message):
    """Child -> parent, last: how the step ended. ``variables`` (plain data) and
    ``definitions`` (the source of the step's top-level imports, functions and classes,
    re-run before the next step's code) are carried on; ``dropped`` names what is lost."""

    logs: str
    variables: dict[str, Any]
    definitions: list[str]
    dropped: list[str]


@dataclass(frozen=True)
class Done(StepEnd):
    op: ClassVar[str] = "done"
    output: Any
    is_final_answer: bool


@dataclass(frozen=True)
class Failed(StepEnd):
    op: ClassVar[str] = "failed"
    error: str


_MESSAGES: dict[str, type[Message]] = {
    kind.op: kind for kind in (Init, Ready, Run, Call, Return, Raise, Done, Failed)
}
_CHECKS: dict[str, type | tuple[type, ...] | None] = {
    "list[str]": list,
    "list[Any]": list,
    "dict[str, Any]": dict,
    "str": str,
    "int": int,
    "bool": bool,
    "Any": None,
}


def _parse(payload: dict[str, Any]) -> Message:
    kind = _MESSAGES.get(payload.get("op"))  # type: ignore[arg-type]
    if kind is None:
        raise ProtocolError(f"unknown message {str(payload.get('op'))[:40]!r}")
    expected = {item.name: item for item in fields(kind)}
    given = set(payload) - {"op"}
    if given != set(expected):
        raise ProtocolError(f"{kind.op}: fields {sorted(given)} instead of {sorted(expected)}")
    for name, item in expected.items():
        check = _CHECKS[str(item.type)]
        value = payload[name]
        if check is not None and (
            not isinstance(value, check) or (isinstance(value, bool) and check is int)
        ):
            raise ProtocolError(f"{kind.op}.{name} has the wrong type")
        if item.type == "list[str]" and not all(isinstance(entry, str) for entry in value):
            raise ProtocolError(f"{kind.op}.{name} must hold strings")
    return kind(**{name: payload[name] for name in expected})


def _wire(message: Message) -> dict[str, Any]:
    return {
        "op": message.op,
        **{item.name: getattr(message, item.name) for item in fields(message)},
    }


# -- frames ------------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    body = json.dumps(_wire(message), ensure_ascii=False, default=str).encode("utf-8", "replace")
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"a {message.op} message of {len(body)} bytes exceeds the frame cap")
    return _HEADER.pack(len(body)) + body


def write_message(fd: int, message: Message) -> None:
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def read_message(fd: int, deadline: float | None, expected: tuple[type[Message], ...]) -> Message:
    """Read one frame from ``fd`` (monotonic ``deadline``, None waits) and parse it as one of
    ``expected``. Bytes are read exactly: never past the frame, never more than the cap."""
    (length,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(f"a frame of {length} bytes exceeds the cap of {MAX_FRAME_BYTES}")
    body = _read_exactly(fd, length, deadline)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("a frame that is not JSON") from None
    if not isinstance(payload, dict):
        raise ProtocolError("a frame that is not a JSON object")
    message = _parse(payload)
    if not isinstance(message, expected):
        raise ProtocolError(f"an unexpected {message.op} message")
    return message


class Closed(ProtocolError):
    """The other end closed the pipe."""


class Timeout(ProtocolError):
    """No complete frame before the deadline."""


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, wait))
            if not ready:
                raise Timeout("no complete message before the deadline")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise Closed("the other end closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# -- values ------------------------------------------------------------------------------


class NotPlainData(ValueError):
    """A value that cannot cross the channel as data (a function, a module, a generator…)."""


def pack(value: Any, depth: int = 0) -> Any:
    """Plain data to its wire form; raises NotPlainData for anything else."""
    if depth > _MAX_DEPTH:
        raise NotPlainData("nested too deeply")
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        if abs(value) >= 10**4000:
            raise NotPlainData("integer too large")
        return value
    if isinstance(value, list):
        return [pack(item, depth + 1) for item in value]
    if isinstance(value, (tuple, set, frozenset)):
        tag = {tuple: "$tuple", set: "$set", frozenset: "$frozenset"}[type(value)]
        return {tag: [pack(item, depth + 1) for item in value]}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: pack(item, depth + 1) for key, item in value.items()}
        return {"$dict": [[pack(k, depth + 1), pack(v, depth + 1)] for k, v in value.items()]}
    raise NotPlainData(type(value).__name__)


def unpack(value: Any, depth: int = 0) -> Any:
    """The inverse of ``pack``, in one linear pass; ``ProtocolError`` for anything that
    ``pack`` would not have made (the other end may be hostile)."""
    if depth > _MAX_DEPTH:
        raise ProtocolError("a value nested too deeply")
    if isinstance(value, list):
        return [unpack(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag in _TAGS:
            return _unpack_tagged(tag, inner, depth)
    return {key: unpack(item, depth + 1) for key, item in value.items()}


_TAGS = frozenset({"$tuple", "$set", "$frozenset", "$bytes", "$dict"})


def _unpack_tagged(tag: str, inner: Any, depth: int) -> Any:
    if tag == "$bytes":
        if not isinstance(inner, str):
            raise ProtocolError("bad $bytes value")
        try:
            return base64.b64decode(inner, validate=True)
        except ValueError:
            raise ProtocolError("bad $bytes value") from None
    if not isinstance(inner, list):
        raise ProtocolError(f"bad {tag} value")
    if tag == "$dict":
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in inner):
            raise ProtocolError("bad $dict value")
        pairs = [(unpack(k, depth + 1), unpack(v, depth + 1)) for k, v in inner]
        try:
            return dict(pairs)
        except TypeError:  # unhashable keys: keep their text
            return {str(k): v for k, v in pairs}
    items = [unpack(item, depth + 1) for item in inner]
    if tag == "$tuple":
        return tuple(items)
    try:
        return set(items) if tag == "$set" else frozenset(items)
    except TypeError:  # unhashable members: keep them as a list
        return items


def pack_or_text(value: Any) -> Any:
    """Plain data as data; anything else as its text (tool results, a step's output)."""
    try:
        return pack(value)
    except (NotPlainData, ValueError):
        return str(value)


def pack_variables(
    values: dict[str, Any], *, packed: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The variables that are plain data and fit the caps, and the names left behind.
    ``packed=True`` takes values already in wire form (checks the caps only)."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    total = 0
    for name, value in values.items():
        try:
            wire = value if packed else pack(value)
            size = len(json.dumps(wire, ensure_ascii=False))
        except (NotPlainData, ValueError, TypeError, RecursionError):
            dropped.append(name)
            continue
        if size > MAX_VARIABLE_BYTES or total + size > MAX_VARIABLES_BYTES:
            dropped.append(name)
            continue
        kept[name] = wire
        total += size
    return kept, dropped
