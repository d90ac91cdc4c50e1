"""One git child process: its own session, a memory limit, a deadline, bounded output,
and fixed one-line messages instead of anything git wrote to stderr."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from local_brain.errors import ToolError
from local_brain.tools.git.messages import (
    DUBIOUS_OWNERSHIP,
    GIT_MISSING,
    NO_COMMITS,
    NOT_A_REPO,
    DubiousOwnership,
)

# A tool call is one step of model-written code (step_timeout defaults to 30 s): a git
# command that has not finished in 20 s is stuck on something hostile (a FIFO .gitignore,
# a pathological regex), and failing it leaves the step time to report that.
GIT_TIMEOUT_S = 20.0
# Address space for one git child. Packs are mapped in windows (core.packedGit* in
# runner.py keep that under 1 GiB), a diff
# holds two blobs (files over core.bigFileThreshold, 512 MiB, are treated as binary);
# 2 GiB leaves room for that and stops a symlink to /dev/zero or a huge ref file early.
GIT_MEMORY_BYTES = 2 * 1024**3
MAX_READ_BYTES = 4 * 1024 * 1024  # cap on any git output read whole
LINE_BYTES = 64 * 1024  # one output line is read at most this far (longer lines are cut)
_STDERR_BYTES = 4096


# -- failures -------------------------------------------------------------------------------

# git's stderr quotes repository content (the first line of a `packed-refs` that is really
# some other file, a bad ref name, a config line), so it is never passed on: a failure is
# recognised by these fragments and reported with a fixed message, or generically.
_KNOWN_FAILURES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("out of memory", "cannot allocate memory", "mmap failed"), "out of memory"),
    (("ambiguous argument",), "ambiguous argument (name a branch, tag or commit)"),
    (
        ("unknown revision", "bad revision", "invalid object name", "not a valid object name"),
        "unknown revision",
    ),
    (("outside repository", "beyond a symbolic link"), "path is outside the repository"),
    (("did not match any file", "pathspec"), "path not in the repository"),
    (
        ("repositoryformatversion", "repository extension", "unknown extension"),
        "this repository needs a newer git (unknown format or extension)",
    ),
    (("bad config", "config file", "config value"), "the repository's git config is invalid"),
    (("index file", "bad index", "index uses", "index entry"), "the repository's index is corrupt"),
    (
        ("packed-refs", "bad ref", "refname", "broken ref", "reference", "ref "),
        "the repository's refs are corrupt",
    ),
    (
        ("bad object", "loose object", "packfile", "pack-", "corrupt", "inflate", "missing"),
        "the repository's objects are corrupt or incomplete",
    ),
    (("permission denied",), "permission denied reading the repository"),
)


def failure(name: str, stderr: str, code: int) -> ToolError:
    """The one-line error for a failed git command; never any text git printed."""
    lowered = stderr.lower()
    if "not a git repository" in lowered:
        return ToolError(NOT_A_REPO)
    if "dubious ownership" in lowered:
        return DubiousOwnership(DUBIOUS_OWNERSHIP)
    if "does not have any commits yet" in lowered or "bad default revision" in lowered:
        return ToolError(NO_COMMITS)
    for fragments, message in _KNOWN_FAILURES:
        if any(fragment in lowered for fragment in fragments):
            return ToolError(f"git {name} failed: {message}")
    return ToolError(f"git {name} failed (exit {code})")


# -- one git process ----------------------------------------------------------------------


def _limit_child() -> None:  # pragma: no cover - runs in the forked child before exec
    """Memory and core-dump limits for a git child (start_new_session gives it its own
    session and process group first). Kept to plain calls on modules imported already: it
    runs between fork and exec."""
    for limit, value in ((resource.RLIMIT_AS, GIT_MEMORY_BYTES), (resource.RLIMIT_CORE, 0)):
        with contextlib.suppress(ValueError, OSError):  # a lower hard limit stays
            resource.setrlimit(limit, (value, value))


_Closing = TypeVar("_Closing", bound="ClosedOnExit")


class ClosedOnExit:
    """``with`` support for a holder of processes or files: leaving the block calls
    ``close()``, whatever ended it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Closing) -> _Closing:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class Process(ClosedOnExit):
    """One running git command: stdout piped, stderr spooled to a file, under a deadline."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            self._proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                start_new_session=True,
                preexec_fn=_limit_child,
            )
        except FileNotFoundError:
            self._stderr.close()
            raise ToolError(GIT_MISSING) from None
        except OSError:
            self._stderr.close()
            raise
        assert self._proc.stdout is not None
        self._stdout = self._proc.stdout
        self.timed_out = False
        self.stopped = False
        self._timer = threading.Timer(GIT_TIMEOUT_S, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.timed_out = True
        self._kill()

    def _kill(self) -> None:
        """Kill git and anything it started (its own process group), unless already reaped
        (then its id may belong to someone else)."""
        if self._proc.returncode is not None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._proc.kill()

    def stop(self) -> None:
        """We have read enough: end the command (its exit status no longer matters)."""
        self.stopped = True
        self._kill()

    def read(self, limit: int) -> tuple[bytes, bool]:
        data = self._stdout.read(limit + 1)
        if len(data) > limit:
            self.stop()
            return data[:limit], True
        return data, False

    def lines(self) -> Iterator[str]:
        """Decoded output lines without line ends; over-long lines are cut while reading."""
        while True:
            raw = self._stdout.readline(LINE_BYTES)
            if not raw:
                return
            if len(raw) == LINE_BYTES and not raw.endswith(b"\n"):
                while True:
                    rest = self._stdout.readline(LINE_BYTES)
                    if not rest or rest.endswith(b"\n"):
                        break
            yield raw.decode("utf-8", errors="replace").rstrip("\r\n")

    def finish(self, name: str, ok: tuple[int, ...] = (0,)) -> int:
        """Wait for the command; raise a one-line ToolError unless it ended in ``ok``."""
        self._stdout.close()
        code = self._proc.wait()
        self._timer.cancel()
        if self.timed_out:
            raise ToolError(f"git {name} timed out after {GIT_TIMEOUT_S:.0f}s")
        if self.stopped or code in ok:
            return code
        if code < 0:
            raise ToolError(f"git {name} crashed (signal {-code})")
        raise failure(name, self.stderr_text(), code)

    def stderr_text(self) -> str:
        """What git wrote to stderr (the first few KB), for matching only: never shown."""
        self._stderr.seek(0)
        return self._stderr.read(_STDERR_BYTES).decode("utf-8", errors="replace")

    def close(self) -> None:
        self._timer.cancel()
        if self._proc.poll() is None:
            self._kill()
        self._stdout.close()
        self._proc.wait()
        self._stderr.close()
