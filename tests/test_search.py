"""search_code on real temporary repositories with the real ripgrep (and its Python fallback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_brain.errors import ToolError
from local_brain.tools.ripgrep import find_rg
from local_brain.tools.search import (
    LIST_DEFINITIONS,
    SEARCH_CODE,
    TOOLS,
    python_search_code,
    search_code,
)
from local_brain.workspace import Workspace

AUTH_PY = '''\
import os

TOKEN_NAME = "token"


class Auth:
    """Checks tokens."""

    def check(self, token):
        if not token:
            return False
        return token == os.environ.get("TOKEN")


def helper():
    return "token"
'''


def run(root: Path, *args: object, **kwargs: object) -> str:
    """The tool as the agent sees it: errors come back as 'Error: ...' text."""
    return SEARCH_CODE.run(Workspace(root), *args, **kwargs)


def rows(output: str) -> list[str]:
    """The result rows (path:line: text), without header or footer lines."""
    return [
        line for line in output.splitlines()[1:] if not line.startswith(("…", "Narrow", "Hint:"))
    ]


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {
            "src/auth.py": AUTH_PY,
            "src/util.py": "def token_util():\n    return 'TOKEN'\n",
            "README.md": "Pass a token on the command line.\n",
            ".gitignore": "build/\n*.log\n",
            ".github/workflows/ci.yml": "env:\n  token: ${{ secrets.TOKEN }}\n",
        }
    )


def test_ripgrep_is_available_so_the_rg_engine_is_what_these_tests_exercise() -> None:
    assert find_rg() is not None
    assert [spec.name for spec in TOOLS] == ["search_code", "list_definitions"]
    assert TOOLS == (SEARCH_CODE, LIST_DEFINITIONS)


def test_header_counts_and_row_format(repo: Path) -> None:
    out = run(repo, "token")
    lines = out.splitlines()
    # auth.py: lines 3, 7 ("tokens"), 9, 10, 12, 16; util.py: 1; README.md: 1; ci.yml: 2
    assert lines[0] == "9 matches in 4 files (showing 9)"
    assert lines[1] == ".github/workflows/ci.yml:2: token: ${{ secrets.TOKEN }}"
    assert "README.md:1: Pass a token on the command line." in lines
    assert "src/util.py:1: def token_util():" in lines
    # Rows are in (path, line) order and the text is stripped of indentation.
    assert [row.split(":")[0] for row in rows(out)] == sorted(
        row.split(":")[0] for row in rows(out)
    )
    assert any(line.startswith("src/auth.py:12: return token == os.environ") for line in lines)


def test_singular_header(repo: Path) -> None:
    out = run(repo, "token_util")
    assert out.splitlines() == ["1 match in 1 file (showing 1)", "src/util.py:1: def token_util():"]


def test_enclosing_definition_is_shown_for_top_hits(repo: Path) -> None:
    out = run(repo, "token", path="src/auth.py")
    assert out.splitlines()[0] == "6 matches in 1 file (showing 6)"
    assert 'src/auth.py:3: TOKEN_NAME = "token"' in out  # module level: no note
    assert "src/auth.py:9: def check(self, token):  [in class Auth]" in out
    assert 'src/auth.py:12: return token == os.environ.get("TOKEN")  [in method Auth.check]' in out
    assert 'src/auth.py:16: return "token"  [in function helper]' in out


def test_only_the_first_ten_hits_get_enclosing_notes(make_repo) -> None:
    body = "def big():\n" + "".join(f"    x{n} = 'needle'\n" for n in range(15))
    root = make_repo({"big.py": body})
    out = run(root, "needle")
    hit_rows = rows(out)
    assert len(hit_rows) == 15
    assert all(row.endswith("[in function big]") for row in hit_rows[:10])
    assert not any("[in " in row for row in hit_rows[10:])


def test_gitignore_is_respected(repo: Path) -> None:
    (repo / "build").mkdir()
    (repo / "build" / "gen.py").write_text("token = 1\n")
    (repo / "debug.log").write_text("token leaked\n")
    (repo / "src" / ".gitignore").write_text("generated_*.py\n")
    (repo / "src" / "generated_api.py").write_text("token = 2\n")
    out = run(repo, "token")
    assert out.splitlines()[0] == "9 matches in 4 files (showing 9)"
    assert "build/" not in out and "debug.log" not in out and "generated_api" not in out


def test_gitignore_respected_without_git_and_parent_ignore_files_do_not_hide_the_tree(
    make_repo, tmp_path: Path
) -> None:
    # A dotfiles-style ".gitignore: *" above the root must not hide the whole tree.
    (tmp_path / ".gitignore").write_text("*\n")
    root = make_repo(
        {"keep.txt": "needle\n", "skip.txt": "needle\n", ".gitignore": "skip.txt\n"},
        git_init=False,
    )
    out = run(root, "needle")
    assert out.splitlines() == ["1 match in 1 file (showing 1)", "keep.txt:1: needle"]


def test_search_in_a_subdirectory_honours_ignore_files_above_it(make_repo) -> None:
    root = make_repo(
        {
            ".gitignore": "gen.txt\n",
            "a/.gitignore": "/b/only_here.txt\nkeep*\n!keepme.txt\n",
            "a/b/gen.txt": "needle\n",
            "a/b/only_here.txt": "needle\n",
            "a/b/c/only_here.txt": "needle\n",  # the anchored rule does not reach here
            "a/b/keep1.txt": "needle\n",
            "a/b/keepme.txt": "needle\n",
            "a/b/ok.txt": "needle\n",
        }
    )
    (root / "a" / "b" / "excluded.txt").write_text("needle\n")
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("excluded.txt\n")
    expected = ["a/b/c/only_here.txt", "a/b/keepme.txt", "a/b/ok.txt"]
    for engine in (search_code, python_search_code):
        out = engine(Workspace(root), "needle", path="a/b")
        assert [row.split(":")[0] for row in rows(out)] == expected, engine.__name__


def test_hidden_files_are_searched_but_git_internals_never(repo: Path) -> None:
    (repo / ".git" / "needle.txt").write_text("SECRET_MARKER\n")
    (repo / "visible.txt").write_text("SECRET_MARKER\n")
    out = run(repo, "SECRET_MARKER")
    assert out.splitlines() == ["1 match in 1 file (showing 1)", "visible.txt:1: SECRET_MARKER"]
    assert ".github/workflows/ci.yml" in run(repo, "secrets")
    # Git metadata does not leak through ordinary words either.
    assert ".git/" not in run(repo, "Initial commit|refs/heads|repositoryformatversion")


def test_sensitive_files_never_appear_even_when_they_match(make_repo) -> None:
    root = make_repo(
        {
            ".env": "API_KEY=SECRET_MARKER\n",
            "config/.env.production": "SECRET_MARKER\n",
            "id_rsa": "-----BEGIN SECRET_MARKER-----\n",
            "keys/id_ed25519.pub": "ssh-ed25519 SECRET_MARKER\n",
            "secrets.yaml": "password: SECRET_MARKER\n",
            "deploy/credentials.json": '{"key": "SECRET_MARKER"}\n',
            "certs/server.pem": "SECRET_MARKER\n",
            ".ssh/config": "SECRET_MARKER\n",
            "app.py": "marker = 'SECRET_MARKER'\n",
        }
    )
    for engine in (search_code, python_search_code):
        for glob in (None, ".env", "*.yaml", "id_*"):
            out = engine(Workspace(root), "secret_marker", glob=glob, ignore_case=True)
            assert {row.split(":")[0] for row in rows(out)} <= {"app.py"}, (glob, out)
            assert out.startswith(("0 matches", "1 match in 1 file")), (glob, out)
        assert engine(Workspace(root), "SECRET_MARKER").splitlines()[0] == (
            "1 match in 1 file (showing 1)"
        )
    assert run(root, "SECRET", path=".env").startswith("Error: path refused")
    assert run(root, "SECRET", path="config").startswith("0 matches for SECRET under config")


def test_symlink_out_of_the_repository_is_not_followed(make_repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "loot.txt").write_text("OUTSIDE_MARKER\n")
    root = make_repo({"inside.txt": "nothing here\n"})
    os.symlink(outside, root / "linked_dir")
    os.symlink(outside / "loot.txt", root / "linked_file.txt")
    for engine in (search_code, python_search_code):
        out = engine(Workspace(root), "OUTSIDE_MARKER")
        assert out.startswith("0 matches for OUTSIDE_MARKER"), out
    assert run(root, "OUTSIDE_MARKER", path="linked_dir").startswith("Error: path refused")
    assert run(root, "OUTSIDE_MARKER", path="linked_file.txt").startswith("Error: path refused")


def test_glob_filter(repo: Path) -> None:
    out = run(repo, "token", glob="*.py")
    assert out.splitlines()[0] == "7 matches in 2 files (showing 7)"
    assert all(row.startswith("src/") for row in rows(out))
    negated = run(repo, "token", glob="!*.py")
    assert negated.splitlines()[0] == "2 matches in 2 files (showing 2)"
    assert run(repo, "token", glob="[").startswith("Error: invalid glob")


def test_ignore_case(repo: Path) -> None:
    assert run(repo, "TOKEN").splitlines()[0] == "4 matches in 3 files (showing 4)"
    insensitive = run(repo, "TOKEN", ignore_case=True)
    assert insensitive.splitlines()[0] == "10 matches in 4 files (showing 10)"
    assert run(repo, "TOKEN", ignore_case="true") == insensitive  # loose model input


def test_max_results_truncates_rows_but_totals_stay_exact(make_repo) -> None:
    files = {f"pkg/mod{n:02d}.txt": "hit\n" * 12 for n in range(10)}
    root = make_repo(files)
    out = run(root, "hit", max_results=15)
    lines = out.splitlines()
    assert lines[0] == "120 matches in 10 files (showing 15)"
    shown = rows(out)
    assert len(shown) == 15
    # The first hits in path order: all of mod00, then the start of mod01.
    assert shown[0] == "pkg/mod00.txt:1: hit"
    assert shown[12] == "pkg/mod01.txt:1: hit"
    assert shown[14] == "pkg/mod01.txt:3: hit"
    assert lines[-2].startswith("… 105 more not shown. Most matches: pkg/mod00.txt (12)")
    assert run(root, "hit", max_results=0).splitlines()[0] == "120 matches in 10 files (showing 1)"
    assert run(root, "hit", max_results=10**9).splitlines()[0].endswith("(showing 120)")


def test_max_results_cap_is_500(make_repo) -> None:
    root = make_repo({"many.txt": "x\n" * 700})
    out = run(root, "x", max_results=5000)
    assert out.splitlines()[0] == "700 matches in 1 file (showing 500)"
    assert len(rows(out)) == 500


def test_invalid_regex_is_a_short_error(repo: Path) -> None:
    out = run(repo, "check(self")
    assert out.startswith("Error: invalid regex: unclosed group")
    assert "backslash" in out and "\n" not in out
    with pytest.raises(ToolError, match="invalid regex"):
        search_code(Workspace(repo), "a{2,1}")
    with pytest.raises(ToolError, match="invalid regex"):
        python_search_code(Workspace(repo), "check(self")


def test_pattern_starting_with_a_dash_is_a_pattern_not_an_option(make_repo) -> None:
    root = make_repo({"cli.sh": "run --verbose\nrun -v\n", "other.txt": "nothing\n"})
    out = run(root, "--verbose")
    assert out.splitlines() == ["1 match in 1 file (showing 1)", "cli.sh:1: run --verbose"]
    assert run(root, "-v").splitlines()[0] == "2 matches in 1 file (showing 2)"


def test_missing_path_outside_path_and_bad_patterns(repo: Path) -> None:
    assert run(repo, "token", path="nope/missing.py").startswith(
        "Error: not found: nope/missing.py"
    )
    assert run(repo, "token", path="..").startswith("Error: path refused")
    assert run(repo, "token", path="/etc").startswith("Error: path refused")
    assert run(repo, "").startswith("Error: search_code needs a non-empty pattern")
    assert run(repo, "a" * 1001).startswith("Error: pattern is too long (1001 characters")
    assert run(repo).startswith("Error: search_code needs 'pattern'")


def test_zero_matches_message_has_a_hint(repo: Path) -> None:
    out = run(repo, "NoSuchThing", path="src", glob="*.py")
    assert out.splitlines()[0] == "0 matches for NoSuchThing under src (glob *.py)"
    assert out.splitlines()[1].startswith("Hint: try ignore_case=True")


def test_binary_files_are_skipped(make_repo) -> None:
    root = make_repo({"blob.bin": b"needle\x00\x01\x02needle\n", "text.txt": "needle\n"})
    assert run(root, "needle").splitlines() == [
        "1 match in 1 file (showing 1)",
        "text.txt:1: needle",
    ]
    assert "binary file" in run(root, "needle", path="blob.bin")


def test_long_lines_are_capped(make_repo) -> None:
    root = make_repo({"min.js": "var a='needle';" + "x" * 5000 + "\n"})
    row = rows(run(root, "needle"))[0]
    assert row.startswith("min.js:1: var a='needle';xxx")
    assert row.endswith(" …")
    assert len(row) < 230


def test_user_ripgrep_config_is_ignored(repo: Path, tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "ripgreprc"
    config.write_text("--max-count=1\n--fixed-strings\n--ignore-case\n")
    monkeypatch.setenv("RIPGREP_CONFIG_PATH", str(config))
    assert run(repo, "token").splitlines()[0] == "9 matches in 4 files (showing 9)"


def test_python_fallback_matches_ripgrep(make_repo) -> None:
    root = make_repo(
        {
            "src/app.py": AUTH_PY,
            "src/nested/deep.py": "def token_deep():\n    pass  # TODO token\n",
            "lib/vendor.js": "function token() { return 1 }\n// TODO later\n",
            "docs/guide.md": "Use a TOKEN.\nTODO: write more\n",
            ".github/ci.yml": "todo: token\n",
            ".gitignore": "dist/\n*.tmp\n!keep.tmp\n",
            "lib/.gitignore": "/generated.js\n",
            "lib/generated.js": "token\n",
            "dist/bundle.js": "token TODO\n",
            "scratch.tmp": "token\n",
            "keep.tmp": "token TODO\n",
            ".env": "TOKEN=1\n",
            "image.png": b"\x89PNG\x00\x00token\n",
        }
    )
    ws = Workspace(root)
    cases = [
        {"pattern": "token"},
        {"pattern": "todo", "ignore_case": True},
        {"pattern": r"def \w+\("},
        {"pattern": "token", "glob": "*.py"},
        {"pattern": "token", "path": "lib"},
        {"pattern": "token", "path": "src/app.py"},
        {"pattern": "TODO|token", "max_results": 3},
        {"pattern": "nothing_matches_this"},
    ]
    for case in cases:
        expected = search_code(ws, **case)  # type: ignore[arg-type]
        assert python_search_code(ws, **case) == expected, case  # type: ignore[arg-type]
    # app.py 6, nested/deep.py 2, vendor.js 1, .github/ci.yml 1, keep.tmp 1 (re-included)
    assert search_code(ws, "token").splitlines()[0] == "11 matches in 5 files (showing 11)"


def test_quick_sensitivity_check_agrees_with_the_policy() -> None:
    from local_brain.tools.search import is_hidden_from_results
    from local_brain.workspace import SENSITIVE_NAMES, is_sensitive_path

    names = [
        "app.py", "README.md", ".env", ".ENV", ".env.local", "prod.env", ".envrc", "id_rsa",
        "id_ed25519.pub", "id_utils.py", "ID_RSA", "server.pem", "tls.key", "secrets.yaml",
        "secrets.py", "credentials", "credentials.json", "aws_credentials_prod.json",
        "service-account-ci.json", "terraform.tfvars", "kubeconfig", "known_hosts", ".netrc",
        "notes.secret", "Makefile", "index.js", "keys.txt", "environment.ts", "env.py",
    ]  # fmt: skip
    names += [pattern.replace("*", "x") for pattern in SENSITIVE_NAMES]
    directories = ["", "src/", ".git/", ".ssh/", "a/.aws/b/", "deep/.Kube/", ".github/", ".env/"]
    for directory in directories:
        for name in names:
            path = directory + name
            assert is_hidden_from_results(path) == is_sensitive_path(path), path


def test_rows_follow_tree_order_in_both_engines(make_repo) -> None:
    # Directory by directory, like a sorted walk: a/x.txt comes before a-b.txt and a.py.
    root = make_repo(
        {"a.py": "needle\n", "a-b.txt": "needle\n", "a/x.txt": "needle\nneedle\n", "b.txt": "x\n"}
    )
    for engine in (search_code, python_search_code):
        out = engine(Workspace(root), "needle", max_results=3)
        assert out.splitlines()[:4] == [
            "4 matches in 3 files (showing 3)",
            "a/x.txt:1: needle",
            "a/x.txt:2: needle",
            "a-b.txt:1: needle",
        ], engine.__name__


def test_a_search_that_runs_too_long_is_stopped(repo: Path, monkeypatch) -> None:
    from local_brain.tools import search

    monkeypatch.setattr(search, "SEARCH_TIMEOUT_SECONDS", 0.000_001)
    out = run(repo, "token")
    assert out.startswith("Error: search timed out after 0s; narrow it with path= or glob=")


def test_python_engine_globs_match_ripgrep(make_repo) -> None:
    root = make_repo(
        {
            "src/app.py": "needle\n",
            "src/deep/er/mod.py": "needle\n",
            "src/deep/er/mod.js": "needle\n",
            "docs/src/notes.md": "needle\n",
            "top.py": "needle\n",
            "build/out.py": "needle\n",
        }
    )
    ws = Workspace(root)
    for glob in ["src/**/*.py", "**/er/*", "!src/", "!build", "*.py", "/top.py", "src/*", "er/"]:
        expected = search_code(ws, "needle", glob=glob)
        assert python_search_code(ws, "needle", glob=glob) == expected, glob
    assert search_code(ws, "needle", glob="src/**/*.py").splitlines()[0].startswith("2 matches")
    assert run(root, "needle", glob="*" * 301).startswith("Error: glob is not valid")


def test_an_ignored_directory_named_explicitly_is_searched_by_both_engines(make_repo) -> None:
    root = make_repo(
        {
            ".gitignore": "build/\n*.log\n",
            "build/.gitignore": "skip.txt\n",
            "build/x.txt": "needle\n",
            "build/z.log": "needle\n",
            "build/skip.txt": "needle\n",
            "src/a.txt": "needle\n",
            "src/b.log": "needle\n",
        }
    )
    ws = Workspace(root)
    for engine in (search_code, python_search_code):
        inside = [row.split(":")[0] for row in rows(engine(ws, "needle", path="build"))]
        assert inside == ["build/x.txt", "build/z.log"], engine.__name__
        assert rows(engine(ws, "needle")) == ["src/a.txt:1: needle"], engine.__name__
        assert rows(engine(ws, "needle", path="src")) == ["src/a.txt:1: needle"]
