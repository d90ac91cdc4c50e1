"""Finding and checking the git directory of a hostile repository, without running git.

A cloned repository or an unpacked archive decides what its ``.git`` is. Left to itself,
git follows a ``.git`` *file* (``gitdir: /elsewhere``), a ``commondir`` file, an
``objects/info/alternates`` list or symlinked internals into any other repository on the
machine, and reads FIFOs or devices placed there without end. So the git tools find the
git directory themselves and accept only:

* a ``.git`` that is a real directory (not a symlink) in the root or, when the root is a
  subdirectory of a work tree, in the nearest parent on the same file system (git's own
  discovery stops there too);
* no ``commondir``, no ``objects/info/alternates`` or ``http-alternates`` in it;
* no symlink, FIFO or device anywhere among its top-level entries or under ``refs/``,
  ``logs/``, ``objects/``, ``info/``, ``worktrees/`` and ``reftable/`` (``hooks`` may be a
  symlink: hooks never run);
* the one exception to "no ``.git`` file" is a linked work tree (``git worktree add``):
  its ``.git`` file must name ``<common>/worktrees/<name>``, whose ``gitdir`` file must name
  this very ``.git`` file back and whose ``commondir`` must name ``<common>``. Git writes
  that back-link when the user adds the work tree; a cloned or unpacked repository cannot
  plant it in another repository, so the pointer cannot be aimed at someone else's
  repository. Submodule checkouts (a ``.git`` file into the superproject's
  ``.git/modules``) are refused.

Every git command then runs with GIT_DIR, GIT_COMMON_DIR and GIT_WORK_TREE set to what was
checked here, so git does no discovery of its own. Because git skips its ownership check
(safe.directory) when GIT_DIR is given, that check is repeated here as well.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from local_brain.errors import ToolError
from local_brain.fsguard import UnsafeFileError, read_regular
from local_brain.tools.git.messages import NOT_A_REPO, refused

# Entries worth naming in a refusal; any other name (chosen by the repository) is not shown.
_KNOWN_ENTRIES = frozenset(
    "HEAD config config.worktree index packed-refs shallow commondir gitdir refs objects "
    "info logs worktrees reftable modules description FETCH_HEAD ORIG_HEAD MERGE_HEAD "
    "CHERRY_PICK_HEAD REVERT_HEAD BISECT_LOG AUTO_MERGE COMMIT_EDITMSG".split()
)
# Directories whose whole subtree is checked: git reads refs, reflogs and objects from them.
_WALKED = frozenset({"refs", "logs", "objects", "info", "worktrees", "reftable"})
# Entries git never reads for our commands (hooks never run: core.hooksPath=/dev/null).
_IGNORED_LINKS = frozenset({"hooks"})
# Past this many entries the check gives up and refuses (a repository this unpacked is
# pathological: `git gc --auto` packs loose objects at 6,700).
_MAX_CHECKED_ENTRIES = 100_000
_POINTER_BYTES = 4096


@dataclass(frozen=True)
class Layout:
    """Where a checked repository keeps its work tree and git data."""

    worktree: Path  # the directory that holds `.git`; the root or one of its parents
    git_dir: Path  # GIT_DIR: `.git`, or `<common>/worktrees/<name>` for a linked work tree
    common_dir: Path  # GIT_COMMON_DIR: objects, refs and config
    gitfile: Path | None  # the `.git` file of a linked work tree
    prefix: str  # the root relative to the work tree: "" or "sub/dir/"

    @property
    def index(self) -> Path:
        return self.git_dir / "index"


def discover(root: Path) -> Layout:
    """The checked layout of the repository around ``root`` (an absolute, resolved path).

    Raises ToolError(NOT_A_REPO) when there is none, and a one-line refusal when there is
    one that is not a plain git directory of its own.
    """
    try:
        device = os.stat(root).st_dev
    except OSError:
        raise ToolError(NOT_A_REPO) from None
    for directory in (root, *root.parents):
        try:
            if os.stat(directory).st_dev != device:
                break  # like git: no discovery across a mount point
            info = os.lstat(directory / ".git")
        except FileNotFoundError:
            continue
        except OSError:
            break
        prefix = root.relative_to(directory).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        if ".git" in prefix.lower().split("/"):
            raise refused("the root is inside a .git directory")
        if stat.S_ISLNK(info.st_mode):
            raise refused(".git is a symlink")
        if stat.S_ISDIR(info.st_mode):
            git_dir = directory / ".git"
            _check_git_dir(git_dir, ".git", common=True)
            return Layout(directory, git_dir, git_dir, None, prefix)
        if stat.S_ISREG(info.st_mode):
            return _linked_worktree(directory, prefix)
        raise refused(".git is neither a directory nor a file")
    raise ToolError(NOT_A_REPO)


def _linked_worktree(worktree: Path, prefix: str) -> Layout:
    """A `.git` file is accepted only as a work tree registered by `git worktree add`."""
    gitfile = worktree / ".git"
    pointer = _read_path(gitfile, worktree, lead="gitdir:")
    if pointer is None:
        raise refused(".git is a file that is not a readable gitdir pointer")
    elsewhere = refused(".git is a file that points to another git directory")
    git_dir = Path(os.path.realpath(pointer))
    common = git_dir.parent.parent
    if git_dir.parent.name != "worktrees" or not _is_plain_dir(git_dir):
        raise elsewhere
    back = _read_path(git_dir / "gitdir", git_dir)
    if back is None or os.path.realpath(back) != os.path.realpath(gitfile):
        raise elsewhere
    named_common = _read_path(git_dir / "commondir", git_dir)
    if named_common is None or os.path.realpath(named_common) != str(common):
        raise elsewhere
    if not _is_plain_dir(common):
        raise elsewhere
    _check_git_dir(git_dir, "the work tree's git directory", common=False)
    _check_git_dir(common, "the main git directory", common=True)
    return Layout(worktree, git_dir, common, gitfile, prefix)


def _read_path(path: Path, base: Path, lead: str = "") -> str | None:
    """A path stored in a small regular file (relative ones are taken from ``base``)."""
    try:
        data = read_regular(path, _POINTER_BYTES)
    except (UnsafeFileError, OSError):
        return None
    text = data.decode("utf-8", errors="surrogateescape").strip()
    if lead:
        if not text.startswith(lead):
            return None
        text = text[len(lead) :].strip()
    if not text or "\n" in text or "\0" in text:
        return None
    return text if os.path.isabs(text) else os.path.join(base, text)


def _is_plain_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _check_git_dir(git_dir: Path, label: str, *, common: bool) -> None:
    """Refuse symlinks, FIFOs and devices inside a git directory, and (for the directory
    that holds objects and refs) anything that borrows from another repository."""
    budget = [_MAX_CHECKED_ENTRIES]
    for entry in _entries(git_dir, label, budget):
        shown = f"{label}/{entry.name}" if entry.name in _KNOWN_ENTRIES else f"an entry of {label}"
        if entry.is_symlink():
            if entry.name in _IGNORED_LINKS:
                continue
            raise refused(f"{shown} is a symlink")
        if entry.is_dir(follow_symlinks=False):
            if entry.name in _WALKED:
                _check_subtree(Path(entry.path), f"{label}/{entry.name}", budget)
            continue
        _check_special(entry, shown)
    if not common:
        return
    if os.path.lexists(git_dir / "commondir"):
        raise refused(f"{label}/commondir points to another git directory")
    for name in ("alternates", "http-alternates"):
        if os.path.lexists(git_dir / "objects" / "info" / name):
            raise refused(f"{label}/objects/info/{name} borrows objects from another repository")


def _check_subtree(top: Path, label: str, budget: list[int]) -> None:
    pending = [top]
    while pending:
        for entry in _entries(pending.pop(), label, budget):
            if entry.is_symlink():
                raise refused(f"an entry under {label} is a symlink")
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            else:
                _check_special(entry, f"an entry under {label}")


def _check_special(entry: os.DirEntry[str], shown: str) -> None:
    """Regular files and sockets (never opened for reading) pass; FIFOs and devices, which
    block or never end when read, do not."""
    if entry.is_file(follow_symlinks=False):
        return
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return  # vanished meanwhile
    if not stat.S_ISSOCK(mode):
        raise refused(f"{shown} is not a regular file")


def _entries(directory: Path, label: str, budget: list[int]) -> Iterable[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except FileNotFoundError:
        return []
    except OSError:
        raise refused(f"{label} cannot be read") from None
    budget[0] -= len(entries)
    if budget[0] < 0:
        raise refused(f"more than {_MAX_CHECKED_ENTRIES:,} loose refs and objects to check")
    return entries


# -- ownership (git's safe.directory check, which an explicit GIT_DIR skips) -------------


def owned_by_current_user(layout: Layout) -> bool:
    """Git's rule: the work tree, the git directory and any `.git` file belong to the
    effective user (for root, to the user named by SUDO_UID when that is set)."""
    paths = [layout.worktree, layout.git_dir]
    if layout.gitfile is not None:
        paths.append(layout.gitfile)
    return all(_owned(path) for path in paths)


def _owned(path: Path) -> bool:
    try:
        owner = os.lstat(path).st_uid
    except OSError:
        return False
    euid = os.geteuid()
    if owner == euid:
        return True
    sudo_uid = os.environ.get("SUDO_UID", "")
    return euid == 0 and sudo_uid.isdigit() and owner == int(sudo_uid)


def is_safe_directory(worktree: Path, values: Iterable[str]) -> bool:
    """Whether protected ``safe.directory`` values (global or system config) trust
    ``worktree``: ``*``, the path itself, or ``<dir>/*`` for anything below ``<dir>``; an
    empty value clears the ones before it."""
    target = os.path.realpath(worktree)
    trusted = False
    for value in values:
        if not value:
            trusted = False
        elif value == "*":
            trusted = True
        elif value.endswith("/*"):
            base = os.path.realpath(os.path.expanduser(value[:-2]))
            trusted = trusted or target.startswith(base.rstrip("/") + "/")
        else:
            trusted = trusted or os.path.realpath(os.path.expanduser(value)) == target
    return trusted
