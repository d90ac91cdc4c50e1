"""Agents: the repository tools wrapped for smolagents, and the agent builders.

smolagents is imported only inside the builders (through ``safe_import``), so importing
this module stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from local_brain.config import Settings
from local_brain.errors import ConfigError, one_line
from local_brain.events import ContainmentReduced, EventSink, ToolCalled
from local_brain.parsing import NO_CODE_MESSAGE
from local_brain.sandbox import SandboxExecutor
from local_brain.tools import ToolSpec, all_tools
from local_brain.workspace import Workspace

MAX_OBSERVATION_CHARS = 6_000
MAX_REPORT_CHARS = 3_000
STEP_LIMIT_MESSAGE = "stopped: the step limit was reached before a final answer"


def load_prompt_templates(name: str) -> dict[str, Any]:
    text = resources.files("local_brain.prompts").joinpath(f"{name}.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _helper_templates(name: str) -> dict[str, Any]:
    """The helper prompt with its name filled in (smolagents does not pass it)."""
    templates = load_prompt_templates("helper")
    templates["system_prompt"] = templates["system_prompt"].replace("{{name}}", name)
    return templates


def prompt_line(spec: ToolSpec) -> str:
    """One compact line per tool for the system prompt: signature, then what it does."""
    params = []
    for param in spec.params:
        annotation = {"string": "str", "integer": "int", "boolean": "bool"}[param.type]
        if param.required:
            params.append(f"{param.name}: {annotation}")
        else:
            params.append(f"{param.name}: {annotation} = {param.default!r}")
    return f"{spec.name}({', '.join(params)}): {spec.description}"


def make_smolagents_tool(
    spec: ToolSpec, workspace: Workspace, on_event: EventSink | None = None
) -> Any:
    """Wrap one ToolSpec, bound to a workspace, as a smolagents Tool instance."""
    from local_brain.safe_import import import_model_stack

    _, smolagents = import_model_stack()

    def forward(self: Any, *args: Any, **kwargs: Any) -> str:
        started = time.monotonic()
        output = spec.run(workspace, *args, **kwargs)
        if on_event is not None:
            arguments = {**dict(zip(_names(spec), args, strict=False)), **kwargs}
            on_event(
                ToolCalled(
                    tool=spec.name,
                    arguments={key: _loggable(value) for key, value in arguments.items()},
                    output_chars=len(output),
                    duration_s=time.monotonic() - started,
                    error=output.startswith("Error: "),
                )
            )
        return output

    inputs = {
        param.name: {
            "type": param.type,
            "description": param.description,
            **({} if param.required else {"nullable": True}),
        }
        for param in spec.params
    }
    tool_class = type(
        f"{spec.name.title().replace('_', '')}Tool",
        (smolagents.Tool,),
        {
            "name": spec.name,
            "description": spec.description,
            "inputs": inputs,
            "output_type": "string",
            "skip_forward_signature_validation": True,
            "prompt_line": prompt_line(spec),
            "forward": forward,
        },
    )
    return tool_class()


@dataclass(frozen=True)
class HelperRole:
    """One helper of the team: what the manager sees, and the tools it gets."""

    name: str
    description: str
    tools: tuple[str, ...]
    focus: str


# The team roster. Adding a helper is one entry here.
ROSTER: tuple[HelperRole, ...] = (
    HelperRole(
        name="code_search",
        description=(
            "finds code: where a symbol, string or behaviour is defined or used; returns "
            "path:line hits with their enclosing functions, and can read the lines around them"
        ),
        tools=("search_code", "list_definitions", "read_file"),
        focus="Search first, then read only the lines you need to confirm a hit.",
    ),
    HelperRole(
        name="git_ops",
        description=(
            "answers history questions: recent commits (sha, date, author, subject), what "
            "changed in a file or between refs, the current branch and uncommitted changes"
        ),
        tools=("git_status", "git_diff", "git_log", "git_changed_files"),
        focus="Use git_log with path= to scope history; keep diffs narrow with path=.",
    ),
    HelperRole(
        name="file_explorer",
        description=(
            "explores the file tree: lists directories, reports file facts (size, language, "
            "tracked or not), and reads files or line ranges"
        ),
        tools=("read_file", "list_directory", "file_info"),
        focus="List before you read; read large files in ranges.",
    ),
)


@dataclass(frozen=True)
class HelperSetup:
    """A helper's resolved routing: its model and limits."""

    role: HelperRole
    model_name: str
    max_steps: int
    step_timeout: float


