"""The repository being explored: a path jail, the sensitive-file policy and size caps.

Every tool reaches the file system only through a ``Workspace``. A path the model gives is
resolved (symlinks included) and must stay inside the root; both the path as requested and
the path it resolves to are checked against the sensitive-file policy, so a symlink named
``notes.txt`` that points at ``.env`` is refused too. A hard link has no target to check,
so a regular file with more than one name is refused whatever its name (see
``is_hard_link``). What slips past these name rules meets the content check in
``local_brain.redact``, which every tool's output passes through.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from local_brain.errors import ToolError
from local_brain.fsguard import open_regular

# File names (matched case-insensitively against the last path component) whose contents
# are secrets or commonly hold them.
SENSITIVE_NAMES: tuple[str, ...] = (
    # environments
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    # keys and key stores
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.pkcs12",
    "authkey_*.p8",  # App Store Connect API keys (*.p8 alone is also PICO-8 source)
    "*.ppk",  # PuTTY private keys
    "*.jks",
    "*.keystore",
    "*.keytab",  # Kerberos
    "*.kdbx",
    "*.gpg",
    "*.ovpn",
    # infrastructure state and variables
    "*.tfvars",
    "*.tfvars.json",
    "*.tfstate",
    "*.tfstate.*",
    ".terraformrc",
    "terraform.rc",
    "kubeconfig",
    "*.kubeconfig",
    # tool credentials in dotfiles
    ".netrc",
    "_netrc",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pypirc",
    ".pgpass",
    ".my.cnf",
    ".mylogin.cnf",
    ".git-credentials",
    ".gitcookies",
    ".htpasswd",
    "htpasswd",
    ".dockercfg",
    "*.dockercfg",
    ".dockerconfigjson",
    ".vault-token",
    ".vault_pass*",
    ".vault-pass*",
    ".s3cfg",
    ".boto",
    ".passwd-s3fs",
    "rclone.conf",
    ".rclone.conf",
    ".smbcredentials",
    "auth.json",  # composer's http-basic / github-oauth tokens
    # credential files and cloud service-account keys
    "credentials",
    "*credentials*.json",
    "*credentials*.yaml",
    "*credentials*.yml",
    "service-account*.json",
    "*service_account*.json",
    "*serviceaccount*.json",
    "*adminsdk*.json",  # Firebase: myapp-firebase-adminsdk-abc12-0123456789.json
    "*.secret",
    "*.secrets",
    # SSH
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

# Files secret only in a particular directory (a dotfiles repository): matched against the
# end of the lower-cased root-relative path. ``hosts.yml`` alone is an Ansible inventory;
# under .config/gh it holds the GitHub CLI's token. (.gem/credentials, .cargo/credentials
# and .cargo/credentials.toml are covered by the credentials names above.)
SENSITIVE_PATHS: tuple[str, ...] = (".config/gh/hosts.yml", ".config/hub")

MAX_LINE_CHARS = 400
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
    if not parts:
        return False
    if is_sensitive_name(parts[-1]):
        return True
    lowered = "/" + "/".join(parts).lower()
    return any(lowered.endswith("/" + suffix) for suffix in SENSITIVE_PATHS)


def rg_exclude_globs() -> list[str]:
    """The plain part of the sensitive-file policy as ripgrep exclusion globs. Callers
    still filter every path with ``is_sensitive_path`` (SENSITIVE_UNLESS_SOURCE)."""
    globs = [f"!{pattern}" for pattern in SENSITIVE_NAMES]
    globs += [f"!{directory}/" for directory in sorted(SENSITIVE_DIRS)]
    globs += [f"!**/{suffix}" for suffix in SENSITIVE_PATHS]
    return globs


def is_hard_link(path: Path | str) -> bool:
    """True when ``path`` (followed if a symlink) is a regular file with more than one name.

    A hard link ``notes.txt`` to ``.env`` (or to ``~/.aws/credentials``: a hard link may
    name a file outside the root) reads as the secret file, and nothing cheap tells which
    other names an inode has: finding them means walking the whole file system. So every
    multiply-linked regular file is refused, whatever its name. This costs little: git
    never creates hard links in a work tree (only inside .git, which is refused anyway);
    what does are package managers linking from a shared store (pnpm's node_modules, a
    venv made by uv or conda), i.e. third-party code that is not the repository's.
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink > 1


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
        if is_hard_link(resolved):
            raise ToolError(hard_link_message(requested))
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

    # -- contents -----------------------------------------------------------------------

    @staticmethod
    def iter_lines(path: Path) -> Iterator[str]:
        """Yield decoded lines without their line ends, never holding the whole file.

        Undecodable bytes become U+FFFD; very long lines are cut to ``MAX_LINE_CHARS``
        while reading, so a 2 GB single-line file costs bounded memory.
        """
        with open_regular(path) as handle:  # never blocks on a FIFO swapped in
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


CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """A file name as one line: control characters (a newline in a name could fake a row of
    a listing) become ``?``, as git shows them."""
    return CONTROL_CHARS.sub("?", text)


CUT_MARKER = " …"  # ends any text the tools shorten
LINE_CUT_MARKER = CUT_MARKER + "[line truncated]"  # ends a shortened line of a file


def shorten(text: str, limit: int, was_cut: bool = False, marker: str = CUT_MARKER) -> str:
    """``text`` capped at ``limit`` characters, the cut marked (also when ``was_cut``: it
    was already cut while reading). The one truncation helper of the tools' output."""
    if len(text) > limit or was_cut:
        return text[:limit].rstrip() + marker
    return text


def shorten_line(text: str, was_cut: bool = False) -> str:
    """Cap one line of output at ``MAX_LINE_CHARS`` characters, marking the cut."""
    return shorten(text, MAX_LINE_CHARS, was_cut, LINE_CUT_MARKER)


def outside_message(requested: str) -> str:
    return f"path refused: {requested} is outside the repository root"


def sensitive_message(requested: str) -> str:
    return f"path refused: {requested} may hold secrets and is not readable by local-brain"


def hard_link_message(requested: str) -> str:
    return (
        f"path refused: {requested} is a hard link; local-brain cannot tell whether "
        "another name of it holds secrets"
    )


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
