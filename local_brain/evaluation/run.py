"""Asking each model each question in each role, in this process, and summing up.

A role is a way to use a model: ``solo`` (one agent with every tool), ``manager`` (it plans
and delegates; the helpers run on the configured worker, else on the first model tried) and
``worker`` (the helpers' model; the manager is the configured manager, else the first model
tried). Every attempt is a normal run (same containment, limits and Routing), so a model
that fails is a result, never a crash.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local_brain.config import Settings
from local_brain.errors import (
    BackendUnavailable,
    ConfigError,
    LocalBrainError,
    RunawayOutput,
    StepLimitExceeded,
)
from local_brain.evaluation.questions import Question
from local_brain.evaluation.scoring import Verdict, score
from local_brain.events import Event, StepFinished
from local_brain.parsing import NO_CODE_MESSAGE
from local_brain.plan import MANAGER, SOLO, make_plan
from local_brain.usage import Usage, UsageLedger
from local_brain.workspace import Workspace

if TYPE_CHECKING:
    from local_brain.models.llamacpp import Engines

ROLES = ("solo", "manager", "worker")
MAX_FAILURE_CHARS = 80


@dataclass(frozen=True)
class Attempt:
    model: str
    role: str
    question: Question
    verdict: Verdict
    steps: int
    usage: Usage
    seconds: float
    unverified: int = 0


@dataclass
class Row:
    """One model in one role, over all its questions."""

    model: str
    role: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def score(self) -> float:
        points = sum(attempt.verdict.points for attempt in self.attempts)
        return points / len(self.attempts) if self.attempts else 0.0

    def as_dict(self) -> dict[str, Any]:
        outcomes = Counter(attempt.verdict.outcome for attempt in self.attempts)
        failures = Counter(a.verdict.failure for a in self.attempts if a.verdict.failure)
        seconds = sum(attempt.seconds for attempt in self.attempts)
        usage = Usage()
        for each in self.attempts:
            usage.merge(each.usage)
        # the server's generation speed when it reports one, else output tokens per second
        rate = usage.generation_rate or (usage.completion_tokens / seconds if seconds else None)
        return {
            "model": self.model,
            "role": self.role,
            "score": round(self.score, 3),
            "correct": outcomes["correct"],
            "partial": outcomes["partial"],
            "wrong": outcomes["wrong"],
            "no_answer": outcomes["no_answer"],
            "asked": len(self.attempts),
            "failures": dict(sorted(failures.items())),
            "unverified_citations": sum(attempt.unverified for attempt in self.attempts),
            "median_steps": statistics.median(a.steps for a in self.attempts)
            if self.attempts
            else 0,
            "tokens": usage.prompt_tokens + usage.completion_tokens,
            "seconds": round(seconds, 2),
            "tokens_per_second": round(rate, 1) if rate else None,
        }


def role_settings(
    settings: Settings, model: str, role: str, reference: str
) -> tuple[Settings, bool]:
    """The settings (and team mode) that put ``model`` in ``role``; the other team role is
    played by the configured manager or worker, else by ``reference``."""
    flags = settings.from_flags | {"model"}
    if role == "solo":
        return dataclasses.replace(settings, model=model, from_flags=flags), False
    if role == "manager":
        worker = settings.worker or reference
        return dataclasses.replace(settings, manager=model, worker=worker, from_flags=flags), True
    if role == "worker":
        manager = settings.manager or reference
        flags = flags | {"worker"}  # every helper on this model, whatever the config says
        return dataclasses.replace(settings, manager=manager, worker=model, from_flags=flags), True
    raise ConfigError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")


def attempts(
    settings: Settings,
    workspace: Workspace,
    models: list[str],
    roles: list[str],
    questions: list[Question],
) -> Iterator[Attempt]:
    """Every (model, role, question) attempt, in that order, one run each. In-process
    engines (``llamacpp/`` models) load once per model evaluated, for all its roles and
    questions, and close before the next model loads (one model's memory at a time)."""
    from local_brain.models.llamacpp import Engines

    for model in models:
        with Engines() as engines:
            for role in roles:
                run_settings, team = role_settings(settings, model, role, reference=models[0])
                for question in questions:
                    yield attempt(run_settings, team, workspace, model, role, question, engines)


def attempt(
    settings: Settings,
    team: bool,
    workspace: Workspace,
    model: str,
    role: str,
    q: Question,
    engines: Engines | None = None,
) -> Attempt:
    from local_brain.runner import run

    steps = _StepCounter()
    started = time.monotonic()
    try:
        plan = make_plan(settings, team=team, installed_default=lambda: model)
        result = run(q.text, plan, workspace, on_event=steps, engines=engines)
        verdict = score(q, result.answer)
    except LocalBrainError as error:
        usage = error.usage if isinstance(error.usage, UsageLedger) else UsageLedger()
        verdict = Verdict("no_answer", _failure_kind(error, steps))
        return Attempt(model, role, q, verdict, steps.count, usage.total(),
                       time.monotonic() - started)  # fmt: skip
    except Exception as error:  # a bug met by one attempt: its result, not the eval's end
        verdict = Verdict("no_answer", internal_error(error))
        return Attempt(model, role, q, verdict, steps.count, Usage(), time.monotonic() - started)
    return Attempt(
        model, role, q, verdict, result.steps, result.usage.total(),
        time.monotonic() - started, len(result.unverified),
    )  # fmt: skip


def internal_error(error: Exception) -> str:
    """``internal error: ValueError: the first line of its message`` (shortened)."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return f"internal error: {text[:MAX_FAILURE_CHARS]}"


def summarize(done: list[Attempt]) -> list[Row]:
    """One row per model and role, best first within each role: the highest score, then
    the fewest questions left without an answer (a wrong answer at least ran), then the
    fewest seconds."""
    rows: dict[tuple[str, str], Row] = {}
    for each in done:
        rows.setdefault((each.model, each.role), Row(each.model, each.role)).attempts.append(each)
    return sorted(rows.values(), key=lambda row: (ROLES.index(row.role), *_rank(row)))


def _rank(row: Row) -> tuple[float, int, float]:
    unanswered = sum(1 for a in row.attempts if a.verdict.outcome == "no_answer")
    return (-row.score, unanswered, sum(a.seconds for a in row.attempts))


def recommend(rows: list[Row]) -> dict[str, str | None]:
    """The best model for each role (``summarize``'s order); a model that answered nothing
    correctly is recommended for nothing."""

    def best(role: str) -> str | None:
        scored = [row for row in rows if row.role == role and row.score > 0]
        return min(scored, key=_rank).model if scored else None

    return {"model": best("solo"), "manager": best("manager"), "worker": best("worker")}


class _StepCounter:
    """Counts the lead agent's steps and the ones that had no usable code."""

    def __init__(self) -> None:
        self.count = 0
        self.unusable = 0

    def __call__(self, event: Event) -> None:
        if not isinstance(event, StepFinished) or event.agent not in (SOLO, MANAGER):
            return
        if event.limit_reached:
            return  # the marker step the agent adds at its limit, not a model reply
        self.count += 1
        self.unusable += int(bool(event.error and NO_CODE_MESSAGE in event.error))


def _failure_kind(error: LocalBrainError, steps: _StepCounter) -> str:
    if isinstance(error, BackendUnavailable):
        return "backend_error"
    if isinstance(error, ConfigError):
        return "config_error"
    if isinstance(error, RunawayOutput):
        return "runaway_output"
    if steps.count and steps.unusable == steps.count:
        return "unusable_output"
    if isinstance(error, StepLimitExceeded):
        return "step_limit"
    return "agent_error"
