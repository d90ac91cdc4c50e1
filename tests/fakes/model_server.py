"""A scripted model server that speaks enough of Ollama's and OpenAI's HTTP APIs for litellm.

The server runs in a background thread on ``127.0.0.1`` (random free port) and answers the
routes that the real ``litellm`` uses for ``ollama_chat/<name>`` (``api_base=server.url``) and
for ``openai/<name>`` / ``hosted_vllm/<name>`` (``api_base=server.openai_url``), streaming and
non-streaming.  Nothing in litellm is mocked: tests drive it over real HTTP, in-process or from a
``local-brain`` subprocess started with ``OLLAMA_API_BASE=server.url``.

Scripting, in short::

    server.installed = ["qwen3:30b", "qwen2.5:3b"]    # what /api/tags, /api/show and chat know
    server.script("qwen2.5:3b", ["reply 1", Reply("reply 2", completion_tokens=7)])
    server.script(None, ["for any model without its own queue"])
    server.responder = lambda request: "computed"      # fallback once the queues are empty
    server.script("qwen3:30b", [Fault.status(500), Fault.hang(30), Fault.disconnect()])

How a chat request is answered:

1. ``route_faults[path]`` if set (applies to every request on that path, e.g. ``/api/tags``).
2. Unknown model (not in ``installed``, ``accept_any_model`` false): 404 in the route's style.
3. The model's own queue, then the default queue (``script(None, ...)``), then ``responder``
   (returning ``None`` from the responder means "no answer": fall through), then
   ``exhausted_reply``.  The default ``exhausted_reply`` is :data:`EXHAUSTED_REPLY`, an answer
   that makes a smolagents CodeAgent call ``final_answer("SCRIPT EXHAUSTED")``: a test that
   scripted too few replies finishes quickly and shows ``SCRIPT EXHAUSTED`` in its output, and
   the request is recorded with ``exhausted=True`` (see :meth:`ModelServer.exhausted_requests`).
   Set ``server.exhausted_reply = Fault.status(500, "script exhausted")`` for a hard failure.

Stop sequences sent by the client (Ollama ``options.stop``, OpenAI ``stop``) are applied to the
scripted text like a real server would (the text is cut before the first stop string), unless
``apply_stop_sequences`` is false or the :class:`Reply` says ``apply_stop=False``.

Token accounting is deterministic: ``prompt_tokens = (total characters of message text) // 4 + 1``
(or ``fixed_prompt_tokens``), capped at ``max_prompt_tokens`` to simulate a server that truncates
the context; ``completion_tokens = len(sent text) // 4 + 1``.  A :class:`Reply` may override both.
What was reported is stored on each :class:`RecordedRequest` as ``usage`` and summed by
:meth:`ModelServer.total_usage`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "DEFAULT_INSTALLED",
    "EXHAUSTED_ANSWER",
    "EXHAUSTED_REPLY",
    "FakeModel",
    "Fault",
    "ModelServer",
    "RecordedRequest",
    "Reply",
    "ReplyItem",
    "Responder",
    "Usage",
    "closed_port_url",
]

Api = Literal["ollama", "openai"]
FaultKind = Literal["hang", "status", "garbage", "truncated", "disconnect"]

#: The text the agent returns when the script ran out (see :data:`EXHAUSTED_REPLY`).
EXHAUSTED_ANSWER = "SCRIPT EXHAUSTED"

#: Default answer once every queue is empty.  It carries the call in both smolagents code-block
#: styles: ``<code>...</code>`` (the CodeAgent default) and a ```` ```py ```` block (for
#: ``code_block_tags="markdown"``); the ``</code>`` stop sequence leaves both intact.
EXHAUSTED_REPLY = (
    "Thought: the scripted model server has no replies left for this request.\n"
    f'```py\nfinal_answer("{EXHAUSTED_ANSWER}")\n```\n'
    f'<code>\nfinal_answer("{EXHAUSTED_ANSWER}")\n</code>'
)

#: Models installed on a fresh server.
DEFAULT_INSTALLED: tuple[str, ...] = (
    "qwen3:30b",
    "qwen2.5:3b",
    "qwen2.5-coder:7b",
    "llama3.2:latest",
)

_STOP_POLL_SECONDS = 0.05


# --------------------------------------------------------------------------------------------
# Script items
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A successful assistant reply, with optional knobs beyond the plain text.

    ``chunks`` sets how a streamed reply is split (default: word by word); ``chunk_delay``
    sleeps between streamed chunks.  ``prompt_tokens`` / ``completion_tokens`` override the
    computed usage (``max_prompt_tokens`` still caps the prompt count).  ``thinking`` is sent as
    Ollama ``message.thinking`` / OpenAI ``reasoning_content``.
    """

    content: str
    thinking: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    chunks: Sequence[str] | None = None
    chunk_delay: float = 0.0
    apply_stop: bool = True


