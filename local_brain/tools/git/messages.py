"""The fixed one-line messages the git tools give instead of anything git printed."""

from __future__ import annotations

from local_brain.errors import ToolError

NOT_A_REPO = "not a git repository: git tools need one; file tools still work"
GIT_MISSING = "git is not installed or not on PATH: git tools need it; file tools still work"
NO_COMMITS = "no commits yet"
DUBIOUS_OWNERSHIP = (
    "git refuses this repository because another user owns it "
    "(see git's safe.directory setting); file tools still work"
)
REFUSED_PREFIX = "git tools refused: "


class DubiousOwnership(ToolError):
    """The repository belongs to another user and no protected safe.directory trusts it."""


class RepositoryRefused(ToolError):
    """The repository's git directory is unsafe to hand to git (see layout.py)."""


def refused(reason: str) -> RepositoryRefused:
    """The refusal for a git directory that is not plain and self-contained.

    ``reason`` is always one of our own fixed phrases, never a name or text taken from the
    repository (a hostile repository chooses its file names and file contents).
    """
    return RepositoryRefused(
        f"{REFUSED_PREFIX}this repository's .git is not a plain git directory of its own "
        f"({reason}); file tools still work"
    )
