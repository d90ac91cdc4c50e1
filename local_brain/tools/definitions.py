"""Definition extraction with tree-sitter: classes, functions and methods, with line numbers.

One tree-sitter query per language finds the candidate nodes in C; Python then names each
one and nests it by byte range, so the cost grows with the number of definitions rather
than the number of syntax nodes. Grammar packages are imported lazily, only for the
language a file needs, and nothing is ever downloaded. Parsing is capped in bytes
(``MAX_PARSE_BYTES``) and in time (a budget per parse; see ``_parse``).

Two entry points serve the tools:

* ``file_definitions(path)`` lists what a file defines (``list_definitions``);
* ``enclosing_definitions(path, lines)`` names the innermost definition around each line
  (the ``[in ...]`` notes of ``search_code``), parsing the file once.
"""

from __future__ import annotations

import importlib
import os
import re
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, NamedTuple

from local_brain.tools.contents import open_regular

if TYPE_CHECKING:  # tree_sitter is imported lazily; this keeps type checkers informed.
    from tree_sitter import Node

MAX_PARSE_BYTES = 2 * 1024 * 1024
# Wall-clock budget for one parse. Some grammars go quadratic on odd input (thousands of
# comment lines after an indented block take tree-sitter-python minutes), so the parser
# reads through a callback that reports end of input once the budget is spent.
PARSE_SECONDS = 2.0
ENCLOSING_PARSE_SECONDS = 0.5  # per file, for search_code's [in ...] notes
_PARSE_CHUNK = 64 * 1024

MAX_SIGNATURE_CHARS = 100

# The bytes of the file whose nodes are being named (see ``_text``).
_SOURCE: ContextVar[bytes] = ContextVar("_SOURCE", default=b"")


class GrammarUnavailable(Exception):
    """The grammar package for a language cannot be loaded (not installed, incompatible)."""


class _Grammar(NamedTuple):
    module: str  # the grammar package, imported only when a file needs it
    function: str  # its function returning the language pointer
    query: str  # the tree-sitter query capturing definition nodes as @def


_JS_COMMON = """
    (class_declaration) @def
    (function_declaration) @def
    (generator_function_declaration) @def
    (method_definition) @def
    (variable_declarator
        value: [(arrow_function) (function_expression) (generator_function)]) @def
    (assignment_expression
        left: (member_expression)
        right: [(arrow_function) (function_expression) (generator_function)]) @def
"""

_C_COMMON = """
    (function_definition) @def
    (struct_specifier body: (_)) @def
    (union_specifier body: (_)) @def
    (enum_specifier body: (_)) @def
    (type_definition) @def
    (declaration declarator: (function_declarator)) @def
    (declaration declarator: (pointer_declarator declarator: (function_declarator))) @def
    (preproc_function_def) @def
"""

