"""The tree-sitter engine: grammars and queries loaded once, parses capped in bytes and time.

Grammar packages are imported lazily, only for the language a file needs, and nothing is
ever downloaded (``languages.GRAMMARS`` names them). The queries are package data,
``queries/<name>.scm``. Parsing is capped in bytes (``MAX_PARSE_BYTES``) and in time (a
budget per parse; see ``parse``).
"""

from __future__ import annotations

import importlib
import os
import time
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_brain.tools.contents import open_regular
from local_brain.tools.languages import GRAMMARS

if TYPE_CHECKING:  # tree_sitter is imported lazily; this keeps type checkers informed.
    from tree_sitter import Language, Node, Query, Tree

MAX_PARSE_BYTES = 2 * 1024 * 1024
# Wall-clock budget for one parse. Some grammars go quadratic on odd input (thousands of
# comment lines after an indented block take tree-sitter-python minutes), so the parser
# reads through a callback that reports end of input once the budget is spent.
PARSE_SECONDS = 2.0
ENCLOSING_PARSE_SECONDS = 0.5  # per file, for search_code's [in ...] notes
_PARSE_CHUNK = 64 * 1024


class GrammarUnavailable(Exception):
    """The grammar package for a language cannot be loaded (not installed, incompatible)."""


def query_source(grammar: str) -> str:
    """The definition query of a grammar: its query files, joined in order."""
    folder = resources.files("local_brain.tools.definitions").joinpath("queries")
    return "\n".join(
        folder.joinpath(f"{name}.scm").read_text(encoding="utf-8")
        for name in GRAMMARS[grammar].queries
    )


@cache
def compiled(grammar: str) -> tuple[Language, Query]:
    """(Language, Query) for a grammar, built once per process; parsers are per call."""
    import tree_sitter

    spec = GRAMMARS[grammar]
    try:
        module = importlib.import_module(spec.package)
        lang = tree_sitter.Language(getattr(module, spec.function)())
        return lang, tree_sitter.Query(lang, query_source(grammar))
    except (ImportError, AttributeError, ValueError, OSError, tree_sitter.QueryError) as error:
        raise GrammarUnavailable(f"{spec.package}: {error}") from None


def parse(source: bytes, grammar: str, time_budget: float) -> tuple[Tree, int | None]:
    """The syntax tree, and the byte offset where the parser was stopped (None: it finished).

    The parser reads through a callback, which reports end of input once the time budget
    is spent; the tree then covers the text up to that offset.
    """
    import tree_sitter

    lang, _ = compiled(grammar)
    deadline = time.monotonic() + time_budget
    stopped_at: int | None = None

    def read(offset: int, _point: Any) -> bytes:
        nonlocal stopped_at
        if stopped_at is not None or time.monotonic() > deadline:
            stopped_at = offset if stopped_at is None else min(stopped_at, offset)
            return b""
        return source[offset : offset + _PARSE_CHUNK]

    tree = tree_sitter.Parser(lang).parse(read)
    return tree, stopped_at


def captures(
    grammar: str, node: Node, lines: tuple[int, int] | None = None
) -> dict[str, list[Node]]:
    """The grammar's query run over ``node``; ``lines`` (0-based rows, end exclusive) limits
    it to the nodes crossing those rows."""
    import tree_sitter

    _, query = compiled(grammar)
    cursor = tree_sitter.QueryCursor(query)
    if lines is not None:
        cursor.set_point_range((lines[0], 0), (lines[1], 0))
    return cursor.captures(node)


def read_source(path: Path, max_bytes: int = MAX_PARSE_BYTES) -> tuple[bytes, bool, int]:
    """The first ``max_bytes`` of a file, whether it was cut, and the file's size.

    Only a regular file is opened (``NotRegularFileError``, an ``OSError``, otherwise): a
    FIFO or device in the repository never blocks the parse.
    """
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        source = handle.read(max_bytes)
    return source, size > max_bytes, size
