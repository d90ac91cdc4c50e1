"""`local-brain mcp`: the repository tools and the local agent as an MCP server over stdio.

Cloud assistants (Claude Code, Cursor, Goose, ...) delegate exploration to local models:
they get the nine jailed, read-only tools under the same names, parameters and secret
policy as the agent, plus ``ask`` (run the local agent, single or team) and
``list_models``. Only protocol messages go to stdout; logs go to stderr.

Arguments are checked here, before the SDK's pydantic model sees them, with the same
rules and one-line messages as ``local-brain tool``: an unknown name is refused, an
explicit ``null`` for an optional parameter means its default, and a value is converted
by ``Param.convert`` (``"10"`` for an integer is fine, ``"x"`` is not).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Annotated, Any

from local_brain import __version__
from local_brain.config import Settings
from local_brain.errors import LocalBrainError
from local_brain.errors import ToolError as LocalToolError
from local_brain.mcp_lifecycle import Lifecycle, ProgressReporter, install_logging, run_reported
from local_brain.tools import Param, ToolSpec, all_tools
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
    "file_explorer helpers (slower, better for broad questions). Every answer belongs to a "
    "conversation whose id ends the text (`session: ID`); pass it as session= to ask a "
    "follow-up that builds on the earlier questions and answers."
)
ASK_PARAMS = (
    Param("prompt", "string", "The question about the repository, in plain language."),
    Param(
        "multi_agent",
        "boolean",
        "Run the team (a manager with code_search, git_ops and file_explorer helpers) "
        "instead of the single agent: slower, better for broad questions.",
        False,
    ),
    Param(
        "session",
        "string",
        "A follow-up: the id of an earlier answer's conversation (its `session: ID` line); "
        "the local agent sees the earlier questions and answers. Omit it for a new question.",
        None,
    ),
)
LIST_MODELS_DESCRIPTION = (
    "The models the local Ollama server has (name, size, family, context length) and the "
    "model groups from local-brain's config."
)
ASK_TITLE = "Ask the local agent"
LIST_MODELS_TITLE = "List local models"

# Methods MCPServer always registers (so `initialize` advertises prompts and resources)
# although this server has neither.
_UNUSED_METHODS = (
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
)


def build_server(workspace: Workspace, settings: Settings, multi_agent: bool = False) -> Any:
    """An MCPServer exposing the eleven tools for ``workspace``."""
    from mcp.types import ToolAnnotations

    params: dict[str, tuple[Param, ...]] = {}
    # Nothing here writes. The repository tools read a fixed tree: the same call gives the
    # same answer, and they reach nothing outside the repository.
    repository = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
    # ask and list_models only talk to the local model server (Ollama or the configured
    # local endpoints), not the open world; their answers vary (a model's sampling, the
    # installed models), so they are not marked idempotent.
    local_model = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    server = _server_class()(
        "local-brain",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        subscriptions=False,  # no list ever changes: nothing to listen for
    )
    server.tool_params = params
    server.lifecycle = Lifecycle()  # the asks in flight, cancelled at shutdown
    from local_brain.models.llamacpp import Engines

    server.engines = Engines()  # llamacpp/ models stay loaded between asks, closed at the end
    install_logging(server, server.lifecycle)
    for spec in all_tools().values():
        params[spec.name] = spec.params
        server.add_tool(
            _with_signature(_repository_tool(spec, workspace), spec.params),
            name=spec.name,
            title=spec.name.replace("_", " ").capitalize(),
            description=spec.description,
            annotations=repository,
            structured_output=False,
        )
    params["ask"] = ASK_PARAMS
    server.add_tool(
        _with_signature(_ask_tool(workspace, settings, multi_agent, server.engines), ASK_PARAMS),
        name="ask",
        title=ASK_TITLE,
        description=ASK_DESCRIPTION,
        annotations=local_model,
        structured_output=False,
    )
    params["list_models"] = ()
    server.add_tool(
        _with_signature(_list_models_tool(settings), ()),
        name="list_models",
        title=LIST_MODELS_TITLE,
        description=LIST_MODELS_DESCRIPTION,
        annotations=local_model,
        structured_output=False,
    )
    _stop_advertising_unused(server)
    return server


def _server_class() -> type:
    """MCPServer, with arguments checked by our own rules before the SDK validates them."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
    from pydantic import ValidationError

    class LocalBrainServer(MCPServer):
        tool_params: dict[str, tuple[Param, ...]]
        lifecycle: Lifecycle
        engines: Any  # models.llamacpp.Engines, shared by every ask

        def run(self, transport: Any = "stdio", **kwargs: Any) -> None:
            """Serve until stdin closes or SIGINT/SIGTERM; the asks in flight are cancelled
            and the process exits within seconds (mcp_lifecycle.Lifecycle.serve). The
            in-process engines close with the server."""
            try:
                self.lifecycle.serve(lambda: super(LocalBrainServer, self).run(transport, **kwargs))
            finally:
                self.engines.close()

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            if name in self.tool_params:
                try:
                    arguments = check_arguments(name, self.tool_params[name], arguments)
                except LocalToolError as error:
                    raise ToolError(str(error)) from None
            try:
                return await super().call_tool(name, arguments, context)
            except UnexpectedToolError:
                raise
            except ToolError as error:
                # One line, without the "Error executing tool NAME: " the SDK puts first
                # (our messages already name the tool), and never pydantic's multi-line text.
                if isinstance(error.__cause__, ValidationError):
                    fields = sorted(
                        {str(e["loc"][0]) for e in error.__cause__.errors() if e["loc"]}
                    )
                    raise ToolError(f"{name}: invalid {', '.join(fields) or 'arguments'}") from None
                text = str(error).removeprefix(f"Error executing tool {name}: ")
                raise ToolError(" ".join(text.split())) from None

    return LocalBrainServer


