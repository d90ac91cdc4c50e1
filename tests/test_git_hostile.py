"""The git tools against hostile repositories: their .git, their history and their PATH.

Every test builds a real repository (no mocked git). Where it is cheap, plain git is run on
the same setup to show the attack is live, so a passing test means the tools defended.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from local_brain.errors import ToolError
from local_brain.tools.git import (
    GIT_CHANGED_FILES,
    GIT_DIFF,
    GIT_LOG,
    GIT_STATUS,
    MAX_INDEX_BYTES,
    git_changed_files,
    git_diff,
    git_log,
    git_status,
    is_tracked,
    process,
    runner,
)
from local_brain.tools.git.layout import is_safe_directory
from local_brain.tools.git.process import Process, failure
from local_brain.tools.git.runner import copy_index
from local_brain.workspace import Workspace
from tests.conftest import git
from tests.fakes.model_server import ModelServer
from tests.test_e2e import code, run_cli

REFUSED = "Error: git tools refused: this repository's .git is not a plain git directory of its own"
VICTIM_CANARY = "VICTIM-CANARY-7731"
SECRET = "hunter2-SECRET-5150"


def ws(root: Path) -> Workspace:
    return Workspace(root)


def all_outputs(root: Path) -> list[str]:
    """Every git tool in its main modes, plus file_info's view, on ``root``."""
    w = ws(root)
    return [
        GIT_STATUS.run(w),
        GIT_DIFF.run(w),
        GIT_DIFF.run(w, staged=True),
        GIT_DIFF.run(w, ref="HEAD"),
        GIT_LOG.run(w, max_count=50),
        GIT_CHANGED_FILES.run(w, include_untracked=True),
        is_tracked(w, root),
    ]


def assert_refused(root: Path, reason: str) -> None:
    outputs = all_outputs(root)
    for out in outputs[:-1]:
        assert out.startswith(REFUSED), out
        assert f"({reason})" in out
        assert len(out.splitlines()) == 1
        assert VICTIM_CANARY not in out
    assert outputs[-1] == "unknown (git tools refused this repository)"


@pytest.fixture
def victim(make_repo) -> Path:
    """Another repository on the same machine, which no hostile repository may show."""
    root = make_repo({"private.txt": f"{VICTIM_CANARY}\n"}, name="victim")
    git(root, "commit", "-q", "--allow-empty", "-m", f"victim commit {VICTIM_CANARY}")
    return root


@pytest.fixture
def hostile(make_repo) -> Path:
    return make_repo({"app.py": "print(1)\n"}, name="hostile")


def plain_git(root: Path, *args: str) -> str:
    """Plain git, as a user would run it, stdout and stderr together."""
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    return done.stdout + done.stderr


# -- 1. the index ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "symlink-to-big-file"])
def test_index_that_is_not_a_regular_file_is_refused_at_once(
    hostile: Path, tmp_path: Path, kind: str
) -> None:
    index = hostile / ".git" / "index"
    index.unlink()
    if kind == "dev-zero":
        index.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(index)
    else:
        big = tmp_path / "big"
        big.write_bytes(b"x")
        os.truncate(big, 8 * 1024**3)  # sparse: costs nothing on disk
        index.symlink_to(big)
    started = time.monotonic()
    reason = ".git/index is not a regular file" if kind == "fifo" else ".git/index is a symlink"
    assert_refused(hostile, reason)
    assert time.monotonic() - started < 5


def test_oversized_index_is_refused_not_copied(hostile: Path) -> None:
    os.truncate(hostile / ".git" / "index", MAX_INDEX_BYTES + 1)
    expected = (
        "Error: git tools refused: this repository's index is larger than 128 MiB; "
        "file tools still work"
    )
    for out in all_outputs(hostile)[:-1]:
        assert out == expected


