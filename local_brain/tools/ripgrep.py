"""Finding and running the ripgrep binary safely.

* rg is resolved to an absolute path from absolute PATH entries outside the repository
  (then the interpreter's scripts directory, where the ``ripgrep`` wheel puts it): a
  committed ``rg`` never runs, even when PATH has an empty entry or ``.``.
* rg reads no ignore file itself (``NO_IGNORE_FLAGS``): a ``.gitignore`` can be a symlink
  to ``/dev/zero`` or a FIFO, and rg follows symlinks when it opens them. The rules are read
  by us, safely, and handed over with ``--ignore-file`` (see ``listing.py``).
* No shell, no user config (``--no-config``, no ``RIPGREP_*`` variables), a wall-clock
  deadline, its own process group killed on timeout, and an address-space limit
  (``run_bounded``, which also runs the Python search engine's worker).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from local_brain.fsguard import find_program

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

RG_MEMORY_LIMIT_BYTES = 2 * 1024**3
# rg opens no .gitignore/.ignore/.rgignore, no .git/info/exclude, no global excludes file
# and nothing above the search path. ``--ignore-file`` is still honoured.
NO_IGNORE_FLAGS = (
    "--no-ignore-dot",
    "--no-ignore-vcs",
    "--no-ignore-exclude",
    "--no-ignore-global",
    "--no-ignore-parent",
)
_STDERR_KEPT = 8192


class DeadlinePassed(Exception):
    """rg (killed with its process group) or a tree walk ran past its deadline."""


@dataclass(frozen=True)
class RgRun:
    returncode: int
    stdout: bytes
    stderr: str  # the start of it, decoded


def find_rg(root: Path | None = None) -> str | None:
    """An absolute path to ``rg``, never one inside ``root`` (the repository).

    Absolute PATH entries come first, then the running interpreter's scripts directory
    (the ``ripgrep`` wheel installs rg there), which is trusted even inside ``root``. Empty
    and relative PATH entries are skipped.
    """
    resolved = Path(root).resolve() if root is not None else None
    return _find_rg(resolved, os.environ.get("PATH", ""))


@lru_cache(maxsize=64)
def _find_rg(root: Path | None, path_variable: str) -> str | None:
    # ``path_variable`` is part of the cache key only: find_program reads PATH itself.
    # The ripgrep wheel puts rg beside our own interpreter: trusted even in a virtual
    # environment inside the repository (a hostile rg there means a hostile python too).
    scripts = (sysconfig.get_path("scripts"), str(Path(sys.executable).parent))
    trusted = tuple(dict.fromkeys(directory for directory in scripts if directory))
    names = ("rg.exe", "rg") if os.name == "nt" else ("rg",)
    for name in names:
        found = find_program(name, root, trusted_dirs=trusted)
        if found is not None:
            return found
    return None


def rg_environment() -> dict[str, str]:
    """The environment for rg: ours, minus anything that could add options."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RIPGREP_")}
    env["LC_ALL"] = env.get("LC_ALL", "C.UTF-8")
    return env


def rg_base_command(rg: str) -> list[str]:
    """Options every rg run starts with: no config, hidden files, no ignore files read."""
    return [rg, "--no-config", "--hidden", *NO_IGNORE_FLAGS, "--color", "never"]


def run_rg(
    command: list[str], cwd: Path, timeout: float, input_bytes: bytes | None = None
) -> RgRun:
    """Run rg (see ``run_bounded``) in the environment of ``rg_environment``."""
    return run_bounded(command, cwd, timeout, env=rg_environment(), input_bytes=input_bytes)


def run_bounded(
    command: list[str],
    cwd: Path,
    timeout: float,
    *,
    env: dict[str, str],
    input_bytes: bytes | None = None,
) -> RgRun:
    """Run a helper with a deadline, in its own process group, under an address-space
    limit (``RG_MEMORY_LIMIT_BYTES``). Raises ``DeadlinePassed`` when the deadline passes,
    after killing the whole group. Used for rg and for the Python search worker.
    """
    if timeout <= 0:
        raise DeadlinePassed
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, so the kill reaches every thread
        preexec_fn=_limit_memory if resource is not None else None,
    )
    try:
        stdout, stderr = process.communicate(input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        raise DeadlinePassed from None
    except BaseException:
        _kill_group(process)
        process.wait()
        raise
    text = stderr[:_STDERR_KEPT].decode("utf-8", errors="replace")
    return RgRun(process.returncode, stdout, text)


def _limit_memory() -> None:  # runs in the child between fork and exec
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = RG_MEMORY_LIMIT_BYTES
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "nt":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
