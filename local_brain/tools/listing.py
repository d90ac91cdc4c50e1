"""Which files the tools see: ripgrep's listing (or a pure-Python walk), glob filters, and
the ignore rules handed to ripgrep.

Both engines list the same files: regular files only (no symlinks, FIFOs or devices),
``.git/`` and sensitive paths never, ignore rules honoured (see ``ignore.py``), hidden
files such as ``.github/`` included, in path order.

Globs given by the model (``list_directory``'s pattern, ``search_code``'s glob in the
Python engine) are matched one path segment at a time with the standard library's
``fnmatch``, whose patterns cannot backtrack catastrophically (atomic groups), and ``**``
segments by a small table over segments: no regex spans the whole path.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.redact import holds_secret
from local_brain.tools.ignore import (
    IGNORE_FILE_NAMES,
    IgnoreFile,
    IgnoreStack,
    RuleBudget,
    directory_files,
    rebased_rules,
    rules_above,
    write_rules_file,
)
from local_brain.tools.ripgrep import DeadlinePassed, find_rg, rg_base_command, run_rg
from local_brain.workspace import (
    SENSITIVE_DIRS,
    SENSITIVE_NAMES,
    SENSITIVE_PATHS,
    SENSITIVE_UNLESS_SOURCE,
    Workspace,
    is_hard_link,
    is_sensitive_path,
    rg_exclude_globs,
)

LISTING_TIMEOUT_SECONDS = 60.0
SCRATCH_PREFIX = "local-brain-rg-"  # the private directory of the rules handed to rg
MAX_GLOB_CHARS = 300
MAX_GLOB_SEGMENTS = 32

# Every sensitive-name pattern in one regex: a quick first look at the thousands of paths
# a listing can return. Only a path it flags is handed to ``is_sensitive_path`` (the policy).
# Names that are sensitive only in some directory (``SENSITIVE_PATHS``, where the policy
# has them) are flagged by their last component.
_SENSITIVE_PATH_NAMES = tuple(suffix.rsplit("/", 1)[-1] for suffix in SENSITIVE_PATHS)
_MAYBE_SENSITIVE_NAME = re.compile(
    "|".join(
        f"(?:{fnmatch.translate(pattern)})"
        for pattern in (*SENSITIVE_NAMES, *SENSITIVE_UNLESS_SOURCE, *_SENSITIVE_PATH_NAMES)
    )
)


def path_order(path: str) -> list[str]:
    """Sort key for root-relative paths: directory by directory, like a sorted tree walk.

    ``a/x`` sorts before ``a.py`` (the directory ``a`` comes first), which is the order of
    ``rg --sort path`` and of the Python walk.
    """
    return path.split("/")


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


def is_hidden(ws: Workspace, relative: str) -> bool:
    """A found file the tools must not show: a sensitive path, a hard link (whose other
    name could be a secret; see ``workspace.is_hard_link``), or a path that itself holds a
    secret (``notes_ghp_…``: a listing pattern or a glob would tell it character by
    character)."""
    return (
        is_hidden_from_results(relative)
        or is_hard_link(os.path.join(ws.root, relative))
        or (_MAY_HOLD_SECRET.search(relative) is not None and holds_secret(relative))
    )


# What every secret the detectors find in a file name has: an assignment or credential
# character, or a long run of token characters (checked first: it is much cheaper).
_MAY_HOLD_SECRET = re.compile(r"[=:@]|[A-Za-z0-9_+/-]{16}")


# -- globs --------------------------------------------------------------------------------


def check_glob(pattern: str, what: str = "glob") -> None:
    """Refuse a model-given glob that is too long, too deep or holds a NUL."""
    if "\x00" in pattern or len(pattern) > MAX_GLOB_CHARS:
        raise ToolError(
            f"{what} is not valid (at most {MAX_GLOB_CHARS} characters); "
            "use a file pattern such as *.py or src/**/*.ts"
        )
    if pattern.count("/") >= MAX_GLOB_SEGMENTS:
        raise ToolError(f"{what} has too many path segments (at most {MAX_GLOB_SEGMENTS})")


@lru_cache(maxsize=256)
def _segment_regex(segment: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(segment))


def match_segments(segments: tuple[str, ...], parts: list[str]) -> bool:
    """Whether path ``parts`` match glob ``segments``, where a ``**`` segment matches any
    number of parts (zero included) and every other segment exactly one part (``fnmatch``:
    ``*``, ``?``, ``[...]``; ``**`` inside a segment is a plain ``*``)."""
    fixed = sum(1 for segment in segments if segment != "**")
    if fixed > len(parts) or ("**" not in segments and fixed != len(parts)):
        return False
    # reach[j]: the segments so far can match parts[:j]
    reach = [True] + [False] * len(parts)
    for segment in segments:
        if segment == "**":
            for j in range(1, len(reach)):
                reach[j] = reach[j] or reach[j - 1]
            continue
        regex = _segment_regex(segment)
        reach = [False] + [
            reach[j] and regex.match(parts[j]) is not None for j in range(len(parts))
        ]
        if not any(reach):
            return False
    return reach[-1]


def listing_matcher(pattern: str) -> Callable[[str], bool]:
    """``list_directory``'s recursive pattern: it matches a relative path, or its name."""
    segments = tuple(pattern.split("/"))
    name_regex = _segment_regex(pattern) if "/" not in pattern else None

    def matches(relative: str) -> bool:
        parts = relative.split("/")
        if match_segments(segments, parts):
            return True
        return name_regex is not None and name_regex.match(parts[-1]) is not None

    return matches


