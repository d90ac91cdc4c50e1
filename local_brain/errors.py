"""Errors that end a run, each with its documented exit code.

Exit codes (the outside contract, see README):
    0 answered
    1 the agent could not finish (step limit, unusable model output)
    2 usage or configuration error
    3 model backend unavailable (unreachable, model not found, auth) after every route
    130 interrupted
"""

from __future__ import annotations

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


class ToolError(Exception):
    """A tool could not do what was asked; the message is shown to the model as the result."""
