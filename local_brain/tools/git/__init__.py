"""Git tools: git_status, git_diff, git_log, git_changed_files (and is_tracked for file_info).

The repository being explored may be hostile, in its files and in its ``.git``:

* layout.py finds and checks the git directory without running git (no ``.git`` file
  except a registered linked work tree, no ``commondir`` or alternates, no symlinks, FIFOs
  or devices among git's internals);
* runner.py runs an absolute git found outside the repository, with GIT_DIR and friends
  pinned to that checked layout, command-running settings neutralised and a private,
  capped copy of the index; process.py bounds each child (its own process group, a memory
  limit, a deadline that kills the group, capped output) and replaces git's stderr with
  fixed messages;
* args.py validates model-given revisions (resolved to commit ids) and paths (through the
  workspace jail, passed after ``--`` as literal pathspecs);
* diff.py pairs renames and copies over the whole change set so that content moved to or
  from a sensitive path never shows; parse.py holds the pure parsers and the section
  filter; tools.py the four tools.
"""

from __future__ import annotations

from local_brain.tools.git.messages import (
    DUBIOUS_OWNERSHIP,
    GIT_MISSING,
    NO_COMMITS,
    NOT_A_REPO,
)
from local_brain.tools.git.process import GIT_TIMEOUT_S
from local_brain.tools.git.runner import MAX_INDEX_BYTES
from local_brain.tools.git.tools import (
    GIT_CHANGED_FILES,
    GIT_DIFF,
    GIT_LOG,
    GIT_STATUS,
    MAX_LOG_COUNT,
    TOOLS,
    git_changed_files,
    git_diff,
    git_log,
    git_status,
    is_tracked,
)

__all__ = [
    "DUBIOUS_OWNERSHIP",
    "GIT_CHANGED_FILES",
    "GIT_DIFF",
    "GIT_LOG",
    "GIT_MISSING",
    "GIT_STATUS",
    "GIT_TIMEOUT_S",
    "MAX_INDEX_BYTES",
    "MAX_LOG_COUNT",
    "NOT_A_REPO",
    "NO_COMMITS",
    "TOOLS",
    "git_changed_files",
    "git_diff",
    "git_log",
    "git_status",
    "is_tracked",
]