def name_matches(name: str, pattern: str) -> bool:
    """``list_directory``'s plain pattern against one entry name."""
    return _segment_regex(pattern).match(name) is not None


class PathGlob:
    """A ``--glob`` for the Python engine, with ripgrep's meaning.

    A glob without ``/`` matches the name at any depth; one with ``/`` matches the path
    from the root; a trailing ``/`` matches directories only; a leading ``!`` excludes.
    A positive glob selects files (directories are still entered); a negative one prunes.
    """

    def __init__(self, pattern: str) -> None:
        self.negated = pattern.startswith("!")
        body = pattern[1:] if self.negated else pattern
        self.directory_only = body.endswith("/")
        body = body.rstrip("/")
        self.anchored = "/" in body
        self.segments = tuple(body.lstrip("/").split("/"))

    def matches(self, relative: str, is_dir: bool) -> bool:
        if self.directory_only and not is_dir:
            return False
        parts = relative.split("/")
        if not self.anchored:
            return match_segments(self.segments, parts[-1:])
        return match_segments(self.segments, parts)

    def allows(self, relative: str, is_dir: bool) -> bool:
        if self.negated:
            return not self.matches(relative, is_dir)
        return is_dir or self.matches(relative, is_dir)


# -- the files a tool sees ----------------------------------------------------------------


def iter_source_files(ws: Workspace, target: Path) -> Iterator[str]:
    """Searchable files under ``target`` (ripgrep's listing when available), sorted."""
    deadline = time.monotonic() + LISTING_TIMEOUT_SECONDS
    try:
        rg = find_rg(ws.root)
        if rg is not None:
            for relative in rg_list_files(rg, ws, target, deadline):
                if not is_hidden(ws, relative):
                    yield relative
        else:
            for relative in iter_files_python(ws, target, deadline=deadline):
                if not is_hidden(ws, relative):
                    yield relative
    except DeadlinePassed:
        raise ToolError("listing files timed out; choose a smaller directory") from None


def exclusion_args() -> list[str]:
    args: list[str] = []
    for glob in rg_exclude_globs():
        args += ["--glob", glob]
    return args


def rg_list_files(rg: str, ws: Workspace, target: Path, deadline: float) -> list[str]:
    """Root-relative paths of the searchable files under ``target``, sorted."""
    command = [*rg_base_command(rg), "--files", "--sort", "path", "--null", *exclusion_args()]
    with rg_ignore_args(rg, ws, target, deadline) as ignore_args:
        command += [*ignore_args, "--", ws.relative(target)]
        run = run_rg(command, ws.root, deadline - time.monotonic())
    return [rg_path(entry) for entry in run.stdout.split(b"\x00") if entry]


def rg_path(path_bytes: bytes) -> str:
    relative = os.fsdecode(path_bytes)
    if relative.startswith("./"):
        relative = relative[2:]
    return relative.replace(os.sep, "/")


