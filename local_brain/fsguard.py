"""Opening files and finding programs in a hostile repository.

A cloned repository decides what its files are: a `.gitignore` can be a symlink to
`/dev/zero`, a FIFO that blocks, or a 4 GB file; a committed `git` or `rg` runs when PATH
has an empty or relative entry. Every file our tools open for their own use (ignore files,
git internals) goes through ``read_regular``; every helper program is found by
``find_program``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


class UnsafeFileError(OSError):
    """The file is not a regular file we may read (symlink, device, FIFO, too large)."""


# The flags every read of a repository file uses (grep_worker receives them in its request).
OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)


# open() with O_NOFOLLOW on a symlink: ELOOP (EMLINK on some BSDs); on a socket: ENXIO.
_NOT_REGULAR_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENXIO})


class NotRegularFileError(UnsafeFileError):
    """The path is a FIFO, device, socket or symlink, not a regular file."""


def is_regular(path: Path) -> bool:
    """True when ``path`` (symlinks followed) is a regular file; never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for binary reading; ``NotRegularFileError`` for anything else.

    The path should already be resolved (the ``Workspace`` does that, and tree walks do not
    follow symlinks), so a symlink in its last component means it changed under us.
    """
    if not is_regular(path):
        raise NotRegularFileError(f"{path} is not a regular file")
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as error:
        if error.errno in _NOT_REGULAR_ERRNOS:
            raise NotRegularFileError(f"{path} is not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(f"{path} is not a regular file")
        return os.fdopen(fd, "rb")  # O_NONBLOCK has no effect on a regular file's reads
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path | str, max_bytes: int) -> bytes:
    """The bytes of a regular file, refusing symlinks (in the last component), devices,
    FIFOs and sockets, and anything larger than ``max_bytes``. Never blocks on a FIFO."""
    with open_regular(Path(path)) as handle:
        if os.fstat(handle.fileno()).st_size > max_bytes:
            raise UnsafeFileError(f"{path} is larger than {max_bytes} bytes")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read
        raise UnsafeFileError(f"{path} is larger than {max_bytes} bytes")
    return data


def find_program(
    name: str,
    root: Path | None = None,
    extra_dirs: tuple[str, ...] = (),
    trusted_dirs: tuple[str, ...] = (),
) -> str | None:
    """An absolute path to ``name`` from the absolute entries of PATH (then ``extra_dirs``),
    skipping empty and relative entries and any directory inside ``root`` (a repository
    could otherwise commit its own ``git`` or ``rg``). ``trusted_dirs`` come last and are
    taken even inside ``root``: only the running interpreter's own directories belong
    there (a hostile program beside it would mean a hostile interpreter already)."""
    resolved_root = root.resolve() if root is not None else None
    entries = os.environ.get("PATH", "").split(os.pathsep) + list(extra_dirs)
    for entry in entries:
        found = _program_in(name, entry, resolved_root)
        if found is not None:
            return found
    for entry in trusted_dirs:
        found = _program_in(name, entry, None)
        if found is not None:
            return found
    return None


def _program_in(name: str, entry: str, root: Path | None) -> str | None:
    if not entry or not os.path.isabs(entry):
        return None
    try:
        directory = Path(entry).resolve()
    except (OSError, RuntimeError):
        return None
    if root is not None and (directory == root or root in directory.parents):
        return None
    candidate = directory / name
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if root is not None and root in real.parents:
        return None
    if real.is_file() and os.access(real, os.X_OK):
        return str(candidate)
    return None
