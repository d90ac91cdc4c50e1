"""`--transcript FILE`: the run as JSON Lines, for inspecting and replaying CI runs.

Events are kept in memory and the file is written once, atomically, when the run ends
(answered, failed or interrupted), so a reader never sees half a transcript and nothing is
written inside the repository while it is being checked for modifications.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from local_brain import __version__
from local_brain.errors import UsageError
from local_brain.events import Event
from local_brain.fsguard import find_program

MAX_TEXT_CHARS = 4_000
MAX_FINGERPRINT_FILES = 200_000


class Transcript:
    """An event sink that records every event with a timestamp.

    The temporary file the transcript is written to is created at once, so a place that
    refuses new files fails before the run (:class:`UsageError`), not after it. If writing
    still fails at the end, ``finish`` says so on stderr and keeps the reason in ``error``:
    the run's answer matters more than its transcript.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self.error: str | None = None
        directory = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise UsageError(f"--transcript {path}: is a directory, not a file")
        try:
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        except OSError as error:
            raise UsageError(
                f"--transcript {path}: cannot create a file in {directory} "
                f"({error.strerror or error})",
                hint="choose a directory you can write to",
            ) from None
        os.close(handle)
        self._temporary = Path(temporary)

    def start(self, *, task: str, root: Path, mode: str, models: dict[str, str | None]) -> None:
        self.fingerprint_before = repo_fingerprint(root)
        self.root = root
        self._write(
            "run_start",
            version=__version__,
            task=_shorten(task),
            root=str(root),
            mode=mode,
            models=models,
            repository=self.fingerprint_before,
        )

    def __call__(self, event: Event) -> None:
        name = _snake_case(type(event).__name__)
        fields = {key: _shorten(value) for key, value in dataclasses.asdict(event).items()}
        self._write(name, **fields)

    def finish(self, *, exit_code: int, answer: str | None = None, **details: Any) -> None:
        """Record the outcome and the repository check, then write the file atomically."""
        if answer is not None:
            self._write("final_answer", answer=answer, **details)
        else:
            self._write("error", **details)
        after = repo_fingerprint(self.root)
        self._write(
            "run_end",
            exit_code=exit_code,
            repository_unmodified=after == self.fingerprint_before,
            repository=after,
        )
        text = "".join(json.dumps(r, default=str) + "\n" for r in self.records)
        try:
            self._temporary.write_text(text, encoding="utf-8")
            os.replace(self._temporary, self.path)
        except OSError as error:
            self._temporary.unlink(missing_ok=True)
            self.error = f"{error.strerror or error}"
            from local_brain.render import print_notice

            print_notice(
                f"warning: the transcript could not be written to {self.path}: {self.error}"
            )

    def _write(self, event: str, **fields: Any) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.records.append({"event": event, "time": stamp, "t": time.monotonic(), **fields})


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def repo_fingerprint(root: Path) -> dict[str, Any]:
    """A digest of the tree's file names, sizes and modification times (``.git`` aside),
    plus the checked-out commit: equal before and after means nothing was modified."""
    digest = hashlib.sha256()
    count = 0
    for current, directories, files in os.walk(root):
        directories[:] = sorted(d for d in directories if d != ".git")
        for name in sorted(files):
            full = os.path.join(current, name)
            try:
                stat = os.lstat(full)
            except OSError:
                continue
            digest.update(
                f"{os.path.relpath(full, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
            count += 1
            if count > MAX_FINGERPRINT_FILES:
                return {"files": count, "digest": None, "head": _head(root)}
    return {"files": count, "digest": digest.hexdigest(), "head": _head(root)}


def _head(root: Path) -> str | None:
    git = find_program("git", root)  # never a git committed in the repository
    if git is None:
        return None
    try:
        completed = subprocess.run(
            [git, "-c", "core.fsmonitor=false", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() or None


def _snake_case(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        return value[:MAX_TEXT_CHARS] + f"…[{len(value) - MAX_TEXT_CHARS} more chars]"
    return value
