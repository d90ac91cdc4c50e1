"""Git tools: git_status, git_diff, git_log, git_changed_files.

The repository being explored may be hostile. Plain ``git status`` or ``git diff`` can run
commands named in repository-local config (``core.fsmonitor``, ``diff.external``, filter
drivers, textconv drivers, ...), and option-looking arguments (``--output=``, ``--no-index``)
write or read files outside the repository. So every git command here is built from an
explicit argument list (revisions are validated and resolved to commit ids first, paths go
through the workspace jail and are passed after ``--`` as literal pathspecs), runs with
those command-bearing settings neutralised on the command line and in a scrubbed
environment, and has its output capped. Sensitive files are excluded by pathspec and, for
diffs, filtered again section by section, so their contents never appear.

GitPython finds the repository; the commands themselves run through ``subprocess`` so the
environment, the deadline and the amount of output read are fully under our control.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from local_brain.errors import ToolError
from local_brain.tools import Param, ToolSpec
from local_brain.workspace import (
    SENSITIVE_DIRS,
    SENSITIVE_NAMES,
    Workspace,
    is_sensitive_path,
    shorten_line,
)

NOT_A_REPO = "not a git repository: git tools need one; file tools still work"
GIT_MISSING = "git is not installed or not on PATH: git tools need it; file tools still work"
NO_COMMITS = "no commits yet"
DUBIOUS_OWNERSHIP = (
    "git refuses this repository because another user owns it "
    "(see git's safe.directory setting); file tools still work"
)

GIT_TIMEOUT_S = 30.0
MAX_LOG_COUNT = 200
_MAX_READ_BYTES = 4 * 1024 * 1024  # cap on any git output read whole
_MAX_COUNTED_LINES = 200_000  # past this, a diff's length is reported as "more than"
_LINE_BYTES = 64 * 1024  # one diff line is read at most this far (longer lines are cut)
_STDERR_BYTES = 4096
_MAX_NOTE_FILES = 15  # files named in a truncated diff's note

# Settings that make read-only commands run other programs, write files or talk to the
# network, turned off for every invocation. Later `-c` beats repository config.
_SAFE_CONFIG: tuple[str, ...] = (
    "core.fsmonitor=false",
    "core.pager=cat",
    f"core.hooksPath={os.devnull}",
    "core.quotePath=false",
    "core.splitIndex=false",
    "diff.autoRefreshIndex=false",
    "diff.external=",
    "color.ui=false",
    "log.showSignature=false",
    "status.relativePaths=false",
    "protocol.allow=never",
    "gc.auto=0",
    "maintenance.auto=false",
)

_SAFE_ENV: dict[str, str] = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",  # status must not refresh (write) the index
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_NO_LAZY_FETCH": "1",  # partial clones must not fetch missing objects
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_ADVICE": "0",
    "LC_ALL": "C",
    "LANGUAGE": "C",
}

# Options for every diff-family command: no external or textconv drivers, fixed a/ b/
# prefixes (the section filter relies on them), paths relative to the workspace root.
_DIFF_OPTIONS: tuple[str, ...] = (
    "--no-ext-diff",
    "--no-textconv",
    "--no-color",
    "--relative",
    "--find-renames",
    "--ignore-submodules=dirty",
    "--submodule=short",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    f"-O{os.devnull}",
)

_REF_SIDE = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_@./{}~^+\-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_SPLIT = re.compile(r' "?b/')


# -- the repository and the git runner ---------------------------------------------------


@dataclass
class _Repo:
    """A work tree that contains the workspace root, and a hardened way to run git in it."""

    ws: Workspace
    worktree: Path
    prefix: str  # the workspace root relative to the work tree: "" or "sub/dir/"
    executable: str
    index: Path  # the repository's index file, never written: see private_index()
    config_env: dict[str, str] = field(default_factory=dict)
    head: str | None = None  # commit id of HEAD; None before the first commit
    _index_copy: Path | None = None

    def __enter__(self) -> _Repo:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._index_copy is not None:
            with contextlib.suppress(OSError):
                self._index_copy.unlink()
            self._index_copy = None

    def private_index(self) -> Path:
        """A throw-away copy of the index for diff commands.

        ``git diff`` rewrites the index to refresh stat data whenever it meets a file whose
        stat changed but content did not, even with optional locks off (before git 2.50's
        diff.autoRefreshIndex). Pointing GIT_INDEX_FILE at a copy keeps the repository
        untouched and never holds its index.lock.
        """
        if self._index_copy is None:
            handle, name = tempfile.mkstemp(prefix="local-brain-index-")
            os.close(handle)
            self._index_copy = Path(name)
            try:
                shutil.copy2(self.index, self._index_copy)  # keeps the mtime: racy-git checks
            except FileNotFoundError:  # no index yet: an empty one behaves the same
                self._index_copy.unlink()
        return self._index_copy

    def command(self, args: Sequence[str]) -> list[str]:
        config = [item for setting in _SAFE_CONFIG for item in ("-c", setting)]
        return [self.executable, "--no-pager", "--no-optional-locks", *config, *args]

    def env(self, private_index: bool = False) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
        env.update(_SAFE_ENV)
        env["GIT_WORK_TREE"] = str(self.worktree)  # overrides a hostile core.worktree
        if private_index:
            env["GIT_INDEX_FILE"] = str(self.private_index())
        env.update(self.config_env)
        return env

    def spawn(self, args: Sequence[str]) -> _Process:
        return _Process(self.command(args), self.ws.root, self.env(args[0] == "diff"))

    def run(self, args: Sequence[str], *, ok: tuple[int, ...] = (0,)) -> tuple[bytes, int]:
        """Run to completion; return (stdout, exit code). Output past the cap is dropped."""
        data, _, code = self.run_capped(args, ok=ok)
        return data, code

    def run_capped(
        self, args: Sequence[str], *, ok: tuple[int, ...] = (0,), limit: int = _MAX_READ_BYTES
    ) -> tuple[bytes, bool, int]:
        """Run; return (stdout up to ``limit`` bytes, whether it was cut, exit code)."""
        with self.spawn(args) as process:
            data, cut = process.read(limit)
            code = process.finish(args[0], ok)
        return data, cut, code

    def set_config(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Pass extra settings through GIT_CONFIG_COUNT (no quoting issues with odd names)."""
        env: dict[str, str] = {"GIT_CONFIG_COUNT": str(len(pairs))}
        for index, (key, value) in enumerate(pairs):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        self.config_env = env if pairs else {}

    def inside(self, path: str) -> str | None:
        """A work-tree-relative path as a workspace-relative one, or None when outside."""
        if not self.prefix:
            return path
        if path.startswith(self.prefix):
            return path[len(self.prefix) :] or "."
        if path + "/" == self.prefix:
            return "."
        return None


