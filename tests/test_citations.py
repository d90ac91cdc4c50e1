"""Checking the references in an answer against the repository and against what the run's
tools showed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_brain.citations import Evidence, check_answer, find_references, mark_unverified
from local_brain.tools import all_tools
from local_brain.workspace import Workspace
from tests.fakes.model_server import ModelServer
from tests.test_e2e import answer_with_observation, code

AUTH = (
    "".join(f"# line {n}\n" for n in range(1, 8)) + "def verify_token(token):\n    return token\n"
)


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo({"src/auth.py": AUTH, "README.md": "# demo\n", ".env": "KEY=1\n"})


def refs(text: str) -> list[tuple[str, int | None, int | None]]:
    return [(r.path, r.line, r.end_line) for r in find_references(text)]


def test_every_written_form_is_found() -> None:
    text = (
        "See src/auth.py:8, src/auth.py:8-9, lib/x.go#L3-L5, `./README.md` and "
        "the row `src/app/x.py:17: def f():`."
    )
    assert refs(text) == [
        ("src/auth.py", 8, None),
        ("src/auth.py", 8, 9),
        ("lib/x.go", 3, 5),
        ("README.md", None, None),
        ("src/app/x.py", 17, None),
    ]


def test_code_and_prose_are_not_references() -> None:
    text = (
        "parse_config(path: str) calls os.path.join(a, b) in v1.2.3, e.g. self.value; "
        "see https://example.com/src/a.py:3 for more."
    )
    assert refs(text) == []


def tool(name: str, ws: Workspace, evidence: Evidence, **arguments: object) -> str:
    result = all_tools()[name].run(ws, **arguments)
    assert result.ok, result.text
    evidence.record(arguments, result.text)
    return result.text


def test_what_the_tools_showed_counts_as_seen(repo: Path) -> None:
    ws, evidence = Workspace(repo), Evidence()
    tool("search_code", ws, evidence, pattern="verify_token")  # row src/auth.py:8: ...
    tool("read_file", ws, evidence, path="src/auth.py", start_line=1, end_line=3)
    tool("list_definitions", ws, evidence, path="src/auth.py")

    assert evidence.saw("src/auth.py", 8, None)  # the search row and the definition row
    assert evidence.saw("src/auth.py", 2, 3)  # inside the range read_file returned
    assert not evidence.saw("src/auth.py", 5, None)  # never shown
    assert evidence.saw("src/auth.py", None, None)
    assert not evidence.saw("README.md", None, None)


def test_a_fabricated_line_and_path_are_flagged(repo: Path) -> None:
    ws, evidence = Workspace(repo), Evidence()
    tool("search_code", ws, evidence, pattern="verify_token")

    answer = (
        "verify_token is at src/auth.py:8; tokens expire in src/auth.py:412 and src/expiry.py:3."
    )
    checked = {(c.path, c.line): c for c in check_answer(answer, ws, evidence)}

    assert checked[("src/auth.py", 8)].verified
    bad_line = checked[("src/auth.py", 412)]
    assert bad_line.exists and bad_line.problem == "does not exist (file has 9 lines)"
    assert bad_line.warning() == "src/auth.py:412 does not exist (file has 9 lines)"
    missing = checked[("src/expiry.py", 3)]
    assert not missing.exists and not missing.seen and missing.problem == "does not exist"


def test_a_sensitive_or_outside_path_is_never_verified(repo: Path) -> None:
    ws, evidence = Workspace(repo), Evidence()
    checked = check_answer("The key is in .env and ../../etc/passwd.txt", ws, evidence)
    assert [c.path for c in checked] == [".env", "../../etc/passwd.txt"]
    assert all(not c.exists and c.problem == "path refused" for c in checked)


def test_a_bare_file_name_means_the_file_the_tools_showed(repo: Path) -> None:
    ws, evidence = Workspace(repo), Evidence()
    tool("search_code", ws, evidence, pattern="verify_token")
    (citation,) = check_answer("It is in auth.py:8.", ws, evidence)
    assert citation.path == "src/auth.py" and citation.verified


def test_unverified_references_are_marked_in_a_report(repo: Path) -> None:
    ws, evidence = Workspace(repo), Evidence()
    tool("search_code", ws, evidence, pattern="verify_token")
    report = "Found it at src/auth.py:8 and also src/auth.py:77."
    marked = mark_unverified(report, check_answer(report, ws, evidence))
    assert marked == (
        "Found it at src/auth.py:8 and also src/auth.py:77 "
        "[unverified: does not exist (file has 9 lines)]."
    )


# -- end to end: the CLI with a scripted model ----------------------------------------------


def test_json_carries_checked_citations_and_the_terminal_flags_inventions(
    cli, model_server: ModelServer, repo: Path
) -> None:
    model_server.script(
        None, [code('final_answer("Auth lives in src/auth.py:412 and src/login.py:7")')]
    )

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "--json", "Where is auth?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["unverified"] == 2
    assert document["citations"] == [
        {"path": "src/auth.py", "line": 412, "end_line": None, "exists": True, "seen": False,
         "problem": "does not exist (file has 9 lines)"},
        {"path": "src/login.py", "line": 7, "end_line": None, "exists": False, "seen": False,
         "problem": "does not exist"},
    ]  # fmt: skip
    assert "⚠ src/auth.py:412 does not exist (file has 9 lines)" in result.stderr
    assert "⚠ src/login.py:7 does not exist" in result.stderr


def test_an_answer_built_from_tool_output_is_verified(
    cli, model_server: ModelServer, repo: Path
) -> None:
    model_server.script(None, [code('print(search_code(pattern="verify_token"))')])
    model_server.responder = answer_with_observation

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "--json", "Where is auth?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert "src/auth.py:8" in document["answer"]
    assert document["unverified"] == 0
    assert {"path": "src/auth.py", "line": 8} in [
        {key: c[key] for key in ("path", "line")} for c in document["citations"]
    ]
    assert "⚠" not in result.stderr


def test_a_helpers_invented_reference_is_marked_before_the_manager_reads_it(
    cli, model_server: ModelServer, repo: Path
) -> None:
    model_server.script("qwen3:30b", [code('print(code_search(task="Where is auth?"))'),
                                      code('final_answer("done")')])  # fmt: skip
    model_server.script("qwen2.5:3b", [code('final_answer("auth is at src/auth.py:300")')])

    result = cli("--manager", "qwen3:30b", "--worker", "qwen2.5:3b", "--root", str(repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    second = model_server.chat_requests("qwen3:30b")[1]
    assert "src/auth.py:300 [unverified: does not exist (file has 9 lines)]" in second.last_text


def test_a_mark_never_lands_inside_a_longer_reference(repo: Path) -> None:
    ws, evidence = Workspace(repo), Evidence()
    tool("read_file", ws, evidence, path="src/auth.py", start_line=8, end_line=9)
    report = "See src/auth.py:8 and src/auth.py:88."
    marked = mark_unverified(report, check_answer(report, ws, evidence))
    assert (
        marked
        == "See src/auth.py:8 and src/auth.py:88 [unverified: does not exist (file has 9 lines)]."
    )


# -- plausible paths only, every written form, linear on huge output ------------------------


def test_dotted_words_are_not_paths_unless_the_file_exists(repo: Path) -> None:
    ws, evidence = Workspace(repo), Evidence()
    tool("search_code", ws, evidence, pattern="verify_token")
    answer = (
        "It calls a.b.c and obj.rs, e.g. response.json() in v1.2, then reads README.md; "
        "see auth.py:8 and the missing expiry.py:3."
    )
    checked = [(c.path, c.line) for c in check_answer(answer, ws, evidence)]
    assert checked == [("README.md", None), ("src/auth.py", 8), ("expiry.py", 3)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see src/auth.py:L8 now", ("src/auth.py", 8, None)),
        ("see src/auth.py#8 now", ("src/auth.py", 8, None)),
        ("see src/auth.py#L8-L9 now", ("src/auth.py", 8, 9)),
        ("see src/auth.py:8:5 now", ("src/auth.py", 8, None)),
        ("It is on line 8 of src/auth.py.", ("src/auth.py", 8, None)),
        ("It is in src/auth.py, line 8.", ("src/auth.py", 8, None)),
        ("It is in src/auth.py (line 8).", ("src/auth.py", 8, None)),
        ("See lines 8-9 in src/auth.py.", ("src/auth.py", 8, 9)),
        ("See lines 8 to 9 of `src/auth.py`.", ("src/auth.py", 8, 9)),
        ("It is in `src/auth.py`.", ("src/auth.py", None, None)),
        ("It is in `src/auth.py`:8.", ("src/auth.py", 8, None)),
        ("It is in `src/auth.py:8`.", ("src/auth.py", 8, None)),
        ("It is in src\\auth.py:8.", ("src/auth.py", 8, None)),
        ("It is in src\\\\auth.py:8.", ("src/auth.py", 8, None)),
    ],
)
def test_more_written_forms_are_found(
    text: str, expected: tuple[str, int | None, int | None]
) -> None:
    assert refs(text) == [expected]


def test_prose_forms_are_checked_and_marked(repo: Path) -> None:
    ws, evidence = Workspace(repo), Evidence()
    tool("search_code", ws, evidence, pattern="verify_token")
    report = "It is on line 8 of src/auth.py, and also in src\\auth.py:412."
    checked = check_answer(report, ws, evidence)
    assert [(c.path, c.line, c.verified) for c in checked] == [
        ("src/auth.py", 8, True),
        ("src/auth.py", 412, False),
    ]
    assert mark_unverified(report, checked) == (
        "It is on line 8 of src/auth.py, and also in src\\auth.py:412 "
        "[unverified: does not exist (file has 9 lines)]."
    )


def test_a_huge_single_line_tool_output_is_recorded_quickly_and_bounded() -> None:
    import time

    from local_brain.citations import MAX_RECORDED_CHARS, MAX_RECORDED_REFERENCES

    minified = "var a=b.c(d),e=f.g;x=lib/dep.js:1;" * 60_000  # about 2 MB, no space, no newline
    assert len(minified) > 2_000_000
    evidence = Evidence()
    started = time.monotonic()
    evidence.record({"path": "dist/app.min.js"}, minified)
    assert time.monotonic() - started < 2.0
    kept = sum(len(ranges) for ranges in evidence.lines.values()) + len(evidence.paths)
    assert kept <= MAX_RECORDED_REFERENCES + 2
    assert len(minified) > MAX_RECORDED_CHARS
    assert evidence.saw("lib/dep.js", 1, None) and evidence.saw("dist/app.min.js", None, None)


def test_a_line_in_words_goes_with_the_right_path() -> None:
    assert refs("See src/a.py, lines 3-4 of src/b.py.") == [
        ("src/a.py", None, None),
        ("src/b.py", 3, 4),
    ]
    assert refs("See src/a.py, line 3 in the constructor.") == [("src/a.py", 3, None)]
    assert refs("See src/a.py line 30 or so.") == [("src/a.py", 30, None)]


@pytest.mark.parametrize("word", ["a" * 2_000_000, "a.b-" * 500_000, "x://" + "y" * 2_000_000])
def test_one_huge_word_is_scanned_in_linear_time(word: str) -> None:
    import time

    started = time.monotonic()
    assert find_references(word, limit=None) == []
    Evidence().record({}, word)
    assert time.monotonic() - started < 2.0
