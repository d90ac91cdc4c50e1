"""Ignore rules (``.gitignore``, ``.ignore``, ``.rgignore``, ``.git/info/exclude``), read as
hostile input.

A cloned repository decides what its ignore files are: a symlink to ``/dev/zero``, a FIFO,
a 4 GB file, or a line such as ``*a*a*a*a*a*b`` that makes a backtracking matcher run for
hours against a long file name. So:

* every ignore file is read with ``fsguard.read_regular`` (no symlinks, FIFOs or devices;
  at most ``MAX_IGNORE_FILE_BYTES``), and at most ``MAX_RULES`` rules are kept per listing;
* each rule is sanitised (``sanitise_rule``): over-long rules are dropped, runs of ``*``
  are collapsed the way git reads them, and a rule with more than ``MAX_STARS_PER_SEGMENT``
  ``*`` in one path segment is dropped, which keeps a Python regex match of one rule
  polynomially bounded (pathspec compiles rules to backtracking ``re`` patterns);
* ripgrep never opens an ignore file itself: it gets the sanitised rules of every
  directory, rebased to the root (``rebase_rule``), in one private ``--ignore-file``;
* the pure-Python walk matches them with ``pathspec.GitIgnoreSpec`` (git's semantics),
  one spec per directory, the deepest deciding (``IgnoreStack``).

Precedence, lowest first: ``.git/info/exclude``, then per directory ``.gitignore``,
``.ignore``, ``.rgignore``, and deeper directories over shallower ones (ripgrep's order).
Nested git repositories are not treated specially: their parents' rules still apply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from local_brain.fsguard import UnsafeFileError, read_regular

if TYPE_CHECKING:  # pathspec is imported when the Python walk first needs it
    import pathspec

IGNORE_FILE_NAMES = (".gitignore", ".ignore", ".rgignore")  # lowest precedence first
MAX_IGNORE_FILE_BYTES = 1024 * 1024
MAX_RULES = 20_000  # across every ignore file one search or listing reads
MAX_RULE_CHARS = 1024
MAX_STARS_PER_SEGMENT = 2


@dataclass(frozen=True)
class IgnoreFile:
    """The sanitised rules of one ignore file, relative to its directory ``base``."""

    base: str  # root-relative POSIX directory; "" for the root
    rules: tuple[str, ...]


@dataclass
class RuleBudget:
    """How many more rules may be read; shared by every file of one listing."""

    remaining: int = MAX_RULES
    exhausted: bool = field(default=False)

    def take(self, rules: list[str]) -> list[str]:
        if len(rules) > self.remaining:
            rules = rules[: self.remaining]
            self.exhausted = True
        self.remaining -= len(rules)
        return rules


def read_ignore_file(path: Path, base: str, budget: RuleBudget) -> IgnoreFile | None:
    """The rules of one ignore file, or None when it is missing, unsafe, too large or empty."""
    if budget.remaining <= 0:
        budget.exhausted = True
        return None
    try:
        data = read_regular(path, MAX_IGNORE_FILE_BYTES)
    except (UnsafeFileError, OSError, ValueError):
        return None
    rules = budget.take(parse_rules(data))
    return IgnoreFile(base, tuple(rules)) if rules else None


def parse_rules(data: bytes) -> list[str]:
    """The sanitised rules of an ignore file's bytes (comments and blanks dropped)."""
    text = data.decode("utf-8", errors="surrogateescape")
    rules = []
    for line in text.split("\n"):
        rule = sanitise_rule(line)
        if rule is not None:
            rules.append(rule)
    return rules


def sanitise_rule(line: str) -> str | None:
    """One gitignore line as a rule we accept, or None (blank, comment or refused).

    Trailing spaces go unless escaped (git's rule). A run of ``*`` inside a segment means
    the same as one ``*`` to git, and a segment of three or more is a ``**``, so both are
    collapsed, and repeated ``**/`` segments become one. A rule is refused when it is
    longer than ``MAX_RULE_CHARS``, holds a NUL, or has more than
    ``MAX_STARS_PER_SEGMENT`` wildcards ``*`` in one segment.
    """
    line = line.removesuffix("\r")
    if not line or line.startswith("#"):
        return None
    while line.endswith(" ") and not line.endswith("\\ "):
        line = line[:-1]
    if not line or len(line) > MAX_RULE_CHARS or "\x00" in line:
        return None
    negation = "!" if line.startswith("!") else ""
    body = line[len(negation) :]
    segments: list[str] = []
    for segment in body.split("/"):
        if segment and set(segment) == {"*"} and len(segment) >= 2:
            if segments and segments[-1] == "**":
                continue  # **/** is **
            segments.append("**")
            continue
        collapsed, stars = _collapse_stars(segment)
        if stars > MAX_STARS_PER_SEGMENT:
            return None
        segments.append(collapsed)
    body = "/".join(segments)
    if not body.strip("/"):
        return None
    return negation + body


def _collapse_stars(segment: str) -> tuple[str, int]:
    """``segment`` with each run of unescaped ``*`` made one ``*``, and how many remain."""
    out: list[str] = []
    stars = 0
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "\\" and index + 1 < len(segment):
            out.append(segment[index : index + 2])
            index += 2
            continue
        if char == "*":
            if not (out and out[-1] == "*"):
                out.append("*")
                stars += 1
        else:
            out.append(char)
        index += 1
    return "".join(out), stars


