"""Errors that end a run, each with its documented exit code.

Exit codes (the outside contract, see README):
    0 answered
    1 the agent could not finish (step limit, unusable model output)
    2 usage or configuration error
    3 model backend unavailable (unreachable, model not found, auth) after every route
    130 interrupted
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Any


class ExitStatus(IntEnum):
    OK = 0
    AGENT_FAILED = 1
    USAGE = 2
    BACKEND_UNAVAILABLE = 3
    INTERRUPTED = 130


class LocalBrainError(Exception):
    """Base class: a one-line message for the user, plus an optional hint for the fix."""

    exit_status: ExitStatus = ExitStatus.AGENT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.usage: Any = None  # the run's UsageLedger when a run was under way

    def __str__(self) -> str:
        return self.message


class UsageError(LocalBrainError):
    exit_status = ExitStatus.USAGE


class ConfigError(LocalBrainError):
    exit_status = ExitStatus.USAGE


class BackendUnavailable(LocalBrainError):
    exit_status = ExitStatus.BACKEND_UNAVAILABLE


class AgentFailed(LocalBrainError):
    exit_status = ExitStatus.AGENT_FAILED


class StepLimitExceeded(AgentFailed):
    """No final answer within the agent's step limit."""


class RunawayOutput(AgentFailed):
    """The model kept writing until its output cap."""


class ToolError(Exception):
    """A tool could not do what was asked; the message is shown to the model as the result."""


def one_line(error: BaseException, limit: int = 240) -> str:
    """The gist of an exception in one line: whitespace collapsed, the class-name prefix
    litellm adds and any traceback it embeds removed, cut to ``limit`` characters."""
    text = str(error).split("Traceback (most recent call last)", 1)[0]
    text = " ".join(text.split())
    text = re.sub(r"^(litellm\.)?\w+(Error|Exception)?: ", "", text) or type(error).__name__
    return text[:limit] + ("…" if len(text) > limit else "")


def internal_error_message(error: BaseException) -> str:
    """How a bug of ours (any exception that is not a LocalBrainError) is reported."""
    return f"internal error: {type(error).__name__}: {error}"
