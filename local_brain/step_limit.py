"""Why a run used up its steps: the step limit itself, or a model whose replies never ran.

A model that never writes a code block reaches the step limit too, but "raise --max-steps"
is the wrong advice for it: more steps only buy more unusable replies. The agent's memory
tells the two apart (each step that failed to parse carries our short parse error).
"""

from __future__ import annotations

from typing import Any

from local_brain.errors import StepLimitExceeded
from local_brain.parsing import NO_CODE_MESSAGE

_UNUSABLE_MARKERS = (
    NO_CODE_MESSAGE,
    "Error in code parsing",
    "so none of it ran",  # a reply cut at the output cap, or one that kept repeating
)


def unusable_replies(agent: Any) -> tuple[int, int]:
    """(replies that could not be run, replies in all) among the agent's model steps."""
    unusable = total = 0
    for step in getattr(getattr(agent, "memory", None), "steps", None) or []:
        if getattr(step, "model_output", None) is None and getattr(step, "error", None) is None:
            continue  # the task, a plan, or a step that never asked the model
        if type(getattr(step, "error", None)).__name__ == "AgentMaxStepsError":
            continue  # the marker added at the limit: no reply
        if getattr(step, "step_number", None) is None:
            continue
        total += 1
        error = getattr(step, "error", None)
        if error is not None and any(marker in str(error) for marker in _UNUSABLE_MARKERS):
            unusable += 1
    return unusable, total


def step_limit_error(agent: Any, max_steps: int) -> StepLimitExceeded:
    """The step-limit failure, naming unusable replies as the cause when none of the
    model's replies could be run."""
    steps = f"{max_steps} step{'' if max_steps == 1 else 's'}"
    unusable, total = unusable_replies(agent)
    if total and unusable == total:
        if total == 1:
            cause = "the model's reply was unusable (it held no code block to run)"
        else:
            cause = f"the model's replies were unusable (none of its {total} held a code block)"
        return StepLimitExceeded(
            f"no answer after {steps}: {cause}",
            hint="try a stronger model with -m, or compare models with `local-brain eval`; "
            "see the replies with -v",
        )
    return StepLimitExceeded(
        f"no answer after {steps} (step limit reached)"
        + (f"; {unusable} of {total} replies held no code to run" if unusable else ""),
        hint="raise --max-steps, ask a narrower question, or try a stronger model",
    )
