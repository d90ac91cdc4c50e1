"""``search_code``: ripgrep, with a pure-Python fallback.

Search semantics, shared by both engines:

* the pattern is a regular expression (Rust regex syntax under ripgrep, Python's ``re`` in
  the fallback);
* ignore rules (``.gitignore``, ``.ignore``, ``.rgignore``, ``.git/info/exclude``) are
  honoured, read by us as hostile input (``ignore.py``; ripgrep opens none itself); hidden
  files such as ``.github/`` are searched, ``.git/`` and sensitive files never are: they
  are excluded up front and every result path is checked again before it is counted;
* symbolic links are not followed, FIFOs and devices are never opened, binary files and
  files over 64 MB are skipped;
* every matching line is counted, but only the first ``max_results`` in path order are
  kept, so memory stays bounded and the output is the same from run to run;
* the whole search has one deadline (``SEARCH_TIMEOUT_SECONDS``); the helper processes that
  do the matching (rg, or the fallback's ``grep_worker``) are killed with their process
  group when it passes, and their address space is limited.

This module is the tool: it checks the model's arguments into a ``SearchQuery``, picks the
engine (``search_engines.py``) and words the result; the engines never format anything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from local_brain.errors import ToolError
from local_brain.tools import Param, ToolSpec, search_engines
from local_brain.tools.contents import file_kind
from local_brain.tools.definitions import ParsedFile, enclosing_definitions, language_for
from local_brain.tools.files import is_binary_text_check
from local_brain.tools.listing import check_glob, is_hidden_from_results, path_order
from local_brain.tools.outline import LIST_DEFINITIONS, list_definitions
from local_brain.tools.ripgrep import DeadlinePassed, find_rg
from local_brain.tools.search_engines import (
    Hit,
    SearchQuery,
    SearchResult,
    search_python,
    search_rg,
)
from local_brain.workspace import Workspace, printable

__all__ = [
    "LIST_DEFINITIONS",
    "SEARCH_CODE",
    "TOOLS",
    "Hit",
    "SearchQuery",
    "SearchResult",
    "is_hidden_from_results",
    "list_definitions",
    "path_order",
    "python_search_code",
    "search_code",
]

SEARCH_TIMEOUT_SECONDS = 60.0
MAX_PATTERN_CHARS = 1000
MAX_RESULTS_LIMIT = 500
ENCLOSING_HITS = 10  # the first shown hits get an ``[in ...]`` note
TOP_FILES_SHOWN = 5


# -- the tool ---------------------------------------------------------------------------------


def search_code(
    ws: Workspace,
    pattern: str,
    path: str = ".",
    glob: str | None = None,
    ignore_case: bool = False,
    max_results: int = 50,
) -> str:
    """Search file contents for a regex; see ``SEARCH_CODE.description`` for the format."""
    return _search(ws, pattern, path, glob, ignore_case, max_results, use_rg=True)


def python_search_code(ws: Workspace, pattern: str, **options: Any) -> str:
    """``search_code`` without ripgrep: the fallback engine, callable directly for tests.
    ``options`` are ``search_code``'s (path, glob, ignore_case, max_results)."""
    return _search(ws, pattern, **options, use_rg=False)


def _search(
    ws: Workspace,
    pattern: str,
    path: str | None = ".",
    glob: str | None = None,
    ignore_case: bool = False,
    max_results: int = 50,
    *,
    use_rg: bool,
) -> str:
    query = _query(pattern, glob, ignore_case, max_results)
    target = ws.resolve(path)
    _check_target(ws, target)
    deadline = time.monotonic() + SEARCH_TIMEOUT_SECONDS
    rg = find_rg(ws.root) if use_rg else None
    try:
        if rg is not None:
            result = search_rg(rg, ws, target, query, deadline)
        else:
            result = search_python(ws, target, query, deadline)
    except DeadlinePassed:
        raise ToolError(_timeout_message()) from None
    return _format(ws, result, query, path)


def _query(pattern: str, glob: str | None, ignore_case: bool, max_results: int) -> SearchQuery:
    """The model's arguments, checked: a pattern of sane length, a sane glob, a limit."""
    if pattern is None or pattern == "":
        raise ToolError("search_code needs a non-empty pattern")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ToolError(
            f"pattern is too long ({len(pattern)} characters, limit {MAX_PATTERN_CHARS}); "
            "search for a shorter, distinctive part"
        )
    glob = glob.strip() if glob else None
    if glob:
        check_glob(glob)
    limit = min(max(int(max_results), 1), MAX_RESULTS_LIMIT)
    return SearchQuery(pattern, glob, bool(ignore_case), limit)


