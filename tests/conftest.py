"""Shared fixtures: hermetic environment, fixture repositories, the scripted model server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["tests.fakes.plugin"]

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada Tester",
    "GIT_AUTHOR_EMAIL": "ada@example.test",
    "GIT_COMMITTER_NAME": "Ada Tester",
    "GIT_COMMITTER_EMAIL": "ada@example.test",
}


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME and XDG dirs in a temp dir; no user config, no proxies, no provider keys."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    for name in list(os.environ):
        if name.upper() in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"} or name.startswith(
            ("LOCAL_BRAIN_", "OLLAMA_", "OPENAI_", "ANTHROPIC_", "GROQ_")
        ):
            monkeypatch.delenv(name, raising=False)
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    return home


def git(repo: Path, *args: str) -> str:
    """Run git in a fixture repo and return its stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_IDENTITY},
    ).stdout


RepoFactory = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Build a git repository from a mapping of path -> text (or bytes).

    ``commits`` is a list of (message, {path: content}) applied after the initial commit
    of ``files``; ``git_init=False`` gives a plain directory.
    """
    counter = iter(range(1000))

    def factory(
        files: dict[str, str | bytes] | None = None,
        commits: list[tuple[str, dict[str, str | bytes]]] | None = None,
        git_init: bool = True,
        name: str | None = None,
    ) -> Path:
        root = tmp_path / (name or f"repo{next(counter)}")
        root.mkdir()
        if git_init:
            git(root, "init", "-q", "-b", "main")
        _write(root, files or {})
        if git_init and files:
            git(root, "add", "-A")
            git(root, "commit", "-q", "-m", "Initial commit")
        for message, changes in commits or []:
            _write(root, changes)
            git(root, "add", "-A")
            git(root, "commit", "-q", "-m", message)
        return root

    return factory


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
