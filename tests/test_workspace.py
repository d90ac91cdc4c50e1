"""Workspace: the path jail, the sensitive-file policy and bounded reading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_brain.errors import ToolError
from local_brain.tools.contents import is_binary_file
from local_brain.tools.listing import is_hidden
from local_brain.workspace import Workspace, is_hard_link, is_sensitive_path, rg_exclude_globs


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
        # tool credentials, keys and cloud service-account files
        ".vault-token", "docker/.dockerconfigjson", "prod.dockercfg", "auth.json", "php/auth.json", "key.ppk", ".my.cnf", ".mylogin.cnf",
        ".pgpass", "x-firebase-adminsdk-abcde-0123456789.json",
        "myapp-firebase-adminsdk-abc12-0123456789.json", "service_account.json",
        "gcp-serviceAccount.json", ".s3cfg", ".boto", ".terraformrc", "terraform.rc",
        "vars.tfvars.json", ".docker/config.json", "htpasswd", "prod.kubeconfig",
        ".gem/credentials", ".cargo/credentials", ".cargo/credentials.toml",
        ".config/gh/hosts.yml", "dotfiles/.config/gh/hosts.yml", ".yarnrc", "AuthKey_AB12CD.p8",
        "krb5.keytab", ".gitcookies", "rclone.conf", ".vault_pass.txt",
    ],
)  # fmt: skip
def test_sensitive_paths(name: str) -> None:
    assert is_sensitive_path(name)


@pytest.mark.parametrize(
    "name",
    [
        "src/app.py", "id_utils.py", "README.md", "environment.py", "keys.py", "docs/env.md",
        "auth.py", "src/auth/login.ts", "inventory/hosts.yml", "gh/hosts.yml", "carts/game.p8",
        "htpasswd.py", "vault_token.py", "docs/kubeconfig.md", "boto_helpers.py",
        "my.cnf.example", "terraform/main.tf",
    ],
)  # fmt: skip
def test_ordinary_paths_are_not_sensitive(name: str) -> None:
    assert not is_sensitive_path(name)


def test_path_rules_become_ripgrep_exclusions() -> None:
    globs = rg_exclude_globs()
    assert "!**/.config/gh/hosts.yml" in globs and "!*.ppk" in globs and "!.vault-token" in globs


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
    assert is_binary_file(tmp_path / "b.bin")
    assert not is_binary_file(tmp_path / "t.txt")


# -- hard links ---------------------------------------------------------------------------


@pytest.fixture
def linked(tree: Path) -> Path:
    os.link(tree / ".env", tree / "notes2.txt")
    os.link(tree / "src" / "app.py", tree / "src" / "app_copy.py")
    return tree


@pytest.mark.parametrize("path", ["notes2.txt", "src/app_copy.py", "src/app.py", "./notes2.txt"])
def test_hard_links_are_refused_whatever_their_names(linked: Path, path: str) -> None:
    # Both names of src/app.py are refused: nothing tells which name is the original.
    with pytest.raises(ToolError) as refused:
        Workspace(linked).resolve(path)
    assert str(refused.value) == (
        f"path refused: {path} is a hard link; local-brain cannot tell whether another name "
        "of it holds secrets"
    )


def test_hard_link_reached_through_a_symlink_is_refused(linked: Path) -> None:
    os.symlink(linked / "notes2.txt", linked / "pointer.txt")
    with pytest.raises(ToolError, match="hard link"):
        Workspace(linked).resolve("pointer.txt")


def test_hard_links_are_not_visible(linked: Path) -> None:
    ws = Workspace(linked)
    (linked / "src" / "single.py").write_text("x = 1\n")
    assert is_hidden(ws, "notes2.txt")
    assert is_hidden(ws, "src/app_copy.py")
    assert not is_hidden(ws, "src/single.py")
    assert not is_hidden(ws, "src")
    assert ws.resolve("src") == linked / "src"  # directories always have several links


def test_is_hard_link(linked: Path) -> None:
    assert is_hard_link(linked / "notes2.txt")
    assert not is_hard_link(linked / "src")
    assert not is_hard_link(linked / "missing.txt")
    (linked / "alone.txt").write_text("x\n")
    assert not is_hard_link(linked / "alone.txt")
