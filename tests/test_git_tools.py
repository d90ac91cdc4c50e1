"""git_status, git_diff, git_log and git_changed_files on real temporary repositories.

Nothing here mocks git. The hostile-repository tests also run plain git on the same setup
to prove the attack is live, so a passing test means the tool really defended against it.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from local_brain.errors import ToolError
from local_brain.tools.git import (
    GIT_CHANGED_FILES,
    GIT_DIFF,
    GIT_LOG,
    GIT_STATUS,
    NOT_A_REPO,
    TOOLS,
    git_changed_files,
    git_diff,
    git_log,
    git_status,
    is_tracked,
)
from local_brain.tools.git.parse import DiffCap, filter_sensitive_sections
from local_brain.tools.git.process import failure
from local_brain.workspace import Workspace
from tests.conftest import git

SECRET = "hunter2-SECRET"
NEW_SECRET = "rotated-SECRET"
LOG_LINE = re.compile(r"^[0-9a-f]{7,40} \d{4}-\d{2}-\d{2} Ada Tester: .+$")


def ws(root: Path) -> Workspace:
    return Workspace(root)


def every_output(root: Path) -> str:
    """The output of every git tool in every mode, concatenated."""
    w = ws(root)
    outputs = [
        GIT_STATUS.run(w),
        GIT_DIFF.run(w),
        GIT_DIFF.run(w, staged=True),
        GIT_DIFF.run(w, ref="HEAD"),
        GIT_DIFF.run(w, ref="HEAD~1..HEAD"),
        GIT_DIFF.run(w, ref="HEAD~1", staged=True),
        GIT_LOG.run(w, max_count=50),
        GIT_CHANGED_FILES.run(w),
        GIT_CHANGED_FILES.run(w, staged=True, include_untracked=True),
    ]
    return "\n".join(outputs)


@pytest.fixture
def repo(make_repo) -> Path:
    """main with two commits, then staged, unstaged and untracked changes."""
    root = make_repo(
        {"app.py": "def main():\n    return 1\n", "docs/guide.md": "# Guide\n", "old.txt": "x\n"},
        commits=[("Add helper module", {"helper.py": "VALUE = 1\n"})],
    )
    (root / "app.py").write_text("def main():\n    return 2\n")  # unstaged
    (root / "staged.py").write_text("STAGED = True\n")
    git(root, "add", "staged.py")  # staged, new
    git(root, "rm", "-q", "old.txt")  # staged deletion
    (root / "notes.txt").write_text("scratch\n")  # untracked
    return root


def hostile_script(tmp_path: Path, marker: Path, body: str = "") -> Path:
    """An executable that creates ``marker`` (proof that git ran it)."""
    script = tmp_path / f"evil-{marker.name}.sh"
    script.write_text(f'#!/bin/sh\ntouch "{marker}"\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


# -- git_status ---------------------------------------------------------------------------


def test_status_lists_branch_and_sections(repo: Path) -> None:
    out = git_status(ws(repo))
    assert out.splitlines() == [
        "On branch main (no upstream branch)",
        "Staged changes:",
        "  D  old.txt",
        "  A  staged.py",
        "Unstaged changes:",
        "  M  app.py",
        "Untracked files:",
        "  ?? notes.txt",
    ]


def test_status_clean_tree(make_repo) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    assert git_status(ws(root)) == "On branch main (no upstream branch)\nWorking tree clean"


def test_status_ahead_and_behind_upstream(make_repo) -> None:
    root = make_repo({"a.py": "1\n"})
    git(root, "checkout", "-q", "-b", "feature")
    git(root, "branch", "-q", "--set-upstream-to=main")
    assert "(up to date with main)" in git_status(ws(root)).splitlines()[0]
    (root / "a.py").write_text("2\n")
    git(root, "commit", "-qam", "feature work")
    git(root, "checkout", "-q", "main")
    (root / "b.py").write_text("b\n")
    git(root, "add", "b.py")
    git(root, "commit", "-qm", "main work 1")
    (root / "b.py").write_text("bb\n")
    git(root, "commit", "-qam", "main work 2")
    git(root, "checkout", "-q", "feature")
    first = git_status(ws(root)).splitlines()[0]
    assert first == "On branch feature (ahead 1, behind 2 vs main)"


def test_status_detached_head(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD~1").strip()
    git(repo, "stash", "-q", "--include-untracked")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    out = git_status(ws(repo))
    assert out.splitlines()[0] == f"HEAD detached at {sha[:7]}"
    assert "Working tree clean" in out


def test_status_empty_repository(make_repo) -> None:
    root = make_repo()
    assert git_status(ws(root)) == "On branch main (no commits yet)\nWorking tree clean"
    (root / "first.py").write_text("print(1)\n")
    git(root, "add", "first.py")
    assert git_status(ws(root)).splitlines() == [
        "On branch main (no commits yet)",
        "Staged changes:",
        "  A  first.py",
    ]


def test_status_does_not_write_the_index(repo: Path) -> None:
    index = repo / ".git" / "index"
    os.utime(repo / "docs" / "guide.md", (1, 1))  # stat-dirty: plain status would refresh
    before = index.read_bytes()
    git_status(ws(repo))
    git_changed_files(ws(repo))
    git_diff(ws(repo))
    assert index.read_bytes() == before


# -- git_changed_files ------------------------------------------------------------------


def test_changed_files_default_is_everything_uncommitted(repo: Path) -> None:
    assert git_changed_files(ws(repo)).splitlines() == [
        "3 files with uncommitted changes, staged or not (working tree vs HEAD):",
        "M  app.py",
        "D  old.txt",
        "A  staged.py",
    ]


def test_changed_files_staged_only_and_untracked(repo: Path) -> None:
    assert git_changed_files(ws(repo), staged=True).splitlines() == [
        "2 files with staged changes (index vs HEAD):",
        "D  old.txt",
        "A  staged.py",
    ]
    (repo / "build").mkdir()
    (repo / "build" / "out.o").write_text("obj\n")
    out = git_changed_files(ws(repo), include_untracked=True).splitlines()
    assert out[0].endswith(", 2 untracked:")
    assert out[-2:] == ["?? build/", "?? notes.txt"]


def test_changed_files_rename_and_clean(make_repo) -> None:
    root = make_repo({"src/old_name.py": "".join(f"line {n}\n" for n in range(20))})
    assert git_changed_files(ws(root)) == "no uncommitted changes"
    assert git_changed_files(ws(root), staged=True) == "no staged changes"
    git(root, "mv", "src/old_name.py", "src/new_name.py")
    assert "R  src/old_name.py -> src/new_name.py" in git_changed_files(ws(root)).splitlines()


def test_changed_files_in_empty_repository(make_repo) -> None:
    root = make_repo()
    (root / "a.py").write_text("a\n")
    git(root, "add", "a.py")
    (root / "loose.txt").write_text("l\n")
    out = git_changed_files(ws(root), include_untracked=True).splitlines()
    assert out[1:] == ["A  a.py", "?? loose.txt"]


# -- git_diff -----------------------------------------------------------------------------


def test_diff_unstaged_by_default(repo: Path) -> None:
    out = git_diff(ws(repo))
    assert "diff --git a/app.py b/app.py" in out
    assert "-    return 1" in out and "+    return 2" in out
    assert "staged.py" not in out and "old.txt" not in out


def test_diff_staged(repo: Path) -> None:
    out = git_diff(ws(repo), staged=True)
    assert "diff --git a/staged.py b/staged.py" in out
    assert "+STAGED = True" in out
    assert "deleted file mode" in out
    assert "app.py" not in out


def test_diff_empty_unstaged_hints_at_staged(make_repo) -> None:
    root = make_repo({"a.py": "1\n"})
    assert git_diff(ws(root)) == "no unstaged changes"
    (root / "a.py").write_text("2\n")
    git(root, "add", "a.py")
    assert git_diff(ws(root)) == "no unstaged changes; 1 file with staged changes: use staged=True"
    assert git_diff(ws(root), staged=True, path="missing.py") == "no staged changes in missing.py"


def test_diff_against_ref_and_between_refs(repo: Path) -> None:
    against_first = git_diff(ws(repo), ref="HEAD~1")
    assert "+VALUE = 1" in against_first  # helper.py was added after HEAD~1
    assert "+    return 2" in against_first  # and the working tree is included
    between = git_diff(ws(repo), ref="HEAD~1..HEAD")
    assert "diff --git a/helper.py b/helper.py" in between
    assert "app.py" not in between  # uncommitted changes are not part of a range
    assert git_diff(ws(repo), ref="HEAD...HEAD") == "no differences in HEAD...HEAD"
    assert git_diff(ws(repo), ref="main~1..main") == between


def test_diff_with_path(repo: Path) -> None:
    out = git_diff(ws(repo), ref="HEAD~1", path="helper.py")
    assert "helper.py" in out and "app.py" not in out
    assert git_diff(ws(repo), path="docs") == "no unstaged changes in docs"


def test_diff_path_is_literal_not_a_glob(repo: Path) -> None:
    assert git_diff(ws(repo), path="*.py") == "no unstaged changes in *.py"


def test_diff_unknown_ref(repo: Path) -> None:
    with pytest.raises(ToolError, match=r"^unknown revision: no-such-branch$"):
        git_diff(ws(repo), ref="no-such-branch")
    with pytest.raises(ToolError, match=r"^unknown revision: HEAD~99$"):
        git_diff(ws(repo), ref="HEAD~99")
    with pytest.raises(ToolError, match=r"^unknown revision: main\.\.nope$"):
        git_diff(ws(repo), ref="main..nope")


def test_diff_staged_with_range_is_refused(repo: Path) -> None:
    with pytest.raises(ToolError, match="cannot take a range"):
        git_diff(ws(repo), ref="HEAD~1..HEAD", staged=True)


def test_diff_is_capped_with_a_note(make_repo) -> None:
    root = make_repo({"big.py": "".join(f"old {n}\n" for n in range(1000)), "small.py": "s\n"})
    (root / "big.py").write_text("".join(f"new {n}\n" for n in range(1000)))
    (root / "small.py").write_text("t\n")
    out = git_diff(ws(root)).splitlines()
    assert len(out) == 401
    note = out[-1]
    assert note.startswith("[diff cut: showed 400 of 2,012 lines, 2 files changed.")
    assert 'path="big.py"' in note
    assert "big.py (+1000 -1000)" in note and "small.py (+1 -1)" in note
    assert len("\n".join(out)) < 26_000


def test_diff_char_cap_and_long_lines(make_repo) -> None:
    root = make_repo({"wide.txt": "x\n"})
    (root / "wide.txt").write_text("".join(f"{n} " + "y" * 2000 + "\n" for n in range(200)))
    out = git_diff(ws(root))
    assert len(out) < 25_000
    assert "[line truncated]" in out
    assert "[diff cut: showed" in out.splitlines()[-1]


def test_diff_in_empty_repository(make_repo) -> None:
    root = make_repo()
    assert git_diff(ws(root)) == "no unstaged changes"
    (root / "a.py").write_text("a = 1\n")
    git(root, "add", "a.py")
    assert "+a = 1" in git_diff(ws(root), staged=True)
    with pytest.raises(ToolError, match=r"^unknown revision: HEAD \(no commits yet\)$"):
        git_diff(ws(root), ref="HEAD")


# -- git_log ------------------------------------------------------------------------------


@pytest.fixture
def history(make_repo) -> Path:
    return make_repo(
        {"a.py": "0\n"},
        commits=[
            (f"Change number {n}", {"a.py" if n % 2 else "b.py": f"{n}\n"}) for n in range(1, 6)
        ],
    )


def test_log_format_and_order(history: Path) -> None:
    lines = git_log(ws(history)).splitlines()
    assert len(lines) == 6
    assert all(LOG_LINE.match(line) for line in lines)
    assert [line.split(": ", 1)[1] for line in lines] == [
        "Change number 5",
        "Change number 4",
        "Change number 3",
        "Change number 2",
        "Change number 1",
        "Initial commit",
    ]
    sha = git(history, "rev-parse", "--short", "HEAD").strip()
    date = git(history, "log", "-1", "--format=%ad", "--date=short").strip()
    assert lines[0] == f"{sha} {date} Ada Tester: Change number 5"


def test_log_max_count_and_more_note(history: Path) -> None:
    lines = git_log(ws(history), max_count=2).splitlines()
    assert len(lines) == 3
    assert lines[2].startswith("(the 2 most recent commits; more exist")
    assert len(git_log(ws(history), max_count=-7).splitlines()) == 2  # clamped to 1 + note
    assert len(git_log(ws(history), max_count=10**9).splitlines()) == 6  # clamped to 200
    assert GIT_LOG.run(ws(history), max_count="1").startswith(lines[0])


def test_log_with_path_and_ref(history: Path) -> None:
    subjects = [line.split(": ", 1)[1] for line in git_log(ws(history), path="b.py").splitlines()]
    assert subjects == ["Change number 4", "Change number 2"]
    ranged = git_log(ws(history), ref="HEAD~2..HEAD").splitlines()
    assert [line.split(": ", 1)[1] for line in ranged] == ["Change number 5", "Change number 4"]
    older = git_log(ws(history), ref="HEAD~4", max_count=1).splitlines()[0]
    assert older.endswith("Change number 1")
    assert git_log(ws(history), path="never.py") == "no commits touch never.py"
    assert git_log(ws(history), ref="HEAD..HEAD") == "no commits in HEAD..HEAD"


def test_log_empty_repository_and_unknown_ref(make_repo, history: Path) -> None:
    with pytest.raises(ToolError, match=r"^no commits yet$"):
        git_log(ws(make_repo()))
    assert GIT_LOG.run(ws(history), ref="v9.9") == "Error: unknown revision: v9.9"


# -- errors -------------------------------------------------------------------------------


def test_not_a_git_repository(make_repo) -> None:
    root = make_repo({"a.py": "1\n"}, git_init=False)
    for spec in TOOLS:
        assert spec.run(ws(root)) == f"Error: {NOT_A_REPO}"


def test_git_missing(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = GIT_STATUS.run(ws(repo))
    assert out.startswith("Error: git is not installed or not on PATH")


def test_dubious_ownership(make_repo, hermetic_env: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the repository to another user")
    root = make_repo({"a.py": "1\n"})
    subprocess.run(["chown", "-R", "65534:65534", str(root)], check=True)
    out = GIT_STATUS.run(ws(root))
    assert out.startswith("Error: git refuses this repository because another user owns it")
    # The user's own global safe.directory is honoured even though other global config is not.
    (hermetic_env / ".gitconfig").write_text(f"[safe]\n\tdirectory = {root}\n")
    assert GIT_STATUS.run(ws(root)) == "On branch main (no upstream branch)\nWorking tree clean"


# -- workspace root below the repository root ---------------------------------------------


def test_workspace_in_a_subdirectory(make_repo) -> None:
    root = make_repo(
        {"pkg/mod.py": "a = 1\n", "other/x.py": "x = 1\n"},
        commits=[("Touch other only", {"other/x.py": "x = 2\n"})],
    )
    (root / "pkg" / "mod.py").write_text("a = 2\n")
    (root / "other" / "x.py").write_text("x = 3\n")
    (root / "pkg" / "new.py").write_text("n\n")
    sub = ws(root / "pkg")
    status = git_status(sub)
    assert "  M  mod.py" in status and "  ?? new.py" in status
    assert "other" not in status
    diff = git_diff(sub)
    assert "diff --git a/mod.py b/mod.py" in diff and "x.py" not in diff
    assert git_changed_files(sub).splitlines()[1:] == ["M  mod.py"]
    subjects = [line.split(": ", 1)[1] for line in git_log(sub).splitlines()]
    assert subjects == ["Initial commit"]  # the commit touching only other/ is not listed
    with pytest.raises(ToolError, match="outside the repository root"):
        git_diff(sub, path="../other/x.py")


def test_workspace_is_an_untracked_directory(make_repo) -> None:
    root = make_repo({"a.py": "1\n"})
    (root / "fresh").mkdir()
    (root / "fresh" / "f.py").write_text("f\n")
    fresh = ws(root / "fresh")
    assert git_status(fresh).splitlines()[1:] == [
        "Untracked files:",
        "  ?? . (this whole directory)",
    ]
    assert git_log(fresh) == "no commits touch this directory"


def test_linked_worktree(make_repo, tmp_path: Path) -> None:
    root = make_repo({"a.py": "1\n"})
    linked = tmp_path / "linked"
    git(root, "worktree", "add", "-q", str(linked), "-b", "side")
    (linked / "a.py").write_text("2\n")
    assert git_status(ws(linked)).splitlines() == [
        "On branch side (no upstream branch)",
        "Unstaged changes:",
        "  M  a.py",
    ]
    assert "+2" in git_diff(ws(linked))
    assert git_diff(ws(root)) == "no unstaged changes"


def test_git_failures_become_one_short_line() -> None:
    # git's stderr can quote repository content, so it is never passed on (see
    # test_git_hostile.py): unknown failures get a generic line with the exit status.
    stderr = "fatal: something broke\nTraceback (most recent call last):\n  more\n"
    assert str(failure("diff", stderr, 128)) == "git diff failed (exit 128)"
    assert str(failure("log", "", 3)) == "git log failed (exit 3)"
    long = failure("log", "error: " + "x" * 500, 1)
    assert len(str(long)) < 230 and "\n" not in str(long)
    assert str(failure("status", "fatal: not a git repository (or any parent)", 128)) == NOT_A_REPO


def test_is_tracked_for_file_info(repo: Path, make_repo) -> None:
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "debug.log").write_text("log\n")
    w = ws(repo)
    assert is_tracked(w, repo / "app.py") == "tracked"
    assert is_tracked(w, repo / "docs") == "tracked"
    assert is_tracked(w, repo) == "tracked"
    assert is_tracked(w, repo / "notes.txt") == "untracked"
    assert is_tracked(w, repo / "debug.log") == "ignored"
    plain = make_repo({"a.txt": "a\n"}, git_init=False)
    assert is_tracked(ws(plain), plain / "a.txt") == "not a git repository"


# -- hostile arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "--output=OUT",
        "--no-index",
        "-p",
        "--open-files-in-pager=touch OUT",
        "HEAD:secret.env",
        ":/Initial",
        "$(touch OUT)",
        "`touch OUT`",
        "HEAD; touch OUT",
        "HEAD OUT",
        "HEAD\n--output=OUT",
        "main..--output=OUT",
        "--output=OUT..main",
        "HEAD..main..other",
        "^HEAD",
        "HEAD\x00",
    ],
)
def test_hostile_refs_are_refused(repo: Path, tmp_path: Path, ref: str) -> None:
    out_file = tmp_path / "OUT"
    ref = ref.replace("OUT", str(out_file))
    for result in (
        GIT_DIFF.run(ws(repo), ref=ref),
        GIT_DIFF.run(ws(repo), ref=ref, staged=True),
        GIT_LOG.run(ws(repo), ref=ref),
    ):
        assert result.startswith("Error: invalid revision:")
        assert len(result.splitlines()) == 1
    assert not out_file.exists()
    assert not (repo / "OUT").exists()


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "docs/../../outside"])
def test_paths_outside_the_root_are_refused(repo: Path, path: str) -> None:
    assert GIT_DIFF.run(ws(repo), path=path).startswith("Error: path refused:")
    assert GIT_LOG.run(ws(repo), path=path).startswith("Error: path refused:")


def test_option_like_path_is_a_path(repo: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "written"
    assert git_diff(ws(repo), path=f"--output={out_file}").startswith("no unstaged changes")
    assert not out_file.exists()


# -- sensitive files ----------------------------------------------------------------------


@pytest.fixture
def secret_repo(make_repo) -> Path:
    root = make_repo(
        {
            "app.py": "print('app')\n",
            ".env": f"TOKEN={SECRET}\n",
            "config/prod.env": f"DB={SECRET}\n",
            "keys/id_rsa": f"-----BEGIN KEY-----\n{SECRET}\n",
            "id_utils.py": "def ident():\n    return 1\n",
        },
        commits=[
            ("Rotate token", {".env": f"TOKEN={NEW_SECRET}\n", "app.py": "print('v2')\n"}),
        ],
    )
    (root / ".env").write_text(f"TOKEN={NEW_SECRET}-unstaged\n")
    (root / "keys" / "id_rsa").write_text(f"-----BEGIN KEY-----\n{NEW_SECRET}\n")
    (root / "config" / "prod.env").write_text(f"DB={NEW_SECRET}\n")
    git(root, "add", "config/prod.env")
    (root / "id_utils.py").write_text("def ident():\n    return 2\n")
    (root / ".envrc").write_text(f"export X={SECRET}\n")  # untracked
    return root


def test_sensitive_contents_never_appear(secret_repo: Path) -> None:
    out = every_output(secret_repo)
    assert SECRET not in out and NEW_SECRET not in out
    assert "id_rsa" not in out and ".env" not in out
    assert "return 2" in out  # id_utils.py is code, not a key: it is shown
    assert "(1 sensitive file omitted)" in out
    status = git_status(ws(secret_repo))
    assert status.splitlines()[-1] == "(4 sensitive files omitted)"
    assert "(2 sensitive files omitted)" in git_diff(ws(secret_repo))  # .env, id_rsa


def test_sensitive_paths_are_refused(secret_repo: Path) -> None:
    for path in (".env", "config/prod.env", "keys/id_rsa", "./.env", "config/../.env"):
        assert GIT_DIFF.run(ws(secret_repo), path=path).startswith("Error: path refused:")
        assert GIT_LOG.run(ws(secret_repo), path=path).startswith("Error: path refused:")


def test_only_sensitive_changes(make_repo) -> None:
    root = make_repo({".env": f"A={SECRET}\n", "a.py": "1\n"})
    (root / ".env").write_text(f"A={NEW_SECRET}\n")
    assert git_diff(ws(root)) == "no unstaged changes (1 sensitive file omitted)"
    assert git_changed_files(ws(root)) == "no uncommitted changes (1 sensitive file omitted)"


@pytest.mark.parametrize(("source", "target"), [(".env", "notes.txt"), ("notes.txt", ".env")])
def test_rename_to_or_from_sensitive_name_does_not_leak(
    make_repo, source: str, target: str
) -> None:
    root = make_repo({source: f"TOKEN={SECRET}\n", "a.py": "1\n"})
    git(root, "mv", source, target)
    (root / "a.py").write_text("2\n")
    git(root, "add", "a.py")
    outputs = "\n".join(
        [
            git_diff(ws(root), staged=True),
            git_diff(ws(root), ref="HEAD"),
            git_status(ws(root)),
            git_changed_files(ws(root)),
        ]
    )
    assert SECRET not in outputs
    assert "notes.txt" not in outputs and ".env" not in outputs
    assert "+2" in outputs


def test_diff_section_filter_catches_every_header_form() -> None:
    diff = [
        "diff --git a/ok.py b/ok.py",
        "--- a/ok.py",
        "+++ b/ok.py",
        "@@ -1 +1 @@",
        "+fine",
        'diff --git "a/we\\tird/.env" "b/we\\tird/.env"',  # quoted path
        "@@ -1 +1 @@",
        f"+{SECRET}",
        "diff --git a/plain.txt b/x b/.env",  # ambiguous split
        "@@ -1 +1 @@",
        f"+{SECRET}",
        "diff --git a/readme b/readme",  # header names look harmless, rename line does not
        "similarity index 90%",
        "rename from readme",
        "rename to .aws/config",
        "@@ -1 +1 @@",
        f"+{SECRET}",
        "diff --git .env .env",  # no prefixes at all
        "--- .env",
        "+++ .env",
        "@@ -1 +1 @@",
        f"+{SECRET}",
        "diff --cc server.pem",
        "@@@ -1 -1 +1 @@@",
        f"++{SECRET}",
        "diff --git a/bin.dat b/bin.dat",
        "Binary files a/bin.dat and b/bin.dat differ",
        "* Unmerged path deploy/.npmrc",
        "* Unmerged path src/main.py",
    ]
    cap = DiffCap(1000, 100_000)
    out = list(filter_sensitive_sections(iter(diff), cap))
    assert SECRET not in "\n".join(out)
    assert out == [
        "diff --git a/ok.py b/ok.py",
        "--- a/ok.py",
        "+++ b/ok.py",
        "@@ -1 +1 @@",
        "+fine",
        "diff --git a/bin.dat b/bin.dat",
        "Binary files a/bin.dat and b/bin.dat differ",
        "* Unmerged path src/main.py",
    ]
    assert cap.dropped_sections == 5


# -- hostile repositories ------------------------------------------------------------------


def test_fsmonitor_hook_is_not_run(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "fsmonitor-ran"
    git(repo, "config", "core.fsmonitor", str(hostile_script(tmp_path, marker)))
    every_output(repo)
    assert not marker.exists()
    git(repo, "status")  # the attack is real: plain git runs it
    assert marker.exists()


def test_external_diff_is_not_run(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "external-ran"
    git(repo, "config", "diff.external", str(hostile_script(tmp_path, marker)))
    out = every_output(repo)
    assert not marker.exists()
    assert "+    return 2" in out  # the built-in diff was used instead
    git(repo, "diff")
    assert marker.exists()


def test_textconv_and_diff_driver_commands_are_not_run(repo: Path, tmp_path: Path) -> None:
    textconv_marker = tmp_path / "textconv-ran"
    command_marker = tmp_path / "command-ran"
    (repo / ".gitattributes").write_text("*.py diff=conv\n*.md diff=cmd\n")
    textconv = hostile_script(tmp_path, textconv_marker, 'cat "$1"')
    git(repo, "config", "diff.conv.textconv", str(textconv))
    git(repo, "config", "diff.cmd.command", str(hostile_script(tmp_path, command_marker)))
    (repo / "docs" / "guide.md").write_text("# Changed\n")
    every_output(repo)
    assert not textconv_marker.exists() and not command_marker.exists()
    git(repo, "diff")
    assert textconv_marker.exists() and command_marker.exists()


@pytest.mark.parametrize("variable", ["clean", "process"])
def test_filter_drivers_are_not_run(repo: Path, tmp_path: Path, variable: str) -> None:
    marker = tmp_path / f"filter-{variable}-ran"
    (repo / ".git" / "info" / "attributes").write_text("* filter=odd.name=x\n")
    script = hostile_script(tmp_path, marker, "cat")
    git(repo, "config", f"filter.odd.name=x.{variable}", str(script))
    git(repo, "config", "filter.odd.name=x.required", "true")
    (repo / "app.py").write_text("def main():\n    return 3\n")
    out = every_output(repo)
    assert not marker.exists()
    assert "+    return 3" in out
    if variable == "clean":  # a fake long-running `process` filter would just fail
        git(repo, "diff")
        assert marker.exists()


def test_signature_verification_program_is_not_run(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "gpg-ran"
    raw = git(repo, "cat-file", "commit", "HEAD")
    header, _, message = raw.partition("\n\n")
    signature = "gpgsig -----BEGIN PGP SIGNATURE-----\n \n fake\n -----END PGP SIGNATURE-----"
    forged = f"{header}\n{signature}\n\n{message}"
    sha = subprocess.run(
        ["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
        input=forged,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    git(repo, "update-ref", "refs/heads/main", sha)
    git(repo, "config", "log.showSignature", "true")
    git(repo, "config", "gpg.program", str(hostile_script(tmp_path, marker)))
    assert git_log(ws(repo), max_count=1).splitlines()[0].endswith("Add helper module")
    assert not marker.exists()
    subprocess.run(["git", "-C", str(repo), "log", "-1"], capture_output=True, check=False)
    assert marker.exists()


def test_core_worktree_cannot_point_outside(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "app.py").write_text("OUTSIDE CONTENT\n")
    git(repo, "config", "core.worktree", str(elsewhere))
    out = every_output(repo)
    assert "OUTSIDE CONTENT" not in out
    assert "+    return 2" in out
    assert "OUTSIDE CONTENT" in git(repo, "diff")


def test_hostile_diff_and_status_config(repo: Path) -> None:
    (repo / ".env").write_text(f"T={SECRET}\n")
    git(repo, "add", "-f", ".env")
    for key, value in [
        ("diff.noprefix", "true"),
        ("diff.mnemonicPrefix", "true"),
        ("color.ui", "always"),
        ("core.pager", "touch PAGER-RAN"),
        ("status.showUntrackedFiles", "no"),
        ("diff.relative", "false"),
        ("diff.orderFile", "/nonexistent/order"),
    ]:
        git(repo, "config", key, value)
    out = every_output(repo)
    assert SECRET not in out
    assert "\x1b[" not in out
    assert "diff --git a/app.py b/app.py" in out
    assert "?? notes.txt" in out
    assert not (repo / "PAGER-RAN").exists()


def test_hostile_environment_is_ignored(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "env-ran"
    script = hostile_script(tmp_path, marker)
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(script))
    monkeypatch.setenv("GIT_PAGER", str(script))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.fsmonitor'='{script}'")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))
    out = every_output(repo)
    assert not marker.exists()
    assert "+    return 2" in out


def test_tool_specs_contract() -> None:
    assert [spec.name for spec in TOOLS] == [
        "git_status",
        "git_diff",
        "git_log",
        "git_changed_files",
    ]
    params = {spec.name: [(p.name, p.default) for p in spec.params] for spec in TOOLS}
    assert params == {
        "git_status": [],
        "git_diff": [("ref", None), ("staged", False), ("path", None)],
        "git_log": [("max_count", 10), ("path", None), ("ref", None)],
        "git_changed_files": [("staged", False), ("include_untracked", False)],
    }
