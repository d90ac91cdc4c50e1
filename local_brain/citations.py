"""Checking the references in an answer: does the file exist, is the line in it, and did a
tool actually show it during this run?

Small models invent paths and line numbers. Every reference in a final answer
(``path:line``, ``path:start-end``, ``path#L12``, a bare repository path) is checked against
the workspace (inside the root, not sensitive, exists, line in range) and against the run's
:class:`Evidence`, what the tools returned ("seen"). Cheap: no model call, no scan of the
repository; each cited file is opened once, with the same guards as the tools.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from local_brain.errors import ToolError
from local_brain.fsguard import UnsafeFileError, read_regular
from local_brain.tools.languages import language_of
from local_brain.workspace import Workspace

MAX_REFERENCES = 60
MAX_COUNTED_BYTES = 16 * 1024 * 1024
# What one tool call's output adds to the evidence at most (a minified file is one huge line).
MAX_RECORDED_CHARS = 256 * 1024
MAX_RECORDED_REFERENCES = 2_000
# Extensions that make a bare word a file name even without a directory part.
_DOC_EXTENSIONS = frozenset(
    "md rst txt json yaml yml toml ini cfg conf lock xml html css sql sh bash env "
    "gradle properties mk cmake dockerfile proto graphql tf".split()
)
_SEGMENT = r"[\w@+.-]+"
_SEPARATOR = r"(?:/|\\{1,2})"  # src/auth.py, src\auth.py, and src\\auth.py as JSON shows it
_PATH = rf"(?:{_SEGMENT}{_SEPARATOR})*{_SEGMENT}"
_LINES = r"(?P<line>\d{1,7})(?:(?:-|–|-L)(?P<end>\d{1,7}))?"
_REFERENCE = re.compile(  # path:12, path:L12, path#12, path#L12-L20, path:12:5, `path`:12
    rf"(?<![\w/\\.:@-])(?P<path>{_PATH})"
    rf"(?:`?(?::L?|#L?){_LINES}(?::\d{{1,5}})?)?"
    r"(?![\w/\\@-])"
)
_PROSE_LINES = r"lines?\s+(?P<line>\d{1,7})(?:\s*(?:-|–|to)\s*(?P<end>\d{1,7}))?"
_LINE_AFTER = re.compile(  # "path, line 12", "path (line 12)", "`path` at lines 3-4"
    rf"`?(?:,\s*|\s+)\(?(?:(?:at|on|in)\s+)?{_PROSE_LINES}\b"
    r"(?!\s*(?:-|–|to\b)\s*\d)"  # the whole range or nothing
    r"(?!\s+(?:of|in)\s+(?:the\s+)?(?:file\s+)?`?[\w@+-]*[./\\]\w)",  # "lines 3-4 of b.py"
    re.I,
)
_LINE_BEFORE = re.compile(  # "line 12 of path", "lines 10-20 in the file `path`"
    rf"\b{_PROSE_LINES}\s+(?:of|in)\s+(?:the\s+)?(?:file\s+)?`?\Z", re.I
)
_SPACE = re.compile(r"\s")
_READ_HEADER = re.compile(r"^(?P<path>\S.*?): lines (?P<start>\d+)-(?P<end>\d+) of \d+", re.M)
_DEFINITIONS_HEADER = re.compile(r"^(?P<path>\S.*?): \d+ definitions?\b")
_DEFINITION_ROW = re.compile(r"^\s*(?P<line>\d+): ")
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,(?P<count>\d+))? @@", re.M)
_DIFF_FILE = re.compile(r"^\+\+\+ b/(?P<path>.+)$", re.M)


@dataclass(frozen=True)
class Reference:
    path: str
    line: int | None
    end_line: int | None
    written: str  # as it appears in the answer


@dataclass(frozen=True)
class Citation:
    """One checked reference; ``problem`` says what is wrong with it, None when it holds."""

    path: str
    line: int | None
    end_line: int | None
    exists: bool
    seen: bool
    problem: str | None
    written: str

    @property
    def verified(self) -> bool:
        return self.exists and self.seen and self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "end_line": self.end_line,
            "exists": self.exists,
            "seen": self.seen,
            "problem": self.problem,
        }

    def warning(self) -> str:
        """``src/auth.py:412 does not exist (file has 120 lines)``"""
        return f"{self.written} {self.problem or 'was not shown by any tool in this run'}"


@dataclass
class Evidence:
    """What the run's tools showed: whole files or line ranges, per root-relative path."""

    paths: set[str] = field(default_factory=set)
    lines: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, arguments: dict[str, Any], output: str) -> None:
        """Remember what one successful tool call showed: every reference in its output,
        read_file's line range, list_definitions' rows, a diff's hunks."""
        output = output[:MAX_RECORDED_CHARS]
        with self._lock:
            path_argument = arguments.get("path")
            if isinstance(path_argument, str) and path_argument.strip():
                self.paths.add(_normal(path_argument))
            for reference in find_references(output, limit=MAX_RECORDED_REFERENCES):
                self._saw(reference.path, reference.line, reference.end_line)
            for match in _READ_HEADER.finditer(output):
                self._saw(match["path"], int(match["start"]), int(match["end"]))
            self._definitions(output)
            self._diff(output)

    def saw(self, path: str, line: int | None, end_line: int | None) -> bool:
        path = _normal(path)
        with self._lock:
            if line is None:
                return path in self.paths or path in self.lines
            last = end_line or line
            return any(start <= line and last <= end for start, end in self.lines.get(path, []))

    def seen_paths(self) -> set[str]:
        with self._lock:
            return self.paths | set(self.lines)

    def _saw(self, path: str, line: int | None, end_line: int | None) -> None:
        path = _normal(path)
        self.paths.add(path)
        if line is not None:
            self.lines.setdefault(path, []).append((line, end_line or line))

    def _definitions(self, output: str) -> None:
        path = None
        for row in output.splitlines():
            header = _DEFINITIONS_HEADER.match(row)
            if header:
                path = header["path"]
                continue
            definition = _DEFINITION_ROW.match(row)
            if path is not None and definition:
                self._saw(path, int(definition["line"]), None)

    def _diff(self, output: str) -> None:
        files = list(_DIFF_FILE.finditer(output))
        for index, match in enumerate(files):
            end = files[index + 1].start() if index + 1 < len(files) else len(output)
            for hunk in _HUNK.finditer(output, match.end(), end):
                start, count = int(hunk["start"]), int(hunk["count"] or 1)
                self._saw(match["path"], start, start + max(count, 1) - 1)


