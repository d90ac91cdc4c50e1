"""Output: progress on stderr, the answer (Markdown on a terminal, plain when piped) or JSON
on stdout. Nothing else in local-brain prints."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from local_brain.citations import Citation
from local_brain.errors import ExitStatus
from local_brain.events import (
    ContainmentReduced,
    ContextTruncated,
    Delegated,
    Event,
    FallbackNotice,
    ModelCallFinished,
    ModelCallStarted,
    ReplyCut,
    StepFinished,
    ToolCalled,
)
from local_brain.plan import MANAGER, SOLO
from local_brain.runner import Result
from local_brain.usage import UsageLedger

PREVIEW_CHARS = 600


def wants_color(stream: IO[str]) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def print_answer(answer: str, stream: IO[str] | None = None) -> None:
    """The answer alone: rendered Markdown on a colour terminal, the raw text otherwise."""
    stream = stream or sys.stdout
    if wants_color(stream):
        from rich.console import Console
        from rich.markdown import Markdown

        Console(file=stream).print(Markdown(answer))
    else:
        stream.write(answer.rstrip("\n") + "\n")
        stream.flush()


def result_document(result: Result, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer as the --json document; ``extra`` keys (the conversation's ``session``)
    go before ``exit_code``."""
    team = {"manager": result.manager, "worker": result.worker} if result.manager else {}
    return {
        "answer": result.answer,
        "model": result.model,
        **team,
        "usage": {name: usage.as_dict() for name, usage in result.usage.by_model.items()},
        "usage_by_agent": {name: usage.as_dict() for name, usage in result.usage.by_agent.items()},
        "steps": result.steps,
        "fallbacks": [
            {"failed": notice.failed, "reason": notice.reason, "took_over": notice.took_over}
            for notice in result.fallbacks
        ],
        "duration_s": round(result.duration_s, 3),
        "citations": [citation.as_dict() for citation in result.citations],
        "unverified": len(result.unverified),
        **(extra or {}),
        "exit_code": int(ExitStatus.OK),
    }


def error_document(
    message: str, status: ExitStatus, hint: str | None = None, usage: UsageLedger | None = None
) -> dict[str, Any]:
    by_model = usage.by_model if usage is not None else {}
    return {
        "answer": None,
        "error": message,
        "hint": hint,
        "usage": {name: counts.as_dict() for name, counts in by_model.items()},
        "exit_code": int(status),
    }


