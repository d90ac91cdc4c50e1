"""The MCP server's ``ask`` in flight: progress, log messages, cancellation and shutdown.

The run is synchronous (``RunSession.run`` in a worker thread); its events arrive on that
thread (and on tool threads), are queued by :class:`ProgressReporter`, and go out from the
server's event loop as ``notifications/progress`` against the client's ``progressToken``
(step, tool calls, tokens; a heartbeat while a model request is in flight, so a client that
resets its timeout on progress never gives up on a working model) and, for warnings, as
MCP log messages. The client's ``notifications/cancelled`` cancels the request's task: the
run's :class:`~local_brain.cancel.CancelToken` is cancelled and the worker thread is
abandoned, never waited for. :class:`Lifecycle` knows every run still going, so that the
server can cancel them and exit within seconds when stdin closes or on SIGINT/SIGTERM.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from local_brain.cancel import CancelToken
from local_brain.events import (
    ContainmentReduced,
    ContextTruncated,
    Delegated,
    Event,
    FallbackNotice,
    ModelCallFinished,
    ModelCallStarted,
    ReplyCut,
    StepFinished,
    ToolCalled,
)

HEARTBEAT_S = 10.0  # progress at least this often while a run works
POLL_S = 0.2  # how often queued progress is sent
SHUTDOWN_GRACE_S = 2.0  # runs cancelled at shutdown get this long to stop before the exit
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
LOGGER = "local-brain"

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    message: str


@dataclass(frozen=True)
class LogMessage:
    level: str
    text: str


class ProgressReporter:
    """An event sink (called on any thread) that keeps the run's counts and queues what to
    tell the client; the event loop takes it with :meth:`drain`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._queue: queue.SimpleQueue[Progress | LogMessage] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.steps = 0
        self.tool_calls = 0
        self.tokens = 0
        self._waiting: tuple[str, float] | None = None  # (model, since) while a request runs
        self.started = clock()

    def __call__(self, event: Event) -> None:
        message = self._describe(event)
        if message is not None:
            self._queue.put(message)

    def _describe(self, event: Event) -> Progress | LogMessage | None:
        from local_brain.render import warning_text

        with self._lock:
            if isinstance(event, ModelCallStarted):
                self._waiting = (event.model, self._clock())
                return Progress(self._line(f"{event.agent}: asking {event.model}"))
            if isinstance(event, ModelCallFinished):
                self._waiting = None
                self.tokens += event.prompt_tokens + event.completion_tokens
                what = "failed" if event.error else "answered"
                return Progress(self._line(f"{event.agent}: {event.model} {what}"))
            if isinstance(event, ToolCalled):
                self.tool_calls += 1
                return Progress(self._line(f"tool {event.tool}"))
            if isinstance(event, StepFinished):
                self.steps += 1
                return Progress(self._line(f"{event.agent}: step {event.step} done"))
            if isinstance(event, Delegated):
                return Progress(self._line(f"delegated to {event.helper}"))
        if isinstance(event, ContainmentReduced | ContextTruncated | ReplyCut):
            return LogMessage("warning", warning_text(event))
        if isinstance(event, FallbackNotice):
            text = f"model {event.failed} failed ({event.reason}); {event.took_over} took over"
            return LogMessage("warning", " ".join(text.split()))
        return None

    def _line(self, doing: str) -> str:
        return f"{doing} ({self.steps} steps, {self.tool_calls} tool calls, {self.tokens} tokens)"

    def heartbeat(self) -> str:
        """What the run is doing now, for a progress notification when nothing happened."""
        with self._lock:
            now = self._clock()
            if self._waiting is not None:
                model, since = self._waiting
                return self._line(f"waiting for {model} ({now - since:.0f} s)")
            return self._line(f"working ({now - self.started:.0f} s)")

    def drain(self) -> list[Progress | LogMessage]:
        items: list[Progress | LogMessage] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items