def find_references(text: str, limit: int | None = MAX_REFERENCES) -> list[Reference]:
    """The file references in ``text``, in order, without repeats. A word counts as a path
    when it has a directory part or a known file extension: ``parse_config(path: str)``,
    ``os.path.join``, ``response.json()`` and version numbers do not. (A bare name such as
    ``obj.rs`` may still be a word: ``check_answer`` keeps it only when it names a file.)
    One pass over ``text``: linear in its length."""
    text = text or ""
    found: dict[tuple[str, int | None, int | None], Reference] = {}
    plausible: dict[str, bool] = {}
    urls = _url_spans(text)
    url = next(urls, None)
    for match in _REFERENCE.finditer(text):
        while url is not None and url[1] <= match.start():
            url = next(urls, None)
        if url is not None and url[0] <= match.start():
            continue  # part of a URL
        written_path = match["path"]
        if "." not in written_path and "/" not in written_path and "\\" not in written_path:
            continue  # a plain word (the quick test for most of a text)
        path = _normal(written_path.rstrip("."))
        if "/" not in path and text.startswith("(", match.end()):
            continue  # a call: response.json()
        if path not in plausible:  # (a long text names the same few words again and again)
            plausible[path] = _looks_like_path(path)
        if not plausible[path]:
            continue  # a word, a dotted name, a version
        start, end = match.start(), match.start() + len(match.group(0).rstrip("."))
        line = int(match["line"]) if match["line"] else None
        last = int(match["end"]) if match["end"] else None
        if line is None:
            start, end, line, last = _prose_lines(text, start, end)
        reference = Reference(path, line, last, text[start:end])
        found.setdefault((path, line, last), reference)
        if limit is not None and len(found) >= limit:
            break
    return list(found.values())