_GRAMMARS: dict[str, _Grammar] = {
    "python": _Grammar(
        "tree_sitter_python",
        "language",
        "(class_definition) @def (function_definition) @def",
    ),
    "javascript": _Grammar(
        "tree_sitter_javascript",
        "language",
        _JS_COMMON + "(field_definition value: [(arrow_function) (function_expression)]) @def",
    ),
    "typescript": _Grammar(
        "tree_sitter_typescript",
        "language_typescript",
        _JS_COMMON
        + """
    (public_field_definition value: [(arrow_function) (function_expression)]) @def
    (abstract_class_declaration) @def
    (interface_declaration) @def
    (enum_declaration) @def
    (type_alias_declaration) @def
    (internal_module) @def
    (module) @def
    (method_signature) @def
    (abstract_method_signature) @def
    (function_signature) @def
""",
    ),
    "go": _Grammar(
        "tree_sitter_go",
        "language",
        """
    (function_declaration) @def
    (method_declaration) @def
    (type_spec) @def
    (type_alias) @def
    (method_elem) @def
""",
    ),
    "rust": _Grammar(
        "tree_sitter_rust",
        "language",
        """
    (function_item) @def
    (function_signature_item) @def
    (struct_item) @def
    (enum_item) @def
    (union_item) @def
    (trait_item) @def
    (impl_item) @def
    (mod_item body: (_)) @def
    (type_item) @def
    (macro_definition) @def
""",
    ),
    "java": _Grammar(
        "tree_sitter_java",
        "language",
        """
    (class_declaration) @def
    (interface_declaration) @def
    (enum_declaration) @def
    (record_declaration) @def
    (annotation_type_declaration) @def
    (method_declaration) @def
    (constructor_declaration) @def
    (compact_constructor_declaration) @def
""",
    ),
    "c": _Grammar("tree_sitter_c", "language", _C_COMMON),
    "cpp": _Grammar(
        "tree_sitter_cpp",
        "language",
        _C_COMMON
        + """
    (class_specifier body: (_)) @def
    (namespace_definition) @def
    (field_declaration declarator: (function_declarator)) @def
    (field_declaration declarator: (pointer_declarator declarator: (function_declarator))) @def
    (field_declaration declarator: (reference_declarator (function_declarator))) @def
    (declaration declarator: (reference_declarator (function_declarator))) @def
""",
    ),
    "ruby": _Grammar(
        "tree_sitter_ruby",
        "language",
        "(class) @def (module) @def (method) @def (singleton_method) @def",
    ),
}
# TSX shares the TypeScript query; only the grammar function differs.
_GRAMMARS["tsx"] = _Grammar("tree_sitter_typescript", "language_tsx", _GRAMMARS["typescript"].query)

EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",  # promoted to C++ when the header looks like C++, see language_for_source
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".ipp": "cpp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
}
_FILE_NAMES: dict[str, str] = {"rakefile": "ruby", "gemfile": "ruby", "guardfile": "ruby"}
_CPP_HEADER_HINT = re.compile(rb"\b(class|namespace|template\s*<|public:|private:)|::")

# Kinds whose functions are methods, and kinds that do not prefix the names inside them.
_METHOD_CONTAINERS = frozenset(
    {"class", "struct", "interface", "trait", "impl", "enum", "record", "union", "module"}
)
_TRANSPARENT_KINDS = frozenset({"namespace"})


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


def supported_extensions() -> list[str]:
    """Every file extension with a grammar, sorted."""
    return sorted(EXTENSIONS)


def language_for(path: str | PurePath) -> str | None:
    """The language name for a file path (by extension or well-known name), or None."""
    pure = PurePath(path)
    by_name = _FILE_NAMES.get(pure.name.lower())
    if by_name:
        return by_name
    return EXTENSIONS.get(pure.suffix.lower())


def language_for_source(path: str | PurePath, source: bytes) -> str | None:
    """Like ``language_for``, but reads ``.h`` headers as C++ when they look like C++."""
    language = language_for(path)
    if (
        language == "c"
        and PurePath(path).suffix.lower() == ".h"
        and _CPP_HEADER_HINT.search(source)
    ):
        return "cpp"
    return language


@cache
def _compiled(language: str) -> tuple[Any, Any]:
    """(Language, Query) for a language, built once per process; parsers are per call."""
    import tree_sitter

    grammar = _GRAMMARS[language]
    try:
        module = importlib.import_module(grammar.module)
        lang = tree_sitter.Language(getattr(module, grammar.function)())
        return lang, tree_sitter.Query(lang, grammar.query)
    except (ImportError, AttributeError, ValueError, tree_sitter.QueryError) as error:
        raise GrammarUnavailable(f"{grammar.module}: {error}") from None


def extract_definitions(
    source: bytes, language: str, time_budget: float = PARSE_SECONDS
) -> list[Definition]:
    """Every definition in ``source`` in order of position, names qualified by container."""
    return _extract(source, language, time_budget)[0]


