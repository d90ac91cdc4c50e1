"""fsguard: reading files and finding programs in a hostile repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_brain.fsguard import UnsafeFileError, find_program, read_regular


def _program(directory: Path, name: str = "tool") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / name
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return program


def test_programs_inside_the_root_are_skipped_unless_trusted(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "repo"
    inside = _program(root / ".venv" / "bin")
    monkeypatch.setenv("PATH", f":.:bin:{inside.parent}")
    assert find_program("tool", root) is None
    assert find_program("tool", root, extra_dirs=(str(inside.parent),)) is None
    assert find_program("tool", root, trusted_dirs=(str(inside.parent),)) == str(inside)
    outside = _program(tmp_path / "usr" / "bin")
    monkeypatch.setenv("PATH", f"{inside.parent}:{outside.parent}")
    assert find_program("tool", root) == str(outside)


def test_a_symlink_out_of_a_path_entry_into_the_root_is_skipped(
    tmp_path: Path, monkeypatch
) -> None:
    root = tmp_path / "repo"
    target = _program(root)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tool").symlink_to(target)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert find_program("tool", root) is None


def test_read_regular_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"x" * 10)
    assert read_regular(plain, 10) == b"x" * 10
    with pytest.raises(UnsafeFileError):
        read_regular(plain, 9)
    (tmp_path / "link").symlink_to(plain)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (tmp_path / "link", fifo, Path("/dev/zero")):
        with pytest.raises(UnsafeFileError):
            read_regular(path, 1 << 20)
