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

Loaded models (Ollama's scheduler, ``/api/chat`` and ``/api/generate`` only)::

    server.default_num_ctx = 4096          # context when options.num_ctx is absent
    server.max_loaded_models = None        # e.g. 1: loading another evicts the LRU model
    server.preload("qwen3:30b", 8192)      # a warm server: loaded, no load event recorded
    server.load_events                     # [("qwen2.5:3b", 8192), ...] every (re)load, in order
    server.loads("qwen2.5:3b")             # how many of them (model=None: all)
    server.loaded_models()                 # {"qwen2.5:3b": 8192}, least recently used first
    server.unload("qwen2.5:3b")

A chat for model M with ``options.num_ctx`` C loads M when it is not loaded or loaded with
another context (a reload); the request then has ``loaded=True`` and reports
``load_duration = server.load_duration_ns`` (1.5 s), otherwise ``warm_load_duration_ns``
(200 µs).  ``GET /api/ps`` lists the loaded models, most recently used first, in Ollama's shape
(``name``, ``model``, ``size``, ``digest``, ``details``, ``expires_at``, ``size_vram``,
``context_length`` = the loaded C).  A request without a prompt (``/api/generate`` without
``prompt``, ``/api/chat`` without ``messages``) consumes no script item: it loads the model
(``done_reason: "load"``) or, with ``keep_alive: 0``, unloads it (``done_reason: "unload"``);
a chat with ``keep_alive: 0`` unloads its model after answering.  OpenAI routes never load.

Prompt-prefix cache (opt-in: ``server.prefix_cache = True``)::

    prompt_tokens_total     = as above (Reply.prompt_tokens / fixed_prompt_tokens / computed),
                              capped at max_prompt_tokens FIRST (truncation before caching)
    cached                  = shared_prefix_chars(previous, messages) // 4, at most total - 1
    prompt_tokens_evaluated = total - cached  (at least 1)

``previous`` is what the same model instance saw last: the previous request's messages plus
the reply it generated as an ``assistant`` message, so the next turn of a conversation reuses
the reply too.  The comparison is a character-level longest common prefix of the prompt seen as
``(role, text)`` pairs, counted in message-text characters (the units of ``chars // 4 + 1``).
The cache is per (API, model); an Ollama load, reload, eviction or unload empties it.  The
cached count is measured on the untruncated text, so with ``max_prompt_tokens`` a long shared
prefix can make nearly everything "cached"; still at least one token is evaluated.  With the
cache off (the default) cached is 0 and evaluated == total, which keeps every existing
expectation (``usage_for``, ``total_usage``, truncation warnings) unchanged.  What is reported:

* Ollama: ``prompt_eval_count`` = evaluated only (what older Ollama does, and what makes a
  client that compares it with the text it sent think the prompt was truncated).  With
  ``server.report_cached_count = True`` it acts like a newer Ollama: ``prompt_eval_cached_count``
  = cached and ``prompt_eval_count`` = total (the cached tokens are part of it, so evaluated =
  ``prompt_eval_count - prompt_eval_cached_count``).  ``prompt_eval_duration`` always covers the
  evaluated tokens only.
* OpenAI, ``server.openai_style = "vllm"`` (default): ``usage.prompt_tokens`` = total and
  ``usage.prompt_tokens_details.cached_tokens`` = cached.
* OpenAI, ``"llamacpp"``: ``usage.prompt_tokens`` = evaluated (``server.llamacpp_prompt_tokens
  = "total"`` reports the total, which is what current llama-server does), the same
  ``prompt_tokens_details``, and a top-level ``timings`` object like llama-server's
  (``cache_n``, ``prompt_n``, ``prompt_ms``, ``prompt_per_token_ms``, ``prompt_per_second``,
  ``predicted_n``, ``predicted_ms``, ``predicted_per_token_ms``, ``predicted_per_second``); when
  streaming it rides on the finish chunk and on the usage chunk (``stream_options.include_usage``).

Each :class:`RecordedRequest` records ``prompt_tokens_total``, ``prompt_tokens_cached``,
``prompt_tokens_evaluated`` and ``loaded``; its ``usage.prompt_tokens`` is what was reported.

Speed figures: ``prompt_eval_duration`` / ``timings.prompt_ms`` = evaluated tokens at
``server.prompt_tokens_per_second`` (500), ``eval_duration`` / ``timings.predicted_ms`` =
completion tokens at ``server.tokens_per_second`` (50); ``total_duration`` = load + prompt +
generation + 0.1 ms.  Nothing sleeps unless ``server.pace_generation = True``, which waits the
reported load + prompt time before the first byte and spreads the generation time over the
streamed chunks (or waits it all before a non-streamed body).

Output caps: Ollama ``options.num_predict``, OpenAI ``max_completion_tokens`` (or
``max_tokens``) cut the reply (after stop sequences) at ``cap * 4`` characters, report
``completion_tokens <= cap`` and ``done_reason`` / ``finish_reason`` ``"length"`` when the text
(or a larger ``Reply.completion_tokens``) did not fit; recorded as ``output_cap``.
``server.ignore_output_caps = True`` plays a server that does not honour them (still recorded).
``Reply.endless("la ")`` is a model that never stops: capped it yields the repeated text up to
the cap with ``"length"``; uncapped see :meth:`Reply.endless` and
:meth:`ModelServer.open_generations`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import select
import socket
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "CHARS_PER_TOKEN",
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
    "common_prefix_length",
    "shared_prefix_chars",
]

Api = Literal["ollama", "openai"]
OpenAIStyle = Literal["vllm", "llamacpp"]
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
#: How often a held (endless, uncapped) generation checks for a gone client or a stop.
_HOLD_POLL_SECONDS = 0.05
#: Characters per token, for prompt/completion counts, output caps and the prefix cache.
CHARS_PER_TOKEN = 4


# --------------------------------------------------------------------------------------------
# Script items
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A successful assistant reply, with optional knobs beyond the plain text.

    ``chunks`` sets how a streamed reply is split (default: word by word); ``chunk_delay``
    sleeps between streamed chunks.  ``prompt_tokens`` / ``completion_tokens`` override the
    computed usage (``max_prompt_tokens`` still caps the prompt count; ``prompt_tokens`` is the
    *total* prompt, the prefix cache may still report part of it as cached).  ``thinking`` is
    sent as Ollama ``message.thinking`` / OpenAI ``reasoning_content``.  ``forever`` marks a
    model that never stops; build one with :meth:`Reply.endless`.
    """

    content: str
    thinking: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    chunks: Sequence[str] | None = None
    chunk_delay: float = 0.0
    apply_stop: bool = True
    forever: bool = False

    @staticmethod
    def endless(text: str = "la ", chunk_delay: float = 0.02) -> Reply:
        """A model that never stops generating ``text`` over and over.

        With an output cap (Ollama ``options.num_predict``, OpenAI ``max_tokens`` /
        ``max_completion_tokens``) the repeated text is cut at ``cap * 4`` characters and the
        reply ends with reason ``"length"`` (no delay between chunks).  Without a cap a
        non-streaming request is held open (checking every 50 ms for a stopping server or a
        client that went away) and a streaming one sends ``text`` every ``chunk_delay`` seconds
        until the client disconnects or the server stops; neither ever completes.  The request
        records ``client_gone=True`` when the client left, and
        :meth:`ModelServer.open_generations` counts the ones still running.  Stop sequences are
        not applied to endless text.
        """
        if not text:
            raise ValueError("Reply.endless needs a non-empty text")
        return Reply(content=text, chunk_delay=chunk_delay, apply_stop=False, forever=True)


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
        The wait happens before any response byte is sent, so a client ``timeout`` fires.  A
        client that closes its connection meanwhile ends the wait too (a real server stops
        loading or reading the prompt for it): the request records ``client_gone=True``.
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
    the time the client sees an answer (``client_gone`` is set when the client leaves).

    ``output_cap`` is the completion-token cap the client asked for (Ollama
    ``options.num_predict``, OpenAI ``max_completion_tokens`` or ``max_tokens``; only positive
    integers count, ``None`` when absent).  ``loaded`` says whether this request made the server
    load (or reload) its model.  ``prompt_tokens_total`` / ``prompt_tokens_cached`` /
    ``prompt_tokens_evaluated`` are the prompt counts behind ``usage`` (see the module
    docstring); ``finish_reason`` is the reason sent (``"stop"``, ``"length"``, ``"load"``,
    ``"unload"``...).
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
    output_cap: int | None = None
    loaded: bool = False
    prompt_tokens_total: int | None = None
    prompt_tokens_cached: int | None = None
    prompt_tokens_evaluated: int | None = None
    finish_reason: str | None = None
    client_gone: bool = False

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


def shared_prefix_chars(
    previous: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]]
) -> int:
    """Characters of message text ``messages`` shares with ``previous`` from the start.

    The prompt is compared as its sequence of ``(role, text)`` pairs: whole equal messages
    count in full, the first differing one counts its common text prefix if the roles match.
    Counting message text only (not role labels) keeps the result in the units of
    ``prompt_tokens = chars // 4 + 1``.
    """
    shared = 0
    for old, new in zip(previous, messages, strict=False):
        if old.get("role") != new.get("role"):
            break
        old_text, new_text = _message_text(old), _message_text(new)
        if old_text != new_text:
            shared += common_prefix_length(old_text, new_text)
            break
        shared += len(new_text)
    return shared


def common_prefix_length(a: str, b: str) -> int:
    """Length in characters of the longest common prefix of ``a`` and ``b``."""
    limit = min(len(a), len(b))
    index = 0
    step = 4096
    while index < limit:  # compare in blocks, then narrow down inside the first differing one
        end = min(index + step, limit)
        if a[index:end] == b[index:end]:
            index = end
            continue
        while a[index] == b[index]:
            index += 1
        return index
    return index


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _is_zero_keep_alive(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value == 0
    return isinstance(value, str) and value.strip() in {"0", "0s", "0m", "0h"}


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

        # -- the Ollama scheduler (loads, /api/ps) --
        #: Context an Ollama chat loads a model with when ``options.num_ctx`` is absent.
        self.default_num_ctx = 4096
        #: How many models may be loaded at once; loading one more evicts the least recently
        #: used.  ``None``: unlimited.
        self.max_loaded_models: int | None = None
        #: ``load_duration`` (ns) reported by a request that loaded its model ...
        self.load_duration_ns = 1_500_000_000
        #: ... and by one that found it loaded.
        self.warm_load_duration_ns = 200_000

        # -- prompt-prefix cache and reported counts --
        #: Reuse the longest common prompt prefix per loaded model instance (opt-in: with it
        #: Ollama's ``prompt_eval_count`` drops to the evaluated tokens).
        self.prefix_cache = False
        #: Ollama: act like a newer Ollama that reports ``prompt_eval_cached_count`` and then
        #: counts the cached tokens in ``prompt_eval_count`` too (older: evaluated only).
        self.report_cached_count = False
        #: OpenAI-compatible usage style: ``"vllm"`` or ``"llamacpp"``; see the module docstring.
        self.openai_style: OpenAIStyle = "vllm"
        #: ``"llamacpp"`` style ``usage.prompt_tokens``: ``"evaluated"`` or ``"total"``.
        self.llamacpp_prompt_tokens: Literal["evaluated", "total"] = "evaluated"

        # -- speed figures --
        #: Prompt evaluation speed behind ``prompt_eval_duration`` / ``timings.prompt_ms``.
        self.prompt_tokens_per_second = 500.0
        #: Generation speed behind ``eval_duration`` / ``timings.predicted_ms``.
        self.tokens_per_second = 50.0
        #: Really take the reported time (load + prompt + generation) before/while answering.
        self.pace_generation = False
        self.ignore_output_caps = False  # a server that generates past num_predict/max_tokens

        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._queues: dict[str | None, deque[ReplyItem]] = {}
        self._requests: list[RecordedRequest] = []
        self._stop_event = threading.Event()
        self._loaded: OrderedDict[str, int] = OrderedDict()  # canonical -> num_ctx, LRU first
        self._load_events: list[tuple[str, int]] = []
        self._prompt_cache: dict[tuple[Api, str], list[dict[str, Any]]] = {}
        self._open_generations = 0
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

    # ---- loaded models (Ollama scheduler) ----------------------------------------------

    @property
    def load_events(self) -> list[tuple[str, int]]:
        """Every model load (including reloads) as ``(canonical_name, num_ctx)``, oldest first."""
        with self._lock:
            return list(self._load_events)

    def loads(self, model: str | None = None) -> int:
        """How many loads happened (optionally of ``model`` only)."""
        wanted = None if model is None else canonical_model_name(model)
        return sum(1 for name, _ in self.load_events if wanted is None or name == wanted)

    def loaded_models(self) -> dict[str, int]:
        """Loaded models as ``{canonical_name: num_ctx}``, least recently used first."""
        with self._lock:
            return dict(self._loaded)

    def preload(self, model: str, num_ctx: int | None = None) -> None:
        """Mark ``model`` loaded with ``num_ctx`` (default ``default_num_ctx``), recording no
        load event: a warm server.  ``max_loaded_models`` still evicts."""
        with self._lock:
            self._load_locked(canonical_model_name(model), num_ctx or self.default_num_ctx)

    def unload(self, model: str) -> bool:
        """Drop ``model`` from memory (and its prefix cache); False if it was not loaded."""
        canonical = canonical_model_name(model)
        with self._lock:
            self._prompt_cache.pop(("ollama", canonical), None)
            return self._loaded.pop(canonical, None) is not None

    def open_generations(self) -> int:
        """Endless (uncapped) generations still running, i.e. not abandoned by their client."""
        with self._lock:
            return self._open_generations

    def _load_locked(self, canonical: str, num_ctx: int) -> None:
        self._loaded.pop(canonical, None)
        self._prompt_cache.pop(("ollama", canonical), None)
        self._loaded[canonical] = num_ctx
        limit = self.max_loaded_models
        while limit is not None and len(self._loaded) > max(limit, 1):
            evicted, _ = self._loaded.popitem(last=False)
            self._prompt_cache.pop(("ollama", evicted), None)

    def _ensure_loaded(self, request: RecordedRequest) -> bool:
        """Load ``request.model`` with the request's context unless already so; True if loaded."""
        canonical = canonical_model_name(request.model or "")
        num_ctx = _positive_int(request.options.get("num_ctx")) or self.default_num_ctx
        with self._lock:
            if self._loaded.get(canonical) == num_ctx:
                self._loaded.move_to_end(canonical)
                return False
            self._load_locked(canonical, num_ctx)
            self._load_events.append((canonical, num_ctx))
            return True

    # ---- prompt-prefix cache -----------------------------------------------------------

    def _prompt_counts(
        self, request: RecordedRequest, total: int, reply_text: str | None
    ) -> tuple[int, int]:
        """``(cached, evaluated)`` for a prompt of ``total`` tokens; updates the cache."""
        if not self.prefix_cache or not request.model:
            return 0, total
        canonical = canonical_model_name(request.model)
        key = (request.api, canonical)
        seen = list(request.messages)
        if reply_text is not None:
            seen.append({"role": "assistant", "content": reply_text})
        with self._lock:
            previous = self._prompt_cache.get(key, [])
            if request.api == "openai" or canonical in self._loaded:
                self._prompt_cache[key] = seen  # else: unloaded meanwhile, nothing is cached
        if total <= 0:
            return 0, total
        evaluated = max(
            1, total - shared_prefix_chars(previous, request.messages) // CHARS_PER_TOKEN
        )
        return total - evaluated, evaluated

    def _reported_prompt_tokens(self, api: Api, total: int, evaluated: int) -> int:
        if api == "ollama":
            return total if self.report_cached_count else evaluated
        if self.openai_style == "llamacpp" and self.llamacpp_prompt_tokens == "evaluated":
            return evaluated
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
        close: bool = False,
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
        if close:  # said, as HTTP/1.1 asks, before the server closes the connection
            self.send_header("Connection", "close")
            self.close_connection = True
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
        if api == "openai":
            cap = _positive_int(body.get("max_completion_tokens")) or _positive_int(
                body.get("max_tokens")
            )
        else:
            cap = _positive_int(options.get("num_predict")) if isinstance(options, dict) else None
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
            output_cap=cap,
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
            record.client_gone = True  # it left while we were still answering
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
        expires_at = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
        models = []
        for canonical, num_ctx in reversed(self.fake.loaded_models().items()):  # MRU first
            model = self.fake.find_model(canonical) or FakeModel(
                name=canonical, context_length=self.fake.default_context_length
            )
            models.append(
                {
                    "name": canonical,
                    "model": canonical,
                    "size": model.resolved_size,
                    "digest": model.digest,
                    "details": model.details(),
                    "expires_at": expires_at,
                    "size_vram": model.resolved_size,
                    "context_length": num_ctx,
                }
            )
        self._send(200, {"models": models})

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
        if record.api == "openai":
            self._answer_item(record, self.fake._next_item(record))
            return
        if not self._has_prompt(record):
            self._load_or_unload(record)
            return
        record.loaded = self.fake._ensure_loaded(record)
        try:
            self._answer_item(record, self.fake._next_item(record))
        finally:
            if _is_zero_keep_alive(record.body.get("keep_alive")):
                self.fake.unload(record.model)

    @staticmethod
    def _has_prompt(record: RecordedRequest) -> bool:
        if record.path == "/api/generate":
            return bool(record.body.get("prompt")) or bool(record.body.get("images"))
        return bool(record.body.get("messages"))

    def _load_or_unload(self, record: RecordedRequest) -> None:
        """Ollama's empty request: load the model, or unload it with ``keep_alive: 0``."""
        model = record.model or ""
        if _is_zero_keep_alive(record.body.get("keep_alive")):
            self.fake.unload(model)
            reason = "unload"
        else:
            record.loaded = self.fake._ensure_loaded(record)
            reason = "load"
        record.status = 200
        record.finish_reason = reason
        body: dict[str, Any] = {"model": model, "created_at": _now_iso()}
        if record.path == "/api/generate":
            body["response"] = ""
        else:
            body["message"] = {"role": "assistant", "content": ""}
        body.update({"done": True, "done_reason": reason})
        self._send(200, body)

    def _answer_item(self, record: RecordedRequest, item: ReplyItem | None) -> None:
        while isinstance(item, Fault) and item.kind == "hang":
            record.fault = "hang"
            if not self._wait_for_client(record, item.seconds):
                raise _Disconnect
            item = item.then
        if item is None:
            raise _Disconnect
        if isinstance(item, Fault):
            self._answer_fault(record, item)
            return
        reply = Reply(item) if isinstance(item, str) else item
        self._answer_reply(record, reply)

    def _wait_for_client(self, record: RecordedRequest, seconds: float) -> bool:
        """Wait ``seconds`` (a model loading, or reading a long prompt) unless the client
        leaves first (then ``record.client_gone``) or the server stops: False for those."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._client_gone():
                record.client_gone = True
                return False
            if not self.fake._wait(min(left, _HOLD_POLL_SECONDS)):
                return False
        return not self.fake.stopping

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
            self._send(fault.status_code, body, close=True)
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
        fake = self.fake
        cap = None if fake.ignore_output_caps else record.output_cap
        if reply.forever:
            if cap is None:
                self._answer_endless(record, reply)
                return
            limit = cap * CHARS_PER_TOKEN
            repeated = reply.content * (limit // len(reply.content) + 1)
            reply = replace(
                reply,
                content=repeated[:limit],
                finish_reason="length",
                chunks=None,
                chunk_delay=0.0,
                apply_stop=False,
                forever=False,
            )
        text = reply.content
        if fake.apply_stop_sequences and reply.apply_stop:
            text = _cut_at_stop(text, self._stop_sequences(record))
        finish = reply.finish_reason
        completion = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else fake.completion_tokens_for(text)
        )
        if cap is not None:
            limit = cap * CHARS_PER_TOKEN
            overlong = reply.completion_tokens is not None and reply.completion_tokens > cap
            if len(text) > limit or overlong:
                text = text[:limit]
                finish = "length"
            completion = min(completion, cap)
        if text != reply.content or finish != reply.finish_reason:
            reply = replace(
                reply,
                content=text,
                finish_reason=finish,
                chunks=reply.chunks if text == reply.content else None,
                apply_stop=False,
            )
        usage = self._account_prompt(record, reply, text, completion)
        record.reply = text
        record.usage = usage
        record.finish_reason = finish
        record.status = 200
        if record.stream:
            self._stream(record, reply, usage=usage, truncate=False)
        else:
            self._pace(sum(self._durations(record, usage)) / 1e9)
            self._send(200, self._full_body(record, reply, usage))

    @staticmethod
    def _stop_sequences(record: RecordedRequest) -> list[str]:
        stops = record.body.get("stop") if record.api == "openai" else record.options.get("stop")
        if isinstance(stops, str):
            stops = [stops]
        return [s for s in stops if isinstance(s, str)] if isinstance(stops, list) else []

    def _account_prompt(
        self, record: RecordedRequest, reply: Reply, reply_text: str | None, completion: int
    ) -> Usage:
        """Fill the prompt counts of ``record`` (truncation first, then the prefix cache)."""
        fake = self.fake
        total = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else fake.prompt_tokens_for(record.messages)
        )
        if fake.max_prompt_tokens is not None:
            total = min(total, fake.max_prompt_tokens)
        cached, evaluated = fake._prompt_counts(record, total, reply_text)
        record.prompt_tokens_total = total
        record.prompt_tokens_cached = cached
        record.prompt_tokens_evaluated = evaluated
        return Usage(fake._reported_prompt_tokens(record.api, total, evaluated), completion)

    # ---- speed figures -----------------------------------------------------------------

    def _durations(self, record: RecordedRequest, usage: Usage) -> tuple[int, int, int]:
        """``(load, prompt evaluation, generation)`` in ns, from the server's speed settings."""
        fake = self.fake
        if record.api == "openai":
            load = 0
        else:
            load = fake.load_duration_ns if record.loaded else fake.warm_load_duration_ns
        evaluated = record.prompt_tokens_evaluated
        if evaluated is None:
            evaluated = usage.prompt_tokens
        return (
            load,
            _nanoseconds(evaluated, fake.prompt_tokens_per_second),
            _nanoseconds(usage.completion_tokens, fake.tokens_per_second),
        )

    def _pace(self, seconds: float) -> None:
        if self.fake.pace_generation and seconds > 0 and not self.fake._wait(seconds):
            raise _Disconnect

    # ---- bodies ------------------------------------------------------------------------

    def _openai_usage(self, record: RecordedRequest, usage: Usage) -> dict[str, Any]:
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": record.prompt_tokens_cached or 0},
        }

    def _timings(self, record: RecordedRequest, usage: Usage) -> dict[str, Any]:
        """llama.cpp server's ``timings`` object (``result_timings::to_json``)."""
        _, prompt_ns, eval_ns = self._durations(record, usage)
        prompt_n = record.prompt_tokens_evaluated
        if prompt_n is None:
            prompt_n = usage.prompt_tokens
        predicted_n = usage.completion_tokens
        prompt_ms = prompt_ns / 1e6
        predicted_ms = eval_ns / 1e6
        return {
            "cache_n": record.prompt_tokens_cached or 0,
            "prompt_n": prompt_n,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / prompt_n if prompt_n else 0.0,
            "prompt_per_second": 1e3 * prompt_n / prompt_ms if prompt_ms else 0.0,
            "predicted_n": predicted_n,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / predicted_n if predicted_n else 0.0,
            "predicted_per_second": 1e3 * predicted_n / predicted_ms if predicted_ms else 0.0,
        }

    def _full_body(self, record: RecordedRequest, reply: Reply, usage: Usage) -> dict[str, Any]:
        model = record.model or ""
        if record.api == "openai":
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.thinking is not None:
                message["reasoning_content"] = reply.thinking
            body = {
                "id": f"chatcmpl-fake{id(record):x}",
                "object": "chat.completion",
                "created": int(record.received_at),
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                "usage": self._openai_usage(record, usage),
            }
            if self.fake.openai_style == "llamacpp":
                body["timings"] = self._timings(record, usage)
            return body
        body = {"model": model, "created_at": _now_iso()}
        if record.path == "/api/generate":
            body["response"] = reply.content
            if reply.thinking is not None:
                body["thinking"] = reply.thinking
        else:
            message = {"role": "assistant", "content": reply.content}
            if reply.thinking is not None:
                message["thinking"] = reply.thinking
            body["message"] = message
        body.update(self._ollama_done_fields(record, reply, usage))
        return body

    def _ollama_done_fields(
        self, record: RecordedRequest, reply: Reply, usage: Usage
    ) -> dict[str, Any]:
        load, prompt_ns, eval_ns = self._durations(record, usage)
        fields: dict[str, Any] = {
            "done": True,
            "done_reason": reply.finish_reason,
            "total_duration": load + prompt_ns + eval_ns + 100_000,
            "load_duration": load,
            "prompt_eval_count": usage.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": usage.completion_tokens,
            "eval_duration": eval_ns,
        }
        if self.fake.report_cached_count:
            fields["prompt_eval_cached_count"] = record.prompt_tokens_cached or 0
        return fields

    # ---- streaming ---------------------------------------------------------------------

    def _ollama_line(
        self, record: RecordedRequest, content: str, thinking: str | None = None
    ) -> bytes:
        chunk: dict[str, Any] = {"model": record.model or "", "created_at": _now_iso()}
        if record.path == "/api/generate":
            chunk["response"] = content
            if thinking is not None:
                chunk["thinking"] = thinking
        else:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking is not None:
                message["thinking"] = thinking
            chunk["message"] = message
        chunk["done"] = False
        return (json.dumps(chunk) + "\n").encode()

    def _openai_event(
        self, record: RecordedRequest, choices: list[dict[str, Any]], **extra: Any
    ) -> bytes:
        chunk = {
            "id": f"chatcmpl-fake{id(record):x}",
            "object": "chat.completion.chunk",
            "created": int(record.received_at),
            "model": record.model or "",
            "system_fingerprint": "fp_fake",
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def _openai_delta(
        self,
        record: RecordedRequest,
        content: dict[str, Any],
        finish: str | None = None,
        **extra: Any,
    ) -> bytes:
        return self._openai_event(
            record, [{"index": 0, "delta": content, "finish_reason": finish}], **extra
        )

    def _stream(
        self, record: RecordedRequest, reply: Reply, usage: Usage | None, truncate: bool
    ) -> None:
        pieces = list(reply.chunks) if reply.chunks is not None else _split_words(reply.content)
        head = per_piece = 0.0
        if usage is not None:
            load, prompt_ns, eval_ns = self._durations(record, usage)
            head = (load + prompt_ns) / 1e9
            per_piece = eval_ns / 1e9 / max(len(pieces), 1)
        if record.api == "openai":
            self._stream_openai(record, reply, pieces, usage, truncate, head, per_piece)
        else:
            self._stream_ollama(record, reply, pieces, usage, truncate, head, per_piece)

    def _pause(self, reply: Reply, pace: float = 0.0) -> None:
        if reply.chunk_delay > 0 and not self.fake._wait(reply.chunk_delay):
            raise _Disconnect
        self._pace(pace)

    def _stream_ollama(
        self,
        record: RecordedRequest,
        reply: Reply,
        pieces: list[str],
        usage: Usage | None,
        truncate: bool,
        head: float,
        per_piece: float,
    ) -> None:
        self._start_chunked("application/x-ndjson")
        self._pace(head)
        if reply.thinking:
            self._chunk(self._ollama_line(record, "", reply.thinking))
        for piece in pieces:
            self._pause(reply, per_piece)
            self._chunk(self._ollama_line(record, piece))
        if truncate or usage is None:
            return
        final: dict[str, Any] = {"model": record.model or "", "created_at": _now_iso()}
        if record.path == "/api/generate":
            final["response"] = ""
        else:
            final["message"] = {"role": "assistant", "content": ""}
        final.update(self._ollama_done_fields(record, reply, usage))
        self._chunk((json.dumps(final) + "\n").encode())
        self._end_chunked()

    def _stream_openai(
        self,
        record: RecordedRequest,
        reply: Reply,
        pieces: list[str],
        usage: Usage | None,
        truncate: bool,
        head: float,
        per_piece: float,
    ) -> None:
        self._start_chunked("text/event-stream")
        self._pace(head)
        self._chunk(self._openai_delta(record, {"role": "assistant", "content": ""}))
        if reply.thinking:
            self._chunk(self._openai_delta(record, {"reasoning_content": reply.thinking}))
        for piece in pieces:
            self._pause(reply, per_piece)
            self._chunk(self._openai_delta(record, {"content": piece}))
        if truncate or usage is None:
            return
        extra: dict[str, Any] = {}
        if self.fake.openai_style == "llamacpp":
            extra["timings"] = self._timings(record, usage)
        self._chunk(self._openai_delta(record, {}, reply.finish_reason, **extra))
        stream_options = record.body.get("stream_options")
        if isinstance(stream_options, dict) and stream_options.get("include_usage"):
            self._chunk(
                self._openai_event(record, [], usage=self._openai_usage(record, usage), **extra)
            )
        self._chunk(b"data: [DONE]\n\n")
        self._end_chunked()

    # ---- endless generations -----------------------------------------------------------

    def _answer_endless(self, record: RecordedRequest, reply: Reply) -> None:
        """An uncapped :meth:`Reply.endless`: never completes; ends when the client leaves."""
        fake = self.fake
        self._account_prompt(record, reply, None, 0)
        with fake._lock:
            fake._open_generations += 1
        try:
            if record.stream:
                self._stream_endless(record, reply)
            else:
                self._hold(record)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            record.client_gone = True
            raise _Disconnect from None
        finally:
            with fake._lock:
                fake._open_generations -= 1

    def _hold(self, record: RecordedRequest) -> None:
        while True:
            if self._client_gone():
                record.client_gone = True
                raise _Disconnect
            if not self.fake._wait(_HOLD_POLL_SECONDS):
                raise _Disconnect

    def _stream_endless(self, record: RecordedRequest, reply: Reply) -> None:
        record.status = 200
        if record.api == "openai":
            self._start_chunked("text/event-stream")
            self._chunk(self._openai_delta(record, {"role": "assistant", "content": ""}))
            piece = self._openai_delta(record, {"content": reply.content})
        else:
            self._start_chunked("application/x-ndjson")
            piece = self._ollama_line(record, reply.content)
        delay = max(reply.chunk_delay, 0.001)
        while True:
            if self._client_gone():
                record.client_gone = True
                raise _Disconnect
            self._chunk(piece)
            self.wfile.flush()
            if not self.fake._wait(delay):
                raise _Disconnect

    def _client_gone(self) -> bool:
        """True once the client closed (or reset) its end of the connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


def _nanoseconds(count: int, per_second: float) -> int:
    return round(count * 1e9 / per_second) if per_second > 0 else 0
