"""Output: progress on stderr, the answer (Markdown on a terminal, plain when piped) or JSON
on stdout. Nothing else in local-brain prints."""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from local_brain.errors import ExitStatus
from local_brain.models import FallbackNotice
from local_brain.runner import MANAGER, SOLO, DelegationEvent, Event, Result

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


def result_document(result: Result) -> dict[str, Any]:
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
        "exit_code": int(result.exit_status),
    }


def error_document(message: str, status: ExitStatus, hint: str | None = None) -> dict[str, Any]:
    return {"answer": None, "error": message, "hint": hint, "exit_code": int(status)}


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
        if isinstance(event, FallbackNotice):
            self.stream.write(
                f"local-brain: model {event.failed} failed ({_one_line(event.reason)}); "
                f"{event.took_over} took over\n"
            )
            self.stream.flush()
            return
        if not self.show_steps:
            return
        if isinstance(event, DelegationEvent):
            self.stream.write(f"  → {event.helper} on {event.model}: {_one_line(event.task)}\n")
            self.stream.flush()
            return
        indent = "" if event.agent in (MANAGER, SOLO) else "    "
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


def _one_line(text: str | None) -> str:
    return _shorten(" ".join((text or "").split()), 200)


def _shorten(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())
