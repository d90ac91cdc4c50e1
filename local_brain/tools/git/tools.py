"""The four git tools (git_status, git_diff, git_log, git_changed_files) and is_tracked."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.tools import Param, ToolSpec
from local_brain.tools.git.args import diff_options, pathspecs, revision
from local_brain.tools.git.diff import git_diff_in
from local_brain.tools.git.messages import GIT_MISSING, NO_COMMITS, NOT_A_REPO, REFUSED_PREFIX
from local_brain.tools.git.parse import CONTROL, clean, omitted_note, parse_name_status, plural
from local_brain.tools.git.runner import Repo, open_repo
from local_brain.workspace import Workspace, is_sensitive_path, shorten_line

MAX_LOG_COUNT = 200


# -- git_status ---------------------------------------------------------------------------


def _git_status(ws: Workspace, repo: Repo) -> str:
    args = [
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=normal",
        "--ignore-submodules=all",  # see diff_options: a submodule's .git can point anywhere
        "--renames",
        "--",
        ".",
    ]
    out, cut, _ = repo.run_capped(args)
    tokens = out.decode("utf-8", errors="replace").split("\0")
    if cut:
        tokens = tokens[:-1]  # the last record may be incomplete

    branch: dict[str, str] = {}
    staged: list[str] = []
    unstaged: list[str] = []
    unmerged: list[str] = []
    untracked: list[str] = []
    omitted = 0
    index = 0
    while index < len(tokens):
        record = tokens[index]
        index += 1
        if record.startswith("# "):
            key, _, value = record[2:].partition(" ")
            branch[key] = value
            continue
        kind = record[:1]
        original: str | None = None
        if kind == "1":
            fields = record.split(" ", 8)
        elif kind == "2":
            fields = record.split(" ", 9)
            original = tokens[index] if index < len(tokens) else ""
            index += 1
        elif kind == "u":
            fields = record.split(" ", 10)
        elif kind == "?":
            fields = ["?", "??", record[2:]]
        else:
            continue
        if len(fields) < 3:
            continue
        path = fields[-1]
        # A rename or copy is shown only when both its old and its new path may be.
        if is_sensitive_path(path) or (original is not None and is_sensitive_path(original)):
            omitted += 1
            continue
        shown = repo.inside(path)
        if shown is None:
            continue
        shown = clean(shown)
        x, y = fields[1][:1], fields[1][1:2]
        if kind == "?":
            untracked.append("?? . (this whole directory)" if shown == "." else f"?? {shown}")
        elif kind == "u":
            unmerged.append(f"{fields[1]} {shown}")
        else:
            if x != ".":
                staged_as = shown
                if original is not None and x in "RC":
                    before = repo.inside(original) or posixpath.relpath(original, repo.prefix)
                    staged_as = f"{clean(before)} -> {shown}"
                staged.append(f"{x}  {staged_as}")
            if y != ".":
                unstaged.append(f"{y}  {shown}")

    lines = [_branch_line(branch)]
    sections = (
        ("Unmerged (conflicts):", unmerged),
        ("Staged changes:", staged),
        ("Unstaged changes:", unstaged),
        ("Untracked files:", untracked),
    )
    budget = ws.max_list_entries
    hidden = 0
    for title, entries in sections:
        if not entries:
            continue
        lines.append(title)
        shown_entries = entries[: max(budget, 0)]
        lines += [f"  {entry}" for entry in shown_entries]
        budget -= len(shown_entries)
        hidden += len(entries) - len(shown_entries)
    if hidden or cut:
        more = f"{hidden} more" if hidden else "more"
        lines.append(f"… and {more} not shown (use git_changed_files or path= on git_diff)")
    if not (staged or unstaged or unmerged or untracked):
        lines.append("Working tree clean" if not omitted else "No other changes")
    if omitted:
        lines.append(omitted_note(omitted))
    return "\n".join(lines)


def _branch_line(branch: dict[str, str]) -> str:
    head = clean(branch.get("branch.head", "?"))
    oid = branch.get("branch.oid", "")
    if oid == "(initial)":
        return f"On branch {head} ({NO_COMMITS})"
    if head == "(detached)":
        return f"HEAD detached at {oid[:7]}"
    upstream = branch.get("branch.upstream")
    if not upstream:
        return f"On branch {head} (no upstream branch)"
    upstream = clean(upstream)
    ahead_behind = branch.get("branch.ab")
    if not ahead_behind:
        return f"On branch {head} (upstream {upstream} is gone)"
    match = re.fullmatch(r"\+(\d+) -(\d+)", ahead_behind)
    if not match:
        return f"On branch {head} (upstream {upstream})"
    ahead, behind = int(match[1]), int(match[2])
    if not ahead and not behind:
        return f"On branch {head} (up to date with {upstream})"
    return f"On branch {head} (ahead {ahead}, behind {behind} vs {upstream})"


# -- git_changed_files ----------------------------------------------------------------


def _git_changed_files(
    ws: Workspace, repo: Repo, staged: bool = False, include_untracked: bool = False
) -> str:
    if staged:
        options, revs = ["--cached"], []
        what = "staged changes (index vs HEAD)"
    else:
        options, revs = [], [repo.head or _empty_tree(repo)]
        what = "uncommitted changes, staged or not (working tree vs HEAD)"
    args = ["diff", *diff_options(worktree=not staged), *options, "--name-status", "-z"]
    out, cut, _ = repo.run_capped([*args, "--end-of-options", *revs, "--"])
    entries = parse_name_status(out, cut)

    rows: list[str] = []
    omitted = 0
    for status, paths in entries:
        if any(is_sensitive_path(p) for p in paths):  # both names of a rename or copy
            omitted += 1
            continue
        letter = status[:1] or "?"
        shown = " -> ".join(clean(p) for p in paths) if letter in "RC" else clean(paths[-1])
        rows.append(f"{letter:<2} {shown}")

    untracked = 0
    if include_untracked:
        listing = ["ls-files", "-z", "--others", "--exclude-standard", "--directory"]
        out, untracked_cut, _ = repo.run_capped([*listing, "--no-empty-directory", "--", "."])
        names = [n for n in out.decode("utf-8", errors="replace").split("\0") if n]
        if untracked_cut and names:
            names.pop()
        cut = cut or untracked_cut
        for name in names:
            if is_sensitive_path(name.rstrip("/")):
                omitted += 1
                continue
            rows.append(f"?? {clean(name)}")
            untracked += 1

    if not rows:
        empty = "no staged changes" if staged else "no uncommitted changes"
        if include_untracked:
            empty += " and no untracked files"
        return empty + (f" {omitted_note(omitted)}" if omitted else "")
    header = f"{plural(len(rows) - untracked, 'file')} with {what}"
    if include_untracked:
        header += f", {untracked} untracked"
    lines = [header + ":"]
    lines += rows[: ws.max_list_entries]
    if len(rows) > ws.max_list_entries or cut:
        more = len(rows) - ws.max_list_entries
        lines.append(f"… and {more if more > 0 else 'more'} not shown")
    if omitted:
        lines.append(omitted_note(omitted))
    return "\n".join(lines)


def _empty_tree(repo: Repo) -> str:
    """The empty tree's id (it differs between SHA-1 and SHA-256 repositories)."""
    out, _ = repo.run(["hash-object", "-t", "tree", "--stdin"])
    return out.decode().strip()


