"""``list_definitions``: the classes, functions and methods of a file or a directory.

The parsing itself is ``definitions.py`` (tree-sitter); this module is the tool around it:
paths, caps, and the listing of source files under a directory (``listing.py``). Only
regular files are read (``contents.py``): a FIFO named ``api.py`` is refused, not opened.
"""

from __future__ import annotations

import time
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.tools import Param, ToolSpec
from local_brain.tools.contents import NotRegularFileError, is_binary_file, require_regular
from local_brain.tools.definitions import (
    GrammarUnavailable,
    file_definitions,
    language_for,
    supported_extensions,
)
from local_brain.tools.listing import iter_source_files
from local_brain.workspace import Workspace

MAX_DEFINITION_FILES = 40
DIRECTORY_SECONDS = 10.0  # list_definitions on a directory stops parsing new files after this


def list_definitions(ws: Workspace, path: str) -> str:
    """Classes, functions and methods in a file (or the source files under a directory)."""
    target = ws.resolve(path)
    if target.is_dir():
        return _list_directory(ws, target)
    relative = ws.relative(target)
    if language_for(target) is None:
        raise ToolError(
            f"{relative}: no definition parser for this file type; supported: "
            + " ".join(supported_extensions())
        )
    require_regular(target, relative)
    try:
        binary = is_binary_file(target)
    except NotRegularFileError:
        raise ToolError(f"{relative} is not a regular file; it is not read") from None
    except OSError:
        raise ToolError(f"{relative} could not be read") from None
    if binary:
        raise ToolError(f"{relative} is a binary file")
    try:
        parsed = file_definitions(target)
    except GrammarUnavailable as error:
        raise ToolError(
            f"{relative}: the parser for this language is unavailable ({error})"
        ) from None
    except NotRegularFileError:
        raise ToolError(f"{relative} is not a regular file; it is not read") from None
    assert parsed is not None
    definitions = parsed.definitions
    count = len(definitions)
    lines = [
        f"{relative}: {count} {_plural(count, 'definition', 'definitions')} ({parsed.language})"
    ]
    if parsed.truncated:
        lines.append(f"(file is {parsed.size:,} bytes; only the first 2 MB were parsed)")
    if parsed.timed_out:
        stopped = parsed.stopped_at_line
        lines.append(f"(parsing ran out of time; definitions after line {stopped} are missing)")
    limit = ws.max_list_entries
    lines += [f"{d.line}: {d.label()}" for d in definitions[:limit]]
    if count > limit:
        lines.append(f"… {count - limit} more not shown; use search_code to find a name")
    return "\n".join(lines)


def _list_directory(ws: Workspace, target: Path) -> str:
    relative_dir = ws.relative(target)
    row_limit = ws.max_list_entries
    sections: list[str] = []
    rows = 0
    files = 0
    skipped_files = 0
    total = 0
    started = time.monotonic()
    for relative in iter_source_files(ws, target):
        if language_for(relative) is None:
            continue
        out_of_time = time.monotonic() - started > DIRECTORY_SECONDS
        if files >= MAX_DEFINITION_FILES or rows >= row_limit or out_of_time:
            skipped_files += 1
            continue
        absolute = ws.root / relative
        try:
            if is_binary_file(absolute):
                continue
            parsed = file_definitions(absolute)
        except (GrammarUnavailable, OSError, ValueError, RecursionError):
            continue  # NotRegularFileError is an OSError
        if parsed is None or not parsed.definitions:
            continue
        files += 1
        total += len(parsed.definitions)
        note = " (first 2 MB only)" if parsed.truncated else ""
        note += " (parse ran out of time; list incomplete)" if parsed.timed_out else ""
        sections.append(f"{relative}{note}")
        for definition in parsed.definitions:
            if rows >= row_limit:
                break
            sections.append(f"  {definition.line}: {definition.label()}")
            rows += 1
    if files == 0:
        return (
            f"{relative_dir}: no definitions found in supported source files "
            f"({' '.join(supported_extensions())})"
        )
    header = (
        f"{relative_dir}: {total} {_plural(total, 'definition', 'definitions')} in {files} "
        f"{_plural(files, 'file', 'files')}"
    )
    lines = [header, *sections]
    if rows < total or skipped_files:
        more = f"{total - rows} more definitions" if rows < total else ""
        if skipped_files:
            more += (", " if more else "") + f"{skipped_files} more source files"
        lines.append(f"… {more} not shown; call list_definitions on a file or subdirectory")
    return "\n".join(lines)


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


LIST_DEFINITIONS = ToolSpec(
    name="list_definitions",
    description=(
        "List the classes, functions and methods defined in a source file, with line "
        "numbers: rows like '12: class Router', '15: method Router.route(self, request)'. "
        "Given a directory, lists each source file under it (capped). Languages: Python, "
        "JavaScript, TypeScript, Go, Rust, Java, C, C++, Ruby."
    ),
    params=(Param("path", "string", "Source file or directory, relative to the root."),),
    function=list_definitions,
)