def rebase_rule(rule: str, base: str) -> str | None:
    """A sanitised rule of directory ``base`` rewritten to match from the root.

    ``foo`` (no inner slash: any depth) becomes ``/base/**/foo``; ``foo/bar`` and ``/foo``
    (anchored to their directory) become ``/base/foo/bar`` and ``/base/foo``.
    """
    if not base:
        return rule
    negation = "!" if rule.startswith("!") else ""
    body = rule[len(negation) :]
    trailing = "/" if body.endswith("/") else ""
    body = body.rstrip("/")
    if not body:
        return None
    if "/" in body:
        return f"{negation}/{_escape_base(base)}/{body.lstrip('/')}{trailing}"
    return f"{negation}/{_escape_base(base)}/**/{body}{trailing}"


def _escape_base(base: str) -> str:
    """A directory path as a literal glob (its names may hold ``*``, ``[`` or ``\\``)."""
    return "".join(f"\\{char}" if char in "*?[]{}\\" else char for char in base)


def rebased_rules(files: Iterable[IgnoreFile]) -> list[str]:
    """Every rule of ``files`` (in precedence order) rewritten to match from the root."""
    rules: list[str] = []
    for ignore_file in files:
        for rule in ignore_file.rules:
            rebased = rebase_rule(rule, ignore_file.base)
            if rebased is not None:
                rules.append(rebased)
    return rules


def write_rules_file(rules: list[str], directory: Path, name: str) -> Path:
    """``rules`` as a new ignore file ``name`` in ``directory`` (a private scratch dir)."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    with os.fdopen(fd, "wb") as handle:
        for rule in rules:
            handle.write(rule.encode("utf-8", errors="surrogateescape") + b"\n")
    return path


# -- reading the files that apply --------------------------------------------------------


def exclude_file(root: Path, budget: RuleBudget) -> IgnoreFile | None:
    """``.git/info/exclude`` of a repository whose top level is ``root``."""
    return read_ignore_file(root / ".git" / "info" / "exclude", "", budget)


def directory_files(root: Path, base: str, budget: RuleBudget) -> list[IgnoreFile]:
    """The ignore files of one directory (root-relative ``base``), lowest precedence first."""
    directory = root.joinpath(*base.split("/")) if base else root
    found = []
    for name in IGNORE_FILE_NAMES:
        parsed = read_ignore_file(directory / name, base, budget)
        if parsed is not None:
            found.append(parsed)
    return found


def ancestor_files(root: Path, relative_target: str, budget: RuleBudget) -> list[IgnoreFile]:
    """``.git/info/exclude`` and the ignore files of the directories from the root down to
    ``relative_target`` (exclusive): the rules that reach into a subdirectory search."""
    files = [parsed for parsed in [exclude_file(root, budget)] if parsed is not None]
    if relative_target in ("", "."):
        return files
    parts = relative_target.split("/")
    for depth in range(len(parts)):
        files += directory_files(root, "/".join(parts[:depth]), budget)
    return files


def rules_above(root: Path, relative_target: str, budget: RuleBudget) -> list[IgnoreFile]:
    """The ignore files above ``relative_target`` that apply inside it: ``ancestor_files``,
    or none when they ignore the target itself or a directory on the way to it.

    A directory the model names explicitly is searched: ripgrep never prunes its starting
    path and matches rules against each entry by itself, while a gitignore matcher answers
    "is this path or any parent ignored", so below an ignored target the two disagree on
    every file. Dropping the rules from above keeps the engines in agreement and the
    requested directory searchable (its own and its subdirectories' rules still apply).
    """
    files = ancestor_files(root, relative_target, budget)
    if relative_target in ("", ".") or not files:
        return files
    stack = IgnoreStack().push(files)
    parts = relative_target.split("/")
    for depth in range(1, len(parts) + 1):
        if stack.is_ignored("/".join(parts[:depth]), is_dir=True):
            return []
    return files


# -- matching (the pure-Python walk) -----------------------------------------------------


def _compile(rules: list[str]) -> pathspec.GitIgnoreSpec:
    """A spec of ``rules``; rules pathspec refuses (``\\`` alone, ``[z-a]``) are left out,
    as git and ripgrep leave them out."""
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(rules, backend="simple")
    except (ValueError, re.error):
        valid = [rule for rule in rules if _compiles(rule)]
        return pathspec.GitIgnoreSpec.from_lines(valid, backend="simple")


def _compiles(rule: str) -> bool:
    import pathspec

    try:
        pathspec.GitIgnoreSpec.from_lines([rule], backend="simple")
    except (ValueError, re.error):
        return False
    return True


class IgnoreStack:
    """The ignore files in force in one directory of a walk, each with its own spec."""

    def __init__(self, layers: tuple[tuple[str, pathspec.GitIgnoreSpec], ...] = ()) -> None:
        self._layers = layers

    def push(self, files: Iterable[IgnoreFile]) -> IgnoreStack:
        """A stack with ``files`` added (same base: later files take precedence)."""
        by_base: dict[str, list[str]] = {}
        for ignore_file in files:
            by_base.setdefault(ignore_file.base, []).extend(ignore_file.rules)
        layers = list(self._layers)
        for base, rules in by_base.items():
            layers.append((base, _compile(rules)))
        return IgnoreStack(tuple(layers))

    def is_ignored(self, relative: str, is_dir: bool) -> bool:
        """Whether a root-relative path is ignored; the deepest file with a match decides."""
        for base, spec in reversed(self._layers):
            if base:
                if not relative.startswith(base + "/"):
                    continue
                local = relative[len(base) + 1 :]
            else:
                local = relative
            result = spec.check_file(local + "/" if is_dir else local)
            if result.include is not None:
                return result.include
        return False
