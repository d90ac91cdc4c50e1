"""What model-written code may say, checked on its syntax tree before it runs.

smolagents' interpreter is not a security boundary (its own SECURITY.md says so): generator
frames reach its internals, and ``str.format`` walks attributes. Code exploring a repository
needs none of that, so it is refused outright: any attribute or name starting with ``_``,
frame/code/globals/closure attributes, reflection builtins, and ``format``/``format_map``
with attribute or index lookups in their fields.
"""

from __future__ import annotations

import ast
import string

FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame",
        "ag_code", "ag_await", "f_locals", "f_globals", "f_builtins", "f_back", "f_code",
        "tb_frame", "tb_next", "co_code", "co_consts", "func_globals", "func_code",
        "func_closure", "cell_contents", "mro", "format_field", "get_field",
    }
)  # fmt: skip
FORBIDDEN_NAMES = frozenset(
    {
        "getattr", "setattr", "delattr", "vars", "globals", "locals", "eval", "exec",
        "compile", "open", "breakpoint", "input", "memoryview", "type", "object", "super",
        "help", "dir", "classmethod", "staticmethod", "property",
    }
)  # fmt: skip


class CodePolicyError(Exception):
    """Model-written code uses something local-brain does not allow."""


def check_code(code: str) -> None:
    """Raise CodePolicyError naming the first forbidden construct (syntax errors pass
    through: the interpreter reports them better)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in FORBIDDEN_ATTRIBUTES:
                raise CodePolicyError(f"access to the attribute .{node.attr} is not allowed")
            if node.attr in ("format", "format_map"):
                _check_format_receiver(node.value)
        elif isinstance(node, ast.Name) and (
            node.id.startswith("__") or node.id in FORBIDDEN_NAMES
        ):
            raise CodePolicyError(f"the name {node.id} is not allowed")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            raise CodePolicyError("global and nonlocal statements are not allowed")


def _check_format_receiver(receiver: ast.expr) -> None:
    """``"...".format(x)`` is fine when no field looks up attributes or items."""
    if not (isinstance(receiver, ast.Constant) and isinstance(receiver.value, str)):
        raise CodePolicyError("str.format is only allowed on a literal format string")
    if _looks_like_traversal(receiver.value):
        raise CodePolicyError("format fields with attribute or index lookups are not allowed")


def _looks_like_traversal(template: str) -> bool:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    except ValueError:
        return False
    return any("." in field or "[" in field for field in fields)
