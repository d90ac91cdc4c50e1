"""git_diff: a capped unified diff in which no sensitive file's content appears.

Sensitive paths are excluded by pathspec and, section by section, by the header filter in
parse.py. Renames and copies need more, because content keeps its bytes when it moves:
``git diff HEAD~1 -- notes.txt`` after ``git mv .env notes.txt`` cannot see the other
half of the rename (the path limit hides it), so it shows the secret as a new file. The
rule, whatever ``ref``, ``staged`` and ``path`` are:

1. Pair first, over the whole change set: one ``git diff --raw`` of the entire work tree
   (no path limit, not even the workspace root) with rename and copy detection, copies
   sought among unchanged files too (``--find-copies-harder``).
2. A pair is hidden when either of its paths is sensitive, or when either of its blobs is
   also a blob of a sensitive pair in the change set (an exact copy left unpaired). Both
   names of a hidden pair are excluded from the diff shown, by literal pathspec.
3. If git says it skipped rename detection (too many files) and the change set touches a
   sensitive file, pairing is incomplete: every added or deleted file is hidden too.
4. A change set too large to pair (its listing past 16 MB) is refused, not shown unchecked.

What is left is shown; hidden pairs in the requested scope are counted in the
"(N sensitive files omitted)" note.
"""

from __future__ import annotations

from local_brain.errors import ToolError
from local_brain.tools.git.args import (
    Revision,
    diff_options,
    exclude_pathspecs,
    pathspecs,
    revision,
)
from local_brain.tools.git.parse import (
    MAX_COUNTED_LINES,
    DiffCap,
    RawEntry,
    clean,
    filter_sensitive_sections,
    omitted_note,
    parse_name_status,
    parse_numstat,
    parse_raw,
    plural,
)
from local_brain.tools.git.runner import Repo
from local_brain.workspace import Workspace, is_sensitive_path

_PAIRING_BYTES = 16 * 1024 * 1024
_MAX_NOTE_FILES = 15  # files named in a truncated diff's note
_TOO_MANY = (
    "this diff changes too many files to check them for moved secrets; compare closer revisions"
)


def git_diff_in(
    ws: Workspace,
    repo: Repo,
    ref: str | None = None,
    staged: bool = False,
    path: str | None = None,
) -> str:
    paths, shown_path = pathspecs(ws, path)
    rev = revision(repo, ref)
    if rev is not None and rev.is_range and staged:
        raise ToolError("staged=True compares the index with one revision; it cannot take a range")
    worktree = not staged and not (rev is not None and rev.is_range)
    options = diff_options(worktree)
    if staged:
        options.append("--cached")
    revs = list(rev.args) if rev else []
    where = f" in {shown_path}" if shown_path else ""

    scope = (repo.prefix + (shown_path or "")).rstrip("/")
    scoped = [
        (entry, hide)
        for entry, hide in _pair(repo, revs, staged, worktree)
        if any(_within(name, scope) for name in entry.paths)
    ]
    hidden = [entry for entry, hide in scoped if hide]
    omitted = len(hidden)
    if omitted == len(scoped):
        return _no_diff(repo, rev, staged, where, paths, omitted)

    excluded = sorted({name for entry in hidden for name in entry.paths})
    excludes = exclude_pathspecs() + [f":(top,exclude,literal){name}" for name in excluded]
    patch = ["diff", *options, "--end-of-options", *revs, "--", *paths, *excludes]
    cap = DiffCap(ws.max_read_lines, ws.max_read_chars)
    with repo.spawn(patch) as process:
        for line in filter_sensitive_sections(process.lines(), cap):
            if not cap.add(line):
                process.stop()
                break
        process.finish("diff")
    omitted = max(omitted, cap.dropped_sections)
    if not cap.shown:
        return _no_diff(repo, rev, staged, where, paths, omitted)

    lines = cap.shown
    if cap.cut:
        numstat = ["diff", *options, "--numstat", "-z", "--end-of-options", *revs, "--"]
        out, numstat_cut, _ = repo.run_capped([*numstat, *paths, *excludes])
        lines = [*lines, _cut_note(cap, parse_numstat(out, numstat_cut))]
    if omitted:
        lines = [*lines, omitted_note(omitted)]
    return "\n".join(lines)


