"""read_file, list_directory and file_info on real temporary repositories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_brain.tools import all_tools
from local_brain.workspace import Workspace

TOOLS = all_tools()


def call(root: Path, name: str, **kwargs: object) -> str:
    return TOOLS[name].run(Workspace(root), **kwargs)


@pytest.fixture
def repo(make_repo) -> Path:
    lines = "\n".join(f"line {n}" for n in range(1, 1001)) + "\n"
    root = make_repo(
        {
            "src/app.py": "def main():\n    return 42\n",
            "src/util/helpers.py": "X = 1\n",
            "big.txt": lines,
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
            ".gitignore": "build/\n",
            ".env": "TOKEN=hunter2\n",
            "README.md": "# Demo\n",
        }
    )
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("generated\n")
    (root / "untracked.py").write_text("pass\n")
    return root


def test_read_file_numbers_lines_with_total(repo: Path) -> None:
    out = call(repo, "read_file", path="src/app.py")
    assert out.splitlines()[0] == "src/app.py: lines 1-2 of 2"
    assert "     2      return 42" in out


def test_read_file_range_and_paging(repo: Path) -> None:
    out = call(repo, "read_file", path="big.txt", start_line=10, end_line=12)
    assert out.splitlines() == [
        "big.txt: lines 10-12 of 1000",
        "    10  line 10",
        "    11  line 11",
        "    12  line 12",
    ]
    page = call(repo, "read_file", path="big.txt")
    assert page.splitlines()[0] == "big.txt: lines 1-400 of 1000"
    assert "start_line=401" in page.splitlines()[-1]


def test_read_file_positional_and_loose_types(repo: Path) -> None:
    out = TOOLS["read_file"].run(Workspace(repo), "big.txt", "5", 5.0)
    assert out.splitlines()[1] == "     5  line 5"


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("logo.png", "binary file"),
        ("src", "is a directory"),
        ("missing.py", "not found"),
        (".env", "may hold secrets"),
        ("../x", "outside the repository root"),
    ],
)
def test_read_file_errors_are_short_messages(repo: Path, path: str, fragment: str) -> None:
    out = call(repo, "read_file", path=path)
    assert out.startswith("Error: ") and fragment in out
    assert "hunter2" not in out and "Traceback" not in out


def test_read_file_start_past_end(repo: Path) -> None:
    assert "only 2 lines" in call(repo, "read_file", path="src/app.py", start_line=50)


def test_bad_parameters(repo: Path) -> None:
    assert "needs 'path'" in call(repo, "read_file")
    assert "no parameter 'bogus'" in call(repo, "read_file", path="README.md", bogus=1)
    assert "must be an integer" in call(repo, "read_file", path="README.md", start_line="ten")


def test_list_directory_top_level(repo: Path) -> None:
    out = call(repo, "list_directory")
    entries = out.splitlines()[1:]
    assert "src/" in entries and "README.md" in entries and "untracked.py" in entries
    assert "build/" not in entries  # .gitignore
    assert ".env" not in out  # sensitive names are not listed
    assert ".git/" not in entries
    assert entries.index("src/") < entries.index("README.md")  # directories first


def test_list_directory_recursive_pattern(repo: Path) -> None:
    out = call(repo, "list_directory", path="src", pattern="**/*.py")
    assert out.splitlines()[1:] == ["app.py", "util/helpers.py"]


def test_list_directory_caps_with_count(make_repo) -> None:
    root = make_repo({f"f{n:04}.txt": "x" for n in range(350)})
    out = call(root, "list_directory")
    assert out.splitlines()[0] == "./ (350 entries)"
    assert "[showing 300 of 350 entries" in out.splitlines()[-1]


def test_list_directory_does_not_follow_symlinks_out(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.txt").write_text("nope")
    os.symlink(outside, repo / "escape")
    assert "private.txt" not in call(repo, "list_directory", pattern="**")
    assert "outside the repository root" in call(repo, "list_directory", path="escape")


def test_file_info(repo: Path) -> None:
    out = call(repo, "file_info", path="src/app.py")
    assert "size: 27 bytes" in out or "bytes" in out
    assert "lines: 2" in out and "language: Python" in out and "content: text" in out
    assert "git: tracked" in out
    assert "git: untracked" in call(repo, "file_info", path="untracked.py")
    assert "content: binary" in call(repo, "file_info", path="logo.png")


def test_file_info_outside_git(make_repo) -> None:
    root = make_repo({"a.txt": "hi\n"}, git_init=False)
    out = call(root, "file_info", path="a.txt")
    assert "git: not a git repository" in out


def test_odd_file_names_and_absurd_counts(make_repo) -> None:
    root = make_repo(
        {
            "we ird\nname.py": "def odd_one():\n    pass\n",
            "ünïcödé.py": "def unicode_one():\n    pass\n",
            "-rf.py": "def dash_one():\n    pass\n",
            "bad_bytes.txt": b"ok \xff\xfe\xfd line\n",
        }
    )
    listing = call(root, "list_directory")
    assert "ünïcödé.py" in listing and "-rf.py" in listing
    assert "def dash_one" in call(root, "read_file", path="-rf.py")
    assert "def unicode_one" in call(root, "read_file", path="ünïcödé.py")
    assert "\ufffd" in call(root, "read_file", path="bad_bytes.txt")
    found = call(root, "search_code", pattern="_one", max_results=10**9)
    assert found.splitlines()[0].startswith("3 matches in 3 files")
    assert call(root, "search_code", pattern="(" * 2000).startswith("Error: ")
    assert call(root, "search_code", pattern="a{99999999}").startswith("Error: ")
    assert call(root, "git_log", max_count=-5).count("Initial commit") == 1
    assert call(root, "read_file", path="-rf.py", start_line=-10).splitlines()[1].strip()


def test_list_directory_recursive_pattern_forms(repo: Path) -> None:
    def entries(**kwargs: object) -> list[str]:
        return call(repo, "list_directory", **kwargs).splitlines()[1:]

    assert entries(pattern="**/helpers.py") == ["src/util/helpers.py"]
    assert entries(path="src", pattern="util/**") == ["util/helpers.py"]
    assert entries(path="src", pattern="**.py") == ["app.py", "util/helpers.py"]  # by name
    assert entries(pattern="src/**/*.py") == ["src/app.py", "src/util/helpers.py"]
    assert "build/out.txt" not in entries(pattern="**")
    assert entries(pattern="*.MD") == []  # case-sensitive, like the rest of the tools
    assert call(repo, "list_directory", pattern="**/" * 40).startswith(
        "Error: pattern has too many"
    )


def test_a_newline_in_a_name_cannot_fake_a_row(tmp_path) -> None:
    from local_brain.tools import all_tools
    from local_brain.workspace import Workspace

    (tmp_path / "notes\nfake.txt").write_text("harmless\n")
    (tmp_path / "a.txt").write_text("harmless\n")
    ws = Workspace(tmp_path)
    listing = all_tools()["list_directory"].run(ws)
    assert "notes?fake.txt" in listing and "\nfake.txt" not in listing
    found = all_tools()["search_code"].run(ws, pattern="harmless")
    assert "notes?fake.txt" in found and "\nfake.txt" not in found


def test_sizes_are_shown_in_binary_units() -> None:
    # One convention for file_info and `models`: 1 KB = 1024 bytes, as the limits count.
    from local_brain.units import human_size

    assert [human_size(n) for n in (27, 1023, 1024, 1536, 64 * 1024**2, 3 * 1024**3)] == [
        "27 bytes",
        "1023 bytes",
        "1.0 KB",
        "1.5 KB",
        "64.0 MB",
        "3.0 GB",
    ]


def _wide_deep_tree(root: Path, width: int = 30, depth: int = 3) -> int:
    """A tree of ``width`` directories per level, ``depth`` levels, one file in each."""
    count = 0
    level = [root]
    for _ in range(depth):
        nxt = []
        for parent in level:
            for n in range(width if parent == root else 3):
                child = parent / f"d{n:02}"
                child.mkdir()
                (child / "f.txt").write_text("x\n")
                count += 1
                nxt.append(child)
        level = nxt
    return count


def test_list_directory_of_one_level_reads_one_directory(tmp_path: Path, monkeypatch) -> None:
    import subprocess

    assert _wide_deep_tree(tmp_path) > 300
    (tmp_path / "top.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("d29/\n")
    read: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: object = ".") -> object:
        read.append(str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    def no_subprocess(*args: object, **kwargs: object) -> object:
        raise AssertionError("a one-level listing must not start rg or any walk")

    monkeypatch.setattr(os, "scandir", counting_scandir)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)

    out = call(tmp_path, "list_directory")

    assert read == [str(tmp_path)]  # one directory read: nothing below it was walked
    entries = out.splitlines()[1:]
    assert entries[:2] == ["d00/", "d01/"] and "top.py" in entries and ".gitignore" in entries
    assert "d29/" not in entries  # ignore rules still apply
    assert out.splitlines()[0] == "./ (31 entries)"


def test_a_recursive_listing_is_bounded(tmp_path: Path, monkeypatch) -> None:
    from local_brain.tools import directory

    _wide_deep_tree(tmp_path)
    visited: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: object = ".") -> object:
        visited.append(str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", counting_scandir)
    monkeypatch.setattr(directory, "RECURSIVE_MAX_FILES", 40)

    out = call(tmp_path, "list_directory", pattern="**/*.txt")

    lines = out.splitlines()
    assert lines[0] == "./ (40+ entries)"
    assert lines[-1].startswith("[listing stopped early:")
    assert len(visited) < 60  # the walk stopped: the tree has over 300 directories

    monkeypatch.setattr(directory, "RECURSIVE_MAX_FILES", 10**6)
    monkeypatch.setattr(directory, "RECURSIVE_TIMEOUT_SECONDS", 0.0)
    timed_out = call(tmp_path, "list_directory", pattern="**")
    assert "[listing stopped early:" in timed_out