class _DubiousOwnership(ToolError):
    pass


class _Process:
    """One running git command: stdout piped, stderr spooled to a file, under a deadline."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _close()
        try:
            self._proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except FileNotFoundError:
            self._stderr.close()
            raise ToolError(GIT_MISSING) from None
        except OSError:
            self._stderr.close()
            raise
        assert self._proc.stdout is not None
        self._stdout = self._proc.stdout
        self.timed_out = False
        self.stopped = False
        self._timer = threading.Timer(GIT_TIMEOUT_S, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> _Process:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._close()

    def _expire(self) -> None:
        self.timed_out = True
        self._kill()

    def _kill(self) -> None:
        with contextlib.suppress(OSError):
            self._proc.kill()

    def stop(self) -> None:
        """We have read enough: end the command (its exit status no longer matters)."""
        self.stopped = True
        self._kill()

    def read(self, limit: int) -> tuple[bytes, bool]:
        data = self._stdout.read(limit + 1)
        if len(data) > limit:
            self.stop()
            return data[:limit], True
        return data, False

    def lines(self) -> Iterator[str]:
        """Decoded output lines without line ends; over-long lines are cut while reading."""
        while True:
            raw = self._stdout.readline(_LINE_BYTES)
            if not raw:
                return
            if len(raw) == _LINE_BYTES and not raw.endswith(b"\n"):
                while True:
                    rest = self._stdout.readline(_LINE_BYTES)
                    if not rest or rest.endswith(b"\n"):
                        break
            yield raw.decode("utf-8", errors="replace").rstrip("\r\n")

    def finish(self, name: str, ok: tuple[int, ...] = (0,)) -> int:
        """Wait for the command; raise a one-line ToolError unless it ended in ``ok``."""
        self._stdout.close()
        code = self._proc.wait()
        self._timer.cancel()
        if self.timed_out:
            raise ToolError(f"git {name} timed out after {GIT_TIMEOUT_S:.0f}s")
        if self.stopped or code in ok:
            return code
        if code < 0:
            raise ToolError(f"git {name} crashed (signal {-code})")
        self._stderr.seek(0)
        message = self._stderr.read(_STDERR_BYTES).decode("utf-8", errors="replace")
        raise _failure(name, message, code)

    def _close(self) -> None:
        self._timer.cancel()
        if self._proc.poll() is None:
            self._kill()
        self._stdout.close()
        self._proc.wait()
        self._stderr.close()


def _failure(name: str, stderr: str, code: int) -> ToolError:
    lowered = stderr.lower()
    if "not a git repository" in lowered:
        return ToolError(NOT_A_REPO)
    if "dubious ownership" in lowered:
        return _DubiousOwnership(DUBIOUS_OWNERSHIP)
    if "does not have any commits yet" in lowered:
        return ToolError(NO_COMMITS)
    first = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
    for lead in ("fatal: ", "error: "):
        first = first.removeprefix(lead)
    first = _CONTROL.sub(" ", first)
    if len(first) > 200:
        first = first[:200] + "…"
    return ToolError(f"git {name} failed: {first or f'exit status {code}'}")


def _open(ws: Workspace) -> _Repo:
    """Find the repository around the workspace root and prepare a hardened runner."""
    try:
        import git  # GitPython: imported lazily, it costs a `git version` run on import
    except ImportError:  # GitPython cannot find a git executable
        raise ToolError(GIT_MISSING) from None
    try:
        found = git.Repo(ws.root, search_parent_directories=True, expand_vars=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ToolError(NOT_A_REPO) from None
    except git.GitError as error:
        raise ToolError(f"git repository unreadable: {_first_line(str(error))}") from None
    try:
        bare = found.working_tree_dir is None
        index = Path(found.git_dir) / "index"
    finally:
        found.close()
    # The work tree is the directory that holds `.git`, never a `core.worktree` from
    # repository config (GitPython honours that; it could point anywhere).
    worktree = next((d for d in (ws.root, *ws.root.parents) if (d / ".git").exists()), None)
    if bare or worktree is None:
        raise ToolError(NOT_A_REPO)
    prefix = ws.root.relative_to(worktree).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    executable = str(getattr(git.Git, "GIT_PYTHON_GIT_EXECUTABLE", None) or "git")
    repo = _Repo(ws=ws, worktree=worktree, prefix=prefix, executable=executable, index=index)

    probe = ["rev-parse", "--verify", "--quiet", "--end-of-options", "HEAD^{commit}"]
    try:
        out, code = repo.run(probe, ok=(0, 1))
    except _DubiousOwnership:
        # Our runs ignore the user's global and system config; honour the safe.directory
        # entries they hold (and only those) before giving up.
        trusted = _protected_safe_directories(executable)
        if not trusted:
            raise
        repo.set_config([("safe.directory", value) for value in trusted])
        out, code = repo.run(probe, ok=(0, 1))
    repo.head = out.decode().strip() if code == 0 else None
    repo.set_config(_neutralise_filters(repo) + _config_pairs(repo))
    return repo


def _config_pairs(repo: _Repo) -> list[tuple[str, str]]:
    count = int(repo.config_env.get("GIT_CONFIG_COUNT", "0"))
    return [
        (repo.config_env[f"GIT_CONFIG_KEY_{i}"], repo.config_env[f"GIT_CONFIG_VALUE_{i}"])
        for i in range(count)
    ]


def _neutralise_filters(repo: _Repo) -> list[tuple[str, str]]:
    """Blank every clean/smudge/process filter driver the repository's config defines.

    Status and diff run the clean filter of a modified file to compare it with the index;
    a repository can name any command there. Reading config runs nothing.
    """
    out, _ = repo.run(["config", "--null", "--get-regexp", r"^filter\."], ok=(0, 1))
    drivers: list[str] = []
    for entry in out.decode("utf-8", errors="surrogateescape").split("\0"):
        key = entry.split("\n", 1)[0]
        if key.count(".") >= 2:
            name = key[len("filter.") : key.rindex(".")]
            if name not in drivers:
                drivers.append(name)
    pairs: list[tuple[str, str]] = []
    for name in drivers:
        for variable, value in (
            ("clean", ""),
            ("smudge", ""),
            ("process", ""),
            ("required", "false"),
        ):
            pairs.append((f"filter.{name}.{variable}", value))
    return pairs


def _protected_safe_directories(executable: str) -> list[str]:
    """safe.directory values from the user's global and system git config."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_")
        or key in {"GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"}
    }
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0")
    values: list[str] = []
    for scope in ("--system", "--global"):
        try:
            result = subprocess.run(
                [executable, "config", scope, "--null", "--get-all", "safe.directory"],
                cwd=os.path.abspath(os.sep),
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if result.returncode == 0:
            values += [v for v in result.stdout.decode(errors="replace").split("\0") if v]
    return values


def _first_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line[:200]


# -- arguments from the model ------------------------------------------------------------


@dataclass(frozen=True)
class _Revision:
    text: str  # as the model gave it (validated), for messages
    args: tuple[str, ...]  # resolved commit ids, e.g. ("<sha>",) or ("<sha>..<sha>",)
    is_range: bool


def _revision(repo: _Repo, ref: str | None) -> _Revision | None:
    """Validate a model-given revision or range and resolve each side to a commit id."""
    if ref is None or not ref.strip():
        return None
    text = ref.strip()
    shown = text if len(text) <= 80 else text[:80] + "…"
    if text.startswith("-"):
        raise ToolError(f"invalid revision: {shown!r} (a revision cannot start with '-')")
    if any(ch.isspace() for ch in text) or _CONTROL.search(text):
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
    return _Revision(text=text, args=(separator.join(resolved),), is_range=bool(separator))


def _resolve_commit(repo: _Repo, side: str, shown: str) -> str:
    verify = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{side}^{{commit}}"]
    out, code = repo.run(verify, ok=(0, 1, 128))
    if code != 0:
        if repo.head is None:
            raise ToolError(f"unknown revision: {shown} ({NO_COMMITS})")
        raise ToolError(f"unknown revision: {shown}")
    return out.decode().strip()


def _pathspecs(ws: Workspace, path: str | None) -> tuple[list[str], str | None]:
    """A model-given path as a literal pathspec relative to the workspace root.

    ``ws.resolve`` applies the jail and the sensitive-file policy (to the path as given and
    as resolved); the pathspec uses the path as given, since git tracks symlinks as links.
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


def _exclude_pathspecs() -> list[str]:
    """The sensitive-file policy as git exclude pathspecs (``id_*`` keys: see the filter)."""
    specs = [f":(exclude,glob,icase)**/{pattern}" for pattern in SENSITIVE_NAMES]
    specs += [f":(exclude,glob,icase)**/{name}/**" for name in sorted(SENSITIVE_DIRS)]
    return specs


def _clean(text: str) -> str:
    return shorten_line(_CONTROL.sub("?", text))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _omitted_note(count: int) -> str:
    return f"({_plural(count, 'sensitive file')} omitted)"


# -- git_status ---------------------------------------------------------------------------


def _git_status(ws: Workspace, repo: _Repo) -> str:
    args = [
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=normal",
        "--ignore-submodules=dirty",
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
        if is_sensitive_path(path) or (original is not None and is_sensitive_path(original)):
            omitted += 1
            continue
        shown = repo.inside(path)
        if shown is None:
            continue
        shown = _clean(shown)
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
                    staged_as = f"{_clean(before)} -> {shown}"
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
        lines.append(_omitted_note(omitted))
    return "\n".join(lines)


def _branch_line(branch: dict[str, str]) -> str:
    head = _clean(branch.get("branch.head", "?"))
    oid = branch.get("branch.oid", "")
    if oid == "(initial)":
        return f"On branch {head} ({NO_COMMITS})"
    if head == "(detached)":
        return f"HEAD detached at {oid[:7]}"
    upstream = branch.get("branch.upstream")
    if not upstream:
        return f"On branch {head} (no upstream branch)"
    upstream = _clean(upstream)
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
    ws: Workspace, repo: _Repo, staged: bool = False, include_untracked: bool = False
) -> str:
    if staged:
        options, revs = ["--cached"], []
        what = "staged changes (index vs HEAD)"
    else:
        options, revs = [], [repo.head or _empty_tree(repo)]
        what = "uncommitted changes, staged or not (working tree vs HEAD)"
    args = ["diff", *_DIFF_OPTIONS, *options, "--name-status", "-z", "--end-of-options", *revs]
    args.append("--")
    out, cut, _ = repo.run_capped(args)
    entries = _parse_name_status(out, cut)

    rows: list[str] = []
    omitted = 0
    for status, paths in entries:
        if any(is_sensitive_path(p) for p in paths):
            omitted += 1
            continue
        letter = status[:1] or "?"
        shown = " -> ".join(_clean(p) for p in paths) if letter in "RC" else _clean(paths[-1])
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
            rows.append(f"?? {_clean(name)}")
            untracked += 1

    if not rows:
        empty = "no staged changes" if staged else "no uncommitted changes"
        if include_untracked:
            empty += " and no untracked files"
        return empty + (f" {_omitted_note(omitted)}" if omitted else "")
    header = f"{_plural(len(rows) - untracked, 'file')} with {what}"
    if include_untracked:
        header += f", {untracked} untracked"
    lines = [header + ":"]
    lines += rows[: ws.max_list_entries]
    if len(rows) > ws.max_list_entries or cut:
        more = len(rows) - ws.max_list_entries
        lines.append(f"… and {more if more > 0 else 'more'} not shown")
    if omitted:
        lines.append(_omitted_note(omitted))
    return "\n".join(lines)


def _empty_tree(repo: _Repo) -> str:
    """The empty tree's id (it differs between SHA-1 and SHA-256 repositories)."""
    out, _ = repo.run(["hash-object", "-t", "tree", "--stdin"])
    return out.decode().strip()


def _parse_name_status(out: bytes, cut: bool) -> list[tuple[str, list[str]]]:
    """``--name-status -z`` output: (status, [path]) or (R/C status, [old, new])."""
    tokens = out.decode("utf-8", errors="replace").split("\0")
    entries: list[tuple[str, list[str]]] = []
    index = 0
    while index < len(tokens):
        status = tokens[index]
        index += 1
        if not status:
            continue
        width = 2 if status[:1] in ("R", "C") else 1
        paths = tokens[index : index + width]
        index += width
        if len(paths) < width or not all(paths):
            break
        entries.append((status, paths))
    if cut and entries:
        entries.pop()
    return entries


def _parse_numstat(out: bytes, cut: bool) -> list[tuple[str, str, list[str]]]:
    """``--numstat -z`` output: (added, deleted, [path] or [old, new])."""
    tokens = out.decode("utf-8", errors="replace").split("\0")
    entries: list[tuple[str, str, list[str]]] = []
    index = 0
    while index < len(tokens):
        record = tokens[index]
        index += 1
        parts = record.split("\t", 2)
        if len(parts) != 3:
            continue
        added, deleted, path = parts
        if path:
            entries.append((added, deleted, [path]))
        else:
            paths = tokens[index : index + 2]
            index += 2
            if len(paths) < 2:
                break
            entries.append((added, deleted, paths))
    if cut and entries:
        entries.pop()
    return entries


# -- git_diff ---------------------------------------------------------------------------


def _git_diff(
    ws: Workspace,
    repo: _Repo,
    ref: str | None = None,
    staged: bool = False,
    path: str | None = None,
) -> str:
    paths, shown_path = _pathspecs(ws, path)
    revision = _revision(repo, ref)
    if revision is not None and revision.is_range and staged:
        raise ToolError("staged=True compares the index with one revision; it cannot take a range")
    options = [*_DIFF_OPTIONS]
    if staged:
        options.append("--cached")
    revs = list(revision.args) if revision else []
    where = f" in {shown_path}" if shown_path else ""

    # Every changed file (no exclusions), to count sensitive ones and to describe a cut.
    numstat = ["diff", *options, "--numstat", "-z", "--end-of-options", *revs, "--", *paths]
    out, numstat_cut, _ = repo.run_capped(numstat)
    files = _parse_numstat(out, numstat_cut)
    hidden: list[str] = []  # non-sensitive halves of renames to or from a sensitive path
    visible: list[tuple[str, str, list[str]]] = []
    omitted = 0
    for added, deleted, names in files:
        if any(is_sensitive_path(name) for name in names):
            omitted += 1
            hidden += [name for name in names if not is_sensitive_path(name)]
        else:
            visible.append((added, deleted, names))

    if not visible:
        message = _no_diff_message(repo, revision, staged, where, paths)
        return message + (f" {_omitted_note(omitted)}" if omitted else "")

    excludes = _exclude_pathspecs() + [f":(exclude,literal){name}" for name in hidden]
    patch = ["diff", *options, "--end-of-options", *revs, "--", *paths, *excludes]
    cap = _DiffCap(ws.max_read_lines, ws.max_read_chars)
    with repo.spawn(patch) as process:
        for line in _filter_sensitive_sections(process.lines(), cap):
            if not cap.add(line):
                process.stop()
                break
        process.finish("diff")
    omitted = max(omitted, cap.dropped_sections)

    lines = cap.shown
    if cap.cut:
        total = f"more than {_MAX_COUNTED_LINES:,}" if cap.over_count_limit else f"{cap.total:,}"
        listed = [
            f"{_clean(' -> '.join(names))} "
            + ("(binary)" if added == "-" else f"(+{added} -{deleted})")
            for added, deleted, names in visible[:_MAX_NOTE_FILES]
        ]
        if len(visible) > _MAX_NOTE_FILES:
            listed.append(f"… {len(visible) - _MAX_NOTE_FILES} more")
        example = _clean(visible[0][2][-1])
        lines = [
            *lines,
            f"[diff cut: showed {len(cap.shown):,} of {total} lines, "
            f"{_plural(len(visible), 'file')} changed. Narrow it with path=, "
            f'e.g. path="{example}". Files: {", ".join(listed)}]',
        ]
    if omitted:
        lines = [*lines, _omitted_note(omitted)]
    return "\n".join(lines)


def _no_diff_message(
    repo: _Repo, revision: _Revision | None, staged: bool, where: str, paths: list[str]
) -> str:
    if revision is not None:
        if revision.is_range:
            return f"no differences in {revision.text}{where}"
        against = "the index" if staged else "the working tree"
        return f"no differences between {revision.text} and {against}{where}"
    if staged:
        return f"no staged changes{where}"
    # Unstaged is empty: point at staged changes when there are some.
    names = ["diff", *_DIFF_OPTIONS, "--cached", "--name-only", "-z", "--"]
    out, _, _ = repo.run_capped([*names, *paths])
    staged_files = [name for name in out.decode("utf-8", errors="replace").split("\0") if name]
    staged_count = sum(1 for name in staged_files if not is_sensitive_path(name))
    message = f"no unstaged changes{where}"
    if staged_count:
        message += f"; {_plural(staged_count, 'file')} with staged changes: use staged=True"
    return message


class _DiffCap:
    """Keeps the first lines of a diff within a line and character budget; counts the rest."""

    def __init__(self, max_lines: int, max_chars: int) -> None:
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.shown: list[str] = []
        self.chars = 0
        self.total = 0
        self.cut = False
        self.over_count_limit = False
        self.dropped_sections = 0

    def add(self, line: str) -> bool:
        """Take one line; False once there is no point reading further."""
        self.total += 1
        if not self.cut:
            text = shorten_line(line)
            if len(self.shown) < self.max_lines and self.chars + len(text) + 1 <= self.max_chars:
                self.shown.append(text)
                self.chars += len(text) + 1
                return True
            self.cut = True
        if self.total >= _MAX_COUNTED_LINES:
            self.over_count_limit = True
            return False
        return True


_SECTION_STARTS = ("diff --git ", "diff --cc ", "diff --combined ")
_PATH_LINES = ("rename from ", "rename to ", "copy from ", "copy to ")


def _filter_sensitive_sections(lines: Iterator[str], cap: _DiffCap) -> Iterator[str]:
    """Drop every file section of a diff that names a sensitive path anywhere in its header.

    The header (``diff --git`` up to the first hunk) is held back until it is complete, so
    a rename to or from a sensitive name is caught before anything of the section is shown.
    """
    header: list[str] | None = None
    sensitive = False
    skipping = False
    for line in lines:
        unmerged = line.startswith("* Unmerged path ")
        if unmerged or line.startswith(_SECTION_STARTS):
            if header is not None and not sensitive:
                yield from header
            elif header is not None:
                cap.dropped_sections += 1
            header, sensitive, skipping = None, False, False
            if unmerged:
                if not _quoted_path_is_sensitive(line[len("* Unmerged path ") :]):
                    yield line
                continue
            header, sensitive = [line], _header_is_sensitive(line)
            continue
        if header is not None:
            if line.startswith("@@"):
                if sensitive:
                    cap.dropped_sections += 1
                    skipping = True
                else:
                    yield from header
                    yield line
                header = None
                continue
            sensitive = sensitive or _header_line_is_sensitive(line)
            header.append(line)
            continue
        if not skipping:
            yield line
    if header is not None:
        if sensitive:
            cap.dropped_sections += 1
        else:
            yield from header


def _header_is_sensitive(line: str) -> bool:
    """Every way of splitting ``diff --git a/X b/Y`` is checked, so odd names cannot hide."""
    if not line.startswith("diff --git "):  # diff --cc / --combined: one path
        return _quoted_path_is_sensitive(line.split(" ", 2)[-1])
    rest = line[len("diff --git ") :]
    candidates = [rest]
    for match in _HEADER_SPLIT.finditer(rest):
        candidates += [rest[: match.start()], rest[match.start() + 1 :]]
    return any(_quoted_path_is_sensitive(candidate) for candidate in candidates)


def _header_line_is_sensitive(line: str) -> bool:
    for lead in _PATH_LINES:
        if line.startswith(lead):
            return _quoted_path_is_sensitive(line[len(lead) :])
    if line.startswith(("--- ", "+++ ")):
        return _quoted_path_is_sensitive(line[4:].rstrip("\t"))
    return False


def _quoted_path_is_sensitive(text: str) -> bool:
    path = _unquote(text.strip())
    for prefix in ("a/", "b/"):
        if path.startswith(prefix) and is_sensitive_path(path[len(prefix) :]):
            return True
    return is_sensitive_path(path)


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquote(text: str) -> str:
    """Undo git's C-style quoting of a path ("a/tab\\there"); other text is returned as is."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text
    body = text[1:-1]
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            octal = body[index + 1 : index + 4]
            if re.fullmatch(r"[0-7]{3}", octal):
                out.append(int(octal, 8) & 0xFF)
                index += 4
                continue
            if following in _ESCAPES:
                out.append(_ESCAPES[following])
                index += 2
                continue
        out += char.encode("utf-8", errors="replace")
        index += 1
    return out.decode("utf-8", errors="replace")


# -- git_log ----------------------------------------------------------------------------


def _git_log(
    ws: Workspace,
    repo: _Repo,
    max_count: int = 10,
    path: str | None = None,
    ref: str | None = None,
) -> str:
    count = min(max(int(max_count), 1), MAX_LOG_COUNT)
    paths, shown_path = _pathspecs(ws, path)
    revision = _revision(repo, ref)
    if revision is None and repo.head is None:
        raise ToolError(NO_COMMITS)
    if not paths and repo.prefix:
        paths = ["."]  # only history that touches the workspace
    args = [
        "log",
        "--no-color",
        "--no-show-signature",
        "--encoding=UTF-8",
        "--date=short",
        "-z",
        "--format=%h%x1f%ad%x1f%an%x1f%s",
        f"--max-count={count + 1}",
        "--end-of-options",
        *(revision.args if revision else ()),
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
        sha, date, author, subject = (_CONTROL.sub(" ", part).strip() for part in fields)
        lines.append(shorten_line(f"{sha} {date} {author}: {subject}"))
    if not lines:
        what = f"commits in {revision.text}" if revision and revision.is_range else "commits"
        if shown_path:
            return f"no {what} touch {shown_path}"
        return f"no {what} touch this directory" if repo.prefix else f"no {what}"
    if len(records) > count:
        lines.append(
            f"(the {_plural(count, 'most recent commit')}; more exist: raise max_count "
            f"(up to {MAX_LOG_COUNT}) or narrow with path= or ref=)"
        )
    return "\n".join(lines)


# -- the tools ----------------------------------------------------------------------------


def git_status(ws: Workspace) -> str:
    with _open(ws) as repo:
        return _git_status(ws, repo)


def git_diff(
    ws: Workspace, ref: str | None = None, staged: bool = False, path: str | None = None
) -> str:
    with _open(ws) as repo:
        return _git_diff(ws, repo, ref=ref, staged=staged, path=path)


def git_log(
    ws: Workspace, max_count: int = 10, path: str | None = None, ref: str | None = None
) -> str:
    with _open(ws) as repo:
        return _git_log(ws, repo, max_count=max_count, path=path, ref=ref)


def git_changed_files(ws: Workspace, staged: bool = False, include_untracked: bool = False) -> str:
    with _open(ws) as repo:
        return _git_changed_files(ws, repo, staged=staged, include_untracked=include_untracked)


def is_tracked(ws: Workspace, target: Path) -> str:
    """git's view of one path, for file_info. Never raises.

    Returns "tracked", "untracked", "ignored", "not a git repository" or "unknown (...)".
    ``target`` is an absolute path inside the workspace (already through ``ws.resolve``).
    A directory counts as tracked when git tracks anything inside it.
    """
    try:
        with _open(ws) as repo:
            relative = ws.relative(target)
            spec = "." if relative == "." else f":(literal){relative}"
            out, _, _ = repo.run_capped(["ls-files", "-z", "--", spec], limit=4096)
            if out:
                return "tracked"
            _, code = repo.run(["check-ignore", "-q", "--", relative], ok=(0, 1))
            return "ignored" if code == 0 else "untracked"
    except ToolError as error:
        if str(error) == NOT_A_REPO:
            return "not a git repository"
        if str(error) == GIT_MISSING:
            return "unknown (git is not installed)"
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
