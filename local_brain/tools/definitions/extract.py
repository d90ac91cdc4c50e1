"""Definitions of a file: found by the query, named (``naming``), nested by byte range.

One tree-sitter query per language finds the candidate nodes in C; Python then names each
one and nests it by byte range, so the cost grows with the number of definitions rather
than the number of syntax nodes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from local_brain.tools.definitions.engine import (
    ENCLOSING_PARSE_SECONDS,
    MAX_PARSE_BYTES,
    PARSE_SECONDS,
    GrammarUnavailable,
    captures,
    parse,
    read_source,
)
from local_brain.tools.definitions.naming import TRANSPARENT_KINDS, name_node, reading
from local_brain.tools.languages import grammar_for, grammar_for_source, other_grammar

if TYPE_CHECKING:  # tree_sitter is imported lazily; this keeps type checkers informed.
    from tree_sitter import Node, Tree


@dataclass(frozen=True)
class Definition:
    """One definition: ``line`` and ``end_line`` are 1-based and inclusive."""

    line: int
    end_line: int
    kind: str
    name: str
    signature: str = ""
    scope: str = ""  # the prefix children are qualified with ("" for none)

    def label(self) -> str:
        """``method Router.route(self, request)``."""
        return f"{self.kind} {self.name}{self.signature}"


@dataclass(frozen=True)
class FileDefinitions:
    """What one file defines.

    ``truncated``: only the first ``MAX_PARSE_BYTES`` were read. ``stopped_at_line``: the
    parse ran out of time there, and definitions after it are missing.
    """

    language: str
    definitions: tuple[Definition, ...]
    truncated: bool = False
    size: int = 0
    stopped_at_line: int | None = None

    @property
    def timed_out(self) -> bool:
        return self.stopped_at_line is not None


@dataclass(frozen=True)
class ParsedFile:
    """A parsed file kept for enclosing-definition lookups (see ``enclosing_definitions``)."""

    source: bytes
    language: str
    tree: Tree


def extract_definitions(
    source: bytes, language: str, time_budget: float = PARSE_SECONDS
) -> list[Definition]:
    """Every definition in ``source`` in order of position, names qualified by container."""
    tree, _ = parse(source, language, time_budget)
    return _collect(source, language, captures(language, tree.root_node))


def file_definitions(
    path: Path, max_bytes: int = MAX_PARSE_BYTES, time_budget: float = PARSE_SECONDS
) -> FileDefinitions | None:
    """Parse one file; None when its language is not supported."""
    if grammar_for(path) is None:
        return None
    source, truncated, size = read_source(path, max_bytes)
    language, tree, stopped_at = _parse_source(path, source, truncated, time_budget)
    definitions = _collect(source, language, captures(language, tree.root_node))
    stopped = None if stopped_at is None else source.count(b"\n", 0, stopped_at) + 1
    return FileDefinitions(language, tuple(definitions), truncated, size, stopped)


def innermost(definitions: Iterable[Definition], line: int) -> Definition | None:
    """The innermost definition whose body holds ``line``.

    A definition is not its own context: a hit on the ``def`` line itself reports the
    definition around it (the class of a method), which is what a reader wants to know.
    """
    best: Definition | None = None
    for definition in definitions:
        if definition.line > line:
            break  # definitions are sorted by start line
        if definition.line < line <= definition.end_line:
            best = definition  # later starts are nested deeper (ranges nest properly)
    return best


def enclosing_definitions(
    path: Path,
    lines: Iterable[int],
    cache: dict[Path, ParsedFile | None] | None = None,
    time_budget: float = ENCLOSING_PARSE_SECONDS,
) -> dict[int, Definition | None]:
    """For each line number, the innermost enclosing definition (or None).

    The file is parsed at most once per ``cache`` (pass the same dict for every call in
    one search). Only the definitions around each line are named, by a query limited to
    that line, so a hit deep in a big file costs the parse and little else. Unsupported,
    unreadable or binary files give None for every line.
    """
    wanted = sorted(set(lines))
    if cache is not None and path in cache:
        parsed = cache[path]
    else:
        parsed = _parse_file(path, time_budget)
        if cache is not None:
            cache[path] = parsed
    if parsed is None:
        return dict.fromkeys(wanted)
    found: dict[int, Definition | None] = {}
    root = parsed.tree.root_node
    for line in wanted:
        crossing = captures(parsed.language, root, (max(line - 1, 0), line))
        found[line] = innermost(_collect(parsed.source, parsed.language, crossing), line)
    return found


def _parse_file(path: Path, time_budget: float) -> ParsedFile | None:
    if grammar_for(path) is None:
        return None
    try:
        source, truncated, _ = read_source(path)
    except OSError:
        return None
    if b"\x00" in source[:8192]:
        return None
    try:
        language, tree, _ = _parse_source(path, source, truncated, time_budget)
    except (GrammarUnavailable, ValueError, RecursionError):
        return None
    return ParsedFile(source, language, tree)


def _parse_source(
    path: Path, source: bytes, truncated: bool, time_budget: float
) -> tuple[str, Tree, int | None]:
    """(grammar, tree, byte offset where time ran out) for a file's text.

    A name two grammars share (``.h``) is read by the one its text suggests; if that one
    finds a syntax error in a whole, finished parse and the other grammar finds none, the
    other's tree is used (see ``languages``).
    """
    started = time.monotonic()
    language = grammar_for_source(path, source)
    assert language is not None
    tree, stopped_at = parse(source, language, time_budget)
    other = other_grammar(path, language)
    if other is None or not tree.root_node.has_error or stopped_at is not None or truncated:
        return language, tree, stopped_at
    try:
        other_tree, other_stopped = parse(source, other, time_budget - time.monotonic() + started)
    except GrammarUnavailable:
        return language, tree, stopped_at
    if other_stopped is None and not other_tree.root_node.has_error:
        return other, other_tree, None
    return language, tree, stopped_at


def _collect(source: bytes, language: str, captured: dict[str, list[Node]]) -> list[Definition]:
    """Name and nest the captured nodes of ``source``."""
    nodes = sorted(
        {node.id: node for node in captured.get("def", [])}.values(),
        key=lambda node: (node.start_byte, -node.end_byte),
    )
    definitions: list[Definition] = []
    # (end_byte, definition) of the definitions enclosing the current node.
    stack: list[tuple[int, Definition]] = []
    with reading(source):
        for node in nodes:
            while stack and stack[-1][0] <= node.start_byte:
                stack.pop()
            parent = stack[-1][1] if stack else None
            found = name_node(node, language, parent.kind if parent is not None else None)
            if found is None or not found.name:
                continue
            prefix = parent.scope if parent is not None else ""
            if found.absolute or not prefix:
                name, scope = found.name, found.scope
            else:
                name, scope = f"{prefix}.{found.name}", f"{prefix}.{found.scope}"
            if found.kind in TRANSPARENT_KINDS:
                scope = prefix
            definition = Definition(
                line=node.start_point.row + 1,
                end_line=_end_line(node),
                kind=found.kind,
                name=name,
                signature=found.signature,
                scope=scope,
            )
            definitions.append(definition)
            stack.append((node.end_byte, definition))
    return definitions


def _end_line(node: Node) -> int:
    row, column = node.end_point.row, node.end_point.column
    if column == 0 and row > node.start_point.row:
        return row  # the node ends with a line break: its last line is the one before
    return row + 1
