"""What a file is written in, by its name: the one table behind ``file_info`` and the parsers.

A row gives the language as ``file_info`` names it and, where ``list_definitions`` can read
it, the grammar that parses it: a key of ``GRAMMARS``, which names the tree-sitter package,
its language function and the query files (``definitions/queries/<name>.scm``) that find
the definitions. File names are matched before suffixes, both without regard to case.

``.h`` is the one name that does not decide: C and C++ share it. ``file_info`` says
"C/C++ header". The parser reads a header as C unless its text shows C++ (``class``,
``namespace``, ``template<``, ``public:``, ``::``; see ``grammar_for_source``), and when that
grammar finds a syntax error where the other grammar finds none, the other one's reading
is used (``other_grammar``; ``definitions.extract``). The C++ grammar reads most C without
error, but not C that uses C++ keywords as names (``int new``), hence no C++ for every
header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class Grammar:
    """A tree-sitter grammar: imported only when a file needs it; nothing is downloaded."""

    package: str  # the grammar package
    function: str  # its function returning the language pointer
    queries: tuple[str, ...]  # query files, joined in this order, capturing definitions as @def


GRAMMARS: dict[str, Grammar] = {
    "python": Grammar("tree_sitter_python", "language", ("python",)),
    "javascript": Grammar("tree_sitter_javascript", "language", ("ecmascript", "javascript")),
    "typescript": Grammar(
        "tree_sitter_typescript", "language_typescript", ("ecmascript", "typescript")
    ),
    "tsx": Grammar("tree_sitter_typescript", "language_tsx", ("ecmascript", "typescript")),
    "go": Grammar("tree_sitter_go", "language", ("go",)),
    "rust": Grammar("tree_sitter_rust", "language", ("rust",)),
    "java": Grammar("tree_sitter_java", "language", ("java",)),
    "c": Grammar("tree_sitter_c", "language", ("c",)),
    "cpp": Grammar("tree_sitter_cpp", "language", ("c", "cpp")),
    "ruby": Grammar("tree_sitter_ruby", "language", ("ruby",)),
}


@dataclass(frozen=True)
class Language:
    """``name`` as ``file_info`` shows it; ``grammar`` parses it (None: nothing does);
    ``alternative``: a second grammar for a name two languages share (``.h``)."""

    name: str
    grammar: str | None = None
    alternative: str | None = None


_TABLE: tuple[tuple[Language, tuple[str, ...]], ...] = (
    (Language("Python", "python"), (".py", ".pyi", ".pyw")),
    (Language("JavaScript", "javascript"), (".js", ".mjs", ".cjs")),
    (Language("JavaScript (JSX)", "javascript"), (".jsx",)),
    (Language("TypeScript", "typescript"), (".ts", ".mts", ".cts")),
    (Language("TypeScript (TSX)", "tsx"), (".tsx",)),
    (Language("Go", "go"), (".go",)),
    (Language("Rust", "rust"), (".rs",)),
    (Language("Java", "java"), (".java",)),
    (Language("C", "c"), (".c",)),
    (Language("C/C++ header", "c", alternative="cpp"), (".h",)),
    (Language("C++", "cpp"), (".cc", ".cpp", ".cxx", ".c++")),
    (Language("C++ header", "cpp"), (".hh", ".hpp", ".hxx", ".h++", ".ipp")),
    (Language("Ruby", "ruby"), (".rb", ".rake", ".gemspec")),
    (Language("Kotlin"), (".kt",)),
    (Language("PHP"), (".php",)),
    (Language("C#"), (".cs",)),
    (Language("Swift"), (".swift",)),
    (Language("Scala"), (".scala",)),
    (Language("Shell"), (".sh", ".bash")),
    (Language("Lua"), (".lua",)),
    (Language("SQL"), (".sql",)),
    (Language("HTML"), (".html",)),
    (Language("CSS"), (".css",)),
    (Language("Markdown"), (".md",)),
    (Language("reStructuredText"), (".rst",)),
    (Language("Text"), (".txt",)),
    (Language("JSON"), (".json",)),
    (Language("YAML"), (".yaml", ".yml")),
    (Language("TOML"), (".toml",)),
    (Language("INI"), (".ini", ".cfg")),
    (Language("XML"), (".xml",)),
)
BY_SUFFIX: dict[str, Language] = {
    suffix: language for language, suffixes in _TABLE for suffix in suffixes
}
BY_NAME: dict[str, Language] = {  # lower-case file names
    "makefile": Language("Makefile"),
    "dockerfile": Language("Dockerfile"),
    "cmakelists.txt": Language("CMake"),
    "gemfile": Language("Ruby", "ruby"),
    "rakefile": Language("Ruby", "ruby"),
    "guardfile": Language("Ruby", "ruby"),
}

# Text that marks a file as written in a grammar's language, for names two languages share.
_CONTENT_HINTS: dict[str, re.Pattern[bytes]] = {
    "cpp": re.compile(rb"\b(class|namespace|template\s*<|public:|private:)|::"),
}


def language_of(path: str | PurePath) -> Language | None:
    """The table's row for a file path, or None for a name it does not know."""
    pure = PurePath(path)
    return BY_NAME.get(pure.name.lower()) or BY_SUFFIX.get(pure.suffix.lower())


def language_name(path: str | PurePath) -> str:
    """The language as ``file_info`` shows it ("unknown" for a name the table lacks)."""
    language = language_of(path)
    return language.name if language is not None else "unknown"


def grammar_for(path: str | PurePath) -> str | None:
    """The grammar that parses a file, by its name alone; None when none does."""
    language = language_of(path)
    return language.grammar if language is not None else None


def grammar_for_source(path: str | PurePath, source: bytes) -> str | None:
    """Like ``grammar_for``, but a shared name (``.h``) reads as the alternative grammar
    when the text looks like it (a header with ``class`` or ``::`` is C++)."""
    language = language_of(path)
    if language is None:
        return None
    hint = _CONTENT_HINTS.get(language.alternative or "")
    if hint is not None and hint.search(source):
        return language.alternative
    return language.grammar


def other_grammar(path: str | PurePath, grammar: str) -> str | None:
    """For a name two grammars share, the one that is not ``grammar``; None otherwise."""
    language = language_of(path)
    if language is None or language.alternative is None:
        return None
    pair = (language.grammar, language.alternative)
    return next((other for other in pair if other != grammar), None)


def parsed_suffixes() -> list[str]:
    """Every file suffix with a grammar, sorted."""
    return sorted(suffix for suffix, language in BY_SUFFIX.items() if language.grammar)