def _pair(repo: Repo, revs: list[str], staged: bool, worktree: bool) -> list[tuple[RawEntry, bool]]:
    """Every file pair of the whole change set, each with whether it must stay hidden."""
    args = [
        "diff",
        "--raw",
        "-z",
        "--no-abbrev",
        "--no-relative",
        "--no-ext-diff",
        "--no-textconv",
        "--find-renames",
        "--find-copies",
        "--find-copies-harder",
        "--ignore-submodules=all" if worktree else "--ignore-submodules=dirty",
        *(["--cached"] if staged else []),
        "--end-of-options",
        *revs,
        "--",
    ]
    with repo.spawn(args) as process:
        out, cut = process.read(_PAIRING_BYTES)
        if cut:
            raise ToolError(_TOO_MANY)
        process.finish("diff")
        skipped = "rename detection was skipped" in process.stderr_text()
    entries = parse_raw(out, cut=False)
    sensitive = [any(is_sensitive_path(name) for name in entry.paths) for entry in entries]
    secret_blobs: set[str] = set()
    for entry, is_secret in zip(entries, sensitive, strict=True):
        if is_secret:
            secret_blobs |= entry.blob_ids()
    incomplete = skipped and any(sensitive)
    return [
        (
            entry,
            is_secret
            or bool(entry.blob_ids() & secret_blobs)
            or (incomplete and entry.status in ("A", "D")),
        )
        for entry, is_secret in zip(entries, sensitive, strict=True)
    ]


def _within(name: str, scope: str) -> bool:
    return not scope or name == scope or name.startswith(scope + "/")


def _cut_note(cap: DiffCap, files: list[tuple[str, str, list[str]]]) -> str:
    total = f"more than {MAX_COUNTED_LINES:,}" if cap.over_count_limit else f"{cap.total:,}"
    listed = [
        f"{clean(' -> '.join(names))} " + ("(binary)" if added == "-" else f"(+{added} -{deleted})")
        for added, deleted, names in files[:_MAX_NOTE_FILES]
    ]
    if len(files) > _MAX_NOTE_FILES:
        listed.append(f"… {len(files) - _MAX_NOTE_FILES} more")
    example = f' e.g. path="{clean(files[0][2][-1])}".' if files else ""
    return (
        f"[diff cut: showed {len(cap.shown):,} of {total} lines, "
        f"{plural(len(files), 'file')} changed. Narrow it with path=,{example} "
        f"Files: {', '.join(listed)}]"
    )


def _no_diff(
    repo: Repo, rev: Revision | None, staged: bool, where: str, paths: list[str], omitted: int
) -> str:
    message = _no_diff_message(repo, rev, staged, where, paths)
    return message + (f" {omitted_note(omitted)}" if omitted else "")


def _no_diff_message(
    repo: Repo, rev: Revision | None, staged: bool, where: str, paths: list[str]
) -> str:
    if rev is not None:
        if rev.is_range:
            return f"no differences in {rev.text}{where}"
        against = "the index" if staged else "the working tree"
        return f"no differences between {rev.text} and {against}{where}"
    if staged:
        return f"no staged changes{where}"
    # Unstaged is empty: point at staged changes when there are some.
    names = ["diff", *diff_options(worktree=False), "--cached", "--name-status", "-z", "--"]
    out, cut, _ = repo.run_capped([*names, *paths])
    staged_count = sum(
        1
        for _, names_ in parse_name_status(out, cut)
        if not any(is_sensitive_path(name) for name in names_)
    )
    message = f"no unstaged changes{where}"
    if staged_count:
        message += f"; {plural(staged_count, 'file')} with staged changes: use staged=True"
    return message
