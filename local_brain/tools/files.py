"""File tools: read_file, list_directory, file_info.

Contents are read from regular files only (``contents.py``): a FIFO or device in the
repository is described, never opened. ``list_directory`` patterns are matched with the
standard library's ``fnmatch`` one path segment at a time (``listing.py``), which cannot
backtrack catastrophically whatever the model sends.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.tools import Param, ToolSpec
from local_brain.tools.contents import (
    NotRegularFileError,
    file_kind,
    is_binary_file,
    require_regular,
)
from local_brain.tools.directory import STOPPED_NOTE, list_children, walk_bounded
from local_brain.tools.languages import language_name
from local_brain.tools.listing import check_glob, listing_matcher, name_matches
from local_brain.units import human_size
from local_brain.workspace import Workspace, printable

# Files larger than this are not scanned to the end just to count their lines.
LINE_COUNT_LIMIT_BYTES = 32 * 1024 * 1024

# -- read_file --------------------------------------------------------------------------


def read_file(ws: Workspace, path: str, start_line: int = 1, end_line: int | None = None) -> str:
    target = ws.resolve(path)
    shown = ws.relative(target)
    if target.is_dir():
        raise ToolError(f"{shown} is a directory; use list_directory")
    require_regular(target, shown)
    size = target.stat().st_size
    if is_binary_text_check(target, shown):
        raise ToolError(f"{shown} is a binary file ({human_size(size)}); use file_info")
    start = max(1, start_line)
    if end_line is not None and end_line < start:
        raise ToolError(f"end_line ({end_line}) is before start_line ({start})")
    last_wanted = start + ws.max_read_lines - 1
    if end_line is not None:
        last_wanted = min(end_line, last_wanted)

    rows: list[str] = []
    chars = 0
    line_number = 0
    cut_by_chars = False
    total_known = size <= LINE_COUNT_LIMIT_BYTES
    for line_number, text in enumerate(ws.iter_lines(target), start=1):
        if start <= line_number <= last_wanted and not cut_by_chars:
            row = f"{line_number:>6}  {text}"
            if chars + len(row) > ws.max_read_chars and rows:
                cut_by_chars = True
                last_wanted = line_number - 1
            else:
                rows.append(row)
                chars += len(row) + 1
        elif line_number > last_wanted and not total_known:
            break
    total = line_number
    if total == 0:
        return f"{shown}: empty file (0 lines)"
    if start > total and total_known:
        raise ToolError(f"{shown} has only {total} lines; start_line {start} is past the end")
    last_shown = start + len(rows) - 1
    total_text = str(total) if total_known else f"more than {last_shown} ({human_size(size)})"
    header = f"{shown}: lines {start}-{last_shown} of {total_text}"
    more = (not total_known) or last_shown < total
    if more and (end_line is None or last_shown < end_line):
        footer = f"[truncated: call read_file({shown!r}, start_line={last_shown + 1}) to read on]"
        return "\n".join([header, *rows, footer])
    return "\n".join([header, *rows])


# -- list_directory -----------------------------------------------------------------------


def list_directory(ws: Workspace, path: str = ".", pattern: str = "*") -> str:
    target = ws.resolve(path)
    shown = ws.relative(target)
    if not target.is_dir():
        raise ToolError(f"{shown} is not a directory; use read_file or file_info")
    pattern = (pattern or "*").strip() or "*"
    check_glob(pattern, "pattern")
    stopped = False  # a recursive listing is bounded (tools/directory.py)
    if "**" in pattern:
        files, stopped = walk_bounded(ws, target)
        matcher = listing_matcher(pattern)
        entries = sorted(rel for rel in files if matcher(rel))
    else:  # one level: one directory read, never a walk of the tree below
        entries = sorted(
            (c for c in list_children(ws, target) if name_matches(c.rstrip("/"), pattern)),
            key=lambda name: (not name.endswith("/"), name.lower()),
        )
    prefix = "" if shown == "." else shown + "/"
    note = f"[listing stopped early: {STOPPED_NOTE}]" if stopped else None
    if not entries:
        return "\n".join(filter(None, [f"{prefix or './'}: no entries match {pattern!r}", note]))
    limit = ws.max_list_entries
    count = f"{len(entries)}{'+' if stopped else ''}"
    lines = [f"{prefix or './'} ({count} {'entry' if len(entries) == 1 else 'entries'})"]
    lines += [printable(entry) for entry in entries[:limit]]
    if len(entries) > limit:
        lines.append(f"[showing {limit} of {count} entries; narrow with path= or pattern=]")
    if note:
        lines.append(note)
    return "\n".join(lines)


# -- file_info ----------------------------------------------------------------------------


def file_info(ws: Workspace, path: str) -> str:
    from local_brain.tools.git import is_tracked

    target = ws.resolve(path)
    shown = ws.relative(target)
    stat = target.stat()
    modified = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tracked = is_tracked(ws, target)
    if target.is_dir():
        return "\n".join(
            [f"path: {shown}/", "kind: directory", f"modified: {modified}", f"git: {tracked}"]
        )
    kind = file_kind(target)
    if kind != "file":  # a FIFO or device is described, never opened
        return "\n".join(
            [
                f"path: {shown}",
                f"kind: {kind} (not a regular file; not read)",
                f"modified: {modified}",
                f"git: {tracked}",
            ]
        )
    binary = is_binary_text_check(target, shown)
    rows = [
        f"path: {shown}",
        f"size: {human_size(stat.st_size)} ({stat.st_size} bytes)",
    ]
    if binary:
        rows.append("content: binary")
    else:
        rows.append("content: text")
        if stat.st_size <= LINE_COUNT_LIMIT_BYTES:
            rows.append(f"lines: {sum(1 for _ in ws.iter_lines(target))}")
        else:
            rows.append("lines: not counted (large file)")
    rows += [f"language: {language_name(target)}", f"modified: {modified}", f"git: {tracked}"]
    return "\n".join(rows)


def is_binary_text_check(target: Path, shown: str, use: str = "read") -> bool:
    """``is_binary_file``, with a file swapped for a FIFO or device, or unreadable, turned
    into a ToolError ("``shown`` is not a regular file; it is not ``use``")."""
    try:
        return is_binary_file(target)
    except NotRegularFileError:
        raise ToolError(f"{shown} is not a regular file; it is not {use}") from None
    except OSError:
        raise ToolError(f"{shown} could not be read") from None


TOOLS = (
    ToolSpec(
        name="read_file",
        description=(
            "Read a text file of the repository as numbered lines. Long files come in pages of "
            "up to 400 lines: pass start_line/end_line to read a range."
        ),
        params=(
            Param("path", "string", "File path relative to the repository root."),
            Param("start_line", "integer", "First line to show (1-based).", 1),
            Param("end_line", "integer", "Last line to show (inclusive); default: a page.", None),
        ),
        function=read_file,
    ),
    ToolSpec(
        name="list_directory",
        description=(
            "List a directory of the repository (directories end with '/'), honouring "
            ".gitignore. pattern filters names ('*.py'); a pattern with '**' lists recursively "
            "('**/*.py', '**' for every file)."
        ),
        params=(
            Param("path", "string", "Directory relative to the repository root.", "."),
            Param("pattern", "string", "Glob for names; '**' makes it recursive.", "*"),
        ),
        function=list_directory,
    ),
    ToolSpec(
        name="file_info",
        description=(
            "Facts about a file or directory: size, line count, text or binary, language, "
            "last modified time, and whether git tracks it."
        ),
        params=(Param("path", "string", "Path relative to the repository root."),),
        function=file_info,
    ),
)
