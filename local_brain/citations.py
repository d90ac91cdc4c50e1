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
from dataclasses import dataclass, field
from typing import Any

from local_brain.errors import ToolError
from local_brain.fsguard import UnsafeFileError, read_regular
from local_brain.tools.languages import language_of
from local_brain.workspace import Workspace

MAX_REFERENCES = 60
MAX_COUNTED_BYTES = 16 * 1024 * 1024
# Extensions that make a bare word a file name even without a directory part.
_DOC_EXTENSIONS = frozenset(
    "md rst txt json yaml yml toml ini cfg conf lock xml html css sql sh bash env "
    "gradle properties mk cmake dockerfile proto graphql tf".split()
)
_SEGMENT = r"[\w@+.-]+"
_PATH = rf"(?:{_SEGMENT}/)*{_SEGMENT}"
_REFERENCE = re.compile(
    rf"(?<![\w/.:@-])(?P<path>{_PATH})"
    r"(?:(?::|#L)(?P<line>\d{1,7})(?:(?:-|–|-L)(?P<end>\d{1,7}))?)?"
    r"(?![\w/@-])"
)
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
        with self._lock:
            path_argument = arguments.get("path")
            if isinstance(path_argument, str) and path_argument.strip():
                self.paths.add(_normal(path_argument))
            for reference in find_references(output, limit=None):
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
    ``os.path.join`` and version numbers do not."""
    found: dict[tuple[str, int | None, int | None], Reference] = {}
    for match in _REFERENCE.finditer(text or ""):
        path = match["path"].rstrip(".")
        token_start = max(text.rfind(" ", 0, match.start()), text.rfind("\n", 0, match.start()))
        if not _looks_like_path(path) or "://" in text[token_start + 1 : match.end()]:
            continue  # a word, a dotted name, or part of a URL
        line = int(match["line"]) if match["line"] else None
        end = int(match["end"]) if match["end"] else None
        written = match.group(0).rstrip(".")
        found.setdefault((_normal(path), line, end), Reference(_normal(path), line, end, written))
        if limit is not None and len(found) >= limit:
            break
    return list(found.values())


def check_answer(text: str, workspace: Workspace, evidence: Evidence) -> list[Citation]:
    """Check every reference in an answer; bare words that name no file are left out."""
    citations = []
    line_counts: dict[str, int | None] = {}
    for reference in find_references(text):
        path = _resolve_basename(reference.path, evidence, workspace)
        exists, problem = _check_path(path, workspace)
        if not exists and reference.line is None and "." not in path.rsplit("/", 1)[-1]:
            continue  # "and/or", "input/output": prose, not a path
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
    path = path.strip().replace("\\", "/")
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
