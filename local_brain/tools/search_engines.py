"""The two engines behind ``search_code``: ripgrep, and a pure-Python fallback.

Both take a checked :class:`SearchQuery` and a target inside the workspace, honour the
same rules (see ``search.py``) and return a :class:`SearchResult`: exact totals, plus the
first hits in (path, line) order. Neither formats anything for the model.
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
from local_brain.fsguard import OPEN_FLAGS
from local_brain.tools.contents import is_regular
from local_brain.tools.listing import (
    SCRATCH_PREFIX,
    exclusion_args,
    is_hidden,
    iter_files_python,
    path_order,
    rg_ignore_args,
    rg_path,
)
from local_brain.tools.ripgrep import rg_base_command, run_bounded, run_rg
from local_brain.tools.secret_lines import files_with_secrets, without_secret_lines
from local_brain.workspace import Workspace, shorten

MAX_SEARCH_FILE_SIZE = "64M"  # larger files (logs, dumps) are not searched
MAX_SEARCH_FILE_BYTES = 64 * 1024 * 1024  # the same, for the Python engine
ROW_TEXT_CHARS = 200
RG_MAX_COLUMNS = 1000
# Past this many matching lines a search does not list them all to check each for a secret
# (memory stays bounded); it then reports "more than" this, and no per-file counts.
MAX_VERIFIED_MATCHES = 200_000
PYTHON_LINE_BYTES = 1024 * 1024  # the Python engine matches the first MiB of a longer line

_RG_LONG_LINE = re.compile(r"\s*\[\.\.\. (omitted end of long line|\d+ more matches?)\]$")
_WORKER = Path(__file__).with_name("grep_worker.py")


@dataclass(frozen=True)
class SearchQuery:
    """What to look for, already checked: a pattern, an optional glob, and a row limit."""

    pattern: str
    glob: str | None
    ignore_case: bool
    limit: int

    @property
    def case_flag(self) -> str:
        return "--ignore-case" if self.ignore_case else "--case-sensitive"


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
    at_least: bool = False  # over MAX_VERIFIED_MATCHES: totals are not exact (see search_rg)


class _Collector:
    """Keeps the ``limit`` first hits by (path, line), in bounded memory.

    Hits may arrive with files in any order. Kept hits are pruned to ``limit`` whenever
    they reach twice that.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: list[tuple[str, int, bytes]] = []

    def add(self, path: str, line: int, text: bytes) -> None:
        self.kept.append((path, line, text))
        if len(self.kept) >= 2 * self.limit:
            self._prune()

    def _prune(self) -> None:
        self.kept.sort(key=lambda hit: (path_order(hit[0]), hit[1]))
        del self.kept[self.limit :]

    def hits(self) -> list[Hit]:
        self._prune()
        return [Hit(path, line, _clean_text(text)) for path, line, text in self.kept]


def _clean_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    text, cut = _RG_LONG_LINE.subn("", text)
    return shorten(text.strip(), ROW_TEXT_CHARS, bool(cut))


# -- ripgrep ----------------------------------------------------------------------------------


def search_rg(
    rg: str, ws: Workspace, target: Path, query: SearchQuery, deadline: float
) -> SearchResult:
    """Two ripgrep runs: exact per-file counts over the tree, then rows from the first files.

    Counting in ripgrep (``--count``, in parallel) keeps totals exact without streaming
    every matching line through Python; the second run reads only the first matching files
    in path order, just enough of them to fill ``limit`` rows.

    (Running a sorted row search alongside the count, to parse enclosing definitions while
    the count finishes, was tried: on a two-core machine the runs compete and sparse
    searches got slower.)
    """
    pattern, glob, limit, case = query.pattern, query.glob, query.limit, query.case_flag
    # bounded memory: rg holds whole lines; the glob first, so the exclusions take precedence
    walk = ["--max-filesize", MAX_SEARCH_FILE_SIZE, *(["--glob", glob] if glob else [])]
    walk += exclusion_args()
    with rg_ignore_args(rg, ws, target, deadline) as ignore_args:
        walk += [*ignore_args, "--", ws.relative(target)]
        command = [*rg_base_command(rg), "--count", "--with-filename", "--null", case]
        command += [f"--regexp={pattern}", *walk]
        run = run_rg(command, ws.root, deadline - time.monotonic())
        counts = {
            relative: count
            for relative, count in _parse_counts(run.stdout)
            if count > 0 and not is_hidden(ws, relative)
        }
        at_least = sum(counts.values()) > MAX_VERIFIED_MATCHES
        if not at_least:
            counts, hidden = without_secret_lines(rg, ws, counts, case, pattern, walk, deadline)
    unreadable = False
    if run.returncode == 2:
        if not counts:
            _raise_for_rg_error(run.stderr)  # a bad pattern or glob: nothing was searched
        unreadable = True  # per-file errors only: the results found still stand
    elif run.returncode not in (0, 1):
        raise ToolError(f"search failed (ripgrep exit status {run.returncode})")
    if at_least:
        # Too many matching lines to check each in bounded memory: the rows' own files are
        # checked, and the reply gives no exact count a guess could be read from.
        hits = _rows_from_files(rg, ws, counts, case, pattern, limit, deadline)
        shown_files = sorted({hit.path for hit in hits})
        _, hidden = without_secret_lines(
            rg, ws, {path: counts[path] for path in shown_files}, case, pattern,
            ["--", *shown_files], deadline,
        )  # fmt: skip
    else:
        extra = sum(len(numbers) for numbers in hidden.values())
        hits = _rows_from_files(rg, ws, counts, case, pattern, limit + extra, deadline)
    hits = [hit for hit in hits if hit.line not in hidden.get(hit.path, ())][:limit]
    return SearchResult(sum(counts.values()), counts, hits, unreadable, at_least=at_least)


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
        raise ToolError(invalid_regex_message(reason))


def invalid_regex_message(reason: str) -> str:
    return (
        f"invalid regex: {reason}. Escape special characters ( ) [ ] {{ }} . * + ? | \\ "
        "with a backslash to match them literally"
    )


# -- pure-Python fallback ---------------------------------------------------------------------


def search_python(ws: Workspace, target: Path, query: SearchQuery, deadline: float) -> SearchResult:
    """The files come from the Python walk (``listing.iter_files_python``); the matching
    runs in ``grep_worker.py``, a child process killed at the deadline, because a regex can
    backtrack for hours under Python's ``re`` and no thread can interrupt it."""
    pattern, glob, ignore_case, limit = query.pattern, query.glob, query.ignore_case, query.limit
    try:
        re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as error:
        raise ToolError(invalid_regex_message(str(error))) from None
    except (OverflowError, RecursionError):
        raise ToolError(invalid_regex_message("pattern too complex")) from None
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
        "open_flags": OPEN_FLAGS,  # fsguard's: the worker runs without site-packages
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