def _parse(source: bytes, language: str, time_budget: float) -> tuple[Any, int | None]:
    """The syntax tree, and the byte offset where the parser was stopped (None: it finished).

    The parser reads through a callback, which reports end of input once the time budget
    is spent; the tree then covers the text up to that offset.
    """
    import tree_sitter

    lang, _ = _compiled(language)
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


def _extract(
    source: bytes, language: str, time_budget: float
) -> tuple[list[Definition], int | None]:
    """The definitions, and the byte offset where parsing ran out of time (None: it did not)."""
    import tree_sitter

    _, query = _compiled(language)
    tree, stopped_at = _parse(source, language, time_budget)
    token = _SOURCE.set(source)
    try:
        captures = tree_sitter.QueryCursor(query).captures(tree.root_node)
        return _collect(captures, language), stopped_at
    finally:
        _SOURCE.reset(token)


def _collect(captures: dict[str, list[Node]], language: str) -> list[Definition]:
    """Name and nest the captured nodes; ``_SOURCE`` holds the parsed bytes."""
    nodes = sorted(
        {node.id: node for node in captures.get("def", [])}.values(),
        key=lambda node: (node.start_byte, -node.end_byte),
    )
    definitions: list[Definition] = []
    # (end_byte, definition) of the definitions enclosing the current node.
    stack: list[tuple[int, Definition]] = []
    for node in nodes:
        while stack and stack[-1][0] <= node.start_byte:
            stack.pop()
        parent = stack[-1][1] if stack else None
        handler = _HANDLERS.get(node.type)
        found = handler(node, language, parent) if handler is not None else None
        if found is None or not found.name:
            continue
        prefix = parent.scope if parent is not None else ""
        if found.absolute or not prefix:
            name, scope = found.name, found.scope
        else:
            name, scope = f"{prefix}.{found.name}", f"{prefix}.{found.scope}"
        if found.kind in _TRANSPARENT_KINDS:
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


def read_source(path: Path, max_bytes: int = MAX_PARSE_BYTES) -> tuple[bytes, bool, int]:
    """The first ``max_bytes`` of a file, whether it was cut, and the file's size.

    Only a regular file is opened (``NotRegularFileError``, an ``OSError``, otherwise): a
    FIFO or device in the repository never blocks the parse.
    """
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        source = handle.read(max_bytes)
    return source, size > max_bytes, size


def file_definitions(
    path: Path, max_bytes: int = MAX_PARSE_BYTES, time_budget: float = PARSE_SECONDS
) -> FileDefinitions | None:
    """Parse one file; None when its language is not supported."""
    if language_for(path) is None:
        return None
    source, truncated, size = read_source(path, max_bytes)
    language = language_for_source(path, source)
    assert language is not None
    definitions, stopped_at = _extract(source, language, time_budget)
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


@dataclass(frozen=True)
class ParsedFile:
    """A parsed file kept for enclosing-definition lookups (see ``enclosing_definitions``)."""

    source: bytes
    language: str
    tree: Any


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
    import tree_sitter

    _, query = _compiled(parsed.language)
    found: dict[int, Definition | None] = {}
    token = _SOURCE.set(parsed.source)
    try:
        for line in wanted:
            cursor = tree_sitter.QueryCursor(query)
            cursor.set_point_range((max(line - 1, 0), 0), (line, 0))  # nodes crossing the line
            definitions = _collect(cursor.captures(parsed.tree.root_node), parsed.language)
            found[line] = innermost(definitions, line)
    finally:
        _SOURCE.reset(token)
    return found


def _parse_file(path: Path, time_budget: float) -> ParsedFile | None:
    if language_for(path) is None:
        return None
    try:
        source, _, _ = read_source(path)
    except OSError:
        return None
    if b"\x00" in source[:8192]:
        return None
    language = language_for_source(path, source)
    if language is None:
        return None
    try:
        tree, _ = _parse(source, language, time_budget)
    except (GrammarUnavailable, ValueError, RecursionError):
        return None
    return ParsedFile(source, language, tree)


# -- naming each node --------------------------------------------------------------------


