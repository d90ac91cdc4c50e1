"""Leaving the process: Ctrl-C always ends it promptly, a reader that leaves early is fine.

Ctrl-C: the first SIGINT raises KeyboardInterrupt as usual, so the run unwinds and the
transcript is written; but library threads may still be blocked on the abandoned model
request, and cleanup code may wait on them (or on a lock one of them holds). So the process
never waits for a normal interpreter shutdown after an interrupt (``leave_interrupted``
ends it with ``os._exit``), and a watchdog armed by the first SIGINT ends it after
``GRACE_S`` whatever the main thread is doing (a KeyboardInterrupt raised inside a finalizer
is dropped by Python, for one). A second Ctrl-C ends it at once.

A closed pipe (``local-brain tools | head -1``): the reader has what it wanted. Standard
output is pointed at /dev/null so that nothing (Click, rich, the flush at exit) fails on
it again, and the exit status is 0.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

GRACE_S = 10.0
INTERRUPTED_STATUS = 130
INTERRUPTED_LINE = "local-brain: error: interrupted\n"


class ReaderLeft(Exception):
    """Standard output is a pipe whose reader has gone."""


def is_closed_pipe(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.EPIPE, errno.ESHUTDOWN)


class InterruptGuard:
    """SIGINT handling for one ``main`` call: installed by ``__enter__`` when SIGINT has
    Python's default handler (left alone when it is ignored, as in a background job, or
    set by an embedding program), restored by ``__exit__``."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self.interrupted = threading.Event()
        self.reported = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is not threading.main_thread():
            return self
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, _signum: int, _frame: object) -> None:
        if self.interrupted.is_set():  # a second Ctrl-C: no more waiting
            self.force_exit()
        self.interrupted.set()
        watchdog = threading.Timer(self.grace_s, self.force_exit)
        watchdog.daemon = True
        watchdog.start()
        raise KeyboardInterrupt

    def force_exit(self) -> NoReturn:
        """End the process now with the interrupted status (the error line once)."""
        if not self.reported.is_set():
            self.reported.set()
            _write_stderr(INTERRUPTED_LINE)
        os._exit(INTERRUPTED_STATUS)


def leave_interrupted(report: Callable[[], None], guard: InterruptGuard) -> NoReturn:
    """Report the interrupt (once), then end the process without waiting for library
    threads still blocked on an abandoned model request."""
    if not guard.reported.is_set():
        guard.reported.set()
        try:
            report()
        except SystemExit:
            pass
        except OSError:  # stdout or stderr gone: nothing more to say
            pass
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(INTERRUPTED_STATUS)


def reader_left() -> NoReturn:
    """The reader of stdout went away: not an error. Point stdout at /dev/null so the
    flush at exit does not fail again, and exit 0."""
    silence_stdout()
    sys.exit(0)


def flush_stdout() -> None:
    """Flush stdout before exiting; a reader that left early is not an error."""
    try:
        sys.stdout.flush()
    except OSError as error:
        if not is_closed_pipe(error):
            raise
        reader_left()


def silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null (its reader is gone)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests): nothing to do
        pass


def _write_stderr(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, text.encode())