@dataclass(frozen=True)
class Fault:
    """A failure to inject instead of a reply; build one with the static constructors."""

    kind: FaultKind
    seconds: float = 0.0
    status_code: int = 500
    body: str | bytes | dict[str, Any] | None = None
    then: ReplyItem | None = None
    partial: str = ""

    @staticmethod
    def hang(seconds: float = 3600.0, then: ReplyItem | None = None) -> Fault:
        """Wait ``seconds`` before answering with ``then``; with ``then=None`` drop the connection.

        Other requests are served meanwhile, and :meth:`ModelServer.stop` ends the wait at once.
        The wait happens before any response byte is sent, so a client ``timeout`` fires.
        """
        return Fault(kind="hang", seconds=seconds, then=then)

    @staticmethod
    def status(code: int = 500, body: str | bytes | dict[str, Any] | None = None) -> Fault:
        """Answer with HTTP ``code``.

        ``body``: a ``str`` becomes the message of an error JSON in the route's style (Ollama
        ``{"error": msg}``, OpenAI ``{"error": {"message": msg, ...}}``); a ``dict`` is sent as
        JSON as is; ``bytes`` are sent raw; ``None`` uses a default message.
        """
        return Fault(kind="status", status_code=code, body=body)

    @staticmethod
    def garbage(text: str = "<html>this is not JSON {") -> Fault:
        """Answer 200 with a body (or, when streaming, a chunk line) that is not JSON."""
        return Fault(kind="garbage", body=text)

    @staticmethod
    def truncated(partial: str = "The answer is forty") -> Fault:
        """Cut the response mid-way: a stream ends after ``partial`` without its final chunk
        (and without the chunked-encoding terminator); a plain body stops half way through
        although ``Content-Length`` announced all of it."""
        return Fault(kind="truncated", partial=partial)

    @staticmethod
    def disconnect() -> Fault:
        """Close the connection without sending any response."""
        return Fault(kind="disconnect")


#: What a script queue holds: assistant text, a :class:`Reply` or a :class:`Fault`.
ReplyItem = str | Reply | Fault
#: Computes a reply from the recorded request; ``None`` means "nothing to say".
Responder = Callable[["RecordedRequest"], ReplyItem | None]


@dataclass(frozen=True)
class Usage:
    """Token counts as reported to the client."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """``prompt_tokens + completion_tokens``."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass
