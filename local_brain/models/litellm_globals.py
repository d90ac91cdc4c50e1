"""litellm's module globals, borrowed by each Routing and given back when it closes.

litellm keeps callbacks and settings as module attributes (design.md pitfall 23); a
long-lived process (``local-brain mcp``) runs one Routing after another, sometimes several
at once. Each global is set by the first Routing that needs it and restored by the last
one to let go, so runs neither see each other's leftovers nor pull a setting from under a
run still going.
"""

from __future__ import annotations

import threading
from collections import Counter
from types import ModuleType
from typing import Any

_MISSING = object()


class SharedCallbacks:
    """Callbacks (those named in ``litellm_settings``, and our raw-response tap) in litellm's
    global lists while at least one Routing uses them: attached by the first, detached by
    the last, never twice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: Counter[tuple[str, str]] = Counter()

    def acquire(self, litellm: ModuleType, callbacks: list[tuple[str, Any]]) -> None:
        with self._lock:
            for key, callback in callbacks:
                if self._users[(key, str(callback))] == 0:
                    setattr(litellm, key, [*(getattr(litellm, key, None) or []), callback])
                self._users[(key, str(callback))] += 1

    def release(self, litellm: ModuleType, callbacks: list[tuple[str, Any]]) -> None:
        with self._lock:
            for key, callback in callbacks:
                self._users[(key, str(callback))] -= 1
                if self._users[(key, str(callback))] > 0:
                    continue
                del self._users[(key, str(callback))]
                current = list(getattr(litellm, key, None) or [])
                if callback in current:
                    current.remove(callback)
                    setattr(litellm, key, current)


class SharedSettings:
    """Module attributes from ``litellm_settings`` (``drop_params``, ``request_timeout``,
    ...): the value before the first user is put back after the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: Counter[str] = Counter()
        self._original: dict[str, Any] = {}

    def acquire(self, litellm: ModuleType, key: str, value: Any) -> None:
        with self._lock:
            if self._users[key] == 0:
                self._original[key] = getattr(litellm, key, _MISSING)
            self._users[key] += 1
            setattr(litellm, key, value)

    def release(self, litellm: ModuleType, key: str) -> None:
        with self._lock:
            self._users[key] -= 1
            if self._users[key] > 0:
                return
            del self._users[key]
            original = self._original.pop(key, _MISSING)
            if original is _MISSING:
                if hasattr(litellm, key):
                    delattr(litellm, key)
            else:
                setattr(litellm, key, original)


shared_callbacks = SharedCallbacks()
shared_settings = SharedSettings()
