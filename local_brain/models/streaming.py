"""Streaming a chat under watch: a first-token deadline, a stall timeout between tokens, a
stop for a model that repeats itself, and a request we give up on really closed.

Used for the routes litellm sends through its own HTTP handler: Ollama (``ollama_chat/``,
one JSON object per line) and OpenAI-compatible servers named ``hosted_vllm/`` (vLLM,
llama.cpp's server, LM Studio: server-sent events, ``data: {...}``).

A non-streamed request shows nothing until the model is done, so a stalled or looping
model is noticed only when the whole request times out, and the server keeps generating.
Here the request streams through litellm (the Router still picks the deployment) with an
HTTP client of our own. Its connection is captured as soon as it is made (httpcore's
``trace`` extension), so a request given up on is closed even before the first response
byte (a model still loading): shutting the socket down stops the server at once. Its
response hook tees each response, so that the last line (the server's figures: Ollama's
load, prefill and generation times and cached tokens, llama.cpp's ``timings``, an
OpenAI-style usage chunk) can be read; a response that the Router replaced (a fallback
after a stream broke) is forgotten. The chunks are read in a worker thread while this one
keeps the deadlines.
"""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_LINE_BYTES = 1024 * 1024
REPEAT_MIN_CHARS = 600  # a loop: the reply's last 600+ characters are one unit repeated...
REPEAT_MIN_TIMES = 8  # ...at least 8 times...
REPEAT_MAX_UNIT = 120  # ...the unit at most 120 characters long
REPEAT_CHECK_EVERY = 60  # characters
REPEAT_SAME_PIECES = 80  # the same piece this often in a row is a loop too (litellm: 100)
# litellm's own guard stops a stream of 100 identical chunks with this message (an
# InternalServerError, like any server failure, which also cools the deployment down):
# ours stops at 80, so this is only a fallback.
LITELLM_REPEAT_MESSAGE = "repeating the same chunk"


@dataclass(frozen=True)
class StreamLimits:
    first_token_s: float  # the model may still be loading and reading the prompt
    stall_s: float  # between two pieces of the reply


class ModelStalled(Exception):
    """The model sent nothing for too long; ``first`` when not even a first token came."""

    def __init__(self, seconds: float, first: bool) -> None:
        super().__init__(f"no {'first token' if first else 'token'} for {seconds:g} s")
        self.seconds = seconds
        self.first = first


class NotAChatStream(Exception):
    """The server answered, but not with a stream of chat chunks."""

    def __init__(self, lines: int) -> None:
        what = "1 line that is" if lines == 1 else f"{lines} lines that are"
        super().__init__(f"the answer is not a chat stream ({what} not JSON)")


@dataclass
class StreamedReply:
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    hidden_params: dict[str, Any] = field(default_factory=dict)
    last_line: str | None = None  # the server's last chunk with figures (usage, timings)
    ollama_format: bool = False
    repeating: bool = False  # stopped: the reply had become one unit over and over
    next_check: int = REPEAT_MIN_CHARS


CONNECTED_EVENTS = ("connection.connect_tcp.complete", "connection.connect_unix_socket.complete")


