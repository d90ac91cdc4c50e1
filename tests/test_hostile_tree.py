"""The file tools against a hostile repository: ignore files that are symlinks to /dev/zero,
FIFOs or huge; pathological ignore rules and globs; a committed ``rg``; catastrophic
regexes in the Python engine; FIFOs and devices where files should be.

Real temporary repositories and the real rg throughout. Every call that used to hang or eat
memory runs in a forked child with a deadline and an address-space limit (``bounded``), so
a regression fails the test instead of the machine.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local_brain.tools import all_tools
from local_brain.tools.ignore import rebase_rule, sanitise_rule
from local_brain.tools.listing import is_hidden_from_results, iter_files_python, iter_source_files
from local_brain.tools.ripgrep import find_rg
from local_brain.tools.search import python_search_code, search_code
from local_brain.workspace import Workspace, is_sensitive_path

TOOLS = all_tools()
CHILD_MEMORY_BYTES = 8 * 1024**3


def bounded(function: Callable[..., Any], *args: Any, seconds: float = 20.0, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in a forked child under a memory limit; fail the test
    when it does not return within ``seconds``."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, hard))
        try:
            send.send(("ok", function(*args, **kwargs)))
        except BaseException as error:
            send.send(("raised", f"{type(error).__name__}: {error}"))

    process = context.Process(target=child, daemon=True)
    process.start()
    try:
        if not receive.poll(seconds):
            pytest.fail(f"{getattr(function, '__name__', function)} ran over {seconds}s")
        status, value = receive.recv()
    finally:
        process.kill()
        process.join(5)
    assert status == "ok", value
    return value


def call(root: Path, name: str, **kwargs: Any) -> str:
    return TOOLS[name].run(Workspace(root), **kwargs)


def listed(root: Path, engine: str) -> list[str]:
    ws = Workspace(root)
    if engine == "rg":
        return list(iter_source_files(ws, ws.root))
    return list(iter_files_python(ws, ws.root))


def test_the_rg_engine_is_available() -> None:
    assert find_rg() is not None


# -- 1. ignore files as hostile input -------------------------------------------------------


def _make_hostile(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "dev-zero":
        os.symlink("/dev/zero", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with path.open("wb") as handle:
            handle.truncate(3 * 1024**3)  # sparse: 3 GB of NULs, no disk used
    else:
        raise AssertionError(kind)


HOSTILE_PLACES = [
    ".gitignore",
    ".ignore",
    ".rgignore",
    "src/.gitignore",
    "src/deep/.rgignore",
    "src/.ignore",
    ".git/info/exclude",
]


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "huge"])
def test_hostile_ignore_files_do_not_hang_and_normal_rules_still_apply(make_repo, kind) -> None:
    root = make_repo(
        {
            "top.txt": "needle\n",
            "src/app.py": "def needle():\n    return 1\n",
            "src/deep/more.py": "class Needle:\n    pass\n",
            "keep/.gitignore": "ignored.txt\n",
            "keep/ignored.txt": "needle\n",
            "keep/kept.txt": "needle\n",
        }
    )
    for place in HOSTILE_PLACES:
        _make_hostile(root / place, kind)
    expected = ["keep/kept.txt:1", "src/app.py:1", "src/deep/more.py:1", "top.txt:1"]
    for engine in (search_code, python_search_code):
        out = bounded(engine, Workspace(root), "(?i)needle")
        rows = [line.split(": ")[0] for line in out.splitlines()[1:]]
        assert rows == expected, (engine.__name__, out)
        sub = bounded(engine, Workspace(root), "needle", path="src")
        assert sub.splitlines()[0] == "1 match in 1 file (showing 1)", sub
    for engine in ("rg", "python"):
        files = bounded(listed, root, engine)
        assert "keep/ignored.txt" not in files and "keep/kept.txt" in files, engine
    listing = bounded(call, root, "list_directory", pattern="**")
    assert "keep/kept.txt" in listing and "keep/ignored.txt" not in listing
    outline = bounded(call, root, "list_definitions", path=".")
    assert "function needle()" in outline and "class Needle" in outline


def test_git_dir_as_a_hostile_file_does_not_hang(make_repo) -> None:
    root = make_repo({"a.txt": "needle\n", ".gitignore": "b.txt\n", "b.txt": "needle\n"})
    os.rename(root / ".git", root / "real-git")
    (root / ".git").symlink_to("/dev/zero")
    for engine in (search_code, python_search_code):
        out = bounded(engine, Workspace(root), "needle", glob="!real-git/")
        assert out.splitlines() == ["1 match in 1 file (showing 1)", "a.txt:1: needle"], out


# -- 2. pathological rules and globs --------------------------------------------------------

LONG = "a" * 250
PATHOLOGICAL = ["*" * 60 + "x", "*a" * 30 + "b", "**/" * 30 + "a", "a*" * 40, "*?" * 30 + "x"]


def test_pathological_ignore_rules_against_long_names_finish_quickly(make_repo) -> None:
    files = {f"{LONG}{n}/{LONG}/{LONG}": "needle\n" for n in range(3)}
    files["animals/fox"] = "needle\n"  # ignored: "***...x" means "*x"
    files["animals/dog"] = "needle\n"
    files[".gitignore"] = "\n".join(PATHOLOGICAL) + "\n"
    root = make_repo(files)
    started = time.monotonic()
    for engine in (search_code, python_search_code):
        out = bounded(engine, Workspace(root), "needle", seconds=10)
        assert out.splitlines()[0] == "4 matches in 4 files (showing 4)", (engine.__name__, out)
        assert "animals/fox" not in out and "animals/dog:1" in out
    assert time.monotonic() - started < 10


def test_pathological_list_directory_patterns_finish_quickly(make_repo) -> None:
    root = make_repo({f"{LONG}{n}/{LONG}": "x\n" for n in range(3)})
    for pattern in ["*" * 200 + "x", "**/" * 30 + "a", "*a" * 100 + "b", "[a]*" * 50 + "x"]:
        started = time.monotonic()
        out = bounded(call, root, "list_directory", pattern=pattern, seconds=10)
        assert time.monotonic() - started < 2.5, pattern
        assert "no entries match" in out
    assert "(3 entries)" in call(root, "list_directory", pattern="**/" + "a*" * 50)
    assert call(root, "list_directory", pattern="*" * 301).startswith("Error: pattern is not valid")


def test_unparseable_ignore_rules_are_skipped_and_never_shown(make_repo) -> None:
    root = make_repo(
        {
            ".gitignore": "[z-a]\nfoo[\n\\\n{x\nskip.txt\n",
            "skip.txt": "needle\n",
            "keep.txt": "needle\n",
        }
    )
    for engine in (search_code, python_search_code):
        out = engine(Workspace(root), "needle")
        assert out.splitlines() == ["1 match in 1 file (showing 1)", "keep.txt:1: needle"]
    error = call(root, "search_code", pattern="check(self")
    assert error.startswith("Error: invalid regex"), error
    assert "foo[" not in error and "{x" not in error


def test_ignore_rules_in_directories_with_glob_characters(make_repo) -> None:
    root = make_repo(
        {
            "we[ird]/.gitignore": "gen.txt\n",
            "we[ird]/gen.txt": "needle\n",
            "we[ird]/ok.txt": "needle\n",
            "wed/gen.txt": "needle\n",  # `we[ird]` unescaped would match "wed"
            "a*b/.gitignore": "/x.txt\n",
            "a*b/x.txt": "needle\n",
            "aXb/x.txt": "needle\n",
        }
    )
    # Unescaped, the rebased rules would also hide wed/gen.txt and aXb/x.txt.
    expected = ["aXb/x.txt", "we[ird]/ok.txt", "wed/gen.txt"]
    for engine in ("rg", "python"):
        files = [path for path in bounded(listed, root, engine) if not path.endswith("ignore")]
        assert files == expected, engine


def test_rule_sanitising() -> None:
    assert sanitise_rule("*" * 60 + "x") == "*x"
    assert sanitise_rule("**/" * 30 + "a") == "**/a"
    assert sanitise_rule("a/***/b") == "a/**/b"
    assert sanitise_rule("*a*b") == "*a*b"
    assert sanitise_rule("*a*a*b") is None  # three wildcards in one segment
    assert sanitise_rule("\\**\\*x") == "\\**\\*x"  # escaped stars are literals
    assert sanitise_rule("trailing   ") == "trailing"
    assert sanitise_rule("kept\\ ") == "kept\\ "
    assert sanitise_rule("# comment") is None and sanitise_rule("") is None
    assert sanitise_rule("x" * 2000) is None
    assert rebase_rule("foo", "a/b") == "/a/b/**/foo"
    assert rebase_rule("!/foo/", "a") == "!/a/foo/"
    assert rebase_rule("x/y", "d[1]") == "/d\\[1\\]/x/y"


def test_quick_sensitivity_check_agrees_on_directory_specific_paths() -> None:
    from local_brain import workspace

    for suffix in getattr(workspace, "SENSITIVE_PATHS", ()):
        for path in (suffix, f"dotfiles/{suffix}", f"x/{suffix.rsplit('/', 1)[-1]}"):
            assert is_hidden_from_results(path) == is_sensitive_path(path), path


# -- 3. a committed rg never runs -----------------------------------------------------------


@pytest.mark.parametrize("path_variable", [":/usr/bin:/bin", ".", "bin:/usr/bin", "REPO"])
def test_a_committed_rg_never_runs(make_repo, tmp_path: Path, monkeypatch, path_variable) -> None:
    marker = tmp_path / "rg-ran"
    script = f"#!/bin/sh\ntouch {marker}\nexit 0\n"
    root = make_repo({"rg": script, "bin/rg": script, "code.txt": "needle\n"})
    for fake in (root / "rg", root / "bin" / "rg"):
        fake.chmod(0o755)
    monkeypatch.chdir(root)
    monkeypatch.setenv("PATH", f"{root}:/usr/bin" if path_variable == "REPO" else path_variable)
    found = find_rg(root)
    assert found is not None and Path(found).resolve().parent != root
    assert not str(Path(found).resolve()).startswith(str(root.resolve()))
    out = call(root, "search_code", pattern="needle")
    assert out.splitlines() == ["1 match in 1 file (showing 1)", "code.txt:1: needle"]
    call(root, "list_directory", pattern="**")
    call(root, "list_definitions", path=".")
    assert not marker.exists()


# -- 4. the Python engine's regex is bounded ------------------------------------------------


def test_python_engine_stops_a_catastrophic_regex_at_the_deadline(make_repo, monkeypatch) -> None:
    from local_brain.tools import search

    root = make_repo({"a.txt": "a" * 60 + "b\n", "b.txt": "fine\n"})
    monkeypatch.setattr(search, "SEARCH_TIMEOUT_SECONDS", 2.0)
    started = time.monotonic()
    out = bounded(TOOLS["search_code"].run, Workspace(root), "(a+)+$", seconds=15)
    assert out == call(root, "search_code", pattern="(a+)+$")  # rg: linear, so no timeout
    slow = bounded(lambda: _fallback(root, "(a+)+$"), seconds=15)
    assert slow.startswith("Error: search timed out after 2s"), slow
    assert time.monotonic() - started < 12
    # Huge counted repeats compile to counters, not to gigabytes.
    assert bounded(lambda: _fallback(root, "a{99999999}"), seconds=15).startswith("0 matches")


def _fallback(root: Path, pattern: str) -> str:
    from local_brain.errors import ToolError

    try:
        return python_search_code(Workspace(root), pattern)
    except ToolError as error:
        return f"Error: {error}"


def test_python_engine_skips_files_over_the_size_cap(make_repo) -> None:
    root = make_repo({"small.txt": "needle\n"})
    with (root / "big.log").open("wb") as handle:  # text, so only the size cap skips it
        handle.write(b"needle\n")
        chunk = b"filler line\n" * 100_000
        while handle.tell() < 65 * 1024 * 1024:
            handle.write(chunk)
    out = bounded(python_search_code, Workspace(root), "needle")
    assert out.splitlines() == ["1 match in 1 file (showing 1)", "small.txt:1: needle"]
    assert out == search_code(Workspace(root), "needle")


# -- 5. only regular files are opened -------------------------------------------------------


def _special_files(root: Path) -> list[str]:
    os.mkfifo(root / "notes")
    os.mkfifo(root / "api.py")
    (root / "link.py").symlink_to("api.py")
    names = ["notes", "api.py", "link.py"]
    try:
        os.mknod(root / "zero.py", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # like /dev/zero
        names.append("zero.py")
    except (PermissionError, OSError):
        pass
    return names


def test_fifos_and_devices_are_never_opened(make_repo) -> None:
    root = make_repo({"src/real.py": "def real():\n    pass\n", "text.txt": "needle\n"})
    for name in _special_files(root):
        for tool, kwargs in [
            ("read_file", {"path": name}),
            ("list_definitions", {"path": name}),
            ("search_code", {"pattern": "x", "path": name}),
        ]:
            out = bounded(call, root, tool, **kwargs, seconds=10)
            assert out.startswith("Error: "), (tool, name, out)
            assert "not a regular file" in out or "no definition parser" in out, out
        info = bounded(call, root, "file_info", path=name, seconds=10)
        assert "not a regular file; not read" in info, info
    for engine in (search_code, python_search_code):
        out = bounded(engine, Workspace(root), "needle|real")
        assert out.splitlines()[0] == "2 matches in 2 files (showing 2)", out
    listing = bounded(call, root, "list_directory", pattern="**")
    assert listing.splitlines()[1:] == ["src/real.py", "text.txt"]
    outline = bounded(call, root, "list_definitions", path=".")
    assert outline.splitlines()[:2] == [".: 1 definition in 1 file", "src/real.py"]
