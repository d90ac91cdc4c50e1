"""The eval question generator: known answers from what the tools see, deterministic per seed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_brain.evaluation.questions import Question, QuestionSet, generate_questions
from local_brain.workspace import Workspace
from tests.conftest import RepoFactory, git

CONFIG_PY = '''"""Configuration."""


def parse_config(text):
    return dict(line.split("=", 1) for line in text.splitlines())


def default_port():
    return 8080


class SettingsLoader:
    def describe_loader(self):
        """What this is."""
        return "settings-loader"
'''

MAIN_PY = """from app.config import parse_config


def run_application(path):
    settings = parse_config(open(path).read())
    if settings:
        print(settings)
    return settings
"""

WIDGET_PY = "def widget_factory():\n    return WIDGET_KINDS[0]\n\n\nWIDGET_KINDS = ['a']\n"


@pytest.fixture
def app_repo(make_repo: RepoFactory) -> Path:
    return make_repo(
        {
            "README.md": "# Demo\n",
            "pyproject.toml": '[project]\nname = "demo-app"\nversion = "1.2.3"\n',
            "src/app/config.py": CONFIG_PY,
            "src/app/main.py": MAIN_PY,
            "settings.ini": "[server]\nHostName = example.internal\nport = 8443\n",
            "data.json": '{"service": {"region": "eu-west-3", "replicas": 4, "motto": "a b c d"}}',
            ".gitignore": "build/\n",
            ".env": "parse_config=1\nAPI_VERSION=7.7.7\n",
            "build/out.py": "def parse_config():\n    return 1\n",
        },
        commits=[("Add the widget factory module", {"src/app/widget.py": WIDGET_PY})],
    )


def of_kind(question_set: QuestionSet, kind: str) -> list[Question]:
    return [q for q in question_set.questions if q.kind == kind]


def find(questions: list[Question], needle: str) -> Question:
    matches = [q for q in questions if needle in q.text]
    assert len(matches) == 1, (needle, [q.text for q in questions])
    return matches[0]


def test_definitions_name_the_right_file_and_line(app_repo: Path) -> None:
    questions = of_kind(generate_questions(Workspace(app_repo), 50, 0), "definition")
    parse = find(questions, "`parse_config`")  # build/out.py is ignored: the name is unique
    assert parse.expected == ("src/app/config.py:4",)
    assert parse.partial == ("src/app/config.py",)
    assert find(questions, "`SettingsLoader`").expected == ("src/app/config.py:12",)
    assert find(questions, "`SettingsLoader.describe_loader`").expected == ("src/app/config.py:13",)
    assert find(questions, "`widget_factory`").expected == ("src/app/widget.py:1",)
    for question in questions:  # every answer is a real definition line
        path, line = question.expected[0].rsplit(":", 1)
        text = (app_repo / path).read_text().splitlines()[int(line) - 1]
        assert text.lstrip().startswith(("def ", "class "))
        assert question.text.endswith("Answer with path:line.")


def test_last_commit_of_a_file_changed_in_the_second_commit(app_repo: Path) -> None:
    questions = of_kind(generate_questions(Workspace(app_repo), 50, 0), "last_commit")
    widget = find(questions, "`src/app/widget.py`")
    short_sha = git(app_repo, "log", "-1", "--format=%h", "--", "src/app/widget.py").strip()
    assert widget.expected == (short_sha, "Add the widget factory module")
    assert len(short_sha) >= 7
    readme = find(questions, "`README.md`")
    first = git(app_repo, "rev-list", "--max-parents=0", "HEAD").strip()
    assert first.startswith(readme.expected[0])
    assert "`.env`" not in " ".join(q.text for q in questions)
    assert "build/" not in " ".join(q.text for q in questions)


def test_count_matches_search_code_and_skips_secret_and_ignored_files(app_repo: Path) -> None:
    questions = of_kind(generate_questions(Workspace(app_repo), 50, 0), "count")
    # config.py and main.py; never .env nor the ignored build/out.py
    assert find(questions, "`parse_config`").expected == ("2",)
    assert find(questions, "`widget_factory`").expected == ("1",)
    for question in questions:
        assert 1 <= int(question.expected[0]) <= 20


def test_count_without_ripgrep_uses_the_python_engine(
    app_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("local_brain.evaluation.questions.find_rg", lambda root=None: None)
    questions = of_kind(generate_questions(Workspace(app_repo), 50, 0), "count")
    assert find(questions, "`parse_config`").expected == ("2",)


def test_config_values(app_repo: Path) -> None:
    questions = of_kind(generate_questions(Workspace(app_repo), 50, 0), "config_value")
    assert find(questions, "`project.version` in `pyproject.toml`").expected == ("1.2.3",)
    assert find(questions, "`project.name`").expected == ("demo-app",)
    assert find(questions, "`server.HostName` in `settings.ini`").expected == ("example.internal",)
    assert find(questions, "`server.port`").expected == ("8443",)
    assert find(questions, "`service.region` in `data.json`").expected == ("eu-west-3",)
    assert find(questions, "`service.replicas`").expected == ("4",)
    assert not [q for q in questions if "7.7.7" in q.expected or "motto" in q.text]


def test_returns(app_repo: Path) -> None:
    questions = of_kind(generate_questions(Workspace(app_repo), 50, 0), "returns")
    assert find(questions, "`default_port`").expected == ("8080",)
    assert find(questions, "`SettingsLoader.describe_loader`").expected == ('"settings-loader"',)
    assert find(questions, "`widget_factory`").expected == ("WIDGET_KINDS[0]",)
    # parse_config returns a generator-based call, run_application has more than a return
    assert not [q for q in questions if "parse_config" in q.text or "run_application" in q.text]


def test_kinds_take_turns(app_repo: Path) -> None:
    question_set = generate_questions(Workspace(app_repo), 5, 0)
    assert [q.kind for q in question_set.questions] == [
        "definition",
        "last_commit",
        "count",
        "config_value",
        "returns",
    ]
    assert question_set.notes == []
    assert [q.kind for q in generate_questions(Workspace(app_repo), 3, 0).questions] == [
        "definition",
        "last_commit",
        "count",
    ]
    assert len(generate_questions(Workspace(app_repo), 1, 0).questions) == 1
    assert len(generate_questions(Workspace(app_repo), 7, 0).questions) == 7


def test_same_seed_same_questions_other_seed_other_choice(make_repo: RepoFactory) -> None:
    files = {
        f"pkg/module_{i:02}.py": f"def function_number_{i:02}():\n    return {i + 10}\n"
        for i in range(30)
    }
    files.update({f"conf/c{i}.toml": f'value_{i} = "v-{i}"\n' for i in range(10)})
    repo = make_repo(files, commits=[(f"Change module {i:02} for real", {f"pkg/module_{i:02}.py": f"X = {i}\n"}) for i in range(5)])  # fmt: skip
    ws = Workspace(repo)
    first = generate_questions(ws, 10, 7)
    assert first == generate_questions(ws, 10, 7)
    others = [generate_questions(ws, 10, seed) for seed in range(3)]
    assert any(other.questions != first.questions for other in others)
    for kind in ("definition", "last_commit", "config_value", "returns"):
        picks = {tuple(q.text for q in of_kind(s, kind)) for s in [first, *others]}
        assert len(picks) > 1, kind


def test_nothing_from_secret_ignored_or_hard_linked_files(make_repo: RepoFactory) -> None:
    repo = make_repo(
        {
            ".gitignore": "generated/\n",
            ".env": "APP_VERSION=4.5.6\n",
            "generated/ignored_module.py": "def ignored_function():\n    return 4242\n",
            "secrets.yaml": "db_host: hidden-host.example\n",
            "credentials.json": '{"client_name": "hidden-client"}\n',
            "config/service-account.json": '{"project_id": "hidden-project"}\n',
            "tokens.yaml": "github: ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\nregion: leak-region\n",
            "real_module.py": "def linked_function():\n    return 777\n",
        }
    )
    os.link(repo / "real_module.py", repo / "other_name.py")  # both names now refused
    question_set = generate_questions(Workspace(repo), 30, 0)
    everything = repr(question_set.questions)
    for leaked in (
        "4.5.6", ".env", "ignored_function", "4242", "generated/", "hidden-host", "secrets.yaml",
        "hidden-client", "credentials.json", "hidden-project", "ghp_", "leak-region",
        "linked_function", "777", "real_module", "other_name",
    ):  # fmt: skip
        assert leaked not in everything
    # tokens.yaml holds a secret: the tools show it redacted, so none of its values is asked
    # for, but it is a visible, tracked file (as is .gitignore): its last commit may be.
    paths = {q.source.removeprefix("git_log path=") for q in question_set.questions}
    assert {q.kind for q in question_set.questions} == {"last_commit"}
    assert paths == {".gitignore", "tokens.yaml"}
    assert any(note.startswith("no definition questions") for note in question_set.notes)
    assert any(note.startswith("no config_value questions") for note in question_set.notes)


def test_plain_directory_has_no_last_commit_questions(make_repo: RepoFactory) -> None:
    root = make_repo({"tool.py": CONFIG_PY, "app.toml": 'mode = "fast"\n'}, git_init=False)
    question_set = generate_questions(Workspace(root), 10, 0)
    assert question_set.questions
    assert "last_commit" not in {q.kind for q in question_set.questions}
    notes = " | ".join(question_set.notes)
    assert "no last_commit questions: no git history" in notes
    assert find(of_kind(question_set, "config_value"), "`mode`").expected == ("fast",)


def test_repository_without_commits(make_repo: RepoFactory) -> None:
    root = make_repo({})
    (root / "lonely.py").write_text("def lonely_function():\n    return 1.5\n")
    question_set = generate_questions(Workspace(root), 10, 0)
    assert "no last_commit questions: the repository has no commits" in question_set.notes
    assert {q.kind for q in question_set.questions} == {"definition", "count", "returns"}


def test_tiny_repository_gives_fewer_questions_with_a_note(make_repo: RepoFactory) -> None:
    repo = make_repo({"README.md": "# tiny\n"})
    question_set = generate_questions(Workspace(repo), 10, 0)
    assert [q.kind for q in question_set.questions] == ["last_commit"]
    assert question_set.notes[0] == "only 1 of 10 questions: too few candidates"
    assert "no definition questions: no uniquely named function or class in the source files" in (
        question_set.notes
    )


def test_empty_directory_never_raises(tmp_path: Path) -> None:
    question_set = generate_questions(Workspace(tmp_path), 3, 0)
    assert question_set.questions == []
    assert question_set.notes[0] == "only 0 of 3 questions: too few candidates"


def test_duplicate_short_and_dunder_names_are_not_asked(make_repo: RepoFactory) -> None:
    repo = make_repo(
        {
            "a.py": "def shared_name():\n    return 1\n\n\ndef run():\n    return 2\n",
            "b.py": "def shared_name():\n    return 3\n\n\nclass Thing:\n    def __repr__(self):\n        return 'T'\n",
        }
    )
    question_set = generate_questions(Workspace(repo), 20, 0)
    texts = " ".join(q.text for q in question_set.questions)
    assert "shared_name" not in texts and "`run`" not in texts and "__repr__" not in texts
    assert "`Thing`" in texts


def test_source_files_are_capped(make_repo: RepoFactory) -> None:
    files = {f"m/f{i:03}.py": f"def fn_{i:03}_x():\n    return {i}\n" for i in range(401)}
    root = make_repo(files, git_init=False)
    question_set = generate_questions(Workspace(root), 3, 0)
    assert "definitions come from the first 400 files only" in question_set.notes
    assert all("fn_400_x" not in q.text for q in question_set.questions)


def test_config_values_are_the_text_as_written(make_repo: RepoFactory) -> None:
    repo = make_repo(
        {
            "app.yaml": "runtime:\n  python: 3.10\n  mode: 010\n  enabled: yes\n  label: 'v1.0'\n",
            "tool.toml": '[build]\nratio = 3.10\nmask = 0x1F\nlimit = 1_000\nname = "fast"\n',
            "data.json": '{"ratio": 3.10, "scale": 1e3, "count": 12}',
        }
    )
    questions = of_kind(generate_questions(Workspace(repo), 50, 0), "config_value")
    assert find(questions, "`runtime.python`").expected == ("3.10",)
    assert find(questions, "`runtime.mode`").expected == ("010",)
    assert find(questions, "`runtime.label`").expected == ("v1.0",)
    assert find(questions, "`build.ratio`").expected == ("3.10",)
    assert find(questions, "`build.mask`").expected == ("0x1F",)
    assert find(questions, "`build.limit`").expected == ("1_000",)
    assert find(questions, "`build.name`").expected == ("fast",)
    assert find(questions, "`ratio` in `data.json`").expected == ("3.10",)
    assert find(questions, "`scale`").expected == ("1e3",)
    assert find(questions, "`count`").expected == ("12",)
    assert not [q for q in questions if "enabled" in q.text]  # a yes/no is too easy a guess