@contextmanager
def rg_ignore_args(rg: str, ws: Workspace, target: Path, deadline: float) -> Iterator[list[str]]:
    """``--ignore-file`` arguments carrying every ignore rule that applies under ``target``,
    valid inside the ``with``.

    rg runs with ``NO_IGNORE_FLAGS``, so it opens no ignore file; instead the rules are
    read here (``ignore.py``: regular files only, size-capped, sanitised), rewritten to
    match from the root (rg matches ``--ignore-file`` patterns relative to its working
    directory, the root) and written, in precedence order, to one private file:
    ``.git/info/exclude``, the directories from the root down to ``target`` (unless they
    ignore ``target`` itself: ``ignore.rules_above``), then every directory below it that
    holds an ignore file, in path order. An explicitly named file
    is searched whatever the rules say, so it gets none.
    """
    if not target.is_dir():
        yield []
        return
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) as scratch:
        rules = _collect_rules(rg, ws, target, deadline, Path(scratch))
        if not rules:
            yield []
            return
        yield ["--ignore-file", str(write_rules_file(rules, Path(scratch), "ignore"))]


def _collect_rules(
    rg: str, ws: Workspace, target: Path, deadline: float, scratch: Path
) -> list[str]:
    budget = RuleBudget()
    relative = ws.relative(target)
    base = "" if relative == "." else relative
    files = rules_above(ws.root, relative, budget) + directory_files(ws.root, base, budget)
    for directory in _directories_with_ignore_files(rg, ws, target, files, deadline, scratch):
        if directory != base:
            files += directory_files(ws.root, directory, budget)
    return rebased_rules(files)


def _directories_with_ignore_files(
    rg: str,
    ws: Workspace,
    target: Path,
    known: list[IgnoreFile],
    deadline: float,
    scratch: Path,
) -> list[str]:
    """Root-relative directories under ``target`` holding a regular ignore file, in path
    order. rg lists them without opening them (it lists neither symlinks nor FIFOs); the
    rules known so far prune the walk, so ``node_modules/`` and the like are not entered."""
    command = [*rg_base_command(rg), "--files", "--null"]
    for name in IGNORE_FILE_NAMES:
        command += ["--glob", name]
    command += exclusion_args()
    known_rules = rebased_rules(known)
    if known_rules:
        command += ["--ignore-file", str(write_rules_file(known_rules, scratch, "known"))]
    command += ["--", ws.relative(target)]
    run = run_rg(command, ws.root, deadline - time.monotonic())
    directories = set()
    for entry in run.stdout.split(b"\x00"):
        if not entry:
            continue
        relative = rg_path(entry)
        directory, _, name = relative.rpartition("/")
        if name in IGNORE_FILE_NAMES and not is_sensitive_path(relative):
            directories.add(directory)
    return sorted(directories, key=path_order)


# -- the pure-Python walk -----------------------------------------------------------------


def iter_files_python(
    ws: Workspace, target: Path, glob: str | None = None, deadline: float | None = None
) -> Iterator[str]:
    """Root-relative paths of the searchable files under ``target``, in sorted order.

    Skips ``.git``, sensitive paths, symbolic links, FIFOs and devices, and ignored paths;
    ``glob`` filters like ripgrep's ``--glob``. Raises ``DeadlinePassed`` after ``deadline``
    (a ``time.monotonic()`` value).
    """
    if target.is_file():  # an explicitly named file is searched whatever the globs say
        yield ws.relative(target)
        return
    if not target.is_dir():
        return
    budget = RuleBudget()
    relative = ws.relative(target)
    stack = IgnoreStack().push(rules_above(ws.root, relative, budget))
    path_glob = PathGlob(glob) if glob else None
    base = "" if relative == "." else relative
    yield from _walk(ws, target, base, stack, path_glob, budget, deadline)


def _walk(
    ws: Workspace,
    directory: Path,
    base: str,
    inherited: IgnoreStack,
    path_glob: PathGlob | None,
    budget: RuleBudget,
    deadline: float | None,
) -> Iterator[str]:
    stack = inherited.push(directory_files(ws.root, base, budget))
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlinePassed
        relative = f"{base}/{entry.name}" if base else entry.name
        if is_sensitive_path(relative):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            if not is_dir and not entry.is_file(follow_symlinks=False):
                continue  # symlinks, FIFOs, devices, sockets
        except OSError:
            continue
        if stack.is_ignored(relative, is_dir):
            continue
        if path_glob is not None and not path_glob.allows(relative, is_dir):
            continue
        if is_dir:
            yield from _walk(ws, Path(entry.path), relative, stack, path_glob, budget, deadline)
        else:
            yield relative
