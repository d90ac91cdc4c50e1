"""Everything that subclasses or patches smolagents, at module level, in one place.

Importing this module imports smolagents, through ``safe_import`` first (the user's
environment kept, no ``.env`` read, no network); only the agent builders import it, so
``--help``, ``tools`` and ``config`` never do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from local_brain.safe_import import import_model_stack

import_model_stack()

import smolagents  # noqa: E402
import smolagents.agents as _agents_module  # noqa: E402
from smolagents.memory import ActionStep  # noqa: E402
from smolagents.monitoring import LogLevel, Timing, TokenUsage  # noqa: E402
from smolagents.utils import AgentError, AgentMaxStepsError  # noqa: E402

from local_brain.errors import one_line  # noqa: E402
from local_brain.parsing import NO_CODE_MESSAGE, reply_cut  # noqa: E402

MAX_REPORT_CHARS = 3_000

__all__ = ["AgentError", "ExplorerAgent", "LogLevel", "StepLimitReached", "tool_class"]


class StepLimitReached:
    """The outcome of a run that used up its steps without a final answer (the agent's
    output in place of an answer)."""

    def __str__(self) -> str:
        return "stopped: the step limit was reached before a final answer"


class ExplorerAgent(smolagents.CodeAgent):
    """A CodeAgent that stops at its step limit instead of asking the model once more to
    guess an answer from its notes, and that reports a helper's failure to its manager in
    one short line, never as a dump of its log (smolagents issue 2166)."""

    def __init__(
        self,
        *args: Any,
        on_delegate: Callable[[str, str], None] | None = None,
        report_filter: Callable[[str], str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_delegate = on_delegate
        self.report_filter = report_filter

    def _handle_max_steps_reached(self, task: str) -> Any:
        now = time.time()
        outcome = StepLimitReached()
        step = ActionStep(
            step_number=self.step_number,
            error=AgentMaxStepsError("Reached max steps.", self.logger),
            timing=Timing(start_time=now, end_time=now),
            token_usage=TokenUsage(input_tokens=0, output_tokens=0),
        )
        step.action_output = outcome
        self._finalize_step(step)
        self.memory.steps.append(step)
        return outcome

    def __call__(self, task: str, **kwargs: Any) -> str:
        """Run as a manager's helper."""
        if self.on_delegate is not None:
            self.on_delegate(self.name, task)
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
        if len(report) > MAX_REPORT_CHARS:
            report = report[:MAX_REPORT_CHARS] + " …[report truncated]"
        return self.report_filter(report) if self.report_filter is not None else report


def is_step_limit_marker(step: Any) -> bool:
    """Whether a memory step is the one an agent adds at its step limit (no model reply)."""
    return isinstance(getattr(step, "error", None), AgentMaxStepsError)


def tool_class(name: str, attributes: dict[str, Any]) -> type:
    """A smolagents Tool subclass for one repository tool (smolagents reads a tool's name,
    inputs and forward from its class)."""
    return type(name, (smolagents.Tool,), attributes)


def _short_parse_error(original: Callable[..., str]) -> Callable[..., str]:
    """A reply without runnable code gets one short corrective line instead of smolagents'
    format lecture, which repeats the whole reply; a reply cut at the output cap never runs."""

    def parse_code_blobs(text: str, code_block_tags: tuple[str, str]) -> str:
        note = reply_cut.get()
        if note is not None:  # the reply hit the output cap: its code may be cut mid-line
            reply_cut.set(None)
            raise ValueError(note)
        try:
            return original(text, code_block_tags)
        except ValueError:
            raise ValueError(NO_CODE_MESSAGE) from None

    parse_code_blobs.local_brain_short_error = True  # type: ignore[attr-defined]
    return parse_code_blobs


# smolagents.agents looks parse_code_blobs up at call time, so the module attribute is the
# one place to change it. Done once, when this module is first imported.
if not getattr(_agents_module.parse_code_blobs, "local_brain_short_error", False):
    _agents_module.parse_code_blobs = _short_parse_error(_agents_module.parse_code_blobs)
