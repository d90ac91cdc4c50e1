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
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.tools import Param, ToolSpec
from local_brain.tools.contents import (
    NotRegularFileError,
    file_kind,
    is_binary_file,
    is_regular,
)
from local_brain.tools.definitions import ParsedFile, enclosing_definitions, language_for
from local_brain.tools.listing import (
    SCRATCH_PREFIX,
    check_glob,
    exclusion_args,
    is_hidden,
    is_hidden_from_results,
    iter_files_python,
    path_order,
    rg_ignore_args,
    rg_path,
)
from local_brain.tools.outline import LIST_DEFINITIONS, list_definitions
from local_brain.tools.ripgrep import (
    DeadlinePassed,
    find_rg,
    rg_base_command,
    run_bounded,
    run_rg,
)
from local_brain.tools.secret_lines import files_with_secrets, without_secret_lines
from local_brain.workspace import Workspace, printable

__all__ = [
    "LIST_DEFINITIONS",
    "SEARCH_CODE",
    "TOOLS",
    "Hit",
    "SearchResult",
    "is_hidden_from_results",
    "list_definitions",
    "path_order",
    "python_search_code",
    "search_code",
]

SEARCH_TIMEOUT_SECONDS = 60.0
MAX_SEARCH_FILE_SIZE = "64M"  # larger files (logs, dumps) are not searched
MAX_SEARCH_FILE_BYTES = 64 * 1024 * 1024  # the same, for the Python engine
MAX_PATTERN_CHARS = 1000
MAX_RESULTS_LIMIT = 500
ROW_TEXT_CHARS = 200
ENCLOSING_HITS = 10  # the first shown hits get an ``[in ...]`` note
RG_MAX_COLUMNS = 1000
TOP_FILES_SHOWN = 5
PYTHON_LINE_BYTES = 1024 * 1024  # the Python engine matches the first MiB of a longer line

_RG_LONG_LINE = re.compile(r"\s*\[\.\.\. (omitted end of long line|\d+ more matches?)\]$")
_WORKER = Path(__file__).with_name("grep_worker.py")


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    path: str  # root-relative POSIX path
    line: int
    text: str


@dataclass
class SearchResult:
    """Exact totals, plus the first hits in (path, line) order."""

    total: int = 0
    file_counts: dict[str, int] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    unreadable: bool = False  # some files could not be read (ripgrep exit status 2)