class RecordedRequest:
    """One HTTP request as the server saw it, plus what it answered.

    ``model``, ``messages``, ``options`` and ``stream`` are extracted from ``body`` (for Ollama
    ``stream`` defaults to true when absent, as in Ollama; for OpenAI to false).  The fields
    after ``received_at`` are filled in before the response is written, so they are final by
    the time the client sees an answer.
    """

    method: str
    path: str
    api: Api
    model: str | None
    body: dict[str, Any]
    messages: list[dict[str, Any]]
    options: dict[str, Any]
    stream: bool
    received_at: float
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    reply: str | None = None
    usage: Usage | None = None
    fault: FaultKind | None = None
    exhausted: bool = False
    error: str | None = None

    @property
    def is_chat(self) -> bool:
        """True for a chat/generate call (Ollama ``/api/chat``, ``/api/generate``, OpenAI)."""
        return self.path in _CHAT_PATHS

    @property
    def last_message(self) -> dict[str, Any] | None:
        """The final message of the conversation, if any."""
        return self.messages[-1] if self.messages else None

    @property
    def last_text(self) -> str:
        """Text of the final message ('' if none) — handy in a ``responder``."""
        last = self.last_message
        return _message_text(last) if last else ""

    @property
    def num_ctx(self) -> int | None:
        """Ollama ``options.num_ctx`` if sent."""
        value = self.options.get("num_ctx")
        return value if isinstance(value, int) else None


_CHAT_PATHS = frozenset({"/api/chat", "/api/generate", "/v1/chat/completions"})


# --------------------------------------------------------------------------------------------
# Installed models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeModel:
    """An installed model as /api/tags and /api/show describe it; unset fields are derived."""

    name: str
    family: str | None = None
    parameter_size: str | None = None
    quantization_level: str = "Q4_K_M"
    context_length: int = 32768
    size: int | None = None
    capabilities: tuple[str, ...] = ("completion", "tools")

    @property
    def canonical(self) -> str:
        """Name with the ``:latest`` tag made explicit."""
        return canonical_model_name(self.name)

    @property
    def resolved_family(self) -> str:
        """``family`` or a guess from the name (``qwen2.5:3b`` -> ``qwen2``)."""
        if self.family:
            return self.family
        base = self.name.split(":", 1)[0].rsplit("/", 1)[-1]
        match = re.match(r"[A-Za-z]+\d*", base)
        return match.group(0).lower() if match else "llama"

    @property
    def resolved_parameter_size(self) -> str:
        """``parameter_size`` or a guess from the tag (``qwen3:30b`` -> ``30B``)."""
        if self.parameter_size:
            return self.parameter_size
        tag = self.canonical.split(":", 1)[1]
        match = re.search(r"(\d+(?:\.\d+)?)b", tag.lower())
        return f"{match.group(1)}B" if match else "7B"

    @property
    def digest(self) -> str:
        """A stable fake sha256 digest."""
        return hashlib.sha256(self.canonical.encode()).hexdigest()

    @property
    def resolved_size(self) -> int:
        """``size`` or roughly 0.6 bytes per parameter."""
        if self.size is not None:
            return self.size
        billions = float(self.resolved_parameter_size.rstrip("BbMm") or 7)
        return int(billions * 0.6e9)

    def details(self) -> dict[str, Any]:
        """The ``details`` object of /api/tags and /api/show."""
        family = self.resolved_family
        return {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": self.resolved_parameter_size,
            "quantization_level": self.quantization_level,
        }


def canonical_model_name(name: str) -> str:
    """Ollama's view of a name: ``llama3.2`` and ``llama3.2:latest`` are the same model."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _same_model(name: str | None, canonical: str) -> bool:
    return name is not None and canonical_model_name(name) == canonical


def _as_model(item: str | FakeModel) -> FakeModel:
    return item if isinstance(item, FakeModel) else FakeModel(name=item)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def closed_port_url() -> str:
    """A ``http://127.0.0.1:PORT`` URL where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return ""


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _split_words(text: str) -> list[str]:
    pieces = re.findall(r"\s*\S+\s*|\s+", text)
    return pieces or [""]


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = len(text)
    for stop in stops:
        if stop:
            index = text.find(stop)
            if index != -1:
                cut = min(cut, index)
    return text[:cut]