def _url_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each word that holds ``://``, in order; each character is looked
    at a bounded number of times (no regular expression that backtracks over a long word)."""
    end = 0
    while (found := text.find("://", end)) >= 0:
        start = max(text.rfind(space, end, found) for space in " \n\t\r") + 1
        after = _SPACE.search(text, found)
        end = after.start() if after else len(text)
        yield max(start, 0), end


def _prose_lines(text: str, start: int, end: int) -> tuple[int, int, int | None, int | None]:
    """A line number written in words beside a path: ``path, line 12``, ``line 12 of
    path``; the (start, end) of the whole reference as written, and its lines."""
    after = _LINE_AFTER.match(text, end)
    if after:
        last = int(after["end"]) if after["end"] else None
        return start, after.end(), int(after["line"]), last
    window = max(0, start - 80)
    before = (
        _LINE_BEFORE.search(text, window, start) if "line" in text[window:start].lower() else None
    )
    if before:
        last = int(before["end"]) if before["end"] else None
        closing = int(text.startswith("`", end) and before.group(0).endswith("`"))
        return before.start(), end + closing, int(before["line"]), last
    return start, end, None, None


def check_answer(text: str, workspace: Workspace, evidence: Evidence) -> list[Citation]:
    """Check every reference in an answer; bare words that name no file are left out."""
    citations = []
    line_counts: dict[str, int | None] = {}
    for reference in find_references(text):
        path = _resolve_basename(reference.path, evidence, workspace)
        exists, problem = _check_path(path, workspace)
        if not exists and problem == "does not exist" and not _plausible(reference):
            continue  # "and/or", "a.b.c", "obj.rs": prose or code, not a path
        if exists and reference.line is not None:
            if path not in line_counts:
                line_counts[path] = _line_count(workspace, path)
            problem = _line_problem(reference, line_counts[path])
        seen = evidence.saw(path, reference.line, reference.end_line)
        citations.append(
            Citation(path, reference.line, reference.end_line, exists, seen, problem,
                     reference.written)
        )  # fmt: skip
    return citations


def mark_unverified(text: str, citations: list[Citation]) -> str:
    """``text`` with each reference that failed its check marked where it is written, for
    a manager reading a helper's report."""
    for citation in citations:
        if citation.verified:
            continue
        note = citation.problem or "not shown by any tool"
        # the reference itself, not the start of a longer one (src/a.py:1 in src/a.py:12)
        whole = rf"(?<![\w/.-]){re.escape(citation.written)}(?![\w/-]|[:#]?\d)"
        marked = f"{citation.written} [unverified: {note}]".replace("\\", "\\\\")
        text = re.sub(whole, marked, text, count=1)
    return text


def _plausible(reference: Reference) -> bool:
    """Whether a reference to a file that does not exist still reads as a path: it has a
    directory part and a file name with an extension (not "and/or"), or it is a bare
    ``name.ext`` with a line number (``expiry.py:3``; not ``obj.rs`` nor ``a.b.c``)."""
    name = reference.path.rsplit("/", 1)[-1]
    if "/" in reference.path:
        return reference.line is not None or "." in name
    return reference.line is not None and name.count(".") == 1 and not name.startswith(".")


def _looks_like_path(path: str) -> bool:
    if not re.search(r"[A-Za-z]", path) or path.startswith("-"):
        return False
    name = path.rsplit("/", 1)[-1]
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if "/" in path:
        return True
    return bool(suffix) and (
        suffix in _DOC_EXTENSIONS or language_of(name) is not None or name.lower() == suffix
    )


def _normal(path: str) -> str:
    path = re.sub(r"/{2,}", "/", path.strip().replace("\\", "/"))
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/") or "."


def _resolve_basename(path: str, evidence: Evidence, workspace: Workspace) -> str:
    """A bare file name the tools showed under one directory means that file."""
    if "/" in path or _check_path(path, workspace)[0]:
        return path
    matches = sorted(p for p in evidence.seen_paths() if p.endswith("/" + path))
    return matches[0] if len(matches) == 1 else path


def _check_path(path: str, workspace: Workspace) -> tuple[bool, str | None]:
    try:
        resolved = workspace.resolve(path)
    except ToolError as error:
        text = str(error)
        if text.startswith("not found"):
            return False, "does not exist"
        return False, text.split(":", 1)[0]  # "path refused" (outside, sensitive, hard link)
    return resolved.exists(), None


def _line_count(workspace: Workspace, path: str) -> int | None:
    try:
        data = read_regular(workspace.resolve(path), MAX_COUNTED_BYTES)
    except (ToolError, UnsafeFileError, OSError):  # a directory, a huge or odd file
        return None
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def _line_problem(reference: Reference, lines: int | None) -> str | None:
    if lines is None:
        return None
    last = max(reference.line or 0, reference.end_line or 0)
    if last > lines or (reference.line or 0) < 1:
        return f"does not exist (file has {lines} lines)"
    return None