def test_index_copy_never_follows_or_blocks(tmp_path: Path) -> None:
    """The copy is the second layer (the layout check is the first): no symlink, FIFO or
    device is ever opened for reading, and the copy keeps the index's mtime."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to("/dev/zero")
    for source in (fifo, link, Path("/dev/zero")):
        with pytest.raises(ToolError, match="not a regular file"):
            copy_index(source, tmp_path / f"copy-{source.name}")
    regular = tmp_path / "index"
    regular.write_bytes(b"DIRC" + b"\0" * 100)
    os.utime(regular, (1_000_000, 1_000_000))
    copy_index(regular, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == regular.read_bytes()
    assert (tmp_path / "copy").stat().st_mtime == 1_000_000
    copy_index(tmp_path / "missing", tmp_path / "none")  # no index yet: nothing to copy
    assert not (tmp_path / "none").exists()


def test_git_never_opens_the_repository_index(
    hostile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (hostile / "app.py").write_text("print(2)\n")
    os.utime(hostile / "app.py", (1, 1))  # stat-dirty: a plain diff would refresh the index
    index = hostile / ".git" / "index"
    before = (index.read_bytes(), index.stat().st_mtime_ns)
    assert "+print(2)" in git_diff(ws(hostile))
    assert "M  app.py" in git_status(ws(hostile))
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    assert list(scratch.iterdir()) == []  # the private copies are gone


# -- 2. the git directory -------------------------------------------------------------------


def test_live_attack_gitdir_file(victim: Path, make_repo) -> None:
    root = make_repo({"readme.md": "hello\n"}, git_init=False, name="unpacked")
    (root / ".git").write_text(f"gitdir: {victim / '.git'}\n")
    assert VICTIM_CANARY in plain_git(root, "log", "-1")  # plain git follows the pointer
    assert_refused(root, ".git is a file that points to another git directory")


def test_symlinked_dot_git(victim: Path, make_repo) -> None:
    root = make_repo({"readme.md": "hello\n"}, git_init=False, name="unpacked")
    (root / ".git").symlink_to(victim / ".git")
    assert VICTIM_CANARY in plain_git(root, "log", "-1")
    assert_refused(root, ".git is a symlink")


def test_gitdir_file_aimed_at_a_real_linked_worktree(victim: Path, make_repo, tmp_path) -> None:
    """Even a pointer at a genuine `worktrees/<name>` of another repository is refused: that
    entry's back-link names the other repository's own work tree, not this one."""
    git(victim, "worktree", "add", "-q", str(tmp_path / "victim-wt"), "-b", "wt")
    root = make_repo({"readme.md": "hello\n"}, git_init=False, name="unpacked")
    (root / ".git").write_text(f"gitdir: {victim / '.git' / 'worktrees' / 'victim-wt'}\n")
    assert_refused(root, ".git is a file that points to another git directory")
    assert git_status(ws(tmp_path / "victim-wt")).startswith("On branch wt")  # the real one


def test_copied_linked_worktree_file_is_refused(make_repo, tmp_path: Path) -> None:
    main = make_repo({"a.py": "1\n"}, name="main")
    git(main, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "side")
    copy = make_repo({"b.py": "2\n"}, git_init=False, name="copy")
    (copy / ".git").write_bytes((tmp_path / "linked" / ".git").read_bytes())
    assert_refused(copy, ".git is a file that points to another git directory")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("commondir", ".git/commondir points to another git directory"),
        ("alternates", ".git/objects/info/alternates borrows objects from another repository"),
        (
            "http-alternates",
            ".git/objects/info/http-alternates borrows objects from another repository",
        ),
    ],
)
def test_borrowing_from_another_repository_is_refused(
    victim: Path, hostile: Path, setup: str, reason: str
) -> None:
    dot = hostile / ".git"
    if setup == "commondir":
        (dot / "commondir").write_text(f"{victim / '.git'}\n")
        assert VICTIM_CANARY in plain_git(hostile, "log", "-1")
    elif setup == "alternates":
        (dot / "objects" / "info" / "alternates").write_text(f"{victim / '.git' / 'objects'}\n")
        victim_head = git(victim, "rev-parse", "HEAD").strip()
        git(hostile, "update-ref", "refs/heads/stolen", victim_head)
        assert VICTIM_CANARY in plain_git(hostile, "log", "-1", "stolen")
    else:
        (dot / "objects" / "info" / "http-alternates").write_text("http://127.0.0.1:9/objects\n")
    assert_refused(hostile, reason)


@pytest.mark.parametrize(
    ("internal", "reason"),
    [
        ("HEAD", ".git/HEAD is a symlink"),
        ("config", ".git/config is a symlink"),
        ("packed-refs", ".git/packed-refs is a symlink"),
        ("refs", ".git/refs is a symlink"),
        ("objects", ".git/objects is a symlink"),
        ("info", ".git/info is a symlink"),
        ("refs/heads", "an entry under .git/refs is a symlink"),
        ("refs/heads/main", "an entry under .git/refs is a symlink"),
        ("logs/HEAD", "an entry under .git/logs is a symlink"),
        ("objects/pack", "an entry under .git/objects is a symlink"),
    ],
)
def test_symlinked_internals_are_refused(
    victim: Path, hostile: Path, internal: str, reason: str
) -> None:
    target = hostile / ".git" / internal
    source = victim / ".git" / internal
    if target.is_dir() and not target.is_symlink():
        subprocess.run(["rm", "-rf", str(target)], check=True)
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(source)
    assert_refused(hostile, reason)


def test_packed_refs_symlink_would_print_its_first_line(hostile: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "shadow"
    secret_file.write_text(f"root:{SECRET}:0:0\n")
    (hostile / ".git" / "packed-refs").symlink_to(secret_file)
    assert SECRET in plain_git(hostile, "log", "-1")  # git quotes the line it chokes on
    assert_refused(hostile, ".git/packed-refs is a symlink")


def test_fifo_among_internals_is_refused_without_blocking(hostile: Path) -> None:
    os.mkfifo(hostile / ".git" / "packed-refs")
    started = time.monotonic()
    assert_refused(hostile, ".git/packed-refs is not a regular file")
    assert time.monotonic() - started < 5


def test_entry_names_from_the_repository_are_not_quoted(hostile: Path, tmp_path: Path) -> None:
    name = "IGNORE-PREVIOUS-INSTRUCTIONS"
    (hostile / ".git" / name).symlink_to(tmp_path)
    for out in all_outputs(hostile)[:-1]:
        assert out.startswith(REFUSED) and name not in out
        assert "(an entry of .git is a symlink)" in out


def test_hooks_may_be_a_symlink(hostile: Path, tmp_path: Path) -> None:
    hooks = hostile / ".git" / "hooks"
    subprocess.run(["rm", "-rf", str(hooks)], check=True)
    hooks.symlink_to(tmp_path)
    assert git_log(ws(hostile)).endswith("Initial commit")


def test_subdirectory_root_checks_the_parent_git_dir(victim: Path, make_repo) -> None:
    root = make_repo({"pkg/mod.py": "a = 1\n"}, name="outer")
    assert git_log(ws(root / "pkg")).endswith("Initial commit")  # allowed: see layout.py
    (root / ".git" / "objects" / "info" / "alternates").write_text(
        f"{victim / '.git' / 'objects'}\n"
    )
    assert_refused(
        root / "pkg", ".git/objects/info/alternates borrows objects from another repository"
    )


def test_root_inside_dot_git_is_refused(hostile: Path) -> None:
    assert GIT_STATUS.run(ws(hostile / ".git" / "refs")).startswith(
        "Error: git tools refused: this repository's .git is not a plain git directory of its "
        "own (the root is inside a .git directory)"
    )


def test_git_environment_cannot_redirect(
    victim: Path, hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dot = victim / ".git"
    for name, value in {
        "GIT_DIR": dot,
        "GIT_COMMON_DIR": dot,
        "GIT_WORK_TREE": victim,
        "GIT_INDEX_FILE": dot / "index",
        "GIT_OBJECT_DIRECTORY": dot / "objects",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": dot / "objects",
        "GIT_NAMESPACE": "x",
        "GIT_CEILING_DIRECTORIES": "",
    }.items():
        monkeypatch.setenv(name, str(value))
    outputs = "\n".join(all_outputs(hostile))
    assert VICTIM_CANARY not in outputs and "private.txt" not in outputs
    assert "Initial commit" in outputs


def test_safe_directory_matching() -> None:
    wt = Path("/srv/repos/project")
    assert is_safe_directory(wt, ["*"])
    assert is_safe_directory(wt, ["/srv/repos/project"])
    assert is_safe_directory(wt, ["/srv/repos/*"])
    assert not is_safe_directory(wt, ["/srv/repos/project-other", "/srv/rep*"])
    assert not is_safe_directory(wt, ["*", ""])  # an empty value resets the list


# -- 3. git's stderr ----------------------------------------------------------------------


def test_git_errors_never_quote_the_repository(hostile: Path) -> None:
    """packed-refs as a regular file (a copy or hard link of anything): git's error quotes
    its first line; the tools report a fixed message instead."""
    (hostile / ".git" / "packed-refs").write_text(f"root:{SECRET}\n")  # shorter than an id
    assert SECRET in plain_git(hostile, "log", "-1")
    for out in all_outputs(hostile)[:-1]:
        assert out == "Error: git rev-parse failed: the repository's refs are corrupt"


def test_failure_messages_are_fixed() -> None:
    cases = {
        "fatal: ambiguous argument 'x{S}': unknown revision or path": "git log failed: ambiguous",
        "fatal: bad revision '{S}'": "git log failed: unknown revision",
        "fatal: '{S}' is outside repository at '/r'": "git log failed: path is outside",
        "error: pathspec '{S}' did not match any file(s) known to git": "git log failed: path not",
        "fatal: bad config line 3 in file .git/config {S}": "git log failed: the repository's git",
        "fatal: unknown repository extension found: {S}": "git log failed: this repository needs",
        "fatal: index file smaller than expected {S}": "git log failed: the repository's index",
        "fatal: unexpected line in .git/packed-refs: {S}": "git log failed: the repository's refs",
        "error: inflate: data stream error {S}": "git log failed: the repository's objects",
        "fatal: Out of memory, malloc failed {S}": "git log failed: out of memory",
        "fatal: {S}": "git log failed (exit 128)",
        "": "git log failed (exit 128)",
    }
    for stderr, expected in cases.items():
        message = str(failure("log", stderr.replace("{S}", SECRET), 128))
        assert message.startswith(expected), (stderr, message)
        assert SECRET not in message and "\n" not in message


# -- 4. renames and copies in history -----------------------------------------------------


@pytest.fixture(params=[(".env", "notes.txt"), ("notes.txt", ".env")], ids=["from-env", "to-env"])
def moved_secret(request: pytest.FixtureRequest, make_repo) -> Path:
    """A secret moved between a sensitive and a harmless name in the last commit."""
    source, target = request.param
    lines = "".join(f"line {n}\n" for n in range(30))
    root = make_repo({source: f"TOKEN={SECRET}\n{lines}", "a.py": "1\n"})
    git(root, "mv", source, target)
    (root / target).write_text(f"TOKEN={SECRET}\n{lines}extra\n")  # an inexact rename
    (root / "a.py").write_text("2\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Move the token")
    return root


def test_moved_secret_never_shows_in_a_diff(moved_secret: Path) -> None:
    # Plain git with a path limit cannot pair the rename and shows the secret.
    assert SECRET in plain_git(moved_secret, "diff", "HEAD~1", "HEAD", "--", "notes.txt")
    w = ws(moved_secret)
    outputs = []
    for ref in (None, "HEAD~1", "HEAD~1..HEAD", "HEAD~1...HEAD"):
        for path in (None, "notes.txt", "."):
            for staged in (False, True):
                if staged and ref and ".." in ref:
                    continue
                outputs.append(GIT_DIFF.run(w, ref=ref, staged=staged, path=path))
    joined = "\n".join(outputs)
    assert SECRET not in joined
    assert "notes.txt" not in joined.replace("in notes.txt", "")
    assert "+2" in GIT_DIFF.run(w, ref="HEAD~1")  # the rest of the change is shown
    assert "(1 sensitive file omitted)" in GIT_DIFF.run(w, ref="HEAD~1", path="notes.txt")
    assert GIT_LOG.run(w, path="notes.txt").endswith(("Move the token", "Initial commit"))


def test_secret_moved_in_the_working_tree(make_repo) -> None:
    root = make_repo({".env": f"TOKEN={SECRET}\n", "a.py": "1\n"})
    git(root, "mv", ".env", "notes.txt")
    w = ws(root)
    joined = "\n".join(
        [
            git_diff(w, staged=True, path="notes.txt"),
            git_diff(w, ref="HEAD", path="notes.txt"),
            git_status(w),
            git_changed_files(w),
            git_changed_files(w, staged=True),
        ]
    )
    assert SECRET not in joined and "notes.txt" not in joined.replace("in notes.txt", "")


def test_copy_of_an_unchanged_secret_is_hidden(make_repo) -> None:
    root = make_repo(
        {".env": f"TOKEN={SECRET}\n", "a.py": "1\n"},
        commits=[("Add notes", {"backup.txt": f"TOKEN={SECRET}\n", "a.py": "2\n"})],
    )
    out = git_diff(ws(root), ref="HEAD~1..HEAD")
    assert SECRET not in out and "backup.txt" not in out
    assert "+2" in out and out.endswith("(1 sensitive file omitted)")
    assert SECRET not in git_diff(ws(root), ref="HEAD~1..HEAD", path="backup.txt")


def test_secret_moved_into_a_subdirectory_root(make_repo) -> None:
    """The pairing looks at the whole work tree, not just the workspace root."""
    root = make_repo({".env": f"TOKEN={SECRET}\n", "pkg/a.py": "1\n"})
    git(root, "mv", ".env", "pkg/notes.txt")
    (root / "pkg" / "a.py").write_text("2\n")
    git(root, "commit", "-qam", "Move into pkg")
    sub = ws(root / "pkg")
    outputs = [git_diff(sub, ref="HEAD~1"), git_diff(sub, ref="HEAD~1..HEAD", path="notes.txt")]
    assert SECRET not in "\n".join(outputs)
    assert "+2" in outputs[0]


def test_hostile_rename_limit_does_not_defeat_pairing(make_repo) -> None:
    body = "".join(f"common line {n}\n" for n in range(40))
    files = {f"f{n}.txt": f"{n}\n{body}" for n in range(4)}
    root = make_repo({".env": f"TOKEN={SECRET}\n{body}", **files})
    git(root, "mv", ".env", "notes.txt")
    for n in range(4):
        git(root, "mv", f"f{n}.txt", f"g{n}.txt")
        with (root / f"g{n}.txt").open("a") as handle:
            handle.write("changed\n")
    with (root / "notes.txt").open("a") as handle:
        handle.write("changed\n")
    git(root, "commit", "-qam", "Rename everything")
    git(root, "config", "diff.renameLimit", "1")
    assert SECRET in plain_git(root, "diff", "HEAD~1", "HEAD")
    out = git_diff(ws(root), ref="HEAD~1..HEAD")
    assert SECRET not in out
    assert "rename from f0.txt" in out


def test_skipped_rename_detection_hides_added_and_deleted_files(
    make_repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past git's rename limit pairing is incomplete: every added or deleted file could be a
    moved secret, so all of them are hidden when the change set touches a sensitive file."""
    body = "".join(f"common line {n}\n" for n in range(40))
    root = make_repo({".env": f"TOKEN={SECRET}\n{body}", "f.txt": f"f\n{body}", "k.py": "1\n"})
    git(root, "mv", ".env", "notes.txt")
    git(root, "mv", "f.txt", "g.txt")
    for name in ("notes.txt", "g.txt"):
        with (root / name).open("a") as handle:
            handle.write("changed\n")
    (root / "k.py").write_text("2\n")
    git(root, "commit", "-qam", "Rename")
    config = tuple(
        "diff.renameLimit=1" if item.startswith("diff.renameLimit=") else item
        for item in runner._SAFE_CONFIG
    )
    monkeypatch.setattr(runner, "_SAFE_CONFIG", config)
    out = git_diff(ws(root), ref="HEAD~1..HEAD")
    assert SECRET not in out and "notes.txt" not in out and "g.txt" not in out
    assert "+2" in out  # modified files are still shown