DEFAULT_HELPER_STEPS = 8


def helper_setups(settings: Settings, worker_model: str) -> list[HelperSetup]:
    """Each helper's model and limits: ``local_brain.agents.<name>`` from config, where
    flags (``--worker``, ``--max-steps``, ``--step-timeout``) do not say otherwise."""
    unknown = set(settings.agents) - {role.name for role in ROSTER}
    if unknown:
        names = ", ".join(role.name for role in ROSTER)
        raise ConfigError(
            f"local_brain.agents.{sorted(unknown)[0]}: no such helper (helpers: {names})"
        )
    flags = settings.from_flags
    setups = []
    for role in ROSTER:
        own = settings.agents.get(role.name, {})
        model = worker_model if "worker" in flags else own.get("model") or worker_model
        if "max_steps" in flags:
            max_steps = settings.max_steps
        else:
            max_steps = own.get("max_steps") or min(settings.max_steps, DEFAULT_HELPER_STEPS)
        step_timeout = settings.step_timeout
        if "step_timeout" not in flags and own.get("step_timeout"):
            step_timeout = own["step_timeout"]
        setups.append(HelperSetup(role, str(model), int(max_steps), float(step_timeout)))
    return setups


def build_solo(
    model: Any,
    workspace: Workspace,
    *,
    max_steps: int,
    step_timeout: float,
    tool_time: float,
    step_callback: Callable[..., None] | None = None,
    on_event: EventSink | None = None,
) -> Any:
    """One CodeAgent with all nine repository tools."""
    tools = [make_smolagents_tool(spec, workspace, on_event) for spec in all_tools().values()]
    return _code_agent(
        tools=tools,
        model=model,
        prompt_templates=load_prompt_templates("solo"),
        max_steps=max_steps,
        step_timeout=step_timeout,
        tool_time=tool_time,
        step_callback=step_callback,
        workspace=workspace,
        on_event=on_event,
    )


def build_team(
    manager_model: Any,
    helpers: list[tuple[HelperSetup, Any]],
    workspace: Workspace,
    *,
    max_steps: int,
    step_timeout: float,
    tool_time: float,
    step_callback_for: Callable[[str], Callable[..., None] | None],
    on_delegate: Callable[[str, str], None] | None = None,
    on_event: EventSink | None = None,
) -> Any:
    """A manager CodeAgent (no repository tools) over one helper agent per roster entry.

    ``helpers`` pairs each helper's setup with its routed model; ``step_callback_for``
    gives the step callback for an agent name ("manager" or a helper's name).
    """
    specs = all_tools()
    managed = []
    for setup, model in helpers:
        role = setup.role
        helper = _code_agent(
            tools=[make_smolagents_tool(specs[name], workspace, on_event) for name in role.tools],
            model=model,
            prompt_templates=_helper_templates(role.name),
            max_steps=setup.max_steps,
            step_timeout=setup.step_timeout,
            tool_time=tool_time,
            step_callback=step_callback_for(role.name),
            name=role.name,
            description=role.description,
            instructions=role.focus,
            on_delegate=on_delegate,
            workspace=workspace,
            on_event=on_event,
        )
        managed.append(helper)
    # The step timeout does not count the time helpers take (see SandboxExecutor).
    return _code_agent(
        tools=[],
        model=manager_model,
        prompt_templates=load_prompt_templates("manager"),
        max_steps=max_steps,
        step_timeout=step_timeout,
        tool_time=tool_time,
        step_callback=step_callback_for("manager"),
        managed_agents=managed,
        workspace=workspace,
        on_event=on_event,
    )