class _Found(NamedTuple):
    """What a handler makes of a node.

    ``scope`` is what definitions nested inside are qualified with (the type name for a
    Rust ``impl``); ``absolute`` marks a name that is already fully qualified (a Go method
    named by its receiver, C++ ``Router::route``), so the container prefix is not added.
    """

    kind: str
    name: str
    signature: str = ""
    scope: str = ""
    absolute: bool = False


_Handler = Callable[["Node", str, "Definition | None"], "_Found | None"]


def _text(node: Node | None) -> str:
    """A node's source text, sliced from the bytes being parsed.

    ``Node.text`` is not used: for a tree parsed through a read callback it calls the
    callback again, which answers "end of input" once the time budget is spent.
    """
    if node is None:
        return ""
    return _SOURCE.get()[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _field_text(node: Node, field: str) -> str:
    return _text(node.child_by_field_name(field))


def _params(node: Node | None) -> Node | None:
    """The parameter list of a function-like node (an arrow function's lone parameter too)."""
    if node is None:
        return None
    return node.child_by_field_name("parameters") or node.child_by_field_name("parameter")


def _signature(params: Node | None, *, wrap: bool = True) -> str:
    """The parameter list on one line, capped at ``MAX_SIGNATURE_CHARS``."""
    if params is None:
        return "()" if wrap else ""
    text = " ".join(_text(params).split())
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r",?\s*\)$", ")", text)
    if wrap and not text.startswith("("):
        text = f"({text})"  # Ruby's `def route path, n`, JS's `x => x`
    if len(text) > MAX_SIGNATURE_CHARS:
        text = text[: MAX_SIGNATURE_CHARS - 2] + "…)"
    return text


def _function_kind(parent: Definition | None) -> str:
    return "method" if parent is not None and parent.kind in _METHOD_CONTAINERS else "function"


def _named(kind: str) -> _Handler:
    """A handler for nodes with a ``name`` field and no parameters (classes, types)."""

    def handler(node: Node, language: str, parent: Definition | None) -> _Found | None:
        name = _field_text(node, "name")
        return _Found(kind, name, "", name)

    return handler


def _function(node: Node, language: str, parent: Definition | None) -> _Found | None:
    """Functions and methods with ``name`` and ``parameters`` fields (most languages)."""
    name = _field_text(node, "name")
    kind = _function_kind(parent)
    if node.type in {"method_definition", "method_signature", "abstract_method_signature"}:
        kind = "method"  # also methods of object literals and interfaces
    return _Found(kind, name, _signature(_params(node)), name)


def _python_class(node: Node, language: str, parent: Definition | None) -> _Found | None:
    name = _field_text(node, "name")
    return _Found(
        "class", name, _signature(node.child_by_field_name("superclasses"), wrap=False), name
    )


def _with_params(kind: str) -> _Handler:
    """Java constructors and records: a fixed kind, plus the parameter list."""

    def handler(node: Node, language: str, parent: Definition | None) -> _Found | None:
        name = _field_text(node, "name")
        return _Found(kind, name, _signature(_params(node)), name)

    return handler


def _js_variable(node: Node, language: str, parent: Definition | None) -> _Found | None:
    """``const f = () => ...`` (a function) and ``handler = () => ...`` in a class body."""
    name_node = node.child_by_field_name("name") or node.child_by_field_name("property")
    if name_node is None or "identifier" not in name_node.type:
        return None  # a destructuring pattern
    name = _text(name_node)
    kind = "function" if node.type == "variable_declarator" else "method"
    return _Found(kind, name, _signature(_params(node.child_by_field_name("value"))), name)


def _js_assignment(node: Node, language: str, parent: Definition | None) -> _Found | None:
    """``Foo.prototype.bar = function () {}`` and ``module.exports.run = () => {}``."""
    target = _field_text(node, "left")
    if not target or "\n" in target or len(target) > 80:
        return None
    params = _signature(_params(node.child_by_field_name("right")))
    if ".prototype." in target:
        name = target.replace(".prototype.", ".")
        return _Found("method", name, params, name, absolute=True)
    return _Found("function", target, params, target, absolute=True)