def test_harmless_renames_are_still_shown(make_repo) -> None:
    root = make_repo({"old.py": "".join(f"x{n} = {n}\n" for n in range(20))})
    git(root, "mv", "old.py", "new.py")
    git(root, "commit", "-qm", "Rename")
    out = git_diff(ws(root), ref="HEAD~1..HEAD")
    assert "rename from old.py" in out and "rename to new.py" in out


# -- 5. a committed `git` -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path_variable", [":/usr/bin:/bin", ".:/usr/bin:/bin", "bin:/usr/bin:/bin"]
)
def test_committed_git_never_runs(
    make_repo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path_variable: str
) -> None:
    marker = tmp_path / "fake-git-ran"
    fake = f'#!/bin/sh\ntouch "{marker}"\necho "fake git"\n'
    root = make_repo({"git": fake, "bin/git": fake, "app.py": "1\n"})
    for script in (root / "git", root / "bin" / "git"):
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.chdir(root)
    monkeypatch.setenv("PATH", f"{root / 'bin'}:{path_variable}")
    outputs = all_outputs(root)
    assert not marker.exists()
    assert outputs[4].endswith("Initial commit")
    assert outputs[-1] == "tracked"


def test_git_tools_do_not_import_gitpython(hostile: Path) -> None:
    script = (
        "import sys\n"
        "from local_brain.tools.git import git_log\n"
        "from local_brain.workspace import Workspace\n"
        f"print(git_log(Workspace({str(hostile)!r})))\n"
        "print('gitpython' if 'git' in sys.modules else 'no gitpython')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == "no gitpython"
    assert "Initial commit" in done.stdout


# -- 6. the git process ---------------------------------------------------------------------


def test_git_child_gets_its_own_session_and_a_memory_limit(tmp_path: Path) -> None:
    probe = "cat /proc/self/limits; echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$"
    with Process(["/bin/sh", "-c", probe], tmp_path, dict(os.environ)) as child:
        out, _ = child.read(65536)
        child.finish("probe")
    text = out.decode()
    limit = next(line for line in text.splitlines() if line.startswith("Max address space"))
    assert str(process.GIT_MEMORY_BYTES) in limit
    ids = dict(part.split("=") for part in text.split()[-2:])
    assert ids["sid"] == ids["pid"]


def test_deadline_kills_the_whole_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "GIT_TIMEOUT_S", 1.0)
    script = "sleep 60 & echo $!; wait"
    started = time.monotonic()
    with Process(["/bin/sh", "-c", script], tmp_path, dict(os.environ)) as child:
        grandchild = int(child.lines().__next__())
        with pytest.raises(ToolError, match=r"^git probe timed out after 1s$"):
            child.finish("probe")
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_hanging_git_times_out_with_one_line(
    hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO .gitignore makes git block for ever on open(); the deadline ends it."""
    monkeypatch.setattr(process, "GIT_TIMEOUT_S", 1.0)
    os.mkfifo(hostile / ".gitignore")
    started = time.monotonic()
    assert GIT_STATUS.run(ws(hostile)) == "Error: git status timed out after 1s"
    assert time.monotonic() - started < 10


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_hostile_gitdir_reaches_the_model_as_one_refusal(
    model_server: ModelServer, victim: Path, make_repo
) -> None:
    root = make_repo({"readme.md": "hello\n"}, git_init=False, name="unpacked")
    (root / ".git").write_text(f"gitdir: {victim / '.git'}\n")
    model_server.script(
        None,
        [code("print(git_log())\nprint(git_status())"), code('final_answer("done")')],
    )

    result = run_cli("-m", "qwen2.5:3b", "--root", str(root), "What changed?",
                     server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    seen = model_server.chat_requests()[1].last_text
    assert "git tools refused" in seen and "points to another git directory" in seen
    for request in model_server.requests:
        assert VICTIM_CANARY not in str(request.body)


@pytest.mark.slow
def test_cli_with_a_committed_git_and_an_empty_path_entry(
    model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    marker = tmp_path / "fake-git-ran"
    root = make_repo({"git": f'#!/bin/sh\ntouch "{marker}"\n', ".env": f"TOKEN={SECRET}\n"})
    (root / "git").chmod(0o755)
    git(root, "mv", ".env", "notes.txt")
    git(root, "commit", "-qm", "Rename the env file kiwi-77")
    model_server.script(
        None,
        [
            code('print(git_log())\nprint(git_diff(ref="HEAD~1", path="notes.txt"))'),
            code('final_answer("done")'),
        ],
    )
    path_variable = f":.:{os.path.dirname(sys.executable)}:/usr/bin:/bin"

    result = run_cli("-m", "qwen2.5:3b", "--root", str(root), "What changed?",
                     server=model_server, cwd=root, env={"PATH": path_variable})  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    seen = model_server.chat_requests()[1].last_text
    assert "Rename the env file kiwi-77" in seen
    assert "sensitive file omitted" in seen
    for request in model_server.requests:
        assert SECRET not in str(request.body)