class Lifecycle:
    """The runs a server has going (each a CancelToken until its worker thread ends), the
    log level the client asked for, and the shutdown that cancels the runs and exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._runs: set[CancelToken] = set()
        self.log_level = "info"
        self.shutting_down = threading.Event()

    @contextmanager
    def running(self, token: CancelToken) -> Iterator[None]:
        """Held by the worker thread for the whole run."""
        with self._lock:
            self._runs.add(token)
        if self.shutting_down.is_set():
            token.cancel("cancelled: the server is shutting down")
        try:
            yield
        finally:
            with self._lock:
                self._runs.discard(token)
                self._idle.notify_all()

    def cancel_all(self, reason: str) -> None:
        self.shutting_down.set()
        with self._lock:
            runs = list(self._runs)
        for token in runs:
            token.cancel(reason)

    def wait_idle(self, timeout: float) -> bool:
        """Whether every run ended within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._runs:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def wants(self, level: str) -> bool:
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.log_level)

    # -- shutdown ---------------------------------------------------------------------

    def serve(self, run: Callable[[], None]) -> None:
        """Run the server (``run`` returns when stdin closes); SIGINT and SIGTERM end it
        too. Either way the runs still going are cancelled, and the process exits at the
        latest :data:`SHUTDOWN_GRACE_S` later without waiting for their threads."""
        previous = {}
        if threading.current_thread() is threading.main_thread():  # only it may set them
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.cancel_all("cancelled: the server is shutting down")
            if not self.wait_idle(SHUTDOWN_GRACE_S):
                _exit_now(0)  # a run's thread is stuck (a model that never answers)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Cancel every run and exit from a helper thread: the event loop may be blocked on
        reading stdin (in a worker thread it cannot interrupt), so it is not asked to stop."""
        self.cancel_all("cancelled: the server is shutting down")
        threading.Thread(
            target=self._exit_after_grace,
            args=(128 + signum,),
            name="local-brain-shutdown",
            daemon=True,
        ).start()

    def _exit_after_grace(self, status: int) -> None:
        self.wait_idle(SHUTDOWN_GRACE_S)
        _exit_now(status)


def _exit_now(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


async def run_reported(
    function: Callable[[], T],
    token: CancelToken,
    ctx: Any,
    reporter: ProgressReporter,
    lifecycle: Lifecycle | None,
    heartbeat_s: float = HEARTBEAT_S,
) -> T:
    """``function()`` in a worker thread, its progress sent to the client meanwhile. A
    cancelled request cancels ``token`` and returns at once: the thread is abandoned and
    stops at its next check."""
    import anyio

    sender = _Sender(ctx, lifecycle)

    def work() -> tuple[bool, Any]:
        """(True, the result) or (False, the exception): raised outside the task group, so
        that it comes out as itself, not in an exception group."""
        try:
            if lifecycle is None:
                return True, function()
            with lifecycle.running(token):
                return True, function()
        except BaseException as error:
            return False, error

    async def pump() -> None:
        last = time.monotonic()
        while True:
            await anyio.sleep(POLL_S)
            for item in reporter.drain():
                if isinstance(item, Progress):
                    await sender.progress(item.message)
                    last = time.monotonic()
                else:
                    await sender.log(item.level, item.text)
            if time.monotonic() - last >= heartbeat_s:
                await sender.progress(reporter.heartbeat())
                last = time.monotonic()

    async with anyio.create_task_group() as group:
        group.start_soon(pump)
        try:
            ok, outcome = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            token.cancel("cancelled by the client")
            raise
        finally:
            group.cancel_scope.cancel()
    if not ok:
        raise outcome
    return outcome


class _Sender:
    """Progress notifications and log messages for one request; a client that cannot take
    them (no request context, a closed stream) gets none, and the run goes on."""

    def __init__(self, ctx: Any, lifecycle: Lifecycle | None) -> None:
        self.ctx = ctx
        self.lifecycle = lifecycle
        self.count = 0
        self.broken = ctx is None

    async def progress(self, message: str) -> None:
        if self.broken:
            return
        self.count += 1  # progress must increase with every notification
        try:
            await self.ctx.report_progress(self.count, None, message)
        except Exception:
            self.broken = True

    async def log(self, level: str, text: str) -> None:
        if self.broken or (self.lifecycle is not None and not self.lifecycle.wants(level)):
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "deprecated as of 2026-07-28": still used
                await self.ctx.log(level, text, logger_name=LOGGER)
        except Exception:
            self.broken = True


def install_logging(server: Any, lifecycle: Lifecycle) -> None:
    """Answer ``logging/setLevel`` (so ``initialize`` advertises the logging capability) and
    keep the level the client asked for."""
    import mcp.types as types

    async def set_level(ctx: Any, params: Any) -> Any:
        lifecycle.log_level = str(params.level)
        return types.EmptyResult()

    server._lowlevel_server.add_request_handler(
        "logging/setLevel", types.SetLevelRequestParams, set_level
    )