# -- git_log ----------------------------------------------------------------------------


def _git_log(
    ws: Workspace,
    repo: Repo,
    max_count: int = 10,
    path: str | None = None,
    ref: str | None = None,
) -> str:
    count = min(max(int(max_count), 1), MAX_LOG_COUNT)
    paths, shown_path = pathspecs(ws, path)
    rev = revision(repo, ref)
    if rev is None and repo.head is None:
        raise ToolError(NO_COMMITS)
    if not paths and repo.prefix:
        paths = ["."]  # only history that touches the workspace
    args = [
        "log",
        "--no-color",
        "--no-show-signature",
        "--no-mailmap",
        "--encoding=UTF-8",
        "--date=short",
        "-z",
        "--format=%h%x1f%ad%x1f%an%x1f%s",
        f"--max-count={count + 1}",
        "--end-of-options",
        *(rev.args if rev else ()),
        "--",
        *paths,
    ]
    out, cut, _ = repo.run_capped(args)
    records = [r for r in out.decode("utf-8", errors="replace").split("\0") if r]
    if cut and records:
        records.pop()
    lines: list[str] = []
    for record in records[:count]:
        fields = record.split("\x1f", 3)
        if len(fields) != 4:
            continue
        sha, date, author, subject = (CONTROL.sub(" ", part).strip() for part in fields)
        lines.append(shorten_line(f"{sha} {date} {author}: {subject}"))
    if not lines:
        what = f"commits in {rev.text}" if rev and rev.is_range else "commits"
        if shown_path:
            return f"no {what} touch {shown_path}"
        return f"no {what} touch this directory" if repo.prefix else f"no {what}"
    if len(records) > count:
        lines.append(
            f"(the {plural(count, 'most recent commit')}; more exist: raise max_count "
            f"(up to {MAX_LOG_COUNT}) or narrow with path= or ref=)"
        )
    return "\n".join(lines)


