"""What happens during a run, as plain data. The runner, the routed models and the tools
emit these; the progress view and the transcript consume them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelCallStarted:
    """An agent sent a request to its model."""

    agent: str
    model: str
    messages: int
    prompt_chars: int


@dataclass(frozen=True)
class ModelCallFinished:
    """The model answered (or failed: ``error`` is set)."""

    agent: str
    model: str
    served_by: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    duration_s: float
    error: str | None = None
    tokens_per_s: float | None = None  # generation speed (the server's own figure if any)
    prompt_tokens_evaluated: int | None = None  # None: the server did not say
    prompt_tokens_reused: int | None = None  # from the server's prompt cache
    load_s: float = 0.0  # time the server spent (re)loading the model for this request


@dataclass(frozen=True)
class ToolCalled:
    """Model-written code called a repository tool."""

    tool: str
    arguments: dict[str, object]
    output_chars: int
    duration_s: float
    error: bool


@dataclass(frozen=True)
class StepFinished:
    """One finished agent step: the code the model wrote and what it printed."""

    agent: str
    model: str
    step: int
    code: str | None
    observations: str | None
    error: str | None
    duration_s: float
    input_tokens: int
    output_tokens: int
    limit_reached: bool = False  # the marker step an agent adds at its step limit, no reply


@dataclass(frozen=True)
class Delegated:
    """The manager handed a task to a helper."""

    helper: str
    model: str
    task: str


@dataclass(frozen=True)
class FallbackNotice:
    """A route failed and another took over."""

    failed: str
    reason: str
    took_over: str


@dataclass(frozen=True)
class ContainmentReduced:
    """Model-written code runs with weaker confinement than intended on this system."""

    missing: tuple[str, ...]


@dataclass(frozen=True)
class ReplyCut:
    """A reply stopped at the output cap (``max_tokens``), or early because it repeated
    itself: that step failed. Sent the first time it happens to each model in a run."""

    agent: str
    model: str
    cap: int
    repeating: bool = False  # stopped early: it kept repeating the same text


@dataclass(frozen=True)
class ContextTruncated:
    """The server read far fewer prompt tokens than it was sent: it cut the context."""

    model: str
    sent_chars: int
    reported_tokens: int


@dataclass(frozen=True)
class CitationsChecked:
    """The final answer's references, checked (``citations.Citation.as_dict`` each)."""

    citations: tuple[dict[str, object], ...]
    unverified: int


Event = (
    ContainmentReduced
    | ContextTruncated
    | ReplyCut
    | ModelCallStarted
    | ModelCallFinished
    | ToolCalled
    | StepFinished
    | Delegated
    | FallbackNotice
    | CitationsChecked
)
EventSink = Callable[[Event], None]


@dataclass
class Fanout:
    """Send each event to several sinks, in order."""

    sinks: list[EventSink] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        for sink in self.sinks:
            sink(event)
