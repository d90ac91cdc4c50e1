"""Arguments from the model: revisions resolved to commit ids, paths as literal pathspecs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.tools.git.messages import NO_COMMITS
from local_brain.tools.git.parse import CONTROL
from local_brain.tools.git.runner import Repo
from local_brain.workspace import SENSITIVE_DIRS, SENSITIVE_NAMES, Workspace, shorten

_REF_SIDE = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_@./{}~^+\-]*\Z")


@dataclass(frozen=True)
class Revision:
    text: str  # as the model gave it (validated), for messages
    args: tuple[str, ...]  # resolved commit ids, e.g. ("<sha>",) or ("<sha>..<sha>",)
    is_range: bool


def revision(repo: Repo, ref: str | None) -> Revision | None:
    """Validate a model-given revision or range and resolve each side to a commit id."""
    if ref is None or not ref.strip():
        return None
    text = ref.strip()
    shown = shorten(text, 80, marker="…")  # inside quotes: no space before the mark
    if text.startswith("-"):
        raise ToolError(f"invalid revision: {shown!r} (a revision cannot start with '-')")
    if any(ch.isspace() for ch in text) or CONTROL.search(text):
        raise ToolError(f"invalid revision: {shown!r} (no spaces or control characters)")
    if ":" in text:
        raise ToolError(
            f"invalid revision: {shown!r} ('rev:path' is not supported; pass path= instead)"
        )
    if len(text) > 256:
        raise ToolError(f"invalid revision: {shown!r} (too long)")
    separator = "..." if "..." in text else ".." if ".." in text else ""
    sides = text.split(separator, 1) if separator else [text]
    for side in sides:
        if side and (not _REF_SIDE.match(side) or ".." in side):
            raise ToolError(
                f"invalid revision: {shown!r} "
                "(use a branch, tag, commit id, HEAD~N, or a range A..B / A...B)"
            )
    resolved = [_resolve_commit(repo, side or "HEAD", shown) for side in sides]
    return Revision(text=text, args=(separator.join(resolved),), is_range=bool(separator))


def _resolve_commit(repo: Repo, side: str, shown: str) -> str:
    verify = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{side}^{{commit}}"]
    out, code = repo.run(verify, ok=(0, 1, 128))
    if code != 0:
        if repo.head is None:
            raise ToolError(f"unknown revision: {shown} ({NO_COMMITS})")
        raise ToolError(f"unknown revision: {shown}")
    return out.decode().strip()


def pathspecs(ws: Workspace, path: str | None) -> tuple[list[str], str | None]:
    """A model-given path as a literal pathspec relative to the workspace root.

    ``ws.resolve`` applies the jail and the sensitive-file policy (to the path as given and
    as resolved); the pathspec uses the path as given, since git tracks symlinks as links.
    Returns ([pathspec], root-relative path) or ([], None) for the whole root.
    """
    if path is None or not str(path).strip():
        return [], None
    requested = str(path).strip()
    ws.resolve(requested, must_exist=False)
    candidate = Path(requested).expanduser()
    if not candidate.is_absolute():
        candidate = ws.root / candidate
    relative = ws.relative(Path(os.path.normpath(candidate)))
    if relative == ".":
        return [], None
    return [f":(literal){relative}"], relative


def diff_options(worktree: bool) -> list[str]:
    """Options for every shown diff-family command: no external or textconv drivers, rename
    and copy pairing, fixed a/ b/ prefixes (the section filter relies on them), paths
    relative to the workspace root.

    Submodules: when the working tree is compared, git reads each submodule's HEAD through
    the submodule's own `.git` file, which a hostile repository can point at any other
    repository; so submodules are ignored there (their commit ids come from elsewhere).
    Between commits and the index, gitlink ids are this repository's own data.
    """
    return [
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--relative",
        "--find-renames",
        "--find-copies",
        "--ignore-submodules=all" if worktree else "--ignore-submodules=dirty",
        "--submodule=short",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        f"-O{os.devnull}",
    ]


def exclude_pathspecs() -> list[str]:
    """The sensitive-file policy as git exclude pathspecs (``id_*`` keys: see the filter)."""
    specs = [f":(exclude,glob,icase)**/{pattern}" for pattern in SENSITIVE_NAMES]
    specs += [f":(exclude,glob,icase)**/{name}/**" for name in sorted(SENSITIVE_DIRS)]
    return specs
