"""Finding and running the ripgrep binary safely (no shell, no user config, bounded time)."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def find_rg() -> str | None:
    """The path of an `rg` binary: on PATH, else beside the running interpreter (the
    `ripgrep` wheel installs it into the environment's scripts directory)."""
    found = shutil.which("rg")
    if found:
        return found
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        for name in ("rg", "rg.exe"):
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def rg_environment() -> dict[str, str]:
    """The environment for rg: ours, minus anything that could add options."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RIPGREP_")}
    env["LC_ALL"] = env.get("LC_ALL", "C.UTF-8")
    return env
