"""``search_code`` (ripgrep, with a pure-Python fallback) and ``list_definitions``.

Search semantics, shared by both engines:

* the pattern is a regular expression (Rust regex syntax under ripgrep);
* ``.gitignore`` (and ``.ignore``/``.rgignore``) rules are honoured; hidden files such as
  ``.github/`` are searched, ``.git/`` and sensitive files never are: they are excluded
  up front and every result path is checked again before it is counted or shown;
* symbolic links are not followed and binary files are skipped;
* every matching line is counted, but only the first ``max_results`` in path order are
  kept, so memory stays bounded and the output is the same from run to run.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.tools import Param, ToolSpec
from local_brain.tools.definitions import (
    GrammarUnavailable,
    ParsedFile,
    enclosing_definitions,
    file_definitions,
    language_for,
    supported_extensions,
)
from local_brain.tools.ripgrep import find_rg, rg_environment
from local_brain.workspace import (
    SENSITIVE_DIRS,
    SENSITIVE_NAMES,
    SENSITIVE_UNLESS_SOURCE,
    Workspace,
    is_sensitive_path,
    rg_exclude_globs,
)

SEARCH_TIMEOUT_SECONDS = 60.0
MAX_SEARCH_FILE_SIZE = "64M"  # larger files (logs, dumps) are not searched
MAX_PATTERN_CHARS = 1000
MAX_RESULTS_LIMIT = 500
ROW_TEXT_CHARS = 200
ENCLOSING_HITS = 10  # the first shown hits get an ``[in ...]`` note
RG_MAX_COLUMNS = 1000
TOP_FILES_SHOWN = 5
MAX_DEFINITION_FILES = 40
DIRECTORY_SECONDS = 10.0  # list_definitions on a directory stops parsing new files after this

_RG_LONG_LINE = re.compile(r"\s*\[\.\.\. (omitted end of long line|\d+ more matches?)\]$")
_IGNORE_FILES = (".gitignore", ".ignore", ".rgignore")
# Every sensitive-name pattern in one regex: a quick first look at the thousands of paths
# a search can return. Only a path it flags is handed to ``is_sensitive_path`` (the policy).
_MAYBE_SENSITIVE_NAME = re.compile(
    "|".join(
        f"(?:{fnmatch.translate(pattern)})"
        for pattern in (*SENSITIVE_NAMES, *SENSITIVE_UNLESS_SOURCE)
    )
)


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


def path_order(path: str) -> list[str]:
    """Sort key for root-relative paths: directory by directory, like a sorted tree walk.

    ``a/x`` sorts before ``a.py`` (the directory ``a`` comes first), which is the order of
    ``rg --sort path`` and of the Python fallback's walk.
    """
    return path.split("/")


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


def is_hidden_from_results(relative: str) -> bool:
    """``is_sensitive_path``, answered quickly for the common, plainly harmless path.

    A path is passed to the policy function unless its name matches none of the sensitive
    name patterns, does not start with ``id_`` (SSH keys) and no component is a sensitive
    directory; in that case ``is_sensitive_path`` would say False too.
    """
    parts = relative.lower().split("/")
    name = parts[-1]
    if _MAYBE_SENSITIVE_NAME.match(name) or not SENSITIVE_DIRS.isdisjoint(parts):
        return is_sensitive_path(relative)
    return False


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
    if glob and ("\x00" in glob or len(glob) > 300):
        raise ToolError("glob is not valid; use a file pattern such as *.py or src/**/*.ts")
    limit = min(max(int(max_results), 1), MAX_RESULTS_LIMIT)
    target = ws.resolve(path)
    if target.is_file() and ws.is_binary(target):
        raise ToolError(f"{ws.relative(target)} is a binary file; search_code skips binary files")
    rg = find_rg() if use_rg else None
    if rg is not None:
        result = _search_rg(rg, ws, target, pattern, glob, ignore_case, limit)
    else:
        result = _search_python(ws, target, pattern, glob, ignore_case, limit)
    return _format(ws, result, pattern, path, glob, ignore_case)


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
        row = f"{hit.path}:{hit.line}: {hit.text}"
        note = notes.get(index)
        if note:
            row += f"  [in {note}]"
        lines.append(row)
    if shown < result.total:
        busiest = sorted(result.file_counts.items(), key=lambda item: (-item[1], item[0]))
        top = ", ".join(f"{name} ({count})" for name, count in busiest[:TOP_FILES_SHOWN])
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


def in_git_worktree(root: Path) -> bool:
    """True when ``root`` or an ancestor holds ``.git`` (a directory, or a worktree's file)."""
    return any((directory / ".git").exists() for directory in (root, *root.parents))


def _rg_base_command(rg: str, ws: Workspace) -> list[str]:
    """Options common to searching and listing: ignore rules, hidden files, no config.

    ripgrep reads ignore files from the search path down; those above it come from
    ``_parent_rules`` instead, so a ``.gitignore`` above the root (a dotfiles repository's
    ``*``, or the parent project's ``node_modules/`` when the root is inside it) cannot
    hide the whole tree. Inside a git work tree ripgrep follows git (``.git/info/exclude``,
    nested repositories); outside one, ``--no-require-git`` honours ``.gitignore`` anyway.
    """
    command = [rg, "--no-config", "--hidden", "--no-ignore-parent", "--color", "never"]
    if not in_git_worktree(ws.root):
        command.append("--no-require-git")
    return command


def _parent_rules(ws: Workspace, target: Path) -> list[str]:
    """The ignore rules of the directories from the root down to ``target`` (exclusive).

    ripgrep is told not to read them itself (see ``_rg_base_command``), so they are
    rewritten to match from the root, in order (deeper rules later, so they win), and
    passed with ``--ignore-file``, whose patterns ripgrep matches relative to its working
    directory, the root.
    """
    relative = ws.relative(target)
    if relative == "." or not target.is_dir():
        return []  # ripgrep reads the root's own files; an explicit file is always searched
    parts = relative.split("/")
    rules: list[str] = []
    exclude = ws.root / ".git" / "info" / "exclude"  # lowest precedence, so first
    if exclude.is_file():
        rules += [line for line in exclude.read_text(errors="replace").splitlines() if line]
    for depth in range(len(parts)):
        base = "/".join(parts[:depth])
        for name in _IGNORE_FILES:
            try:
                text = ws.root.joinpath(*parts[:depth], name).read_text(errors="replace")
            except OSError:
                continue
            rules += [rule for line in text.splitlines() if (rule := _rebase_rule(line, base))]
    return rules


def _rebase_rule(line: str, base: str) -> str | None:
    """One gitignore line from directory ``base`` rewritten to match from the root."""
    if not line.strip() or line.startswith("#"):
        return None
    line = line.rstrip()
    if not base:
        return line
    negation = "!" if line.startswith("!") else ""
    body = line[len(negation) :]
    trailing = "/" if body.endswith("/") else ""
    body = body.rstrip("/")
    if not body:
        return None
    if "/" in body:
        return f"{negation}/{base}/{body.lstrip('/')}{trailing}"
    return f"{negation}/{base}/**/{body}{trailing}"


def _exclusion_args() -> list[str]:
    args: list[str] = []
    for glob in rg_exclude_globs():
        args += ["--glob", glob]
    return args


def _search_rg(
    rg: str,
    ws: Workspace,
    target: Path,
    pattern: str,
    glob: str | None,
    ignore_case: bool,
    limit: int,
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
    command = [*_rg_base_command(rg, ws), "--count", "--with-filename", "--null", case]
    command += ["--max-filesize", MAX_SEARCH_FILE_SIZE]  # bounded memory: rg holds whole lines
    if glob:
        command += ["--glob", glob]  # first, so the exclusions after it take precedence
    command += _exclusion_args()
    with _parent_ignore_args(ws, target) as ignore_args:
        command += [*ignore_args, f"--regexp={pattern}", "--", ws.relative(target)]
        returncode, output, stderr = _run_rg(ws, command)
    counts = {
        relative: count
        for relative, count in _parse_counts(output)
        if count > 0 and not is_hidden_from_results(relative)
    }
    unreadable = False
    if returncode == 2:
        if not counts:
            _raise_for_rg_error(stderr)  # a bad pattern or glob: nothing was searched
        unreadable = True  # per-file errors only: the results found still stand
    elif returncode not in (0, 1):
        raise ToolError(f"search failed (ripgrep exit status {returncode})")
    hits = _rows_from_files(rg, ws, counts, case, pattern, limit)
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


def _timeout_message() -> str:
    return f"search timed out after {SEARCH_TIMEOUT_SECONDS:.0f}s; narrow it with path= or glob="


def _rows_from_files(
    rg: str, ws: Workspace, counts: dict[str, int], case: str, pattern: str, limit: int
) -> list[Hit]:
    """The first ``limit`` rows, read from just enough of the first matching files."""
    first_files: list[str] = []
    needed = limit
    for relative in sorted(counts, key=path_order):
        if needed <= 0:
            break
        first_files.append(relative)
        needed -= counts[relative]
    collector = _Collector(limit)
    if not first_files:
        return []
    command = [rg, "--no-config", "--color", "never", *_ROW_OPTIONS, "--max-count", str(limit)]
    command += [case, f"--regexp={pattern}", "--", *first_files]
    _, output, _ = _run_rg(ws, command)
    for raw in output.split(b"\n"):
        path_bytes, separator, rest = raw.partition(b"\x00")
        number, _, text = rest.partition(b":")
        relative = _rg_path(path_bytes)
        if separator and number.isdigit() and relative in counts:
            collector.add(relative, int(number), text)
    return collector.hits()


def _run_rg(ws: Workspace, command: list[str]) -> tuple[int, bytes, str]:
    """Run ripgrep in the root: (exit status, stdout, the start of stderr)."""
    try:
        completed = subprocess.run(
            command,
            cwd=ws.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=rg_environment(),
            timeout=SEARCH_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(_timeout_message()) from None
    stderr = completed.stderr[:8192].decode("utf-8", errors="replace")
    return completed.returncode, completed.stdout, stderr


def _parse_counts(output: bytes) -> Iterator[tuple[str, int]]:
    """``path\\0count\\n`` records; split on NUL first, so a path may hold a line break."""
    pieces = output.split(b"\x00")
    path = pieces[0]
    for piece in pieces[1:]:
        count, _, following = piece.partition(b"\n")
        if count.strip().isdigit():
            yield _rg_path(path), int(count)
        path = following


@contextmanager
def _parent_ignore_args(ws: Workspace, target: Path) -> Iterator[list[str]]:
    """``--ignore-file`` arguments carrying ``_parent_rules``, valid inside the ``with``."""
    rules = _parent_rules(ws, target)
    if not rules:
        yield []
        return
    import tempfile  # only needed below the root; keeps the common search's start-up lean

    with tempfile.TemporaryDirectory(prefix="local-brain-rg-") as scratch:
        rules_file = Path(scratch) / "parent-ignore"
        rules_file.write_text("\n".join(rules) + "\n", encoding="utf-8")
        yield ["--ignore-file", str(rules_file)]


def _rg_path(path_bytes: bytes) -> str:
    relative = os.fsdecode(path_bytes)
    if relative.startswith("./"):
        relative = relative[2:]
    return relative.replace(os.sep, "/")


def _raise_for_rg_error(stderr: str) -> None:
    """Turn ripgrep's complaint about the pattern or glob into a ToolError; else return."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
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


def _rg_list_files(rg: str, ws: Workspace, target: Path) -> Iterator[str]:
    """Root-relative paths of the searchable files under ``target``, sorted."""
    command = [*_rg_base_command(rg, ws), "--files", "--sort", "path", "--null"]
    command += _exclusion_args()
    with _parent_ignore_args(ws, target) as ignore_args:
        command += [*ignore_args, "--", ws.relative(target)]
        try:
            completed = subprocess.run(
                command,
                cwd=ws.root,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=rg_environment(),
                timeout=SEARCH_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ToolError("listing files timed out; choose a smaller directory") from None
    for entry in completed.stdout.split(b"\x00"):
        if entry:
            yield _rg_path(entry)


# -- pure-Python fallback ---------------------------------------------------------------------


@dataclass
class _IgnoreRule:
    regex: re.Pattern[str]
    negated: bool
    directory_only: bool


@dataclass
class _IgnoreFile:
    """The rules of one ignore file; they match paths relative to its directory, ``base``."""

    rules: list[_IgnoreRule]
    base: str = ""  # root-relative; "" for the root itself

    def decide(self, relative: str, is_dir: bool) -> bool | None:
        """True (ignored), False (re-included by ``!``) or None (no rule matched)."""
        if self.base:
            if not relative.startswith(self.base + "/"):
                return None
            relative = relative[len(self.base) + 1 :]
        decision: bool | None = None
        for rule in self.rules:
            if rule.directory_only and not is_dir:
                continue
            if rule.regex.fullmatch(relative):
                decision = not rule.negated
        return decision


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A gitignore-style glob as a regex over a relative POSIX path.

    A pattern without ``/`` (other than a trailing one) matches the name at any depth;
    ``*`` and ``?`` stop at ``/``; ``**`` crosses directories.
    """
    anchored = "/" in pattern
    pattern = pattern.lstrip("/")
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
            continue
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 2)
            if end == -1:
                parts.append(re.escape(char))
            else:
                body = pattern[index + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                parts.append(f"[{body}]")
                index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            parts.append(re.escape(pattern[index]))
        else:
            parts.append(re.escape(char))
        index += 1
    body = "".join(parts)
    if not anchored:
        body = "(?:.*/)?" + body
    return re.compile(body, re.DOTALL)


def _parse_ignore_file(path: Path, base: str = "") -> _IgnoreFile | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    rules: list[_IgnoreRule] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        line = line.rstrip()
        negated = line.startswith("!")
        if negated or line.startswith(("\\!", "\\#")):
            line = line[1:]
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        try:
            regex = _glob_regex(line)
        except re.error:
            continue
        rules.append(_IgnoreRule(regex, negated, directory_only))
    return _IgnoreFile(rules, base) if rules else None


def _load_ignore_files(directory: Path, base: str = "") -> list[_IgnoreFile]:
    loaded = []
    for name in _IGNORE_FILES:
        candidate = directory / name
        if candidate.is_file():
            parsed = _parse_ignore_file(candidate, base)
            if parsed is not None:
                loaded.append(parsed)
    return loaded


def _is_ignored(stack: list[_IgnoreFile], relative: str, is_dir: bool) -> bool:
    for ignore_file in reversed(stack):  # deeper files override shallower ones
        decision = ignore_file.decide(relative, is_dir)
        if decision is not None:
            return decision
    return False


def _root_ignore_files(ws: Workspace) -> list[_IgnoreFile]:
    """``.git/info/exclude`` when the root is a repository's top level."""
    exclude = _parse_ignore_file(ws.root / ".git" / "info" / "exclude")
    return [exclude] if exclude is not None else []


def iter_files_python(ws: Workspace, target: Path, glob: str | None = None) -> Iterator[str]:
    """Root-relative paths of the searchable files under ``target``, in sorted order.

    Skips ``.git``, sensitive paths, symbolic links and ignored paths; ``glob`` filters
    file paths like ripgrep's ``--glob`` (a leading ``!`` excludes).
    """
    glob_rule: tuple[re.Pattern[str], bool] | None = None
    if glob:
        negated = glob.startswith("!")
        glob_rule = (_glob_regex(glob[1:] if negated else glob), negated)

    def glob_allows(relative: str, is_dir: bool) -> bool:
        if glob_rule is None:
            return True
        regex, negated = glob_rule
        if negated:
            return not regex.fullmatch(relative)
        return is_dir or bool(regex.fullmatch(relative))

    if target.is_file():  # an explicitly named file is searched whatever the globs say
        yield ws.relative(target)
        return

    stack = _root_ignore_files(ws)
    # Ignore files between the root and the target apply too.
    relative_target = ws.relative(target)
    if relative_target != ".":
        parts = relative_target.split("/")
        for depth in range(len(parts)):
            directory = ws.root.joinpath(*parts[:depth])
            stack = stack + _load_ignore_files(directory, "/".join(parts[:depth]))
    yield from _walk(ws, target, stack, glob_allows)


def _walk(
    ws: Workspace,
    directory: Path,
    inherited: list[_IgnoreFile],
    glob_allows: Callable[[str, bool], bool],
) -> Iterator[str]:
    base = ws.relative(directory)
    base = "" if base == "." else base
    stack = inherited + _load_ignore_files(directory, base)
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        relative = f"{base}/{entry.name}" if base else entry.name
        if entry.is_symlink() or is_sensitive_path(relative):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if _is_ignored(stack, relative, is_dir):
            continue
        if not glob_allows(relative, is_dir):
            continue
        if is_dir:
            yield from _walk(ws, Path(entry.path), stack, glob_allows)
        elif entry.is_file(follow_symlinks=False):
            yield relative


def _search_python(
    ws: Workspace,
    target: Path,
    pattern: str,
    glob: str | None,
    ignore_case: bool,
    limit: int,
) -> SearchResult:
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as error:
        raise ToolError(_invalid_regex_message(str(error))) from None
    except (OverflowError, RecursionError):
        raise ToolError(_invalid_regex_message("pattern too complex")) from None
    collector = _Collector(limit)
    counts: dict[str, int] = {}
    total = 0
    unreadable = False
    for relative in iter_files_python(ws, target, glob):
        absolute = ws.root / relative
        if Workspace.is_binary(absolute):
            continue
        wanted = collector.wants(relative)
        try:
            with absolute.open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    line = raw.decode("utf-8", errors="replace").rstrip("\n")
                    if regex.search(line) is None:
                        continue
                    total += 1
                    counts[relative] = counts.get(relative, 0) + 1
                    if wanted:
                        collector.add(relative, number, raw[: RG_MAX_COLUMNS * 4])
        except OSError:
            unreadable = True
    return SearchResult(total, counts, collector.hits(), unreadable)


def iter_source_files(ws: Workspace, target: Path) -> Iterator[str]:
    """Searchable files under ``target`` (ripgrep's listing when available), sorted."""
    rg = find_rg()
    if rg is not None:
        for relative in _rg_list_files(rg, ws, target):
            if not is_hidden_from_results(relative):
                yield relative
    else:
        yield from iter_files_python(ws, target)


# -- list_definitions -------------------------------------------------------------------------


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
    if ws.is_binary(target):
        raise ToolError(f"{relative} is a binary file")
    try:
        parsed = file_definitions(target)
    except GrammarUnavailable as error:
        raise ToolError(
            f"{relative}: the parser for this language is unavailable ({error})"
        ) from None
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
        if ws.is_binary(absolute):
            continue
        try:
            parsed = file_definitions(absolute)
        except (GrammarUnavailable, OSError, ValueError, RecursionError):
            continue
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

TOOLS = (SEARCH_CODE, LIST_DEFINITIONS)