def _code_agent(
    *,
    tools: list[Any],
    model: Any,
    prompt_templates: dict[str, Any],
    max_steps: int,
    step_timeout: float | None,
    tool_time: float | None,
    step_callback: Callable[..., None] | None,
    workspace: Workspace,
    on_event: EventSink | None,
    on_delegate: Callable[[str, str], None] | None = None,
    **kwargs: Any,
) -> Any:
    from local_brain.safe_import import import_model_stack

    _, smolagents = import_model_stack()
    _shorten_parse_error(smolagents)
    from smolagents.memory import ActionStep
    from smolagents.monitoring import LogLevel, Timing, TokenUsage
    from smolagents.utils import AgentMaxStepsError

    class ExplorerAgent(smolagents.CodeAgent):
        """A CodeAgent that stops at its step limit instead of asking the model once more
        to guess an answer from its notes: the run reports the limit honestly."""

        def _handle_max_steps_reached(self, task: str) -> Any:
            now = time.time()
            step = ActionStep(
                step_number=self.step_number,
                error=AgentMaxStepsError("Reached max steps.", self.logger),
                timing=Timing(start_time=now, end_time=now),
                token_usage=TokenUsage(input_tokens=0, output_tokens=0),
            )
            step.action_output = STEP_LIMIT_MESSAGE
            self._finalize_step(step)
            self.memory.steps.append(step)
            return STEP_LIMIT_MESSAGE

        def __call__(self, task: str, **kwargs: Any) -> str:
            """Run as a manager's helper; a failure is reported as one short line, never as
            a dump of the helper's log (smolagents issue 2166)."""
            if on_delegate is not None:
                on_delegate(self.name, task)
            try:
                report = super().__call__(task, **kwargs)
            except Exception as error:  # the helper's model failed: tell the manager
                return f"{self.name} FAILED: {one_line(error, 200)}. Try another helper or task."
            if self.memory.steps and isinstance(
                getattr(self.memory.steps[-1], "error", None), AgentMaxStepsError
            ):
                return (
                    f"{self.name} FAILED: no answer within its {self.max_steps} steps. "
                    "Try a narrower task or another helper."
                )
            return _cap(report, MAX_REPORT_CHARS)

    executor = SandboxExecutor(
        authorized_imports=[],
        step_timeout=step_timeout,
        tool_time=tool_time,
        max_print_outputs_length=MAX_OBSERVATION_CHARS,
        workspace_root=workspace.root,
        on_reduced=(lambda missing: on_event(ContainmentReduced(tuple(missing))))
        if on_event is not None
        else None,
    )
    return ExplorerAgent(
        tools=tools,
        model=model,
        prompt_templates=prompt_templates,
        max_steps=max_steps,
        code_block_tags="markdown",
        executor=executor,
        max_print_outputs_length=MAX_OBSERVATION_CHARS,
        verbosity_level=LogLevel.OFF,
        step_callbacks=[step_callback] if step_callback else [],
        return_full_result=True,
        **kwargs,
    )


def _shorten_parse_error(smolagents: Any) -> None:
    """A reply without runnable code gets one short corrective line instead of smolagents'
    format lecture, which repeats the whole reply. (smolagents.agents looks this function
    up at call time, so wrapping the module attribute is the one place to change it.)"""
    import smolagents.agents as agents_module

    original = agents_module.parse_code_blobs
    if getattr(original, "local_brain_short_error", False):
        return

    def parse_code_blobs(text: str, code_block_tags: tuple[str, str]) -> str:
        try:
            return original(text, code_block_tags)
        except ValueError:
            raise ValueError(NO_CODE_MESSAGE) from None

    parse_code_blobs.local_brain_short_error = True  # type: ignore[attr-defined]
    agents_module.parse_code_blobs = parse_code_blobs


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " …[report truncated]"


def _names(spec: ToolSpec) -> list[str]:
    return [param.name for param in spec.params]


def _loggable(value: Any) -> Any:
    """Tool arguments as they go into events: plain values, long strings shortened."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "…"
