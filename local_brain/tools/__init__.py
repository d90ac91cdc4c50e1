"""The repository tools: plain functions over a Workspace, described as data.

This package never imports smolagents or litellm, so ``local-brain tool`` stays fast. The
agent layer wraps each ``ToolSpec`` as a smolagents ``Tool`` at build time.

A tool function takes the workspace first and then its model-facing parameters, returns
plain text sized for a small context, and raises ``ToolError`` for anything the model
should read as a short error message. ``ToolSpec.run`` is the one way out of a tool: its
text, error messages included, passes through ``local_brain.redact`` there, so a secret in
a file with an ordinary name (or in a commit's diff) is withheld whichever tool found it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local_brain.errors import ToolError
from local_brain.redact import redact
from local_brain.workspace import Workspace

REQUIRED: Any = object()

_TYPES: dict[str, type] = {"string": str, "integer": int, "boolean": bool}
_BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "string" | "integer" | "boolean": the JSON-schema name the model sees
    description: str
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def python_type(self) -> type:
        """The Python type of the parameter (``str``, ``int`` or ``bool``)."""
        return _TYPES[self.type]

    def convert(self, tool: str, value: Any) -> Any:
        """Accept the loose values small models write ("10", "true", 3.0) when unambiguous."""
        if value is None:
            if self.required:
                raise ToolError(f"{tool} needs {self.name!r}")
            return None
        if self.type == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
                return _BOOLEAN_WORDS[value.strip().lower()]
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
        elif self.type == "integer":
            if isinstance(value, bool):
                pass
            elif isinstance(value, int):
                return value
            elif isinstance(value, float) and value.is_integer():
                return int(value)
            elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value.strip())
        elif isinstance(value, str):
            return value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        article = "an" if self.type[:1] in "aeiou" else "a"
        raise ToolError(f"{tool}: {self.name} must be {article} {self.type}, got {value!r:.60}")


class ToolResult(str):
    """What a tool returns: the text the model sees, and whether the tool succeeded.

    A ``str`` (the text itself) so that printing or comparing it needs nothing else; callers
    that must tell failure from success read ``ok``, never the text.
    """

    ok: bool

    def __new__(cls, text: str, ok: bool = True) -> ToolResult:
        result = super().__new__(cls, text)
        result.ok = ok
        return result

    @property
    def text(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"ToolResult({self.text!r}, ok={self.ok})"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    params: tuple[Param, ...]
    function: Callable[..., str]

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map positional and keyword arguments to parameter names, with defaults and types."""
        names = [param.name for param in self.params]
        if len(args) > len(names):
            raise ToolError(f"{self.name} takes at most {len(names)} arguments ({len(args)} given)")
        bound = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise ToolError(
                    f"{self.name} has no parameter {key!r}; it takes {', '.join(names)}"
                )
            if key in bound:
                raise ToolError(f"{self.name} got {key!r} twice")
            bound[key] = value
        for param in self.params:
            if param.name not in bound:
                if param.required:
                    raise ToolError(f"{self.name} needs {param.name!r}")
                bound[param.name] = param.default
            else:
                bound[param.name] = param.convert(self.name, bound[param.name])
        return bound

    def run(self, workspace: Workspace, *args: Any, **kwargs: Any) -> ToolResult:
        """Call the tool. A failure comes back with ``ok=False`` and one short ``Error: ...``
        line as its text (what the model reads). The text, whichever it is, has had every
        secret found in it withheld."""
        text, ok = self._call(workspace, args, kwargs)
        return ToolResult(redact(text).text, ok)

    def _call(
        self, workspace: Workspace, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, bool]:
        try:
            return self.function(workspace, **self.bind(args, kwargs)), True
        except ToolError as error:
            return f"Error: {error}", False
        except RecursionError:
            return f"Error: {self.name} failed: input too deeply nested", False
        except (OSError, ValueError, UnicodeError) as error:
            return f"Error: {self.name} failed: {type(error).__name__}: {_short(error)}", False


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "…"


def all_tools() -> dict[str, ToolSpec]:
    """Every repository tool by name, in the order they are documented."""
    from local_brain.tools import files, git, search

    specs = [*files.TOOLS, *search.TOOLS, *git.TOOLS]
    return {spec.name: spec for spec in specs}
