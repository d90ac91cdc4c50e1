"""Workspace: the path jail, the sensitive-file policy and bounded reading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_brain.errors import ToolError
from local_brain.workspace import Workspace, is_sensitive_path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / ".env").write_text("API_KEY=sk-live-123\n")
    (tmp_path / "outside.txt").write_text("outside secret\n")
    os.symlink(tmp_path / "outside.txt", root / "link_out.txt")
    os.symlink(root / ".env", root / "notes.txt")
    os.symlink(tmp_path, root / "linkdir")
    return root


@pytest.mark.parametrize(
    "name",
    [
        ".env", ".env.local", "prod.env", ".envrc", "server.pem", "tls.key", "cert.p12",
        "id_rsa", "id_ed25519.pub", ".netrc", ".npmrc", ".pypirc", "credentials",
        "aws-credentials.json", "secrets.yaml", ".git/config", ".ssh/known_hosts", "a/.ENV",
        "deploy/terraform.tfvars", ".git-credentials",
    ],
)  # fmt: skip
def test_sensitive_paths(name: str) -> None:
    assert is_sensitive_path(name)


@pytest.mark.parametrize(
    "name", ["src/app.py", "id_utils.py", "README.md", "environment.py", "keys.py", "docs/env.md"]
)
def test_ordinary_paths_are_not_sensitive(name: str) -> None:
    assert not is_sensitive_path(name)


def test_resolve_inside(tree: Path) -> None:
    ws = Workspace(tree)
    assert ws.resolve("src/app.py") == tree / "src" / "app.py"
    assert ws.resolve(str(tree / "src")) == tree / "src"
    assert ws.resolve(None) == tree


@pytest.mark.parametrize(
    "path", ["../outside.txt", "/etc/passwd", "link_out.txt", "linkdir/outside.txt", "src/../../x"]
)
def test_outside_paths_are_refused_with_one_message(tree: Path, path: str) -> None:
    with pytest.raises(ToolError) as refused:
        Workspace(tree).resolve(path)
    assert "outside the repository root" in str(refused.value)


def test_refusal_does_not_reveal_existence(tree: Path) -> None:
    ws = Workspace(tree)
    messages = set()
    for path in ("../outside.txt", "../does-not-exist.txt"):
        with pytest.raises(ToolError) as refused:
            ws.resolve(path)
        messages.add(str(refused.value).replace(path, "P"))
    assert len(messages) == 1


@pytest.mark.parametrize("path", [".env", "notes.txt", "./src/../.env"])
def test_sensitive_files_are_refused_also_through_symlinks(tree: Path, path: str) -> None:
    with pytest.raises(ToolError, match="secrets"):
        Workspace(tree).resolve(path)


def test_missing_path(tree: Path) -> None:
    with pytest.raises(ToolError, match="not found"):
        Workspace(tree).resolve("nope.py")


def test_iter_lines_bounds_long_lines_and_bad_bytes(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(b"short\n" + b"x" * 100_000 + b"\n\xff\xfebad\nlast")
    lines = list(Workspace.iter_lines(target))
    assert lines[0] == "short"
    assert len(lines[1]) < 500 and lines[1].endswith("[line truncated]")
    assert lines[2] == "\ufffd\ufffdbad"
    assert lines[3] == "last"


def test_binary_detection(tmp_path: Path) -> None:
    (tmp_path / "b.bin").write_bytes(b"abc\x00def")
    (tmp_path / "t.txt").write_text("plain")
    assert Workspace.is_binary(tmp_path / "b.bin")
    assert not Workspace.is_binary(tmp_path / "t.txt")