def _ts_namespace(node: Node, language: str, parent: Definition | None) -> _Found | None:
    name = _field_text(node, "name")
    return _Found("namespace", name, "", name)


def _go_type(node: Node, language: str, parent: Definition | None) -> _Found | None:
    name = _field_text(node, "name")
    type_node = node.child_by_field_name("type")
    type_kind = type_node.type if type_node is not None else ""
    kind = {"struct_type": "struct", "interface_type": "interface"}.get(type_kind, "type")
    return _Found(kind, name, "", name)


def _go_method(node: Node, language: str, parent: Definition | None) -> _Found | None:
    """``func (r *Router) Route(...)`` becomes ``method Router.Route(...)``."""
    name = _field_text(node, "name")
    receiver = node.child_by_field_name("receiver")
    owner = ""
    if receiver is not None and receiver.named_children:
        owner = _field_text(receiver.named_children[0], "type")
    owner = re.sub(r"\[.*\]$", "", owner.lstrip("*").strip())
    qualified = f"{owner}.{name}" if owner else name
    return _Found("method", qualified, _signature(_params(node)), qualified, absolute=True)


def _rust_impl(node: Node, language: str, parent: Definition | None) -> _Found | None:
    """``impl Router`` / ``impl Handle for Router``; methods inside become ``Router.x``."""
    type_node = node.child_by_field_name("type")
    if type_node is None:
        return None
    base = type_node.child_by_field_name("type") if type_node.type == "generic_type" else None
    type_name = _text(base or type_node)
    trait = _field_text(node, "trait")
    return _Found("impl", f"{trait} for {type_name}" if trait else type_name, "", type_name)


def _c_function_declarator(node: Node) -> Node | None:
    """Follow pointer/reference declarators down to the ``function_declarator``."""
    declarator = node.child_by_field_name("declarator")
    for _ in range(8):
        if declarator is None or declarator.type == "function_declarator":
            return declarator
        if declarator.type not in {"pointer_declarator", "reference_declarator"}:
            return None
        inner = declarator.child_by_field_name("declarator")
        if inner is None and declarator.named_children:  # reference_declarator: no field
            inner = declarator.named_children[-1]
        declarator = inner
    return None


def _c_function(node: Node, language: str, parent: Definition | None) -> _Found | None:
    """C/C++ function definitions, prototypes and member declarations."""
    declarator = _c_function_declarator(node)
    if declarator is None:
        return None
    name_node = declarator.child_by_field_name("declarator")
    if name_node is None or name_node.type in {"parenthesized_declarator", "pointer_declarator"}:
        return None  # a function pointer, not a function
    params = _signature(declarator.child_by_field_name("parameters"))
    if name_node.type == "qualified_identifier":  # Router::route defined out of the class
        qualified = _text(name_node).replace("::", ".")
        return _Found("method", qualified, params, qualified, absolute=True)
    name = _text(name_node)
    if node.type == "function_definition" or _function_kind(parent) == "method":
        kind = _function_kind(parent)
    else:
        kind = "prototype"
    return _Found(kind, name, params, name)


def _c_tagged(kind: str) -> _Handler:
    """struct/union/enum/class specifiers with a body; a typedef'd one is its typedef."""

    def handler(node: Node, language: str, parent: Definition | None) -> _Found | None:
        if node.parent is not None and node.parent.type == "type_definition":
            return None  # reported once, by the typedef
        name = _field_text(node, "name").replace("::", ".")
        return _Found(kind, name, "", name)

    return handler


def _c_typedef(node: Node, language: str, parent: Definition | None) -> _Found | None:
    declarator = node.child_by_field_name("declarator")
    if declarator is None or declarator.type not in {"type_identifier", "primitive_type"}:
        return None  # function-pointer typedefs and the like
    name = _text(declarator)
    type_node = node.child_by_field_name("type")
    kind = "type"
    if type_node is not None and type_node.child_by_field_name("body") is not None:
        kind = _TAGGED_KINDS.get(type_node.type, "type")
    return _Found(kind, name, "", name)


