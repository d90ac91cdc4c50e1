"""What ``list_directory`` reads: one directory level with one directory read, or a
recursion (``**``) bounded in files and time.

Listing one level by walking the whole tree below it took 14 s for the nine entries of
``/usr``; here a level costs one ``os.scandir`` (plus the ignore files that apply), and a
recursive pattern stops after ``RECURSIVE_MAX_FILES`` files or ``RECURSIVE_TIMEOUT_SECONDS``
and says so. The file rules are the listing's (``listing.py``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.tools.ignore import IgnoreStack, RuleBudget, directory_files, rules_above
from local_brain.tools.listing import is_hidden, iter_files_python
from local_brain.tools.ripgrep import DeadlinePassed
from local_brain.workspace import Workspace

RECURSIVE_MAX_FILES = 20_000  # files a recursive listing looks at before it stops
RECURSIVE_TIMEOUT_SECONDS = 10.0
MAX_DIRECTORY_ENTRIES = 100_000  # entries of one directory read before giving up on it
STOPPED_NOTE = (
    f"a recursive pattern looks at most {RECURSIVE_MAX_FILES} files for at most "
    f"{RECURSIVE_TIMEOUT_SECONDS:g} s; narrow it with path= or a pattern under a directory"
)


def list_children(ws: Workspace, target: Path) -> list[str]:
    """The entries of one directory the tools may show, ``name/`` for a directory: one
    read of ``target`` (and of the ignore files that apply), never a walk below it.

    The rules of the file listing: regular files and real directories only (no symlinks,
    FIFOs or devices), ``.git/`` and sensitive paths never, ignore rules honoured."""
    budget = RuleBudget()
    relative = ws.relative(target)
    base = "" if relative == "." else relative
    stack = IgnoreStack().push(rules_above(ws.root, relative, budget))
    stack = stack.push(directory_files(ws.root, base, budget))
    children = []
    try:
        with os.scandir(target) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_DIRECTORY_ENTRIES:
                    raise ToolError(
                        f"{relative} holds more than {MAX_DIRECTORY_ENTRIES} entries; "
                        "list it with a pattern, or search with search_code"
                    )
                child = _child(ws, stack, base, entry)
                if child is not None:
                    children.append(child)
    except OSError as error:
        raise ToolError(f"cannot list {relative}: {error.strerror or error}") from None
    return children


def _child(ws: Workspace, stack: IgnoreStack, base: str, entry: os.DirEntry[str]) -> str | None:
    relative = f"{base}/{entry.name}" if base else entry.name
    if entry.name == ".git" or is_hidden(ws, relative):
        return None
    try:
        is_dir = entry.is_dir(follow_symlinks=False)
        if not is_dir and not entry.is_file(follow_symlinks=False):
            return None  # symlinks, FIFOs, devices, sockets
    except OSError:
        return None
    if stack.is_ignored(relative, is_dir):
        return None
    return entry.name + "/" if is_dir else entry.name


def walk_bounded(
    ws: Workspace,
    target: Path,
    max_files: int | None = None,
    timeout: float | None = None,
) -> tuple[list[str], bool]:
    """The visible files under ``target`` (relative to it) in path order, and whether the
    walk stopped early (``max_files`` files seen, or ``timeout`` seconds spent)."""
    max_files = RECURSIVE_MAX_FILES if max_files is None else max_files
    deadline = time.monotonic() + (RECURSIVE_TIMEOUT_SECONDS if timeout is None else timeout)
    base = ws.relative(target)
    prefix = "" if base == "." else base + "/"
    files: list[str] = []
    try:
        for relative in iter_files_python(ws, target, deadline=deadline):
            if is_hidden(ws, relative):
                continue
            files.append(relative.removeprefix(prefix))
            if len(files) >= max_files:
                return files, True
    except DeadlinePassed:
        return files, True
    return files, False