class ResponseTap:
    """An httpx client whose connections we can cut off at any time and whose responses we
    read alongside litellm, line by line. The text is taken from the server's own chunks:
    litellm's Ollama stream parser moves text between ``<think>`` tags around, and code
    inside ``<think>`` must never run."""

    def __init__(self) -> None:
        import httpx
        from litellm.llms.custom_httpx.http_handler import HTTPHandler

        self._lock = threading.Lock()
        self._response: Any = None
        self._socket: socket.socket | None = None
        self._aborted = False
        # Set when we stop a reply on purpose (it repeats itself): the broken connection
        # then ends the stream quietly instead of failing the request in litellm, which
        # would hold it against the deployment (cool it down) for something we did.
        self.quiet = threading.Event()
        self.lines = ChatLines()
        hooks = {"request": [self._watch_connection], "response": [self._hook]}
        self.handler = HTTPHandler(client=httpx.Client(event_hooks=hooks))

    def _watch_connection(self, request: Any) -> None:
        """Ask httpcore to tell us about the connection the request goes out on."""
        earlier = request.extensions.get("trace")

        def trace(event: str, info: dict[str, Any]) -> None:
            if earlier is not None:
                earlier(event, info)
            if event in CONNECTED_EVENTS:
                self._connected(info.get("return_value"))

        request.extensions["trace"] = trace

    def _connected(self, stream: Any) -> None:
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._socket = sock
            aborted = self._aborted
        if aborted:  # given up on while it was connecting
            _shut(sock)

    def _hook(self, response: Any) -> None:
        lines = ChatLines()  # a new response (a retry, a fallback) replaces what came before
        with self._lock:
            self._response = response
            self.lines = lines
        response.stream = _tee_class()(response.stream, lines, self.quiet)

    def abort(self) -> bool:
        """Shut the connection down, answered or not: the reading thread wakes up and the
        server sees the client go. False when no connection was made yet (one made later is
        shut at once)."""
        with self._lock:
            self._aborted = True
            sock = self._socket
        if sock is None:
            return False
        _shut(sock)
        return True

    def close_response(self) -> None:
        with self._lock:
            response = self._response
        if response is not None:
            response.close()

    def close(self) -> None:
        self.handler.close()
        with self._lock:  # litellm keeps the handler while the response lives: let it go
            self._response = None


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@dataclass
class ChatLines:
    """A streamed chat answer as the server sent it: Ollama's JSON lines or server-sent
    events (``data: {...}``). Keeps the reply text, the last chunk that carries figures,
    and how many lines were neither."""

    parts: list[str] = field(default_factory=list)
    last: str | None = None
    ollama: bool = False  # Ollama's own format (else OpenAI-style chunks)
    objects: int = 0
    other: int = 0
    _pending: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        self._pending.extend(data)
        *complete, rest = bytes(self._pending).split(b"\n")
        if len(rest) > MAX_LINE_BYTES:  # no line is this long: not a chat stream
            complete, rest = [*complete, rest[:MAX_LINE_BYTES]], b""
        self._pending[:] = rest
        for line in complete:
            self._line(line.decode("utf-8", "replace").strip())

    def _line(self, line: str) -> None:
        if not line or line.startswith((":", "event:", "id:", "retry:")) or line == "data: [DONE]":
            return
        try:
            payload = json.loads(line.removeprefix("data:").strip())
        except ValueError:
            payload = None
        text = _chunk_text(payload)
        if text is None:
            self.other += 1
            return
        self.objects += 1
        self.ollama = self.ollama or "message" in payload  # type: ignore[operator]
        self.parts.append(text)
        if any(key in payload for key in ("done", "usage", "timings")):  # type: ignore[operator]
            self.last = json.dumps(payload)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _chunk_text(payload: Any) -> str | None:
    """The text one chunk adds ("" for none); None when it is no chat chunk at all."""
    if not isinstance(payload, dict):
        return None
    message = payload.get("message")  # Ollama
    if isinstance(message, dict):
        content = message.get("content")
        return content if isinstance(content, str) else ""
    choices = payload.get("choices")  # OpenAI-style
    if isinstance(choices, list):
        delta = choices[0].get("delta") if choices and isinstance(choices[0], dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        return content if isinstance(content, str) else ""
    return None


@functools.cache
def _tee_class() -> type:
    """A response stream that passes bytes on and feeds them to a :class:`ChatLines`
    (an httpx ``SyncByteStream``, which httpx checks for; httpx loads only when needed)."""
    import httpx

    class Tee(httpx.SyncByteStream):
        def __init__(self, stream: Any, lines: ChatLines, quiet: threading.Event) -> None:
            self._stream = stream
            self._lines = lines
            self._quiet = quiet

        def __iter__(self) -> Iterator[bytes]:
            try:
                for chunk in self._stream:
                    self._lines.feed(chunk)
                    yield chunk
            except httpx.TransportError:
                if not self._quiet.is_set():
                    raise

        def close(self) -> None:
            self._stream.close()

    return Tee


def stream_reply(start: Callable[[Any], Any], limits: StreamLimits) -> StreamedReply:
    """Run ``start(http_client)`` (a litellm streaming completion) and gather its reply.
    Raises :class:`ModelStalled` past a deadline; the request is closed either way."""
    tap = ResponseTap()
    pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
    reply = StreamedReply()

    stop = threading.Event()

    def read() -> None:
        try:
            stream = start(tap.handler)
            same = _SamePieces()
            for chunk in stream:
                if stop.is_set():  # we have heard enough: leave quietly, close the response
                    tap.close_response()
                    return
                pieces.put(("chunk", chunk))
                if same.add(chunk):  # before litellm's own guard fails the request
                    pieces.put(("repeating", None))
                    tap.quiet.set()
                    tap.close_response()
                    return
            # Read at the end: a Router fallback mid-stream repoints them at the deployment
            # that really answered.
            pieces.put(("done", dict(getattr(stream, "_hidden_params", None) or {})))
        except BaseException as error:  # handed to the waiting thread
            pieces.put(("error", error))

    worker = threading.Thread(target=read, name="local-brain-stream", daemon=True)
    worker.start()
    began = time.monotonic()
    got_token = False  # any piece of the reply, thinking included, counts as progress
    try:
        while True:
            wait = limits.stall_s if got_token else limits.first_token_s
            deadline_left = wait if got_token else wait - (time.monotonic() - began)
            try:
                kind, value = pieces.get(timeout=max(deadline_left, 0.01))
            except queue.Empty:
                raise ModelStalled(wait, first=not got_token) from None
            if kind == "error":
                if got_token and LITELLM_REPEAT_MESSAGE in str(value):
                    reply.repeating = True
                    break
                raise value
            if kind == "done":
                reply.hidden_params = value or reply.hidden_params
                break
            if kind == "repeating":
                reply.repeating = True
                break
            _take(reply, value)
            got_token = True
            if len(reply.text) >= reply.next_check:
                reply.next_check = len(reply.text) + REPEAT_CHECK_EVERY
                if _repeating(reply.text):
                    reply.repeating = True
                    break
    finally:
        stop.set()  # a repeating model: the reader closes the response at its next chunk
        if reply.repeating:
            tap.quiet.set()  # our decision, not the deployment's failure
        worker.join(timeout=1 if reply.repeating else 0)
        if worker.is_alive() and tap.abort():  # blocked on a silent server: cut it off
            worker.join(timeout=5)
        # Not even connected yet: the connection is shut as soon as it is made.
        tap.close()
    lines = tap.lines
    if lines.objects == 0 and lines.other:
        raise NotAChatStream(lines.other)
    reply.last_line = lines.last
    reply.ollama_format = lines.ollama
    if lines.objects:
        reply.text = lines.text  # exactly what the server sent
    return reply


class _SamePieces:
    """Counts the same piece of text coming again and again, in the reading thread."""

    def __init__(self) -> None:
        self.last = ""
        self.count = 0

    def add(self, chunk: Any) -> bool:
        text = _piece(chunk)
        if text:
            self.count = self.count + 1 if text == self.last else 1
            self.last = text
        return self.count >= REPEAT_SAME_PIECES


def _take(reply: StreamedReply, chunk: Any) -> None:
    """Add one litellm stream chunk to the reply."""
    usage = getattr(chunk, "usage", None)
    if usage:
        reply.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        reply.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    served_by = getattr(chunk, "_hidden_params", None) or {}
    if served_by.get("model_id"):  # after a fallback, the deployment that took over
        reply.hidden_params = {**reply.hidden_params, **served_by}
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return
    choice = choices[0]
    reply.finish_reason = getattr(choice, "finish_reason", None) or reply.finish_reason
    reply.text += _piece(chunk)


def _piece(chunk: Any) -> str:
    """The text one litellm stream chunk adds."""
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    return getattr(delta, "content", None) or ""


def _repeating(text: str) -> bool:
    """Whether the reply has become one short unit over and over (a looping model)."""
    for unit in range(1, REPEAT_MAX_UNIT + 1):
        window = max(REPEAT_MIN_CHARS, REPEAT_MIN_TIMES * unit)
        if len(text) < window:
            break
        tail = text[-window:]
        if tail[unit:] == tail[:-unit]:
            return True
    return False
