"""run(task, plan, workspace) -> Result. No Click, no printing: events go to a callback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local_brain.cancel import Cancelled, CancelToken, GuardedClient
from local_brain.citations import Citation, Evidence, check_answer
from local_brain.conversations import Turn, history_budget, with_earlier_turns
from local_brain.errors import AgentFailed, LocalBrainError, one_line
from local_brain.events import CitationsChecked, Delegated, EventSink, FallbackNotice, StepFinished
from local_brain.parsing import normalize_reply
from local_brain.plan import RunPlan
from local_brain.usage import UsageLedger
from local_brain.workspace import Workspace

if TYPE_CHECKING:
    from local_brain.models.llamacpp import Engines


@dataclass
class Result:
    answer: str
    model: str
    steps: int
    duration_s: float
    usage: UsageLedger = field(default_factory=UsageLedger)
    fallbacks: list[FallbackNotice] = field(default_factory=list)
    manager: str | None = None
    worker: str | None = None
    citations: list[Citation] = field(default_factory=list)

    @property
    def unverified(self) -> list[Citation]:
        return [citation for citation in self.citations if not citation.verified]


def run(
    task: str,
    plan: RunPlan,
    workspace: Workspace,
    on_event: EventSink | None = None,
    cancel: CancelToken | None = None,
    history: Sequence[Turn] = (),
    engines: Engines | None = None,
) -> Result:
    """Answer one question about the workspace, as the plan says: one agent, or a manager
    with helpers.

    A failure of the model or the agent raises a ``LocalBrainError`` carrying the run's
    usage so far; any other exception is a bug of ours and propagates as it is. After
    ``cancel`` is cancelled no model request nor tool call starts, and the run raises
    ``Cancelled``. ``history``: the conversation's earlier turns, put before the task
    within a share of the lead model's window (``conversations.with_earlier_turns``).
    ``engines``: a long-lived process's pool of in-process engines (models/llamacpp.py),
    kept loaded after the run; None: the run starts its own and closes them at its end.
    """
    started = time.monotonic()
    from local_brain import agents, smol
    from local_brain.models.failures import backend_error_from
    from local_brain.models.quiet import quiet_litellm
    from local_brain.models.routing import Routing
    from local_brain.step_limit import step_limit_error

    models = plan.models
    lead = plan.lead.model

    def step_callback_for(agent_name: str) -> Callable[..., None] | None:
        if on_event is None:
            return None

        def on_step(step: Any, agent: Any = None) -> None:
            if getattr(step, "token_usage", None) is not None and hasattr(step, "model_output"):
                on_event(_step_event(agent_name, models[agent_name], step))

        return on_step

    def on_delegate(helper: str, helper_task: str) -> None:
        if on_event is not None:
            on_event(Delegated(helper, models[helper], helper_task))

    evidence = Evidence()  # what the tools showed, for checking the answer's references
    with (
        quiet_litellm(),  # litellm's own log lines stay off stderr
        Routing(plan.settings, list(models.values()), on_event, engines) as routing,
    ):
        agent = None
        try:
            agent = agents.build(
                plan,
                lambda each: _guarded(
                    routing.model(each.model, each.name, normalize_reply), cancel
                ),
                workspace,
                step_callback_for=step_callback_for,
                on_delegate=on_delegate,
                on_event=on_event,
                evidence=evidence,
                cancel=cancel,
            )
            try:
                budget = history_budget(*routing.window(lead))
                run_result = agent.run(with_earlier_turns(task, history, budget))
            except LocalBrainError as error:
                if cancel is not None and cancel.cancelled and not isinstance(error, Cancelled):
                    raise Cancelled(cancel.reason) from error
                raise
            except Exception as error:  # smolagents wraps model failures in AgentGenerationError
                if cancel is not None and cancel.cancelled:  # whatever broke, it was stopped
                    raise Cancelled(cancel.reason) from error
                ours = _our_error_in(error)
                if ours is not None:
                    raise ours from error
                backend = backend_error_from(error, lead, plan.settings)
                if backend is not None:
                    raise backend from error
                if not isinstance(error, smol.AgentError):
                    raise  # not the model's nor the agent's failure: our own bug
                raise AgentFailed(f"the agent failed: {one_line(error)}") from error
            if run_result.state != "success" or isinstance(
                run_result.output, smol.StepLimitReached
            ):
                raise step_limit_error(agent, plan.lead.max_steps)  # unusable replies named
        except LocalBrainError as error:
            error.usage = routing.ledger  # what the run cost before it failed
            raise
        finally:
            for each in [agent, *getattr(agent, "managed_agents", {}).values()] if agent else []:
                each.cleanup()  # stops the sandbox processes

    answer = str(run_result.output).strip()
    citations = check_answer(answer, workspace, evidence)
    if on_event is not None and citations:
        on_event(CitationsChecked(tuple(c.as_dict() for c in citations),
                                  sum(1 for c in citations if not c.verified)))  # fmt: skip
    return Result(
        answer=answer,
        model=lead,
        steps=sum(1 for step in run_result.steps if step.get("step_number") is not None),
        duration_s=time.monotonic() - started,
        usage=routing.ledger,
        fallbacks=routing.fallbacks,
        manager=lead if plan.team else None,
        worker=plan.worker,
        citations=citations,
    )


def _guarded(model: Any, cancel: CancelToken | None) -> Any:
    """The routed model, sending no request after a cancel (see ``cancel.GuardedClient``)."""
    if cancel is not None:
        model.client = GuardedClient(model.client, cancel)
    return model


def _our_error_in(error: BaseException) -> LocalBrainError | None:
    """Our own error (the window too small, a model that never stops) raised inside the
    model call, under smolagents' wrapping."""
    seen: set[int] = set()
    current: BaseException | None = error.__cause__ or error.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, LocalBrainError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _step_event(agent_name: str, model_name: str, step: Any) -> StepFinished:
    from local_brain import smol

    timing = getattr(step, "timing", None)
    tokens = step.token_usage
    return StepFinished(
        agent=agent_name,
        model=model_name,
        step=step.step_number,
        code=getattr(step, "code_action", None),
        observations=getattr(step, "observations", None),
        error=str(step.error) if getattr(step, "error", None) else None,
        limit_reached=smol.is_step_limit_marker(step),
        duration_s=(timing.duration or 0.0) if timing else 0.0,
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
    )
