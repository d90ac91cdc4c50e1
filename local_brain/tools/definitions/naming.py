"""How a captured node becomes a definition's kind, name and signature, per node type.

The queries (``queries/*.scm``) say which nodes are definitions; this module names them:
``name_node`` gives ``method``, ``Router.route`` and ``(self, request)`` for a Python
``def`` inside ``class Router``. A handler per node type reads the node's fields; the few
node types two grammars share dispatch on the language. Handlers see the text being
parsed through ``reading`` (a context variable), not through ``Node.text``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # tree_sitter is imported lazily; this keeps type checkers informed.
    from tree_sitter import Node

MAX_SIGNATURE_CHARS = 100

# Kinds whose functions are methods, and kinds that do not prefix the names inside them.
METHOD_CONTAINERS = frozenset(
    {"class", "struct", "interface", "trait", "impl", "enum", "record", "union", "module"}
)
TRANSPARENT_KINDS = frozenset({"namespace"})

# The bytes of the file whose nodes are being named (see ``_text``).
_SOURCE: ContextVar[bytes] = ContextVar("_SOURCE", default=b"")


@contextmanager
def reading(source: bytes) -> Iterator[None]:
    """Name nodes of ``source`` inside this block."""
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


class Found(NamedTuple):
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


_Handler = Callable[["Node", str, "str | None"], "Found | None"]


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


def _function_kind(parent_kind: str | None) -> str:
    return "method" if parent_kind in METHOD_CONTAINERS else "function"


def _named(kind: str) -> _Handler:
    """A handler for nodes with a ``name`` field and no parameters (classes, types)."""

    def handler(node: Node, language: str, parent_kind: str | None) -> Found | None:
        name = _field_text(node, "name")
        return Found(kind, name, "", name)

    return handler


def _function(node: Node, language: str, parent_kind: str | None) -> Found | None:
    """Functions and methods with ``name`` and ``parameters`` fields (most languages)."""
    name = _field_text(node, "name")
    kind = _function_kind(parent_kind)
    if node.type in {"method_definition", "method_signature", "abstract_method_signature"}:
        kind = "method"  # also methods of object literals and interfaces
    return Found(kind, name, _signature(_params(node)), name)


def _python_class(node: Node, language: str, parent_kind: str | None) -> Found | None:
    name = _field_text(node, "name")
    return Found(
        "class", name, _signature(node.child_by_field_name("superclasses"), wrap=False), name
    )


def _with_params(kind: str) -> _Handler:
    """Java constructors and records: a fixed kind, plus the parameter list."""

    def handler(node: Node, language: str, parent_kind: str | None) -> Found | None:
        name = _field_text(node, "name")
        return Found(kind, name, _signature(_params(node)), name)

    return handler


def _js_variable(node: Node, language: str, parent_kind: str | None) -> Found | None:
    """``const f = () => ...`` (a function) and ``handler = () => ...`` in a class body."""
    name_node = node.child_by_field_name("name") or node.child_by_field_name("property")
    if name_node is None or "identifier" not in name_node.type:
        return None  # a destructuring pattern
    name = _text(name_node)
    kind = "function" if node.type == "variable_declarator" else "method"
    return Found(kind, name, _signature(_params(node.child_by_field_name("value"))), name)


def _js_assignment(node: Node, language: str, parent_kind: str | None) -> Found | None:
    """``Foo.prototype.bar = function () {}`` and ``module.exports.run = () => {}``."""
    target = _field_text(node, "left")
    if not target or "\n" in target or len(target) > 80:
        return None
    params = _signature(_params(node.child_by_field_name("right")))
    if ".prototype." in target:
        name = target.replace(".prototype.", ".")
        return Found("method", name, params, name, absolute=True)
    return Found("function", target, params, target, absolute=True)


def _ts_namespace(node: Node, language: str, parent_kind: str | None) -> Found | None:
    name = _field_text(node, "name")
    return Found("namespace", name, "", name)


def _go_type(node: Node, language: str, parent_kind: str | None) -> Found | None:
    name = _field_text(node, "name")
    type_node = node.child_by_field_name("type")
    type_kind = type_node.type if type_node is not None else ""
    kind = {"struct_type": "struct", "interface_type": "interface"}.get(type_kind, "type")
    return Found(kind, name, "", name)


def _go_method(node: Node, language: str, parent_kind: str | None) -> Found | None:
    """``func (r *Router) Route(...)`` becomes ``method Router.Route(...)``."""
    name = _field_text(node, "name")
    receiver = node.child_by_field_name("receiver")
    owner = ""
    if receiver is not None and receiver.named_children:
        owner = _field_text(receiver.named_children[0], "type")
    owner = re.sub(r"\[.*\]$", "", owner.lstrip("*").strip())
    qualified = f"{owner}.{name}" if owner else name
    return Found("method", qualified, _signature(_params(node)), qualified, absolute=True)


def _rust_impl(node: Node, language: str, parent_kind: str | None) -> Found | None:
    """``impl Router`` / ``impl Handle for Router``; methods inside become ``Router.x``."""
    type_node = node.child_by_field_name("type")
    if type_node is None:
        return None
    base = type_node.child_by_field_name("type") if type_node.type == "generic_type" else None
    type_name = _text(base or type_node)
    trait = _field_text(node, "trait")
    return Found("impl", f"{trait} for {type_name}" if trait else type_name, "", type_name)


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


def _c_function(node: Node, language: str, parent_kind: str | None) -> Found | None:
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
        return Found("method", qualified, params, qualified, absolute=True)
    name = _text(name_node)
    if node.type == "function_definition" or _function_kind(parent_kind) == "method":
        kind = _function_kind(parent_kind)
    else:
        kind = "prototype"
    return Found(kind, name, params, name)


def _c_tagged(kind: str) -> _Handler:
    """struct/union/enum/class specifiers with a body; a typedef'd one is its typedef."""

    def handler(node: Node, language: str, parent_kind: str | None) -> Found | None:
        if node.parent is not None and node.parent.type == "type_definition":
            return None  # reported once, by the typedef
        name = _field_text(node, "name").replace("::", ".")
        return Found(kind, name, "", name)

    return handler