_TAGGED_KINDS = {
    "struct_specifier": "struct",
    "union_specifier": "union",
    "enum_specifier": "enum",
    "class_specifier": "class",
}


def _c_macro(node: Node, language: str, parent: Definition | None) -> _Found | None:
    name = _field_text(node, "name")
    return _Found("macro", name, _signature(_params(node)), name)


def _cpp_namespace(node: Node, language: str, parent: Definition | None) -> _Found | None:
    name = _field_text(node, "name").replace("::", ".") or "(anonymous)"
    return _Found("namespace", name, "", name)


def _ruby_scope(kind: str) -> _Handler:
    def handler(node: Node, language: str, parent: Definition | None) -> _Found | None:
        name = _field_text(node, "name").replace("::", ".")
        return _Found(kind, name, "", name)

    return handler


def _ruby_method(node: Node, language: str, parent: Definition | None) -> _Found | None:
    name = _field_text(node, "name")
    params = _signature(_params(node))
    if node.type == "singleton_method":
        owner = _field_text(node, "object")
        if owner != "self":  # def Router.make
            qualified = f"{owner}.{name}"
            return _Found("method", qualified, params, qualified, absolute=True)
        return _Found("method", name, params, name)  # def self.make
    return _Found(_function_kind(parent), name, params, name)


def _by_language(default: _Handler, **special: _Handler) -> _Handler:
    """Dispatch on language for node types that mean different things in two grammars."""

    def handler(node: Node, language: str, parent: Definition | None) -> _Found | None:
        return special.get(language, default)(node, language, parent)

    return handler


_HANDLERS: dict[str, _Handler] = {
    # Python
    "class_definition": _python_class,
    "function_definition": _by_language(_c_function, python=_function),
    # JavaScript / TypeScript
    "class_declaration": _named("class"),
    "abstract_class_declaration": _named("class"),
    "function_declaration": _function,
    "generator_function_declaration": _function,
    "method_definition": _function,
    "method_signature": _function,
    "abstract_method_signature": _function,
    "function_signature": _function,
    "variable_declarator": _js_variable,
    "field_definition": _js_variable,
    "public_field_definition": _js_variable,
    "assignment_expression": _js_assignment,
    "interface_declaration": _named("interface"),
    "enum_declaration": _named("enum"),
    "type_alias_declaration": _named("type"),
    "internal_module": _ts_namespace,
    "module": _by_language(_ts_namespace, ruby=_ruby_scope("module")),
    # Go
    "method_declaration": _by_language(_function, go=_go_method),
    "type_spec": _go_type,
    "type_alias": _named("type"),
    "method_elem": _function,
    # Rust
    "function_item": _function,
    "function_signature_item": _function,
    "struct_item": _named("struct"),
    "enum_item": _named("enum"),
    "union_item": _named("union"),
    "trait_item": _named("trait"),
    "impl_item": _rust_impl,
    "mod_item": _named("mod"),
    "type_item": _named("type"),
    "macro_definition": _named("macro"),
    # Java
    "record_declaration": _with_params("record"),
    "annotation_type_declaration": _named("annotation"),
    "constructor_declaration": _with_params("constructor"),
    "compact_constructor_declaration": _with_params("constructor"),
    # C / C++
    "declaration": _c_function,
    "field_declaration": _c_function,
    "struct_specifier": _c_tagged("struct"),
    "union_specifier": _c_tagged("union"),
    "enum_specifier": _c_tagged("enum"),
    "class_specifier": _c_tagged("class"),
    "type_definition": _c_typedef,
    "preproc_function_def": _c_macro,
    "namespace_definition": _cpp_namespace,
    # Ruby
    "class": _ruby_scope("class"),
    "method": _ruby_method,
    "singleton_method": _ruby_method,
}
