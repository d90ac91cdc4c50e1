"""run(task, settings, workspace) -> Result. No Click, no printing: events go to a callback."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_brain.config import Settings
from local_brain.errors import AgentFailed, ExitStatus, LocalBrainError, one_line
from local_brain.events import Delegated, EventSink, FallbackNotice, StepFinished
from local_brain.parsing import normalize_reply
from local_brain.usage import UsageLedger
from local_brain.workspace import Workspace

MANAGER = "manager"
SOLO = "agent"


@dataclass
class Result:
    answer: str
    model: str
    steps: int
    duration_s: float
    usage: UsageLedger = field(default_factory=UsageLedger)
    fallbacks: list[FallbackNotice] = field(default_factory=list)
    exit_status: ExitStatus = ExitStatus.OK
    manager: str | None = None
    worker: str | None = None


def resolve_default_model(settings: Settings) -> str:
    """Rule 4: LOCAL_BRAIN_MODEL or the config default (already in settings.model), else
    the best model the Ollama server has installed."""
    if settings.model:
        return settings.model
    from local_brain.models.names import choose_best_model
    from local_brain.models.ollama import list_installed_models

    return choose_best_model(list_installed_models(settings.api_base or settings.ollama_api_base))


def run(
    task: str,
    settings: Settings,
    workspace: Workspace,
    on_event: EventSink | None = None,
    *,
    multi_agent: bool = False,
) -> Result:
    """Answer one question about the workspace: one agent, or a manager with helpers."""
    started = time.monotonic()
    from local_brain.agents import STEP_LIMIT_MESSAGE, build_solo, build_team, helper_setups
    from local_brain.models.failures import backend_error_from
    from local_brain.models.routing import Routing

    agent_models: dict[str, str] = {}

    def step_callback_for(agent_name: str) -> Callable[..., None] | None:
        if on_event is None:
            return None

        def on_step(step: Any, agent: Any = None) -> None:
            if getattr(step, "token_usage", None) is not None and hasattr(step, "model_output"):
                on_event(_step_event(agent_name, agent_models[agent_name], step))

        return on_step

    if multi_agent:
        lead = settings.manager or resolve_default_model(settings)
        worker = settings.worker or settings.model or lead
        setups = helper_setups(settings, worker)
        agent_models[MANAGER] = lead
        agent_models.update({setup.role.name: setup.model_name for setup in setups})
    else:
        lead, worker = resolve_default_model(settings), None
        agent_models[SOLO] = lead
    with Routing(settings, list(agent_models.values()), on_event=on_event) as routing:
        agent = None
        try:
            if multi_agent:

                def on_delegate(helper: str, helper_task: str) -> None:
                    if on_event is not None:
                        on_event(Delegated(helper, agent_models[helper], helper_task))

                agent = build_team(
                    routing.model(lead, MANAGER, normalize_reply),
                    [
                        (setup, routing.model(setup.model_name, setup.role.name, normalize_reply))
                        for setup in setups
                    ],
                    workspace,
                    max_steps=settings.max_steps,
                    step_timeout=settings.step_timeout,
                    tool_time=settings.tool_time,
                    step_callback_for=step_callback_for,
                    on_delegate=on_delegate,
                    on_event=on_event,
                )
            else:
                agent = build_solo(
                    routing.model(lead, SOLO, normalize_reply),
                    workspace,
                    max_steps=settings.max_steps,
                    step_timeout=settings.step_timeout,
                    tool_time=settings.tool_time,
                    step_callback=step_callback_for(SOLO),
                    on_event=on_event,
                )
            try:
                run_result = agent.run(task)
            except LocalBrainError:
                raise
            except Exception as error:  # smolagents wraps model failures in AgentGenerationError
                backend = backend_error_from(error, lead)
                if backend is not None:
                    raise backend from error
                raise AgentFailed(f"the agent failed: {one_line(error)}") from error
            if run_result.state != "success" or run_result.output == STEP_LIMIT_MESSAGE:
                raise AgentFailed(
                    f"no answer after {settings.max_steps} steps (step limit reached)",
                    hint="raise --max-steps, ask a narrower question, or try a stronger model",
                )
        except LocalBrainError as error:
            error.usage = routing.ledger  # what the run cost before it failed
            raise
        finally:
            for each in [agent, *getattr(agent, "managed_agents", {}).values()] if agent else []:
                each.cleanup()  # stops the sandbox processes

    return Result(
        answer=str(run_result.output).strip(),
        model=lead,
        steps=sum(1 for step in run_result.steps if step.get("step_number") is not None),
        duration_s=time.monotonic() - started,
        usage=routing.ledger,
        fallbacks=routing.fallbacks,
        manager=lead if multi_agent else None,
        worker=worker,
    )


def _step_event(agent_name: str, model_name: str, step: Any) -> StepFinished:
    timing = getattr(step, "timing", None)
    tokens = step.token_usage
    return StepFinished(
        agent=agent_name,
        model=model_name,
        step=step.step_number,
        code=getattr(step, "code_action", None),
        observations=getattr(step, "observations", None),
        error=str(step.error) if getattr(step, "error", None) else None,
        duration_s=(timing.duration or 0.0) if timing else 0.0,
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
    )
