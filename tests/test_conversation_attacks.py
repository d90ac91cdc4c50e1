"""The conversation store under attack: names that try to leave the state directory, files
planted in it (symlinks, FIFOs, huge or foreign files, forged ids), secrets that would be
stored and replayed, and two runs saving the same conversation at once.

Nothing outside the state directory may be read or written; nothing secret may be stored
or sent again to the model in a later turn.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local_brain.conversations import ConversationStore, state_dir
from tests.conftest import InProcessCli
from tests.fakes.model_server import ModelServer
from tests.test_conversations import MODEL, answer_next, ask, sent_text
from tests.test_e2e import LOCAL_BRAIN

SECRET = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


def store_dir(home: Path) -> Path:
    return home / ".local" / "state" / "local-brain" / "conversations"


def document(root: Path, conversation_id: str, answer: str) -> dict[str, Any]:
    return {
        "format": 1,
        "id": conversation_id,
        "root": str(root.resolve()),
        "created": 1e12,  # never expired
        "updated": 1e12,
        "turns": [{"question": "planted question", "answer": answer, "at": 1e12}],
    }


def plant(root: Path, file_id: str, content: dict[str, Any] | None = None) -> Path:
    """A file under the name the store gives ``file_id`` (its directory created)."""
    path = ConversationStore(root)._path(file_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is not None:
        path.write_text(json.dumps(content))
    return path


def all_files(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*")} if directory.exists() else set()


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/passwd", "a\0b", "x" * 65, "ｂilling", "bi\u200blling", "..", "a/b", ""],
)
def test_session_names_that_leave_the_store_are_refused(
    cli: InProcessCli, billing_repo: Path, hermetic_env: Path, name: str
) -> None:
    before = all_files(hermetic_env)
    refused = cli("--root", str(billing_repo), "--session", name, "hello there")
    assert refused.returncode == 2
    assert "not a valid conversation name" in refused.stderr or (
        name == "" and "empty value" in refused.stderr  # the CLI refuses any empty option
    )
    assert len(refused.stderr.strip().splitlines()) <= 2  # the line and its hint
    assert all_files(hermetic_env) == before


def test_a_forged_id_in_a_planted_file_writes_nothing_outside_the_store(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, hermetic_env: Path
) -> None:
    # The file's id leads out of the store through a directory planted under the prefix.
    forged = "x/../../../escape"
    plant(billing_repo, "x").with_suffix("").mkdir(parents=True)  # "<prefix>x/"
    plant(billing_repo, "forged", document(billing_repo, forged, "injected-answer-51"))

    answer_next(model_server, "fine")
    follow = ask(cli, model_server, billing_repo, "--continue", "and then?")
    listed = cli("sessions", "--root", str(billing_repo), "--json")
    cleared = cli("sessions", "clear", "--root", str(billing_repo))

    escape = store_dir(hermetic_env).parent.parent / "escape.json"
    assert not escape.exists()
    assert follow.returncode == 2 and "no earlier conversation" in follow.stderr
    assert "injected-answer-51" not in "".join(sent_text(r) for r in model_server.chat_requests())
    assert json.loads(listed.stdout)["conversations"] == []
    assert "Removed 0 conversations" in cleared.stdout


def test_a_symlink_in_the_store_is_neither_read_nor_written_through(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(document(billing_repo, "leak", "outside-answer-83")))
    original = outside.read_text()
    plant(billing_repo, "leak").symlink_to(outside)

    answer_next(model_server, "fresh answer")
    run = ask(cli, model_server, billing_repo, "--session", "leak", "what is here?")

    assert run.returncode == 0, run.stderr
    assert "outside-answer-83" not in sent_text(model_server.chat_requests()[0])
    assert outside.read_text() == original  # not written through the link
    saved = ConversationStore(billing_repo).get("leak")
    assert saved is not None and [t.answer for t in saved.turns] == ["fresh answer"]


def test_fifos_devices_and_huge_files_in_the_store_are_skipped(
    billing_repo: Path, hermetic_env: Path
) -> None:
    """In a child process with a memory limit: a read of /dev/zero or a FIFO without a
    writer would never end, a huge file would be read whole."""
    os.mkfifo(plant(billing_repo, "fifo"))
    plant(billing_repo, "zero").symlink_to("/dev/zero")
    with plant(billing_repo, "huge").open("wb") as huge:
        huge.truncate(3 * 1024**3)  # sparse: 3 GiB of NULs
    good = plant(billing_repo, "good", document(billing_repo, "good", "kept"))
    os.utime(good)

    env = {**os.environ, "HOME": str(hermetic_env)}
    env.pop("XDG_STATE_HOME", None)
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3,) * 2)"
    script = f"{limit}\nfrom local_brain.cli import main\nmain(['sessions', '--json'])"
    python = str(Path(LOCAL_BRAIN).with_name("python"))
    done = subprocess.run(
        [python, "-c", script], cwd=billing_repo, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert [c["id"] for c in json.loads(done.stdout)["conversations"]] == ["good"]


def test_invalid_and_foreign_files_are_ignored(
    cli: InProcessCli, billing_repo: Path, make_repo: Any
) -> None:
    other = make_repo({"README.md": "# other\n"}, name="other")
    plant(billing_repo, "broken").write_text("{not json")
    plant(billing_repo, "list").write_text("[1, 2, 3]")
    plant(billing_repo, "turns").write_text(json.dumps({**document(billing_repo, "turns", "a"),
                                                        "turns": "abc"}))  # fmt: skip
    plant(billing_repo, "other", document(other, "other", "from the other repository"))

    listed = cli("sessions", "--root", str(billing_repo), "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["conversations"] == []
    cont = cli("--root", str(billing_repo), "--continue", "and then?")
    assert cont.returncode == 2 and "no earlier conversation" in cont.stderr


def test_secrets_in_a_question_or_answer_are_neither_stored_nor_replayed(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, hermetic_env: Path
) -> None:
    answer_next(model_server, f"The token {SECRET} is used in deploy.")
    first = ask(cli, model_server, billing_repo, "--session", "s", f"who uses {SECRET}?")
    assert first.returncode == 0, first.stderr
    (saved,) = store_dir(hermetic_env).glob("*-s.json")
    assert SECRET not in saved.read_text()
    assert "secret withheld" in saved.read_text()

    before = len(model_server.chat_requests())
    answer_next(model_server, "ok")
    follow = ask(cli, model_server, billing_repo, "--session", "s", "and then?")
    assert follow.returncode == 0, follow.stderr
    assert SECRET not in sent_text(model_server.chat_requests()[before])


def test_a_planted_secret_is_not_replayed(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    plant(billing_repo, "old", document(billing_repo, "old", f"password = '{SECRET}'"))
    answer_next(model_server, "ok")
    follow = ask(cli, model_server, billing_repo, "--session", "old", "and then?")
    assert follow.returncode == 0, follow.stderr
    text = sent_text(model_server.chat_requests()[0])
    assert "planted question" in text and SECRET not in text


def test_two_runs_saving_one_conversation_keep_both_turns(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    store = ConversationStore(repo, tmp_path / "state")
    store.add_turn(store.start("talk"), "q1", "a1")
    first, second = store.get("talk"), store.get("talk")  # two runs load it before either saves
    assert first is not None and second is not None
    store.add_turn(first, "q2", "a2")
    store.add_turn(second, "q3", "a3")
    saved = store.get("talk")
    assert saved is not None
    assert [t.question for t in saved.turns] == ["q1", "q2", "q3"]


def test_a_relative_state_home_is_ignored(tmp_path: Path) -> None:
    assert state_dir({"XDG_STATE_HOME": "rel", "HOME": str(tmp_path)}) == (
        tmp_path / ".local" / "state" / "local-brain" / "conversations"
    )


def test_a_state_dir_reaching_the_repository_through_a_link_is_refused(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "local-brain").symlink_to(billing_repo / "src")
    answer_next(model_server, "still answered")
    run = cli("-m", MODEL, "--root", str(billing_repo), "--json", "again?",
              server=model_server, env={"XDG_STATE_HOME": str(state)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["session"] is None
    assert "inside the repository" in run.stderr
    assert not (billing_repo / "src" / "conversations").exists()


@pytest.mark.slow
def test_mcp_session_arguments_that_leave_the_store_are_refused_in_one_short_line(
    model_server: ModelServer, billing_repo: Path, hermetic_env: Path
) -> None:
    pytest.importorskip("mcp")
    from tests.test_conversations import mcp_calls, text_of

    plant(billing_repo, "x").with_suffix("").mkdir(parents=True)
    names = ["../x", "/etc/passwd", "a\0b", "x" * 5000, "ｂilling", "x/../../../escape"]
    before = all_files(hermetic_env)

    async def steps(client: Any) -> list[Any]:
        return [await client.call_tool("ask", {"prompt": "hi?", "session": n}) for n in names]

    env = {"OLLAMA_API_BASE": model_server.url, "LOCAL_BRAIN_MODEL": MODEL}
    results = mcp_calls(billing_repo, env, steps)
    for result in results:
        assert result.is_error
        text = text_of(result)
        assert "\n" not in text and len(text) < 200, text
        assert text.startswith("ask: no conversation")
    assert model_server.chat_requests() == []
    assert all_files(hermetic_env) == before


def test_a_secret_piped_on_stdin_is_neither_stored_nor_replayed(
    model_server: ModelServer, billing_repo: Path, hermetic_env: Path
) -> None:
    from tests.test_e2e import run_cli

    answer_next(model_server, "The diff rotates a token.")
    piped = f"+GITHUB_TOKEN = '{SECRET}'\n"
    first = run_cli("-m", MODEL, "--root", str(billing_repo), "--session", "diff",
                    "what does this diff do?", server=model_server, stdin=piped)  # fmt: skip
    assert first.returncode == 0, first.stderr
    (saved,) = store_dir(hermetic_env).glob("*-diff.json")
    assert "rotates" in saved.read_text() and SECRET not in saved.read_text()

    answer_next(model_server, "ok")
    follow = run_cli("-m", MODEL, "--root", str(billing_repo), "--continue", "and then?",
                     server=model_server)  # fmt: skip
    assert follow.returncode == 0, follow.stderr
    assert all(SECRET not in sent_text(r) for r in model_server.chat_requests())
