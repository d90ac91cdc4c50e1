"""`local-brain mcp`: the repository tools and the local agent as an MCP server over stdio.

Cloud assistants (Claude Code, Cursor, Goose, ...) delegate exploration to local models:
they get the nine jailed, read-only tools under the same names, parameters and secret
policy as the agent, plus ``ask`` (run the local agent, single or team) and
``list_models``. Only protocol messages go to stdout; logs go to stderr.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from local_brain.config import Settings
from local_brain.errors import LocalBrainError
from local_brain.tools import ToolSpec, all_tools
from local_brain.workspace import Workspace

INSTRUCTIONS = (
    "Read-only tools over one code repository, answered on the user's own machine. Use "
    "search_code, list_definitions, read_file and the git tools for precise look-ups; use "
    "ask to hand a whole exploration question to the local model and get back a short, "
    "grounded answer without reading files yourself. Secret files (.env, keys) are never "
    "readable."
)
ASK_DESCRIPTION = (
    "Ask local-brain's own agent (local models) a question about the repository; it "
    "searches, reads and checks git history itself and returns a concise answer citing "
    "path:line and commits, plus a usage line. Use it to delegate exploration that would "
    "take you many tool calls. multi_agent=true runs a manager with code_search, git_ops and "
    "file_explorer helpers (slower, better for broad questions)."
)
LIST_MODELS_DESCRIPTION = (
    "The models the local Ollama server has (name, size, family, context length) and the "
    "model groups from local-brain's config."
)


def build_server(workspace: Workspace, settings: Settings, multi_agent: bool = False) -> Any:
    """An MCPServer exposing the eleven tools for ``workspace``."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("local-brain", instructions=INSTRUCTIONS, log_level="WARNING")
    for spec in all_tools().values():
        server.add_tool(
            _repository_tool(spec, workspace), name=spec.name, description=spec.description
        )
    server.add_tool(
        _ask_tool(workspace, settings, multi_agent), name="ask", description=ASK_DESCRIPTION
    )
    server.add_tool(
        _list_models_tool(settings), name="list_models", description=LIST_MODELS_DESCRIPTION
    )
    return server


def _repository_tool(spec: ToolSpec, workspace: Workspace) -> Any:
    """A function with the tool's exact signature; a failed tool's result becomes an MCP
    tool error with the same one-line message (without the ``Error: `` the model sees)."""
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import Field

    def call(**arguments: Any) -> str:
        result = spec.run(workspace, **arguments)
        if not result.ok:
            raise ToolError(result.text.removeprefix("Error: "))
        return result.text

    parameters = []
    for param in spec.params:
        kind = param.python_type
        annotation = kind if param.required else kind | None
        parameters.append(
            inspect.Parameter(
                param.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if param.required else param.default,
                annotation=Annotated[annotation, Field(description=param.description)],
            )
        )
    call.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    call.__name__ = spec.name
    call.__doc__ = spec.description
    return call


def _ask_tool(workspace: Workspace, settings: Settings, team_by_default: bool) -> Any:
    from mcp.server.mcpserver.exceptions import ToolError

    async def ask(prompt: str, multi_agent: bool = False) -> str:
        import anyio

        from local_brain.session import RunSession

        if not prompt.strip():
            raise ToolError("the prompt is empty")
        session = RunSession(prompt, workspace, settings, team=multi_agent or team_by_default)
        try:
            result = await anyio.to_thread.run_sync(session.run)
        except LocalBrainError as error:
            hint = f" ({error.hint})" if error.hint else ""
            raise ToolError(f"{error.message}{hint}") from None
        checks = "".join(f"\n⚠ {citation.warning()}" for citation in result.unverified)
        return f"{result.answer}\n{checks}\n[{result.usage.summary_line()}]"

    return ask


def _list_models_tool(settings: Settings) -> Any:
    def list_models() -> str:
        from local_brain import inventory

        return inventory.format_models(inventory.describe_models(settings))

    return list_models