class _Collector:
    """Keeps the ``limit`` first hits by (path, line), in bounded memory.

    Hits may arrive with files in any order. Kept hits are pruned to ``limit`` whenever
    they reach twice that; after a prune, files sorting after the last kept path cannot
    contribute (``wants`` says so, and their lines need not even be decoded).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: list[tuple[str, int, bytes]] = []
        self.cutoff: list[str] | None = None

    def wants(self, path: str) -> bool:
        return self.cutoff is None or path_order(path) <= self.cutoff

    def add(self, path: str, line: int, text: bytes) -> None:
        self.kept.append((path, line, text))
        if len(self.kept) >= 2 * self.limit:
            self._prune()

    def _prune(self) -> None:
        self.kept.sort(key=lambda hit: (path_order(hit[0]), hit[1]))
        del self.kept[self.limit :]
        if len(self.kept) == self.limit:
            self.cutoff = path_order(self.kept[-1][0])

    def hits(self) -> list[Hit]:
        self._prune()
        return [Hit(path, line, _clean_text(text)) for path, line, text in self.kept]


def _clean_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    text, cut = _RG_LONG_LINE.subn("", text)
    text = text.strip()
    if cut or len(text) > ROW_TEXT_CHARS:
        text = text[:ROW_TEXT_CHARS].rstrip() + " …"
    return text


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


def python_search_code(
    ws: Workspace,
    pattern: str,
    path: str = ".",
    glob: str | None = None,
    ignore_case: bool = False,
    max_results: int = 50,
) -> str:
    """``search_code`` without ripgrep: the fallback engine, callable directly for tests."""
    return _search(ws, pattern, path, glob, ignore_case, max_results, use_rg=False)


def _search(
    ws: Workspace,
    pattern: str,
    path: str | None,
    glob: str | None,
    ignore_case: bool,
    max_results: int,
    *,
    use_rg: bool,
) -> str:
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
    target = ws.resolve(path)
    _check_target(ws, target)
    deadline = time.monotonic() + SEARCH_TIMEOUT_SECONDS
    rg = find_rg(ws.root) if use_rg else None
    try:
        if rg is not None:
            result = _search_rg(rg, ws, target, pattern, glob, ignore_case, limit, deadline)
        else:
            result = _search_python(ws, target, pattern, glob, ignore_case, limit, deadline)
    except DeadlinePassed:
        raise ToolError(_timeout_message()) from None
    return _format(ws, result, pattern, path, glob, ignore_case)


def _check_target(ws: Workspace, target: Path) -> None:
    """A directory, or a regular text file; never a FIFO or device (rg would block on it)."""
    relative = ws.relative(target)
    kind = file_kind(target)
    if kind == "directory":
        return
    if kind != "file":
        raise ToolError(f"{relative} is not a regular file ({kind}); it is not searched")
    try:
        binary = is_binary_file(target)
    except NotRegularFileError:
        raise ToolError(f"{relative} is not a regular file; it is not searched") from None
    except OSError:
        raise ToolError(f"{relative} could not be read") from None
    if binary:
        raise ToolError(f"{relative} is a binary file; search_code skips binary files")


def _timeout_message() -> str:
    return f"search timed out after {SEARCH_TIMEOUT_SECONDS:.0f}s; narrow it with path= or glob="


def _format(
    ws: Workspace,
    result: SearchResult,
    pattern: str,
    path: str | None,
    glob: str | None,
    ignore_case: bool,
) -> str:
    if result.total == 0:
        where = f" under {path}" if path not in (None, "", ".") else ""
        where += f" (glob {glob})" if glob else ""
        hints = []
        if not ignore_case:
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
    lines = [header]
    notes = _enclosing_notes(ws, result.hits[:ENCLOSING_HITS])
    for index, hit in enumerate(result.hits):
        row = f"{printable(hit.path)}:{hit.line}: {hit.text}"
        note = notes.get(index)
        if note:
            row += f"  [in {note}]"
        lines.append(row)
    if shown < result.total:
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


# -- ripgrep ----------------------------------------------------------------------------------


def _search_rg(
    rg: str,
    ws: Workspace,
    target: Path,
    pattern: str,
    glob: str | None,
    ignore_case: bool,
    limit: int,
    deadline: float,
) -> SearchResult:
    """Two ripgrep runs: exact per-file counts over the tree, then rows from the first files.

    Counting in ripgrep (``--count``, in parallel) keeps totals exact without streaming
    every matching line through Python; the second run reads only the first matching files
    in path order, just enough of them to fill ``limit`` rows.

    (Running a sorted row search alongside the count, to parse enclosing definitions while
    the count finishes, was tried: on a two-core machine the runs compete and sparse
    searches got slower.)
    """
    case = "--ignore-case" if ignore_case else "--case-sensitive"
    command = [*rg_base_command(rg), "--count", "--with-filename", "--null", case]
    command += ["--max-filesize", MAX_SEARCH_FILE_SIZE]  # bounded memory: rg holds whole lines
    if glob:
        command += ["--glob", glob]  # first, so the exclusions after it take precedence
    command += exclusion_args()
    with rg_ignore_args(rg, ws, target, deadline) as ignore_args:
        command += [*ignore_args, f"--regexp={pattern}", "--", ws.relative(target)]
        run = run_rg(command, ws.root, deadline - time.monotonic())
    counts = {
        relative: count
        for relative, count in _parse_counts(run.stdout)
        if count > 0 and not is_hidden(ws, relative)
    }
    unreadable = False
    if run.returncode == 2:
        if not counts:
            _raise_for_rg_error(run.stderr)  # a bad pattern or glob: nothing was searched
        unreadable = True  # per-file errors only: the results found still stand
    elif run.returncode not in (0, 1):
        raise ToolError(f"search failed (ripgrep exit status {run.returncode})")
    counts, hidden = without_secret_lines(rg, ws, counts, case, pattern, deadline)
    extra = sum(len(numbers) for numbers in hidden.values())
    hits = _rows_from_files(rg, ws, counts, case, pattern, limit + extra, deadline)
    hits = [hit for hit in hits if hit.line not in hidden.get(hit.path, ())][:limit]
    return SearchResult(sum(counts.values()), counts, hits, unreadable)


# Row output: ``path NUL line:text``, long lines cut to a preview.
_ROW_OPTIONS = (
    "--line-number",
    "--no-heading",
    "--with-filename",
    "--null",
    "--max-columns",
    str(RG_MAX_COLUMNS),
    "--max-columns-preview",
)


def _rows_from_files(
    rg: str,
    ws: Workspace,
    counts: dict[str, int],
    case: str,
    pattern: str,
    limit: int,
    deadline: float,
) -> list[Hit]:
    """The first ``limit`` rows, read from just enough of the first matching files."""
    first_files: list[str] = []
    needed = limit
    for relative in sorted(counts, key=path_order):
        if needed <= 0:
            break
        if is_regular(ws.root / relative):  # named explicitly, rg would open a FIFO
            first_files.append(relative)
            needed -= counts[relative]
    collector = _Collector(limit)
    if not first_files:
        return []
    command = [*rg_base_command(rg), *_ROW_OPTIONS, "--max-count", str(limit)]
    command += [case, f"--regexp={pattern}", "--", *first_files]
    run = run_rg(command, ws.root, deadline - time.monotonic())
    for raw in run.stdout.split(b"\n"):
        path_bytes, separator, rest = raw.partition(b"\x00")
        number, _, text = rest.partition(b":")
        relative = rg_path(path_bytes)
        if separator and number.isdigit() and relative in counts:
            collector.add(relative, int(number), text)
    return collector.hits()


def _parse_counts(output: bytes) -> Iterator[tuple[str, int]]:
    """``path\\0count\\n`` records; split on NUL first, so a path may hold a line break."""
    pieces = output.split(b"\x00")
    path = pieces[0]
    for piece in pieces[1:]:
        count, _, following = piece.partition(b"\n")
        if count.strip().isdigit():
            yield rg_path(path), int(count)
        path = following


def _raise_for_rg_error(stderr: str) -> None:
    """Turn ripgrep's complaint about the pattern or glob into a ToolError; else return.

    Warnings about our rules file (a rule rg cannot parse) are not the model's error, and
    their text comes from the repository: they are dropped, never shown.
    """
    lines = [
        line.strip() for line in stderr.splitlines() if line.strip() and SCRATCH_PREFIX not in line
    ]
    if not lines:
        return
    text = " ".join(lines)
    if "error parsing glob" in text:
        reason = next((line for line in lines if "error parsing glob" in line), lines[0])
        reason = reason.removeprefix("rg: ")
        raise ToolError(f"invalid glob: {reason}")
    if "regex" in text or "literal" in text:
        reason = next((line for line in lines if line.startswith("error:")), lines[0])
        reason = reason.removeprefix("error:").removeprefix("rg:").strip()
        raise ToolError(_invalid_regex_message(reason))


def _invalid_regex_message(reason: str) -> str:
    return (
        f"invalid regex: {reason}. Escape special characters ( ) [ ] {{ }} . * + ? | \\ "
        "with a backslash to match them literally"
    )


# -- pure-Python fallback ---------------------------------------------------------------------


def _search_python(
    ws: Workspace,
    target: Path,
    pattern: str,
    glob: str | None,
    ignore_case: bool,
    limit: int,
    deadline: float,
) -> SearchResult:
    """The files come from the Python walk (``listing.iter_files_python``); the matching
    runs in ``grep_worker.py``, a child process killed at the deadline, because a regex can
    backtrack for hours under Python's ``re`` and no thread can interrupt it."""
    try:
        re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as error:
        raise ToolError(_invalid_regex_message(str(error))) from None
    except (OverflowError, RecursionError):
        raise ToolError(_invalid_regex_message("pattern too complex")) from None
    files = list(iter_files_python(ws, target, glob, deadline))
    if not files:
        return SearchResult()
    request = {
        "root": str(ws.root),
        "files": files,
        "pattern": pattern,
        "ignore_case": bool(ignore_case),
        "limit": limit,
        "max_file_bytes": MAX_SEARCH_FILE_BYTES,
        "line_bytes": PYTHON_LINE_BYTES,
        "hit_bytes": RG_MAX_COLUMNS * 4,
    }
    run = run_bounded(
        [sys.executable, "-I", "-S", str(_WORKER)],
        ws.root,
        deadline - time.monotonic(),
        env={"LC_ALL": "C.UTF-8", "PATH": os.defpath},
        input_bytes=json.dumps(request, ensure_ascii=True).encode("ascii"),
    )
    if run.returncode != 0:
        raise ToolError("search failed (the Python search engine stopped with an error)")
    answer = json.loads(run.stdout.decode("ascii"))
    counts = {
        relative: count
        for relative, count in answer["counts"].items()
        if not is_hidden(ws, relative)
    }
    for relative in files_with_secrets(ws, list(counts), MAX_SEARCH_FILE_BYTES, deadline):
        del counts[relative]  # see secret_lines: counts must not reveal a withheld value
    collector = _Collector(limit)
    for relative, line, text in answer["hits"]:
        if relative in counts:
            collector.add(relative, line, text.encode("utf-8", errors="surrogateescape"))
    return SearchResult(sum(counts.values()), counts, collector.hits(), answer["unreadable"])


# -- tool specs -------------------------------------------------------------------------------

SEARCH_CODE = ToolSpec(
    name="search_code",
    description=(
        "Search file contents with a regular expression (ripgrep syntax), honouring "
        ".gitignore; binary and secret files are skipped. The first line gives exact totals, "
        "e.g. '37 matches in 9 files (showing 37)'. Each row is 'path:line: text'; the first "
        "10 rows end with '  [in <kind> <name>]' naming the enclosing function or class, "
        "e.g. 'src/auth.py:42: return token  [in method Auth.check]'. Rows are in path "
        "order. Escape regex characters such as ( [ . * to match them literally. Files over 64 MB are not searched."
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
