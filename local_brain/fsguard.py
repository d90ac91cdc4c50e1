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


class UnsafeFileError(OSError):
    """The file is not a regular file we may read (symlink, device, FIFO, too large)."""


def read_regular(path: Path | str, max_bytes: int) -> bytes:
    """The bytes of a regular file, refusing symlinks (in the last component), devices,
    FIFOs and sockets, and anything larger than ``max_bytes``. Never blocks on a FIFO."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a socket
            raise UnsafeFileError(f"{path} is not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeFileError(f"{path} is larger than {max_bytes} bytes")
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:  # grew while we read
            raise UnsafeFileError(f"{path} is larger than {max_bytes} bytes")
        return data
    finally:
        os.close(fd)


def is_regular_file(path: Path | str) -> bool:
    """True for a regular file that is not a symlink (lstat, no following)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def find_program(
    name: str, root: Path | None = None, extra_dirs: tuple[str, ...] = ()
) -> str | None:
    """An absolute path to ``name`` from the absolute entries of PATH (then ``extra_dirs``),
    skipping empty and relative entries and any directory inside ``root`` (a repository
    could otherwise commit its own ``git`` or ``rg``)."""
    resolved_root = root.resolve() if root is not None else None
    entries = os.environ.get("PATH", "").split(os.pathsep) + list(extra_dirs)
    for entry in entries:
        if not entry or not os.path.isabs(entry):
            continue
        try:
            directory = Path(entry).resolve()
        except (OSError, RuntimeError):
            continue
        if resolved_root is not None and (
            directory == resolved_root or resolved_root in directory.parents
        ):
            continue
        candidate = directory / name
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if resolved_root is not None and resolved_root in real.parents:
            continue
        if real.is_file() and os.access(real, os.X_OK):
            return str(candidate)
    return None
