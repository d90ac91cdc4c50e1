"""Agents: the team roster, the repository tools wrapped for smolagents, and the builders.

The builders take the run's plan (models and limits per agent, see ``plan.py``) and its
routed models. smolagents is imported only inside them (through ``local_brain.smol``), so
importing this module stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from local_brain.cancel import CancelToken
from local_brain.citations import Evidence, check_answer, mark_unverified
from local_brain.events import ContainmentReduced, EventSink, ToolCalled
from local_brain.plan import HELPERS, MANAGER, AgentPlan, RunPlan
from local_brain.sandbox import SandboxExecutor
from local_brain.tools import ToolSpec, all_tools
from local_brain.workspace import Workspace

MAX_OBSERVATION_CHARS = 6_000


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
        annotation = param.python_type.__name__
        if param.required:
            params.append(f"{param.name}: {annotation}")
        else:
            params.append(f"{param.name}: {annotation} = {param.default!r}")
    return f"{spec.name}({', '.join(params)}): {spec.description}"


def make_smolagents_tool(
    spec: ToolSpec,
    workspace: Workspace,
    on_event: EventSink | None = None,
    evidence: Evidence | None = None,
    cancel: CancelToken | None = None,
) -> Any:
    """Wrap one ToolSpec, bound to a workspace, as a smolagents Tool instance; what it
    returns goes into ``evidence`` (what the run's tools showed, for the citation check).
    No call starts once ``cancel`` is cancelled."""
    from local_brain import smol

    def forward(self: Any, *args: Any, **kwargs: Any) -> str:
        if cancel is not None:
            cancel.check()
        started = time.monotonic()
        result = spec.run(workspace, *args, **kwargs)
        arguments = {**dict(zip(_names(spec), args, strict=False)), **kwargs}
        if evidence is not None and result.ok:
            evidence.record(arguments, result.text)
        if on_event is not None:
            on_event(
                ToolCalled(
                    tool=spec.name,
                    arguments={key: _loggable(value) for key, value in arguments.items()},
                    output_chars=len(result.text),
                    duration_s=time.monotonic() - started,
                    error=not result.ok,
                )
            )
        return result.text

    inputs = {
        param.name: {
            "type": param.type,
            "description": param.description,
            **({} if param.required else {"nullable": True}),
        }
        for param in spec.params
    }
    tool_class = smol.tool_class(
        f"{spec.name.title().replace('_', '')}Tool",
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


ROLES = {role.name: role for role in ROSTER}
if tuple(ROLES) != HELPERS:  # the plan names the team, the roster words it
    raise RuntimeError("agents.ROSTER and plan.HELPERS must list the same helpers in order")


def build(
    plan: RunPlan,
    model_for: Callable[[AgentPlan], Any],
    workspace: Workspace,
    *,
    step_callback_for: Callable[[str], Callable[..., None] | None],
    on_delegate: Callable[[str, str], None] | None = None,
    on_event: EventSink | None = None,
    evidence: Evidence | None = None,
    cancel: CancelToken | None = None,
) -> Any:
    """The run's agent: one CodeAgent with all nine repository tools, or (team mode) a
    manager with no repository tools of its own over one helper agent per roster entry.

    ``model_for`` gives an agent's routed model; ``step_callback_for`` the step callback
    for an agent name. Tool results go into ``evidence``; a helper's report has its
    references checked against it, unverifiable ones marked, before the manager reads it.
    """
    specs = all_tools()
    evidence = evidence if evidence is not None else Evidence()

    def check_report(report: str) -> str:
        return mark_unverified(report, check_answer(report, workspace, evidence))

    def code_agent(agent: AgentPlan, tools: list[str], templates: Any, **kwargs: Any) -> Any:
        return _code_agent(
            agent,
            model_for(agent),
            [
                make_smolagents_tool(specs[name], workspace, on_event, evidence, cancel)
                for name in tools
            ],
            templates,
            step_callback=step_callback_for(agent.name),
            workspace=workspace,
            on_event=on_event,
            cancel=cancel,
            **kwargs,
        )

    if not plan.team:
        return code_agent(plan.lead, list(specs), load_prompt_templates("solo"))
    helpers = [
        code_agent(
            helper,
            list(ROLES[helper.name].tools),
            _helper_templates(helper.name),
            name=helper.name,
            description=ROLES[helper.name].description,
            instructions=ROLES[helper.name].focus,
            on_delegate=on_delegate,
            report_filter=check_report,
        )
        for helper in plan.helpers
    ]
    # The step timeout does not count the time helpers take (see SandboxExecutor).
    return code_agent(plan.lead, [], load_prompt_templates(MANAGER), managed_agents=helpers)


def _code_agent(
    agent: AgentPlan,
    model: Any,
    tools: list[Any],
    prompt_templates: dict[str, Any],
    *,
    step_callback: Callable[..., None] | None,
    workspace: Workspace,
    on_event: EventSink | None,
    cancel: CancelToken | None = None,
    **kwargs: Any,
) -> Any:
    from local_brain.smol import ExplorerAgent, LogLevel

    executor = SandboxExecutor(
        authorized_imports=[],
        step_timeout=agent.step_timeout,
        tool_time=agent.tool_time,
        max_print_outputs_length=MAX_OBSERVATION_CHARS,
        workspace_root=workspace.root,
        on_reduced=(lambda missing: on_event(ContainmentReduced(tuple(missing))))
        if on_event is not None
        else None,
        cancel=cancel,
    )
    callbacks = [step_callback] if step_callback else []
    if cancel is not None:  # the step loop goes no further after a cancel
        callbacks.append(lambda step, agent=None: cancel.check())
    return ExplorerAgent(
        tools=tools,
        model=model,
        prompt_templates=prompt_templates,
        max_steps=agent.max_steps,
        code_block_tags="markdown",
        executor=executor,
        max_print_outputs_length=MAX_OBSERVATION_CHARS,
        verbosity_level=LogLevel.OFF,
        step_callbacks=callbacks,
        return_full_result=True,
        **kwargs,
    )


def _names(spec: ToolSpec) -> list[str]:
    return [param.name for param in spec.params]


def _loggable(value: Any) -> Any:
    """Tool arguments as they go into events: plain values, long strings shortened."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "…"
