"""litellm's own logging kept off stderr while a run uses it.

litellm's loggers ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy") have their own stderr
handlers: a failed route prints "LiteLLM Router:ERROR ..." and a "Debug Information:" dump of
its cooldown internals before our one-line error. While at least one run is under way a
filter on those loggers drops their records, or under ``-v`` prints the first line of each
(warnings and worse) as ``local-brain: litellm: ...``. The last run to finish takes the
filter off; runs may overlap (``local-brain mcp``). A filter, not a handler swap: litellm may
be imported (and add its handler) after the run began.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOGGER_NAMES = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "LiteLLM Proxy.stdout")


class _Silencer(logging.Filter):
    """A filter on litellm's loggers (it holds whatever handlers litellm adds, even after
    it is attached): drops every record, or under -v writes one short line per warning or
    error instead of litellm's own output."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose and record.levelno >= logging.WARNING:
            try:
                from local_brain.models.failures import distill

                text = distill(record.getMessage().split("\n", 1)[0], limit=300)
                sys.stderr.write(f"local-brain: litellm: {record.levelname.lower()}: {text}\n")
            except Exception:  # logging must never break a run
                pass
        return False


class QuietLitellm:
    """Reference-counted: the first run attaches the filter, the last takes it off."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self.silencer: _Silencer | None = None

    def acquire(self, verbose: bool = False) -> None:
        with self._lock:
            self._users += 1
            if self.silencer is not None:
                self.silencer.verbose = self.silencer.verbose or verbose  # -v from any run
                return
            self.silencer = _Silencer(verbose)
            for name in LOGGER_NAMES:
                logging.getLogger(name).addFilter(self.silencer)

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self.silencer is None:
                return
            self._users = 0
            for name in LOGGER_NAMES:
                logging.getLogger(name).removeFilter(self.silencer)
            self.silencer = None

    @property
    def active(self) -> bool:
        return self._users > 0


quiet = QuietLitellm()


@contextmanager
def quiet_litellm(verbose: bool = False) -> Iterator[Any]:
    """litellm's log lines off stderr for the block (one short line each under -v)."""
    quiet.acquire(verbose)
    try:
        yield quiet
    finally:
        quiet.release()
