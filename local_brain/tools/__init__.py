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

_PYTHON_TYPES = {"string": str, "integer": int, "boolean": bool}


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "string" | "integer" | "boolean"
    description: str
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


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
                bound[param.name] = _coerce(self.name, param, bound[param.name])
        return bound

    def run(self, workspace: Workspace, *args: Any, **kwargs: Any) -> str:
        """Call the tool; every failure comes back as one short ``Error: ...`` line. The
        text returned, whichever it is, has had every secret found in it withheld."""
        return redact(self._call(workspace, args, kwargs)).text

    def _call(self, workspace: Workspace, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        try:
            return self.function(workspace, **self.bind(args, kwargs))
        except ToolError as error:
            return f"Error: {error}"
        except RecursionError:
            return f"Error: {self.name} failed: input too deeply nested"
        except (OSError, ValueError, UnicodeError) as error:
            return f"Error: {self.name} failed: {type(error).__name__}: {_short(error)}"


def _coerce(tool: str, param: Param, value: Any) -> Any:
    """Accept the loose values small models write ("10", "true", 3.0) when unambiguous."""
    if value is None:
        if param.required:
            raise ToolError(f"{tool} needs {param.name!r}")
        return None
    expected = _PYTHON_TYPES[param.type]
    if param.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {
            "true",
            "false",
            "1",
            "0",
            "yes",
            "no",
        }:
            return value.strip().lower() in {"true", "1", "yes"}
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif param.type == "integer":
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            return value
        elif isinstance(value, float) and value.is_integer():
            return int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
    elif isinstance(value, expected):
        return value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ToolError(f"{tool}: {param.name} must be a {param.type}, got {value!r:.60}")


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "…"


def all_tools() -> dict[str, ToolSpec]:
    """Every repository tool by name, in the order they are documented."""
    from local_brain.tools import files, git, search

    specs = [*files.TOOLS, *search.TOOLS, *git.TOOLS]
    return {spec.name: spec for spec in specs}
