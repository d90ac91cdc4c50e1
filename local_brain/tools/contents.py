"""Opening repository files for their contents: regular files only, and never blocking.

A hostile repository (or archive) can hold a FIFO named ``notes.py``, a device node, or a
symlink to either; a plain ``open()`` of a FIFO waits forever for a writer. Every tool that
reads a file's contents goes through ``open_regular``: the path must be a regular file
before it is opened, the open itself cannot block (``O_NONBLOCK``) or follow a symlink
swapped in since the check (``O_NOFOLLOW``), and ``fstat`` on the open descriptor confirms
it is still a regular file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.fsguard import NotRegularFileError, is_regular, open_regular

__all__ = ["NotRegularFileError", "is_regular", "open_regular"]

BINARY_SNIFF_BYTES = 8192


def file_kind(path: Path) -> str:
    """A short name for what ``path`` is: "file", "directory", "FIFO", "device"…"""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return "missing"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def read_head(path: Path, size: int = BINARY_SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of a regular file (``NotRegularFileError`` otherwise)."""
    with open_regular(path) as handle:
        return handle.read(size)


def is_binary_file(path: Path) -> bool:
    """True when a regular file's first few KiB hold a NUL byte.

    Raises ``NotRegularFileError`` for FIFOs, devices and the like, and ``OSError`` when the
    file cannot be read, so a caller never mistakes either for a text file.
    """
    return b"\x00" in read_head(path)


def require_regular(path: Path, shown: str) -> None:
    """Refuse, as a short tool error, to read anything but a regular file."""
    kind = file_kind(path)
    if kind == "directory":
        raise ToolError(f"{shown} is a directory")
    if kind != "file":
        raise ToolError(f"{shown} is not a regular file ({kind}); it is not read")