def _check_target(ws: Workspace, target: Path) -> None:
    """A directory, or a regular text file; never a FIFO or device (rg would block on it)."""
    relative = ws.relative(target)
    kind = file_kind(target)
    if kind == "directory":
        return
    if kind != "file":
        raise ToolError(f"{relative} is not a regular file ({kind}); it is not searched")
    if is_binary_text_check(target, relative, "searched"):
        raise ToolError(f"{relative} is a binary file; search_code skips binary files")


def _timeout_message() -> str:
    return f"search timed out after {SEARCH_TIMEOUT_SECONDS:.0f}s; narrow it with path= or glob="


def _format(ws: Workspace, result: SearchResult, query: SearchQuery, path: str | None) -> str:
    pattern, glob = query.pattern, query.glob
    if result.total == 0:
        where = f" under {path}" if path not in (None, "", ".") else ""
        where += f" (glob {glob})" if glob else ""
        hints = []
        if not query.ignore_case:
            hints.append("ignore_case=True")
        hints.append("a simpler pattern (one distinctive word)")
        if glob or where:
            hints.append("a wider path or no glob")
        lines = [f"0 matches for {pattern}{where}", f"Hint: try {', '.join(hints)}."]
        if result.unreadable:
            lines.append("(some files could not be read)")
        return "\n".join(lines)

    files = len(result.file_counts)
    shown = len(result.hits)
    header = (
        f"{result.total} {_plural(result.total, 'match', 'matches')} in {files} "
        f"{_plural(files, 'file', 'files')} (showing {shown})"
    )
    if result.at_least:
        header = f"more than {search_engines.MAX_VERIFIED_MATCHES:,} matches (showing {shown})"
    lines = [header]
    notes = _enclosing_notes(ws, result.hits[:ENCLOSING_HITS])
    for index, hit in enumerate(result.hits):
        row = f"{printable(hit.path)}:{hit.line}: {hit.text}"
        note = notes.get(index)
        if note:
            row += f"  [in {note}]"
        lines.append(row)
    if result.at_least:
        lines.append("Narrow with path= or glob= for exact totals.")
    elif shown < result.total:
        busiest = sorted(result.file_counts.items(), key=lambda item: (-item[1], item[0]))
        top = ", ".join(f"{printable(name)} ({n})" for name, n in busiest[:TOP_FILES_SHOWN])
        lines.append(f"… {result.total - shown} more not shown. Most matches: {top}")
        lines.append("Narrow with path= or glob=, or raise max_results (up to 500).")
    if result.unreadable:
        lines.append("(some files could not be read)")
    return "\n".join(lines)


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _enclosing_notes(ws: Workspace, hits: list[Hit]) -> dict[int, str]:
    """``kind name`` of the innermost definition around each hit, by hit index."""
    by_file: dict[str, list[int]] = {}
    for index, hit in enumerate(hits):
        if language_for(hit.path) is not None:
            by_file.setdefault(hit.path, []).append(index)
    notes: dict[int, str] = {}
    cache: dict[Path, ParsedFile | None] = {}
    for relative, indexes in by_file.items():
        absolute = ws.root / relative
        found = enclosing_definitions(absolute, [hits[i].line for i in indexes], cache)
        for index in indexes:
            definition = found.get(hits[index].line)
            if definition is not None:
                notes[index] = f"{definition.kind} {definition.name}"
    return notes


# -- tool specs -------------------------------------------------------------------------------

SEARCH_CODE = ToolSpec(
    name="search_code",
    description=(
        "Search file contents with a regular expression (ripgrep syntax), honouring "
        ".gitignore; binary and secret files are skipped. The first line gives exact totals, "
        "e.g. '37 matches in 9 files (showing 37)'. Each row is 'path:line: text'; the first "
        "10 rows end with '  [in <kind> <name>]' naming the enclosing function or class, "
        "e.g. 'src/auth.py:42: return token  [in method Auth.check]'. Rows are in path "
        "order. Escape regex characters such as ( [ . * to match them literally. "
        "Files over 64 MB are not searched."
    ),
    params=(
        Param("pattern", "string", "Regular expression to search for, e.g. 'def \\w+_user'."),
        Param("path", "string", "File or directory to search, relative to the root.", "."),
        Param(
            "glob",
            "string",
            "Only files matching this glob: '*.py', 'src/**/*.ts'; '!' excludes.",
            None,
        ),
        Param("ignore_case", "boolean", "Match without regard to case.", False),
        Param("max_results", "integer", "Rows to show (1-500); totals are exact.", 50),
    ),
    function=search_code,
)

TOOLS = (SEARCH_CODE, LIST_DEFINITIONS)