# -- the tools ----------------------------------------------------------------------------


def git_status(ws: Workspace) -> str:
    with open_repo(ws) as repo:
        return _git_status(ws, repo)


def git_diff(
    ws: Workspace, ref: str | None = None, staged: bool = False, path: str | None = None
) -> str:
    with open_repo(ws) as repo:
        return git_diff_in(ws, repo, ref=ref, staged=staged, path=path)


def git_log(
    ws: Workspace, max_count: int = 10, path: str | None = None, ref: str | None = None
) -> str:
    with open_repo(ws) as repo:
        return _git_log(ws, repo, max_count=max_count, path=path, ref=ref)


def git_changed_files(ws: Workspace, staged: bool = False, include_untracked: bool = False) -> str:
    with open_repo(ws) as repo:
        return _git_changed_files(ws, repo, staged=staged, include_untracked=include_untracked)


def is_tracked(ws: Workspace, target: Path) -> str:
    """git's view of one path, for file_info. Never raises.

    Returns "tracked", "untracked", "ignored", "not a git repository" or "unknown (...)".
    ``target`` is an absolute path inside the workspace (already through ``ws.resolve``).
    A directory counts as tracked when git tracks anything inside it.
    """
    try:
        with open_repo(ws) as repo:
            relative = ws.relative(target)
            spec = "." if relative == "." else f":(literal){relative}"
            out, _, _ = repo.run_capped(["ls-files", "-z", "--", spec], limit=4096)
            if out:
                return "tracked"
            _, code = repo.run(["check-ignore", "-q", "--", relative], ok=(0, 1))
            return "ignored" if code == 0 else "untracked"
    except ToolError as error:
        message = str(error)
        if message == NOT_A_REPO:
            return "not a git repository"
        if message == GIT_MISSING:
            return "unknown (git is not installed)"
        if message.startswith(REFUSED_PREFIX):
            return "unknown (git tools refused this repository)"
        return "unknown (git failed)"
    except OSError:
        return "unknown (git failed)"


GIT_STATUS = ToolSpec(
    name="git_status",
    description=(
        "The git state of the repository: current branch (or detached HEAD), how far it is "
        "ahead of or behind its upstream, and the staged, unstaged and untracked files with "
        "status letters (M modified, A added, D deleted, R renamed, ?? untracked)."
    ),
    params=(),
    function=git_status,
)

GIT_DIFF = ToolSpec(
    name="git_diff",
    description=(
        "Show a unified diff. With no arguments: unstaged changes (working tree vs index). "
        "staged=True: changes staged for commit. ref='main' or 'HEAD~3': the working tree "
        "(or with staged=True the index) vs that revision; ref='A..B' or 'A...B': between "
        "two revisions. path= limits it to one file or directory. Long diffs are cut."
    ),
    params=(
        Param("ref", "string", "Revision or range (HEAD~1, main, abc123, main..feature).", None),
        Param("staged", "boolean", "Diff the staged changes (index) instead.", False),
        Param("path", "string", "File or directory to limit the diff to.", None),
    ),
    function=git_diff,
)

GIT_LOG = ToolSpec(
    name="git_log",
    description=(
        "Recent commits, newest first, one per line: short id, date, author, subject. "
        "path= shows only commits that touched a file or directory; ref= starts from a "
        "branch, tag or commit, or takes a range like main..feature."
    ),
    params=(
        Param("max_count", "integer", f"How many commits (1-{MAX_LOG_COUNT}).", 10),
        Param("path", "string", "Only commits that touched this file or directory.", None),
        Param("ref", "string", "Branch, tag, commit or range to list.", None),
    ),
    function=git_log,
)

GIT_CHANGED_FILES = ToolSpec(
    name="git_changed_files",
    description=(
        "List files with uncommitted changes (working tree vs HEAD, staged or not) with "
        "status letters M, A, D, R. staged=True lists only what is staged for commit; "
        "include_untracked=True adds untracked files (??)."
    ),
    params=(
        Param("staged", "boolean", "Only files with staged changes.", False),
        Param("include_untracked", "boolean", "Also list untracked files.", False),
    ),
    function=git_changed_files,
)

TOOLS = (GIT_STATUS, GIT_DIFF, GIT_LOG, GIT_CHANGED_FILES)
