"""Cancelling a run: a token carried from the MCP request (or Ctrl-C, or the server's
shutdown) into the run.

After :meth:`CancelToken.cancel` no model request and no tool call starts: the routed
models' client (:class:`GuardedClient`), the tool wrapper and the agent's step loop check
the token first and raise :class:`Cancelled`. What is already under way is stopped through
the callbacks registered with :meth:`CancelToken.on_cancel`: a streamed model request has its
socket shut down (the server sees the client go and stops generating), the sandbox child of
a running step is killed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any

from local_brain.errors import ExitStatus, LocalBrainError


class Cancelled(LocalBrainError):
    """The run was cancelled (by the MCP client, Ctrl-C, or the server shutting down)."""

    exit_status = ExitStatus.INTERRUPTED


class CancelToken:
    """A one-way switch shared by everything a run starts; safe to use from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason = "cancelled"
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next_id = 0

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel (once; later calls do nothing) and run the registered callbacks."""
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            callbacks, self._callbacks = list(self._callbacks.values()), {}
        for callback in callbacks:
            with contextlib.suppress(Exception):  # stopping one thing must not stop the rest
                callback()

    def check(self) -> None:
        """Raise :class:`Cancelled` when the run was cancelled."""
        if self._event.is_set():
            raise Cancelled(self._reason)

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the token is cancelled (at once if it already is); returns
        the function that unregisters it."""
        with self._lock:
            if not self._event.is_set():
                key = self._next_id
                self._next_id += 1
                self._callbacks[key] = callback
                return lambda: self._forget(key)
        with contextlib.suppress(Exception):
            callback()
        return lambda: None

    def _forget(self, key: int) -> None:
        with self._lock:
            self._callbacks.pop(key, None)


# httpcore's trace events when a new connection is up (its stream is the return value)
CONNECTED_EVENTS = ("connection.connect_tcp.complete", "connection.connect_unix_socket.complete")


class GuardedClient:
    """A routed model's client (the litellm Router) that starts no request after a cancel,
    and abandons a streamed one under way: the connection of a streamed request (made
    through the ``client=`` HTTP handler that ``models/streaming`` passes) is remembered
    from the moment it is up, and a cancel shuts its socket down, answered or not, which
    wakes the thread waiting on it and tells the server to stop. Anything else is the
    Router's own."""

    def __init__(self, router: Any, token: CancelToken) -> None:
        self._router = router
        self._token = token

    def completion(self, *args: Any, **kwargs: Any) -> Any:
        self._token.check()
        http = kwargs.get("client")
        hooks = getattr(getattr(http, "client", None), "event_hooks", None)
        if isinstance(hooks, dict):
            on_request, on_response = _socket_watch(self._token)
            for name, hook in (("request", on_request), ("response", on_response)):
                if isinstance(hooks.get(name), list):
                    hooks[name].append(hook)
        return self._router.completion(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)


def _socket_watch(token: CancelToken) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
    """httpx request and response hooks that have ``token`` shut the request's socket when
    it is cancelled: found when the connection is up (httpcore's ``trace``), else on the
    response. They hold the token only, and the token holds the socket by weak reference:
    litellm may keep a finished response (and its client's hooks) a while, never the run."""

    def remember(stream: Any) -> None:
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        ref = weakref.ref(sock)

        def shut() -> None:
            alive = ref()
            if alive is not None:
                with contextlib.suppress(OSError):
                    alive.shutdown(socket.SHUT_RDWR)

        token.on_cancel(shut)

    def on_request(request: Any) -> None:
        earlier = request.extensions.get("trace")

        def trace(event: str, info: dict[str, Any]) -> None:
            if earlier is not None:
                earlier(event, info)
            if event in CONNECTED_EVENTS:
                remember(info.get("return_value"))

        request.extensions["trace"] = trace

    def on_response(response: Any) -> None:
        remember((getattr(response, "extensions", None) or {}).get("network_stream"))

    return on_request, on_response