def print_json(document: dict[str, Any], stream: IO[str] | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    stream.flush()


def print_error(message: str, hint: str | None = None, stream: IO[str] | None = None) -> None:
    """One clear line (plus a hint line when there is a fix to suggest)."""
    stream = stream or sys.stderr
    stream.write(f"local-brain: error: {message}\n")
    if hint:
        stream.write(f"local-brain: hint: {hint}\n")
    stream.flush()


def print_notice(message: str, stream: IO[str] | None = None) -> None:
    stream = stream or sys.stderr
    stream.write(f"local-brain: {message}\n")
    stream.flush()


def print_unverified(citations: list[Citation], stream: IO[str] | None = None) -> None:
    """One line per reference in the answer that failed its check, dim on a terminal:
    ``⚠ src/auth.py:412 does not exist (file has 120 lines)``."""
    stream = stream or sys.stderr
    dim, reset = ("\x1b[2m", "\x1b[0m") if wants_color(stream) else ("", "")
    for citation in citations:
        stream.write(f"{dim}⚠ {_one_line(citation.warning())}{reset}\n")
    stream.flush()


def progress_sink(
    verbose: bool = False, as_json: bool = False, stream: IO[str] | None = None
) -> StepPrinter | LiveProgress:
    """Where a run's progress goes. On a terminal: the live view, uncoloured under NO_COLOR
    (colour is all NO_COLOR takes away); one plain line per step where the terminal cannot
    move its cursor (TERM=dumb). Elsewhere (a pipe, a file, --json): only what must be
    said (fallbacks, warnings), and each step with -v."""
    stream = stream or sys.stderr
    if stream.isatty() and not as_json:
        if os.environ.get("TERM") in ("dumb", "unknown"):
            return StepPrinter(stream, verbose=verbose, show_steps=True)
        return LiveProgress(verbose=verbose, color=wants_color(stream))
    return StepPrinter(stream, verbose=verbose, show_steps=verbose)


class StepPrinter:
    """Progress on stderr. A route that failed over is always one line. With ``show_steps``
    (a terminal, or -v): one line per agent step, helpers indented under the manager, and
    one per delegation; with ``verbose``, each step's code and shortened output too."""

    def __init__(
        self, stream: IO[str] | None = None, verbose: bool = False, show_steps: bool = True
    ) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.show_steps = show_steps or verbose

    def __call__(self, event: Event) -> None:
        if isinstance(event, ContainmentReduced | ContextTruncated | ReplyCut):
            self.stream.write(f"local-brain: warning: {warning_text(event)}\n")
            self.stream.flush()
            return
        if isinstance(event, FallbackNotice):
            self.stream.write(
                f"local-brain: model {event.failed} failed ({_one_line(event.reason)}); "
                f"{event.took_over} took over\n"
            )
            self.stream.flush()
            return
        if not self.show_steps:
            return
        if isinstance(event, Delegated):
            self.stream.write(f"  → {event.helper} on {event.model}: {_one_line(event.task)}\n")
            self.stream.flush()
            return
        if not isinstance(event, StepFinished):
            return
        indent = "" if event.agent in (MANAGER, SOLO) else "    "
        if event.limit_reached:  # a marker, not a step that ran: no time, no tokens
            steps = event.step - 1
            self.stream.write(
                f"{indent}[{event.agent}] step limit reached after {steps} "
                f"step{'' if steps == 1 else 's'}\n"
            )
            self.stream.flush()
            return
        tokens = f"{event.input_tokens}+{event.output_tokens} tokens"
        status = f"error: {_one_line(event.error)}" if event.error else "ok"
        self.stream.write(
            f"{indent}[{event.agent}] step {event.step} "
            f"({event.duration_s:.1f}s, {tokens}): {status}\n"
        )
        if self.verbose:
            if event.code:
                self.stream.write(_indent(event.code, indent + "    ") + "\n")
            if event.observations:
                self.stream.write(_indent(_shorten(event.observations), indent + "    ") + "\n")
        self.stream.flush()


def warning_text(event: ContainmentReduced | ContextTruncated | ReplyCut) -> str:
    if isinstance(event, ReplyCut) and event.repeating:
        return (
            f"a reply of model {event.model} kept repeating the same text and was stopped: "
            "that step failed and the model was asked to be brief"
        )
    if isinstance(event, ReplyCut):
        return (
            f"a reply of model {event.model} reached its {event.cap}-token output cap: that "
            "step failed and the model was asked to be brief"
        )
    if isinstance(event, ContextTruncated):
        return (
            f"model {event.model} read only {event.reported_tokens} prompt tokens of "
            f"{event.sent_chars} characters sent: the server cut the context; raise num_ctx "
            "or use a model with a larger window"
        )
    return "model-written code runs with reduced containment: no " + "; no ".join(event.missing)


def _one_line(text: str | None) -> str:
    return _shorten(" ".join((text or "").split()), 200)


def _shorten(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


class LiveProgress:
    """The live view on a terminal's stderr: the agent tree (manager → helpers → recent tool
    calls), each agent's current step with its elapsed time, tokens so far, and a spinner
    while a model thinks. With ``verbose`` each step's code and output scroll above it."""

    RECENT_TOOLS = 3

    def __init__(self, console: Any = None, verbose: bool = False, color: bool = True) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True, no_color=not color)
        self.verbose = verbose
        self.started = time.monotonic()
        self.agents: dict[str, _AgentState] = {}
        self.current: str | None = None
        self.live: Any = None

    def __enter__(self) -> LiveProgress:
        from rich.live import Live

        self.live = Live(
            self, console=self.console, refresh_per_second=8, transient=True, redirect_stdout=False
        )
        self.live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc_info)

    def __rich__(self) -> Any:
        return self.renderable()

    def __call__(self, event: Event) -> None:
        if isinstance(event, ContainmentReduced | ContextTruncated | ReplyCut):
            self.console.print(f"warning: {warning_text(event)}", style="yellow", markup=False)
        elif isinstance(event, FallbackNotice):
            self.console.print(
                f"model {event.failed} failed ({_one_line(event.reason)}); "
                f"{event.took_over} took over",
                style="yellow",
                markup=False,
            )
        elif isinstance(event, Delegated):
            self._agent(event.helper, event.model).task = event.task
        elif isinstance(event, ModelCallStarted):
            state = self._agent(event.agent, event.model)
            state.status = "thinking"
            if state.step_ended >= state.step_started:  # the first call of a new step
                state.step_started = time.monotonic()
                state.step_ended = 0.0
            self.current = event.agent
        elif isinstance(event, ModelCallFinished):
            state = self._agent(event.agent, event.model)
            state.tokens += event.prompt_tokens + event.completion_tokens
            state.rate = event.tokens_per_s or state.rate
            state.status = "failed" if event.error else "running code"
        elif isinstance(event, ToolCalled) and self.current:
            arguments = ", ".join(f"{key}={value!r}" for key, value in event.arguments.items())
            mark = "✗" if event.error else "→"
            self.agents[self.current].tools.append(
                f"{event.tool}({_shorten(arguments, 60)}) {mark} {event.output_chars} chars"
            )
            del self.agents[self.current].tools[: -self.RECENT_TOOLS]
        elif isinstance(event, StepFinished) and event.limit_reached:
            self._agent(event.agent, event.model).status = "step limit reached"
        elif isinstance(event, StepFinished):
            state = self._agent(event.agent, event.model)
            state.steps_done = event.step
            state.status = "done" if event.error is None else "step failed"
            state.step_ended = time.monotonic()
            if self.verbose:
                self._print_step(event)
        if self.live is not None:
            self.live.refresh()

    def _agent(self, name: str, model: str) -> _AgentState:
        if name not in self.agents:
            self.agents[name] = _AgentState(model=model)
        return self.agents[name]

    def _print_step(self, event: StepFinished) -> None:
        from rich.syntax import Syntax

        self.console.print(f"[bold]{event.agent}[/] step {event.step}", highlight=False)
        if event.code:
            self.console.print(Syntax(event.code, "python", theme="ansi_dark"))
        if event.observations:
            self.console.print(_shorten(event.observations), markup=False, style="dim")

    def renderable(self) -> Any:
        from rich.spinner import Spinner
        from rich.text import Text
        from rich.tree import Tree

        tokens = sum(state.tokens for state in self.agents.values())
        elapsed = time.monotonic() - self.started
        doing = f"{tokens} tokens" if tokens else self._phase()
        tree = Tree(Text(f"local-brain · {elapsed:.1f}s · {doing}", style="bold"))
        parents: dict[str, Any] = {}
        now = time.monotonic()
        for name, state in self.agents.items():
            ended = state.step_ended or now
            step_time = ended - state.step_started if state.step_started else 0.0
            between_steps = state.status in ("done", "step failed", "step limit reached")
            step = state.steps_done if between_steps else state.steps_done + 1
            line = (
                f"{name} ({state.model}) · step {step} · {step_time:.1f}s · "
                f"{state.tokens} tokens · {state.status}"
            )
            if state.rate:
                line += f" · {state.rate:.0f} tok/s"
            if state.task:
                line += f" · task: {_shorten(state.task, 50)}"
            label = Spinner("dots", text=line) if state.status == "thinking" else Text(line)
            parent = tree if name in (MANAGER, SOLO) else parents.get(MANAGER, tree)
            node = parent.add(label)
            parents.setdefault(name, node)
            for call in state.tools:
                node.add(Text(call, style="dim"))
        return tree

    def _phase(self) -> str:
        """What happens before the first tokens, told from what is loaded so far."""
        if any(state.status == "thinking" for state in self.agents.values()):
            return "waiting for the model's first reply (it may be loading)"
        if self.agents:
            return "running"
        if "litellm" not in sys.modules:
            return "starting: checking the model server"
        if "smolagents.remote_executors" not in sys.modules:
            return "loading the model stack (litellm, smolagents)"
        return "probing model servers and preparing the agents"


@dataclass
class _AgentState:
    model: str
    status: str = "waiting"
    steps_done: int = 0
    step_started: float = 0.0
    step_ended: float = 0.0  # when the last step finished (its time stops there)
    tokens: int = 0
    rate: float | None = None
    task: str = ""
    tools: list[str] = field(default_factory=list)