def check_arguments(
    tool: str, params: tuple[Param, ...], arguments: dict[str, Any]
) -> dict[str, Any]:
    """The arguments converted by each ``Param``; a ``null`` optional one is left out (so its
    default applies). Raises local_brain's ToolError with one line, as ``ToolSpec.bind``."""
    by_name = {param.name: param for param in params}
    checked: dict[str, Any] = {}
    for key, value in arguments.items():
        if key not in by_name:
            takes = ", ".join(by_name) or "no arguments"
            raise LocalToolError(f"{tool} has no parameter {key!r}; it takes {takes}")
        param = by_name[key]
        if value is None and not param.required:
            continue
        checked[key] = param.convert(tool, value)
    for param in params:
        if param.required and param.name not in checked:
            raise LocalToolError(f"{tool} needs {param.name!r}")
    return checked


def _stop_advertising_unused(server: Any) -> None:
    """Unregister the prompt and resource handlers MCPServer always installs.

    The low-level server advertises a capability whenever its handler is registered
    (``Server.get_capabilities``, mcp/server/lowlevel/server.py ~line 605), and MCPServer
    registers them unconditionally (mcp/server/mcpserver/server.py ~line 224); the SDK has no
    public way to remove one, hence the private dict. Without them, ``initialize``
    advertises only ``tools`` and the unused methods answer "method not found".
    """
    handlers = getattr(getattr(server, "_lowlevel_server", None), "_request_handlers", None)
    if isinstance(handlers, dict):
        for method in _UNUSED_METHODS:
            handlers.pop(method, None)


def _with_signature(function: Any, params: tuple[Param, ...]) -> Any:
    """Give ``function`` (which takes ``**arguments``) the parameters the SDK publishes:
    each with its type, its default (an optional one also accepts ``null``) and the
    ``Param`` description."""
    from pydantic import Field, WithJsonSchema

    parameters = []
    for param in params:
        metadata: list[Any] = [Field(description=param.description)]
        if not param.required:
            # Published as nullable, but typed as the plain kind: the SDK JSON-decodes a
            # string given for a parameter not typed ``str`` (func_metadata.pre_parse_json),
            # which would turn the path "null" into None. Nulls never reach it anyway.
            nullable = {"anyOf": [{"type": param.type}, {"type": "null"}]}
            metadata.insert(0, WithJsonSchema(nullable))
        parameters.append(
            inspect.Parameter(
                param.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if param.required else param.default,
                annotation=Annotated[(param.python_type, *metadata)],
            )
        )
    function.__signature__ = inspect.Signature(parameters, return_annotation=str)
    return function


