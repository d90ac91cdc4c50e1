"""Settings -> RunPlan: which model and limits each agent of a run gets. No I/O.

Flag precedence is decided here and nowhere else: a flag (``--model``, ``--worker``,
``--max-steps``, ``--step-timeout``) beats a helper's own ``local_brain.agents.<name>``
entry, which beats the run-wide config value. The one look-up a plan may need, the best
model the Ollama server has when no model is named anywhere, is passed in as a function,
so building a plan stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from local_brain.config import Settings
from local_brain.errors import ConfigError

SOLO = "agent"
MANAGER = "manager"
HELPERS = ("code_search", "git_ops", "file_explorer")  # the team roster (agents.ROSTER)
DEFAULT_HELPER_STEPS = 8


@dataclass(frozen=True)
class AgentPlan:
    """One agent's model and limits."""

    name: str  # SOLO, MANAGER or a helper's name
    model: str
    max_steps: int
    step_timeout: float
    tool_time: float


@dataclass(frozen=True)
class RunPlan:
    """A run, decided once: the lead agent (solo or manager) and, in team mode, its helpers.

    ``settings`` rides along only for the Routing (model list, router settings, context
    size); no agent reads it.
    """

    lead: AgentPlan
    helpers: tuple[AgentPlan, ...]
    settings: Settings
    worker: str | None = None  # team mode: the helpers' model before per-helper config

    @property
    def team(self) -> bool:
        return self.lead.name == MANAGER

    @property
    def agents(self) -> tuple[AgentPlan, ...]:
        return (self.lead, *self.helpers)

    @property
    def models(self) -> dict[str, str]:
        """Agent name -> model name, for every agent of the run."""
        return {agent.name: agent.model for agent in self.agents}


def make_plan(settings: Settings, *, team: bool, installed_default: Callable[[], str]) -> RunPlan:
    """The plan for one run. ``installed_default`` names the best installed model; it is
    called only when neither a flag, LOCAL_BRAIN_MODEL nor the config names the model."""
    flags = settings.from_flags

    def default_model() -> str:
        return settings.model or installed_default()

    def agent(name: str, model: str, max_steps: int, step_timeout: float) -> AgentPlan:
        return AgentPlan(name, model, max_steps, step_timeout, settings.tool_time)

    if not team:
        return RunPlan(
            agent(SOLO, default_model(), settings.max_steps, settings.step_timeout),
            (),
            settings,
        )
    lead_model = settings.manager or default_model()
    worker = settings.worker or settings.model or lead_model
    unknown = set(settings.agents) - set(HELPERS)
    if unknown:
        raise ConfigError(
            f"local_brain.agents.{sorted(unknown)[0]}: no such helper "
            f"(helpers: {', '.join(HELPERS)})"
        )
    helpers = []
    for name in HELPERS:
        own = settings.agents.get(name, {})
        model = worker if "worker" in flags else own.get("model") or worker
        if "max_steps" in flags:
            max_steps = settings.max_steps
        else:
            max_steps = own.get("max_steps") or min(settings.max_steps, DEFAULT_HELPER_STEPS)
        step_timeout = settings.step_timeout
        if "step_timeout" not in flags and own.get("step_timeout"):
            step_timeout = own["step_timeout"]
        helpers.append(agent(name, str(model), int(max_steps), float(step_timeout)))
    lead = agent(MANAGER, lead_model, settings.max_steps, settings.step_timeout)
    return RunPlan(lead, tuple(helpers), settings, worker=worker)
