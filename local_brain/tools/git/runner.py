"""Running git on a hostile repository: a checked layout, a hardened command.

Every git command is built from an explicit argument list and runs

* as an absolute program found outside the repository (a committed ``git`` never runs,
  whatever PATH holds), with a PATH cleaned of empty, relative and in-repository entries;
* with GIT_DIR, GIT_COMMON_DIR and GIT_WORK_TREE set to the layout checked in layout.py,
  GIT_CEILING_DIRECTORIES above the work tree, and every other GIT_* variable of the
  user's environment dropped;
* with command-running settings (fsmonitor, pager, hooks, external diff, filters)
  neutralised on the command line, which beats repository config;
* against a private, size-capped copy of the index (GIT_INDEX_FILE), so git never opens
  the repository's own index (which could be a FIFO or a huge file) and never writes it;
* as a bounded child (process.py): its own session and process group, a memory limit, a
  deadline after which the whole group is killed, stdout read only up to a cap, and
  stderr never shown (failures become fixed one-line messages).
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.fsguard import find_program
from local_brain.tools.git.layout import (
    Layout,
    discover,
    is_safe_directory,
    owned_by_current_user,
)
from local_brain.tools.git.messages import (
    DUBIOUS_OWNERSHIP,
    GIT_MISSING,
    REFUSED_PREFIX,
    DubiousOwnership,
    refused,
)
from local_brain.tools.git.process import GIT_TIMEOUT_S, MAX_READ_BYTES, ClosedOnExit, Process
from local_brain.workspace import Workspace

# The private index copy. The index takes ~100 bytes per tracked file, so 128 MiB is
# over a million files, about three times Chromium; a larger "index" is not one to copy.
MAX_INDEX_BYTES = 128 * 1024**2

# Settings that make read-only commands run other programs, write files, talk to the
# network or read outside the repository, turned off for every invocation. A `-c` on the
# command line beats repository config.
_SAFE_CONFIG: tuple[str, ...] = (
    "core.fsmonitor=false",
    "core.pager=cat",
    f"core.hooksPath={os.devnull}",
    "core.quotePath=false",
    "core.splitIndex=false",
    "core.packedGitWindowSize=64m",
    "core.packedGitLimit=512m",
    "diff.autoRefreshIndex=false",
    "diff.external=",
    f"diff.orderFile={os.devnull}",
    "diff.renameLimit=1000",  # a hostile repository could set 1 to defeat rename pairing
    "status.renameLimit=1000",
    "status.submoduleSummary=false",
    "color.ui=false",
    "log.showSignature=false",
    "log.mailmap=false",
    "log.follow=false",
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
    "GIT_NO_REPLACE_OBJECTS": "1",  # show what is stored, not what refs/replace substitutes
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_ADVICE": "0",
    "LC_ALL": "C",
    "LANGUAGE": "C",
}


# -- the repository ---------------------------------------------------------------------


@dataclass
class Repo(ClosedOnExit):
    """A checked repository around the workspace root, and a hardened way to run git in it."""

    ws: Workspace
    layout: Layout
    executable: str
    config_env: dict[str, str] = field(default_factory=dict)
    head: str | None = None  # commit id of HEAD; None before the first commit
    _scratch: Path | None = None  # private directory holding the index copy
    _base_env: dict[str, str] | None = None

    @property
    def prefix(self) -> str:
        return self.layout.prefix

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def private_index(self) -> Path:
        """A throw-away copy of the index, the only index git ever sees.

        ``git diff`` rewrites the index to refresh stat data (even with optional locks off,
        before git 2.50's diff.autoRefreshIndex), and the repository's index may be a
        symlink, a FIFO or a huge file. The copy lives in a private directory (no index
        yet: the directory stays empty, which git reads as an empty index).
        """
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="local-brain-git-"))
            try:
                copy_index(self.layout.index, self._scratch / "index")
            except BaseException:
                self.close()
                raise
        return self._scratch / "index"

    def command(self, args: Sequence[str]) -> list[str]:
        return hardened_command(self.executable, args)

    def env(self) -> dict[str, str]:
        if self._base_env is None:
            env = hardened_env(self.layout.worktree)
            env["GIT_DIR"] = str(self.layout.git_dir)
            env["GIT_COMMON_DIR"] = str(self.layout.common_dir)
            env["GIT_WORK_TREE"] = str(self.layout.worktree)  # beats a hostile core.worktree
            env["GIT_CEILING_DIRECTORIES"] = str(self.layout.worktree.parent)
            self._base_env = env
        env = dict(self._base_env)
        env["GIT_INDEX_FILE"] = str(self.private_index())
        env.update(self.config_env)
        return env

    def spawn(self, args: Sequence[str]) -> Process:
        return Process(self.command(args), self.ws.root, self.env())

    def run(self, args: Sequence[str], *, ok: tuple[int, ...] = (0,)) -> tuple[bytes, int]:
        """Run to completion; return (stdout, exit code). Output past the cap is dropped."""
        data, _, code = self.run_capped(args, ok=ok)
        return data, code

    def run_capped(
        self, args: Sequence[str], *, ok: tuple[int, ...] = (0,), limit: int = MAX_READ_BYTES
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


def open_repo(ws: Workspace) -> Repo:
    """Check the repository around the workspace root and prepare a hardened runner."""
    layout = discover(ws.root)
    executable = git_program(layout.worktree)
    if not owned_by_current_user(layout) and not is_safe_directory(
        layout.worktree, protected_safe_directories(executable)
    ):
        raise DubiousOwnership(DUBIOUS_OWNERSHIP)
    repo = Repo(ws=ws, layout=layout, executable=executable)
    try:
        probe = ["rev-parse", "--verify", "--quiet", "--end-of-options", "HEAD^{commit}"]
        out, code = repo.run(probe, ok=(0, 1))
        repo.head = out.decode().strip() if code == 0 else None
        repo.set_config(_neutralise_filters(repo))
    except BaseException:
        repo.close()
        raise
    return repo


def hardened_command(executable: str, args: Sequence[str]) -> list[str]:
    """A git command line with every command-running setting neutralised (``_SAFE_CONFIG``)."""
    config = [item for setting in _SAFE_CONFIG for item in ("-c", setting)]
    return [executable, "--no-pager", "--no-optional-locks", *config, *args]


def hardened_env(worktree: Path | None) -> dict[str, str]:
    """The user's environment without any GIT_* variable, plus ``_SAFE_ENV``, with PATH
    cleaned of relative entries and of entries inside ``worktree``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(_SAFE_ENV)
    env["PATH"] = _clean_path(os.environ.get("PATH", ""), worktree)
    return env


def git_program(worktree: Path) -> str:
    """The absolute path of git, from absolute PATH entries outside the repository."""
    found = _find_git(os.environ.get("PATH", ""), str(worktree))
    if found is None:
        raise ToolError(GIT_MISSING)
    return found


@functools.lru_cache(maxsize=16)
def _find_git(path_variable: str, worktree: str) -> str | None:
    del path_variable  # part of the cache key only: find_program reads PATH itself
    return find_program("git", Path(worktree))


def _clean_path(path_variable: str, worktree: Path | None) -> str:
    """PATH for git's own lookups: absolute entries outside the repository only."""
    top = os.path.realpath(worktree) if worktree is not None else None
    kept = []
    for entry in path_variable.split(os.pathsep):
        if not entry or not os.path.isabs(entry):
            continue
        real = os.path.realpath(entry)
        if top is not None and (real == top or real.startswith(top.rstrip("/") + "/")):
            continue
        kept.append(entry)
    return os.pathsep.join(kept)


def copy_index(source: Path, target: Path) -> None:
    """Copy the repository's index to ``target``: a regular file only (a symlink, FIFO or
    device is refused without following or blocking), at most MAX_INDEX_BYTES, with its
    modification time (git's racy-entry checks compare it with file times)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        handle = os.open(source, flags)
    except FileNotFoundError:
        return  # no index yet
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO):
            raise refused(".git/index is not a regular file") from None
        raise ToolError(f"{REFUSED_PREFIX}this repository's index cannot be read") from None
    too_large = ToolError(
        f"{REFUSED_PREFIX}this repository's index is larger than "
        f"{MAX_INDEX_BYTES // 1024**2} MiB; file tools still work"
    )
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise refused(".git/index is not a regular file")
        if info.st_size > MAX_INDEX_BYTES:
            raise too_large
        copied = 0
        with open(target, "xb") as out:
            while chunk := os.read(handle, 1 << 20):
                copied += len(chunk)
                if copied > MAX_INDEX_BYTES:  # grew while we copied
                    raise too_large
                out.write(chunk)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    finally:
        os.close(handle)


def _neutralise_filters(repo: Repo) -> list[tuple[str, str]]:
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


def protected_safe_directories(executable: str) -> list[str]:
    """safe.directory values from the user's global and system git config."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_")
        or key in {"GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"}
    }
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_CEILING_DIRECTORIES=os.sep)
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
                start_new_session=True,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if result.returncode == 0:
            values += result.stdout.decode(errors="replace").split("\0")[:-1]
    return values