def _repository_tool(spec: ToolSpec, workspace: Workspace) -> Any:
    """The tool; a failed tool's result becomes an MCP tool error with the same one-line
    message (without the ``Error: `` the model sees)."""
    from mcp.server.mcpserver.exceptions import ToolError

    def call(**arguments: Any) -> str:
        result = spec.run(workspace, **arguments)
        if not result.ok:
            raise ToolError(result.text.removeprefix("Error: "))
        return result.text

    call.__name__ = spec.name
    call.__doc__ = spec.description
    return call


def _ask_tool(
    workspace: Workspace, settings: Settings, team_by_default: bool, engines: Any = None
) -> Any:
    from mcp.server.mcpserver.exceptions import ToolError

    async def ask(
        prompt: str, multi_agent: bool = False, session: str | None = None, ctx: Any = None
    ) -> Any:
        from local_brain.conversations import ConversationStore, remember
        from local_brain.session import RunSession

        if not prompt.strip():
            raise ToolError("the prompt is empty")
        store = ConversationStore(workspace.root)
        conversation = store.start() if session is None else store.get(session)
        if conversation is None:
            shown = session if session is None or len(session) <= 40 else f"{session[:40]}…"
            raise ToolError(f"ask: no conversation {shown!r} for this repository "
                            "(start one by asking without session)")  # fmt: skip
        run = RunSession(
            prompt,
            workspace,
            settings,
            team=multi_agent or team_by_default,
            history=conversation.turns,
            engines=engines,
        )
        try:
            result = await run_reported(
                run.run, run.cancel, ctx, _reporter(run), _lifecycle_of(ctx)
            )
        except LocalBrainError as error:
            hint = f" ({error.hint})" if error.hint else ""
            raise ToolError(f"{error.message}{hint}") from None
        unsaved: list[str] = []  # why the conversation could not be saved, if it was not
        saved = remember(store, conversation, prompt, result.answer, unsaved.append)
        for message in unsaved:  # the answer stands; the client's log says what happened
            with contextlib.suppress(Exception):
                await ctx.warning(message)
        return _ask_result(result, saved)

    from mcp.server.mcpserver import Context

    ask.__annotations__["ctx"] = Context  # the SDK passes the request's context here
    return ask


def _ask_result(result: Any, session: str | None) -> Any:
    """The answer as text (unverified references flagged, the usage line, then
    ``session: ID``) and as structured content (the `local-brain --json` document)."""
    from mcp.types import CallToolResult, TextContent

    from local_brain.render import result_document

    checks = "".join(f"\n⚠ {citation.warning()}" for citation in result.unverified)
    text = f"{result.answer}\n{checks}\n[{result.usage.summary_line()}]"
    if session is not None:
        text += f"\nsession: {session}"
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=result_document(result, {"session": session}),
    )


def _reporter(session: Any) -> ProgressReporter:
    """A progress reporter added to the session's sinks."""
    reporter = ProgressReporter()
    session.sinks.sinks.append(reporter)
    return reporter


def _lifecycle_of(ctx: Any) -> Lifecycle | None:
    """The server's Lifecycle (None when called without a request context)."""
    try:
        return getattr(ctx.mcp_server, "lifecycle", None)
    except (AttributeError, ValueError):
        return None


def _list_models_tool(settings: Settings) -> Any:
    from mcp.server.mcpserver.exceptions import ToolError

    def list_models() -> str:
        """Like ``local-brain models``: an unreachable server is a failure (exit 3 there),
        with the same message on one line."""
        from local_brain import inventory

        data = inventory.describe_models(settings)
        text = inventory.format_models(data)
        if not data["reachable"]:
            lines = text.splitlines()
            raise ToolError("; ".join(line.strip() for line in lines[:2]))
        return text

    return list_models
