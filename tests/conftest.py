"""Shared fixtures: hermetic environment, fixture repositories, the scripted model server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
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


@pytest.fixture
def billing_repo(make_repo: RepoFactory) -> Path:
    """A small billing service with a committed .env secret and a second commit."""
    return make_repo(
        {
            "README.md": "# Billing service\n",
            "src/billing/invoice.py": "\n" * 16
            + "def compute_total_cents_q7(items):\n    return sum(i.cents for i in items)\n",
            ".env": "STRIPE_KEY=sk_live_SECRET_4242\n",
            "config/settings.py": "DEBUG = False\n",
        },
        commits=[
            ("Fix rounding in invoice totals (zebra-91)", {"src/billing/tax.py": "RATE = 7\n"})
        ],
    )


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


@dataclass(frozen=True)
class CliResult:
    """What a run of the CLI left behind, shaped like ``subprocess.CompletedProcess``."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class InProcessCli:
    """Run ``local_brain.cli.main`` in this process under Click's ``CliRunner`` isolation.

    ``main`` is the console-script entry point (it maps exceptions to exit codes and prints
    the one-line error), so the exit status and stderr match the installed command's.
    Standard input is never a pipe here (as with ``stdin=DEVNULL`` in ``run_cli``); tests
    that pipe input, send signals or need a fresh interpreter keep the subprocess.

    The first run that imports the model stack sets variables in ``os.environ`` for the
    rest of the process (``local_brain/safe_import.py`` sets ``OFFLINE_ENVIRONMENT`` with
    ``setdefault``; litellm's tokenizer module sets ``TIKTOKEN_CACHE_DIR``). The installed
    command keeps them for its whole life, so each in-process run gets back what earlier
    runs left (``_PROCESS_ENVIRONMENT``), but they are taken out of ``os.environ`` after
    every run: commands the tests spawn must set them themselves, as they would for a user.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def __call__(
        self,
        *args: str,
        server: object | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> CliResult:
        from click.testing import CliRunner

        from local_brain.cli import main

        overrides = dict(env or {})
        if server is not None:
            overrides["OLLAMA_API_BASE"] = server.url  # type: ignore[attr-defined]
        runner = CliRunner()  # Click >= 8.2: stderr is captured apart from stdout
        with self._monkeypatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            for name, value in _PROCESS_ENVIRONMENT.items():
                if name not in overrides:
                    patch.setenv(name, value)
            before = dict(os.environ)
            try:
                with runner.isolation(env=overrides) as (stdout, stderr, _):
                    try:
                        main(list(args))
                    except SystemExit as done:
                        code = done.code
                        returncode = (
                            int(code) if isinstance(code, int) else (0 if code is None else 1)
                        )
                    else:  # main always exits; reaching here would be a bug in the fixture
                        raise AssertionError("local_brain.cli.main returned without exiting")
            finally:
                _take_back_environment(before)
        return CliResult(
            args=args,
            returncode=returncode,
            stdout=stdout.getvalue().decode("utf-8", "replace"),
            stderr=stderr.getvalue().decode("utf-8", "replace"),
        )


# Variables in-process runs added to os.environ (see InProcessCli): kept for later runs.
_PROCESS_ENVIRONMENT: dict[str, str] = {}


def _take_back_environment(before: dict[str, str]) -> None:
    """Remove (and remember) what a run added to os.environ; undo what it changed."""
    for name in set(os.environ) - set(before):
        _PROCESS_ENVIRONMENT[name] = os.environ.pop(name)
    for name, value in before.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> InProcessCli:
    """The CLI run in-process: ``cli("config", "path", env={...}, server=model_server)``."""
    return InProcessCli(monkeypatch)