class _Disconnect(Exception):
    """Raised inside a handler to drop the connection without answering."""


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class ModelServer:
    """Scripted Ollama/OpenAI-compatible model server; see the module docstring."""

    def __init__(
        self,
        installed: Iterable[str | FakeModel] | None = None,
        *,
        accept_any_model: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Create a stopped server; call :meth:`start` (or use it as a context manager)."""
        #: Installed models (names or :class:`FakeModel`); a plain list, mutate freely.
        self.installed: list[str | FakeModel] = list(
            DEFAULT_INSTALLED if installed is None else installed
        )
        #: Answer chat calls for models not in ``installed`` instead of 404.
        self.accept_any_model = accept_any_model
        #: Fallback computing a reply from the request once the queues are empty.
        self.responder: Responder | None = None
        #: Answer once queues and responder have nothing; see the module docstring.
        self.exhausted_reply: ReplyItem = EXHAUSTED_REPLY
        #: Cap on reported prompt tokens (a server that truncates the context).
        self.max_prompt_tokens: int | None = None
        #: Report this prompt token count instead of computing it.
        self.fixed_prompt_tokens: int | None = None
        #: Cut replies at the client's stop sequences like a real model server.
        self.apply_stop_sequences = True
        #: Persistent per-path fault (e.g. ``{"/api/tags": Fault.status(500)}``).
        self.route_faults: dict[str, ReplyItem] = {}
        #: Context length /api/show reports for models accepted via ``accept_any_model``.
        self.default_context_length = 32768

        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._queues: dict[str | None, deque[ReplyItem]] = {}
        self._requests: list[RecordedRequest] = []
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> ModelServer:
        """Bind a free port and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._stop_event.clear()
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.model_server = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _STOP_POLL_SECONDS},
            name=f"model-server-{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wakes hanging handlers, closes open connections; fast and idempotent."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stop_event.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` has begun."""
        return self._stop_event.is_set()

    @property
    def port(self) -> int:
        """The bound port (server must be started)."""
        if self._httpd is None:
            raise RuntimeError("model server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Ollama base URL, ``http://127.0.0.1:PORT`` (use as ``api_base`` / OLLAMA_API_BASE)."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_url(self) -> str:
        """OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    # ---- scripting ---------------------------------------------------------------------

    def script(self, model: str | None, replies: ReplyItem | Iterable[ReplyItem]) -> None:
        """Append replies to ``model``'s queue (``None``: the default queue for any model).

        ``replies`` is one item or an iterable of items: ``str`` (assistant content),
        :class:`Reply` or :class:`Fault`.  ``llama3.2`` and ``llama3.2:latest`` share a queue.
        """
        items: list[ReplyItem] = (
            [replies] if isinstance(replies, (str, Reply, Fault)) else list(replies)
        )
        key = None if model is None else canonical_model_name(model)
        with self._lock:
            self._queues.setdefault(key, deque()).extend(items)

    def remaining(self, model: str | None = None) -> int:
        """Number of unconsumed scripted replies for ``model`` (``None``: the default queue)."""
        key = None if model is None else canonical_model_name(model)
        with self._lock:
            return len(self._queues.get(key, ()))

    def remaining_total(self) -> int:
        """Unconsumed scripted replies over all queues."""
        with self._lock:
            return sum(len(queue) for queue in self._queues.values())

    def clear_script(self) -> None:
        """Drop every queued reply."""
        with self._lock:
            self._queues.clear()

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    # ---- records -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every recorded request, oldest first."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self, model: str | None = None) -> list[RecordedRequest]:
        """Chat/generate calls (any API), optionally only those naming ``model``."""
        wanted = None if model is None else canonical_model_name(model)
        return [
            r
            for r in self.requests
            if r.is_chat and (wanted is None or _same_model(r.model, wanted))
        ]

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Requests to an exact ``path`` (e.g. ``/api/show``), optionally for one method."""
        return [
            r for r in self.requests if r.path == path and (method is None or r.method == method)
        ]

    def exhausted_requests(self) -> list[RecordedRequest]:
        """Chat calls answered with ``exhausted_reply`` because nothing was scripted."""
        return [r for r in self.requests if r.exhausted]

    def total_usage(self, model: str | None = None) -> Usage:
        """Sum of the usage reported on chat calls (optionally for one model)."""
        total = Usage()
        for request in self.chat_requests(model):
            if request.usage is not None:
                total = total + request.usage
        return total

    # ---- token accounting --------------------------------------------------------------

    def prompt_tokens_for(self, messages: Sequence[dict[str, Any]]) -> int:
        """Prompt tokens the server reports for ``messages`` (fixed/capped as configured)."""
        if self.fixed_prompt_tokens is not None:
            count = self.fixed_prompt_tokens
        else:
            count = sum(len(_message_text(m)) for m in messages) // 4 + 1
        if self.max_prompt_tokens is not None:
            count = min(count, self.max_prompt_tokens)
        return count

    @staticmethod
    def completion_tokens_for(text: str) -> int:
        """Completion tokens the server reports for reply ``text``: ``len(text) // 4 + 1``."""
        return len(text) // 4 + 1

    def usage_for(self, messages: Sequence[dict[str, Any]], reply_text: str) -> Usage:
        """The usage the server would report for this conversation and reply text."""
        return Usage(self.prompt_tokens_for(messages), self.completion_tokens_for(reply_text))

    # ---- model lookup ------------------------------------------------------------------

    def models(self) -> list[FakeModel]:
        """``installed`` as :class:`FakeModel` objects."""
        return [_as_model(item) for item in list(self.installed)]

    def find_model(self, name: str) -> FakeModel | None:
        """The installed model called ``name`` (``:latest`` optional), else ``None``."""
        wanted = canonical_model_name(name)
        for model in self.models():
            if model.canonical == wanted:
                return model
        return None

    def knows_model(self, name: str | None) -> bool:
        """Whether a chat call for ``name`` is answered (installed or ``accept_any_model``)."""
        if not name:
            return False
        return self.accept_any_model or self.find_model(name) is not None

    # ---- internals used by the handler -------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_item(self, request: RecordedRequest) -> ReplyItem:
        key = canonical_model_name(request.model) if request.model else None
        with self._lock:
            for queue_key in (key, None):
                queue = self._queues.get(queue_key)
                if queue:
                    return queue.popleft()
        responder = self.responder
        if responder is not None:
            item = responder(request)
            if item is not None:
                return item
        request.exhausted = True
        return self.exhausted_reply

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False if the server is stopping."""
        return not self._stop_event.wait(seconds) if seconds > 0 else not self.stopping


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    model_server: ModelServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client went away (timeouts, scripted faults) or server stopping: not worth a traceback.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOllama/0.1"
    server: _HTTPServer

    # ---- plumbing ----------------------------------------------------------------------

    @property
    def fake(self) -> ModelServer:
        return self.server.model_server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> tuple[dict[str, Any], str | None]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}, None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            return {}, f"invalid JSON body: {exc}"
        if not isinstance(data, dict):
            return {}, "request body must be a JSON object"
        return data, None

    def _send(
        self,
        status: int,
        body: bytes | str | dict[str, Any] | list[Any],
        content_type: str | None = None,
    ) -> None:
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            content_type = content_type or "application/json; charset=utf-8"
        elif isinstance(body, str):
            payload = body.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        else:
            payload = body
            content_type = content_type or "application/octet-stream"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _new_record(self, method: str, path: str, body: dict[str, Any]) -> RecordedRequest:
        api: Api = "openai" if path.startswith("/v1") else "ollama"
        model = body.get("model") or body.get("name")
        messages = body.get("messages")
        if path == "/api/generate":
            messages = []
            if isinstance(body.get("system"), str):
                messages.append({"role": "system", "content": body["system"]})
            if isinstance(body.get("prompt"), str):
                messages.append({"role": "user", "content": body["prompt"]})
        options = body.get("options")
        stream_default = api == "ollama" and path in _CHAT_PATHS
        return RecordedRequest(
            method=method,
            path=path,
            api=api,
            model=model if isinstance(model, str) else None,
            body=body,
            messages=list(messages) if isinstance(messages, list) else [],
            options=dict(options) if isinstance(options, dict) else {},
            stream=bool(body.get("stream", stream_default)),
            received_at=time.time(),
            headers={k.lower(): v for k, v in self.headers.items()},
        )

    def _error_body(self, api: Api, message: str, kind: str = "api_error") -> dict[str, Any]:
        if api == "openai":
            return {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return {"error": message}

    # ---- dispatch ----------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        body, body_error = self._read_body() if method in {"POST", "DELETE"} else ({}, None)
        record = self._new_record(method, path, body)
        self.fake._record(record)
        try:
            self._route(method, path, record, body_error)
        except _Disconnect:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as exc:  # a bug in a responder or in the fake: make it visible
            record.error = "".join(traceback.format_exception(exc))
            record.status = 500
            with contextlib.suppress(OSError):
                self._send(500, self._error_body(record.api, f"fake model server error: {exc!r}"))
            self.close_connection = True

    def _route(
        self, method: str, path: str, record: RecordedRequest, body_error: str | None
    ) -> None:
        fault = self.fake.route_faults.get(path)
        if fault is not None:
            self._answer_item(record, fault)
            return
        if body_error is not None:
            record.status = 400
            self._send(400, self._error_body(record.api, body_error, "invalid_request_error"))
            return

        routes: dict[tuple[str, str], Callable[[RecordedRequest], None]] = {
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("POST", "/api/show"): self._show,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/generate"): self._chat,
            ("POST", "/v1/chat/completions"): self._chat,
            ("GET", "/v1/models"): self._openai_models,
        }
        handler = routes.get((method, path))
        if handler is None:
            record.status = 404
            if record.api == "openai":
                self._send(404, self._error_body("openai", f"no route for {method} {path}"))
            else:
                self._send(404, "404 page not found")
            return
        handler(record)

    # ---- simple routes -----------------------------------------------------------------

    def _root(self, record: RecordedRequest) -> None:
        record.status = 200
        self._send(200, "Ollama is running")

    def _version(self, record: RecordedRequest) -> None:
        record.status = 200
        self._send(200, {"version": "0.11.4"})

    def _tags(self, record: RecordedRequest) -> None:
        record.status = 200
        models = [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": "2025-01-01T00:00:00Z",
                "size": m.resolved_size,
                "digest": m.digest,
                "details": m.details(),
            }
            for m in self.fake.models()
        ]
        self._send(200, {"models": models})

    def _ps(self, record: RecordedRequest) -> None:
        record.status = 200
        self._send(200, {"models": []})

    def _openai_models(self, record: RecordedRequest) -> None:
        record.status = 200
        data = [
            {"id": m.name, "object": "model", "created": 1735689600, "owned_by": "library"}
            for m in self.fake.models()
        ]
        self._send(200, {"object": "list", "data": data})

    def _show(self, record: RecordedRequest) -> None:
        name = record.model or ""
        model = self.fake.find_model(name) if name else None
        if model is None and name and self.fake.accept_any_model:
            model = FakeModel(name=name, context_length=self.fake.default_context_length)
        if model is None:
            record.status = 404
            self._send(404, {"error": f"model '{name}' not found"})
            return
        family = model.resolved_family
        template = "{{ .System }}{{ .Prompt }}"
        if "tools" in model.capabilities:
            template = "{{- if .Tools }}{{ .Tools }}{{ end }}" + template
        record.status = 200
        self._send(
            200,
            {
                "license": "",
                "modelfile": f"FROM {model.name}\n",
                "parameters": "",
                "template": template,
                "details": model.details(),
                "model_info": {
                    "general.architecture": family,
                    "general.parameter_count": int(model.resolved_size / 0.6),
                    f"{family}.context_length": model.context_length,
                    f"{family}.embedding_length": 4096,
                },
                "capabilities": list(model.capabilities),
                "modified_at": "2025-01-01T00:00:00Z",
            },
        )

    # ---- chat --------------------------------------------------------------------------

    def _chat(self, record: RecordedRequest) -> None:
        if not record.model or not self.fake.knows_model(record.model):
            name = record.model or ""
            record.status = 404
            message = f'model "{name}" not found, try pulling it first'
            self._send(404, self._error_body(record.api, message, "not_found_error"))
            return
        self._answer_item(record, self.fake._next_item(record))

    def _answer_item(self, record: RecordedRequest, item: ReplyItem | None) -> None:
        while isinstance(item, Fault) and item.kind == "hang":
            record.fault = "hang"
            if not self.fake._wait(item.seconds):
                raise _Disconnect
            item = item.then
        if item is None:
            raise _Disconnect
        if isinstance(item, Fault):
            self._answer_fault(record, item)
            return
        reply = Reply(item) if isinstance(item, str) else item
        self._answer_reply(record, reply)

    def _answer_fault(self, record: RecordedRequest, fault: Fault) -> None:
        record.fault = fault.kind
        if fault.kind == "disconnect":
            raise _Disconnect
        if fault.kind == "status":
            record.status = fault.status_code
            body = fault.body
            if body is None:
                body = f"scripted HTTP {fault.status_code} from the fake model server"
            if isinstance(body, str):
                body = self._error_body(record.api, body)
            self._send(fault.status_code, body)
            self.close_connection = True
            return
        if fault.kind == "garbage":
            record.status = 200
            text = fault.body if isinstance(fault.body, str) else "not JSON"
            if record.stream:
                content_type = (
                    "text/event-stream" if record.api == "openai" else "application/x-ndjson"
                )
                self._start_chunked(content_type)
                line = f"data: {text}\n\n" if record.api == "openai" else f"{text}\n"
                self._chunk(line.encode())
                self._end_chunked()
            else:
                self._send(200, text.encode(), "application/json; charset=utf-8")
            return
        # truncated
        record.status = 200
        record.reply = fault.partial
        reply = Reply(fault.partial, apply_stop=False)
        if record.stream:
            self._stream(record, reply, usage=None, truncate=True)
        else:
            payload = json.dumps(self._full_body(record, reply, Usage())).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
        raise _Disconnect

    def _answer_reply(self, record: RecordedRequest, reply: Reply) -> None:
        text = reply.content
        if self.fake.apply_stop_sequences and reply.apply_stop:
            stops = record.options.get("stop") if record.api == "ollama" else None
            if record.api == "openai":
                stops = record.body.get("stop")
            if isinstance(stops, str):
                stops = [stops]
            if isinstance(stops, list):
                text = _cut_at_stop(text, [s for s in stops if isinstance(s, str)])
        if text != reply.content:
            reply = Reply(
                content=text,
                thinking=reply.thinking,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                finish_reason=reply.finish_reason,
                chunks=None,
                chunk_delay=reply.chunk_delay,
                apply_stop=False,
            )
        prompt = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else self.fake.prompt_tokens_for(record.messages)
        )
        if self.fake.max_prompt_tokens is not None:
            prompt = min(prompt, self.fake.max_prompt_tokens)
        completion = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else self.fake.completion_tokens_for(text)
        )
        usage = Usage(prompt, completion)
        record.reply = text
        record.usage = usage
        record.status = 200
        if record.stream:
            self._stream(record, reply, usage=usage, truncate=False)
        else:
            self._send(200, self._full_body(record, reply, usage))

    def _full_body(self, record: RecordedRequest, reply: Reply, usage: Usage) -> dict[str, Any]:
        model = record.model or ""
        if record.api == "openai":
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.thinking is not None:
                message["reasoning_content"] = reply.thinking
            return {
                "id": f"chatcmpl-fake{id(record):x}",
                "object": "chat.completion",
                "created": int(record.received_at),
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            }
        body: dict[str, Any] = {"model": model, "created_at": _now_iso()}
        if record.path == "/api/generate":
            body["response"] = reply.content
            if reply.thinking is not None:
                body["thinking"] = reply.thinking
        else:
            message = {"role": "assistant", "content": reply.content}
            if reply.thinking is not None:
                message["thinking"] = reply.thinking
            body["message"] = message
        body.update(self._ollama_done_fields(reply, usage))
        return body

    @staticmethod
    def _ollama_done_fields(reply: Reply, usage: Usage) -> dict[str, Any]:
        return {
            "done": True,
            "done_reason": reply.finish_reason,
            "total_duration": 1_000_000 + 1000 * usage.total_tokens,
            "load_duration": 100_000,
            "prompt_eval_count": usage.prompt_tokens,
            "prompt_eval_duration": 1000 * usage.prompt_tokens,
            "eval_count": usage.completion_tokens,
            "eval_duration": 1000 * usage.completion_tokens,
        }

    def _stream(
        self, record: RecordedRequest, reply: Reply, usage: Usage | None, truncate: bool
    ) -> None:
        pieces = list(reply.chunks) if reply.chunks is not None else _split_words(reply.content)
        if record.api == "openai":
            self._stream_openai(record, reply, pieces, usage, truncate)
        else:
            self._stream_ollama(record, reply, pieces, usage, truncate)

    def _pause(self, reply: Reply) -> None:
        if reply.chunk_delay > 0 and not self.fake._wait(reply.chunk_delay):
            raise _Disconnect

    def _stream_ollama(
        self,
        record: RecordedRequest,
        reply: Reply,
        pieces: list[str],
        usage: Usage | None,
        truncate: bool,
    ) -> None:
        model = record.model or ""
        generate = record.path == "/api/generate"

        def line(content: str, thinking: str | None = None) -> bytes:
            chunk: dict[str, Any] = {"model": model, "created_at": _now_iso()}
            if generate:
                chunk["response"] = content
                if thinking is not None:
                    chunk["thinking"] = thinking
            else:
                message: dict[str, Any] = {"role": "assistant", "content": content}
                if thinking is not None:
                    message["thinking"] = thinking
                chunk["message"] = message
            chunk["done"] = False
            return chunk_bytes(chunk)

        def chunk_bytes(chunk: dict[str, Any]) -> bytes:
            return (json.dumps(chunk) + "\n").encode()

        self._start_chunked("application/x-ndjson")
        if reply.thinking:
            self._chunk(line("", reply.thinking))
        for piece in pieces:
            self._pause(reply)
            self._chunk(line(piece))
        if truncate or usage is None:
            return
        final: dict[str, Any] = {"model": model, "created_at": _now_iso()}
        if generate:
            final["response"] = ""
        else:
            final["message"] = {"role": "assistant", "content": ""}
        final.update(self._ollama_done_fields(reply, usage))
        self._chunk(chunk_bytes(final))
        self._end_chunked()

    def _stream_openai(
        self,
        record: RecordedRequest,
        reply: Reply,
        pieces: list[str],
        usage: Usage | None,
        truncate: bool,
    ) -> None:
        model = record.model or ""
        base = {
            "id": f"chatcmpl-fake{id(record):x}",
            "object": "chat.completion.chunk",
            "created": int(record.received_at),
            "model": model,
            "system_fingerprint": "fp_fake",
        }

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

        def delta(content: dict[str, Any], finish: str | None = None) -> bytes:
            return event([{"index": 0, "delta": content, "finish_reason": finish}])

        self._start_chunked("text/event-stream")
        self._chunk(delta({"role": "assistant", "content": ""}))
        if reply.thinking:
            self._chunk(delta({"reasoning_content": reply.thinking}))
        for piece in pieces:
            self._pause(reply)
            self._chunk(delta({"content": piece}))
        if truncate or usage is None:
            return
        self._chunk(delta({}, reply.finish_reason))
        stream_options = record.body.get("stream_options")
        if isinstance(stream_options, dict) and stream_options.get("include_usage"):
            usage_body = {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            }
            self._chunk(event([], usage=usage_body))
        self._chunk(b"data: [DONE]\n\n")
        self._end_chunked()
