"""One doctor finding (:class:`Check`), and the checks of the local tools: git, ripgrep, the
tree-sitter grammars and the repository being explored. No network, short timeouts."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from local_brain.fsguard import find_program

COMMAND_TIMEOUT_S = 3.0  # git --version, rg --version


@dataclass(frozen=True)
class Check:
    """One doctor finding: ``fix`` says what to do when ``ok`` is false."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def _version_check(name: str, command: list[str], shown: str, fix: str, **kwargs: Any) -> Check:
    """Run ``command`` (a ``--version``, ``shown`` as) and report the first line it prints."""
    try:
        result = _run(command, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check(name, False, f"{shown} failed: {error}", fix)
    if result.returncode != 0:
        return Check(name, False, f"{shown} exited {result.returncode}", fix)
    return Check(name, True, (result.stdout.splitlines() or [command[0]])[0].strip())


def git_check() -> Check:
    """``git --version``, run as the git tools run git (``tools/git/runner.py``)."""
    from local_brain.tools.git.runner import hardened_command, hardened_env

    fix = "install git (git-scm.com, or your package manager)"
    git = find_program("git")
    if git is None:
        return Check("git", False, "git not found on PATH", fix)
    command = hardened_command(git, ["--version"])
    return _version_check("git", command, "`git --version`", fix, env=hardened_env(None))


def repository_check(root: Path) -> Check:
    from local_brain.tools.git.runner import hardened_command, hardened_env

    name = "repository"
    fix = "cd into a project or pass --root"
    if not root.exists():
        return Check(name, False, f"{root}: no such directory", fix)
    if not root.is_dir():
        return Check(name, False, f"{root}: not a directory", fix)
    git = find_program("git", root)  # never one committed in the tree
    inside = False
    if git is not None:
        command = hardened_command(git, ["rev-parse", "--is-inside-work-tree"])
        try:
            result = _run(command, cwd=root, env=hardened_env(root))
            inside = result.returncode == 0 and result.stdout.strip() == "true"
        except (OSError, subprocess.TimeoutExpired):
            pass
    if inside:
        return Check(name, True, f"{root} (git repository)")
    return Check(name, True, f"{root} (not a git repository: the git tools will report errors)")


def ripgrep_check() -> Check:
    from local_brain.tools.ripgrep import find_rg, rg_environment

    fix = "pip install ripgrep, or install rg with your package manager"
    path = find_rg()
    if path is None:
        return Check("ripgrep", False, "rg not found: search_code falls back to slow Python", fix)
    check = _version_check("ripgrep", [path, "--version"], f"{path} --version", fix,
                           env=rg_environment())  # fmt: skip
    if not check.ok:
        return check
    return Check("ripgrep", True, f"{check.detail} ({path})")


def grammars_check() -> Check:
    from local_brain.tools.definitions import GRAMMARS, GrammarUnavailable, compiled

    languages = list(GRAMMARS)
    broken = []
    for language in languages:
        try:
            compiled(language)
        except GrammarUnavailable as error:
            broken.append(f"{language} ({error})")
        except Exception as error:  # e.g. tree_sitter itself missing or incompatible
            broken.append(f"{language} ({type(error).__name__}: {error})")
    if broken:
        return Check(
            "tree-sitter grammars",
            False,
            f"{len(broken)} of {len(languages)} do not load: " + "; ".join(broken),
            "reinstall local-brain (pip install --force-reinstall local-brain) to get "
            "matching tree-sitter grammar packages",
        )
    return Check("tree-sitter grammars", True, f"{len(languages)} load: {', '.join(languages)}")