def _c_typedef(node: Node, language: str, parent_kind: str | None) -> Found | None:
    declarator = node.child_by_field_name("declarator")
    if declarator is None or declarator.type not in {"type_identifier", "primitive_type"}:
        return None  # function-pointer typedefs and the like
    name = _text(declarator)
    type_node = node.child_by_field_name("type")
    kind = "type"
    if type_node is not None and type_node.child_by_field_name("body") is not None:
        kind = _TAGGED_KINDS.get(type_node.type, "type")
    return Found(kind, name, "", name)


_TAGGED_KINDS = {
    "struct_specifier": "struct",
    "union_specifier": "union",
    "enum_specifier": "enum",
    "class_specifier": "class",
}


def _c_macro(node: Node, language: str, parent_kind: str | None) -> Found | None:
    name = _field_text(node, "name")
    return Found("macro", name, _signature(_params(node)), name)


def _cpp_namespace(node: Node, language: str, parent_kind: str | None) -> Found | None:
    name = _field_text(node, "name").replace("::", ".") or "(anonymous)"
    return Found("namespace", name, "", name)


def _ruby_scope(kind: str) -> _Handler:
    def handler(node: Node, language: str, parent_kind: str | None) -> Found | None:
        name = _field_text(node, "name").replace("::", ".")
        return Found(kind, name, "", name)

    return handler


def _ruby_method(node: Node, language: str, parent_kind: str | None) -> Found | None:
    name = _field_text(node, "name")
    params = _signature(_params(node))
    if node.type == "singleton_method":
        owner = _field_text(node, "object")
        if owner != "self":  # def Router.make
            qualified = f"{owner}.{name}"
            return Found("method", qualified, params, qualified, absolute=True)
        return Found("method", name, params, name)  # def self.make
    return Found(_function_kind(parent_kind), name, params, name)


def _by_language(default: _Handler, **special: _Handler) -> _Handler:
    """Dispatch on language for node types that mean different things in two grammars."""

    def handler(node: Node, language: str, parent_kind: str | None) -> Found | None:
        return special.get(language, default)(node, language, parent_kind)

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


def name_node(node: Node, language: str, parent_kind: str | None) -> Found | None:
    """What a captured node defines (None: nothing worth listing); ``parent_kind`` is the
    kind of the definition around it, if any."""
    handler = _HANDLERS.get(node.type)
    return handler(node, language, parent_kind) if handler is not None else None
