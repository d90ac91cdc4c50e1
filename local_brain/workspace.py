"""The repository being explored: a path jail, the sensitive-file policy and size caps.

Every tool reaches the file system only through a ``Workspace``. A path the model gives is
resolved (symlinks included) and must stay inside the root; both the path as requested and
the path it resolves to are checked against the sensitive-file policy, so a symlink named
``notes.txt`` that points at ``.env`` is refused too.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from local_brain.errors import ToolError

# File names (matched case-insensitively against the last path component) whose contents
# are secrets or commonly hold them.
SENSITIVE_NAMES: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.gpg",
    "*.tfvars",
    "*.tfstate",
    "*.tfstate.*",
    "*.ovpn",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".yarnrc.yml",
    ".pgpass",
    ".git-credentials",
    ".htpasswd",
    ".dockercfg",
    "credentials",
    "*credentials*.json",
    "*credentials*.yaml",
    "*credentials*.yml",
    "service-account*.json",
    "*.secret",
    "*.secrets",
    "kubeconfig",
    "known_hosts",
    "authorized_keys",
)

# Names that are secrets unless they carry a source-code suffix: SSH keys (id_rsa,
# id_ed25519.pub) but not id_utils.py; secrets.yaml but not secrets.py.
SENSITIVE_UNLESS_SOURCE: tuple[str, ...] = ("id_*", "credentials.*", "secrets.*")
SOURCE_SUFFIXES = frozenset(
    ".py .pyi .js .jsx .ts .tsx .mjs .cjs .go .rs .java .kt .c .h .cc .cpp .hpp .rb .php .cs "
    ".swift .scala .lua .ex .exs .md .rst".split()
)

# Directory names whose whole contents are off limits (git internals, key stores).
SENSITIVE_DIRS: frozenset[str] = frozenset({".git", ".ssh", ".gnupg", ".aws", ".docker", ".kube"})

MAX_LINE_CHARS = 400
BINARY_SNIFF_BYTES = 8192
_LINE_READ_BYTES = MAX_LINE_CHARS * 4


def is_sensitive_name(name: str) -> bool:
    """True when a single file name matches the sensitive-file policy."""
    lowered = name.lower()
    if any(fnmatch.fnmatchcase(lowered, pattern) for pattern in SENSITIVE_UNLESS_SOURCE):
        return PurePosixPath(lowered).suffix not in SOURCE_SUFFIXES
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in SENSITIVE_NAMES)


def is_sensitive_path(relative: str | PurePosixPath) -> bool:
    """True when a root-relative path is, or lies inside, something sensitive."""
    parts = PurePosixPath(str(relative).replace(os.sep, "/")).parts
    if any(part.lower() in SENSITIVE_DIRS for part in parts):
        return True
    return bool(parts) and is_sensitive_name(parts[-1])


def rg_exclude_globs() -> list[str]:
    """The plain part of the sensitive-file policy as ripgrep exclusion globs. Callers
    still filter every path with ``is_sensitive_path`` (SENSITIVE_UNLESS_SOURCE)."""
    globs = [f"!{pattern}" for pattern in SENSITIVE_NAMES]
    globs += [f"!{directory}/" for directory in sorted(SENSITIVE_DIRS)]
    return globs


@dataclass(frozen=True)
class Workspace:
    """The root of the repository being explored, with the rules for reaching inside it."""

    root: Path
    max_read_lines: int = 400
    max_read_chars: int = 24_000
    max_list_entries: int = 300
    _resolved_root: Path = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        resolved = Path(self.root).expanduser().resolve()
        object.__setattr__(self, "root", resolved)
        object.__setattr__(self, "_resolved_root", resolved)

    # -- paths --------------------------------------------------------------------------

    def resolve(self, path: str | None, *, must_exist: bool = True) -> Path:
        """Resolve a model-given path to an absolute path inside the root, or refuse it.

        The refusal message is the same whether or not the target exists, so the model
        cannot probe the file system outside the root.
        """
        requested = "." if path is None or str(path).strip() == "" else str(path).strip()
        if "\x00" in requested:
            raise ToolError(f"path refused: {requested!r} is not a valid path")
        candidate = Path(requested).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        lexical = Path(os.path.normpath(candidate))
        if not _is_within(lexical, self.root):
            raise ToolError(outside_message(requested))
        if is_sensitive_path(self._relative_parts(lexical)):
            raise ToolError(sensitive_message(requested))
        try:
            resolved = lexical.resolve()
        except (OSError, RuntimeError):  # symlink loops
            raise ToolError(outside_message(requested)) from None
        if not _is_within(resolved, self.root):
            raise ToolError(outside_message(requested))
        if is_sensitive_path(self._relative_parts(resolved)):
            raise ToolError(sensitive_message(requested))
        if must_exist and not resolved.exists():
            raise ToolError(f"not found: {requested} (paths are relative to the repository root)")
        return resolved

    def relative(self, path: Path) -> str:
        """The root-relative POSIX form of an absolute path inside the root."""
        rel = self._relative_parts(path)
        return rel or "."

    def _relative_parts(self, path: Path) -> str:
        try:
            relative = path.relative_to(self.root).as_posix()
            return "" if relative == "." else relative
        except ValueError:
            return os.path.relpath(path, self.root).replace(os.sep, "/")

    def is_visible(self, path: Path) -> bool:
        """True when a path found by walking the tree may be shown (inside, not sensitive)."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):
            return False
        if not _is_within(resolved, self.root):
            return False
        return not (
            is_sensitive_path(self._relative_parts(path))
            or is_sensitive_path(self._relative_parts(resolved))
        )

    # -- contents -----------------------------------------------------------------------

    @staticmethod
    def is_binary(path: Path) -> bool:
        """A file is binary when its first few KiB hold a NUL byte."""
        try:
            with path.open("rb") as handle:
                return b"\x00" in handle.read(BINARY_SNIFF_BYTES)
        except OSError:
            return False

    @staticmethod
    def iter_lines(path: Path) -> Iterator[str]:
        """Yield decoded lines without their line ends, never holding the whole file.

        Undecodable bytes become U+FFFD; very long lines are cut to ``MAX_LINE_CHARS``
        while reading, so a 2 GB single-line file costs bounded memory.
        """
        with path.open("rb") as handle:
            while True:
                raw = handle.readline(_LINE_READ_BYTES)
                if not raw:
                    return
                cut = len(raw) == _LINE_READ_BYTES and not raw.endswith(b"\n")
                if cut:
                    # Skip the rest of an over-long line in bounded chunks.
                    while True:
                        rest = handle.readline(1 << 16)
                        if not rest or rest.endswith(b"\n"):
                            break
                yield shorten_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"), cut)


def shorten_line(text: str, was_cut: bool = False) -> str:
    """Cap one line of output at ``MAX_LINE_CHARS`` characters, marking the cut."""
    if len(text) > MAX_LINE_CHARS or was_cut:
        return text[:MAX_LINE_CHARS] + " …[line truncated]"
    return text


def outside_message(requested: str) -> str:
    return f"path refused: {requested} is outside the repository root"


def sensitive_message(requested: str) -> str:
    return f"path refused: {requested} may hold secrets and is not readable by local-brain"


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
