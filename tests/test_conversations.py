"""Conversations: follow-up questions in the terminal and over MCP, and their store.

The scripted model must see the earlier turns: every follow-up test asserts on the chat
requests the fake server recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from local_brain import conversations
from local_brain.conversations import ConversationStore, Turn, earlier_turns_block
from local_brain.window import text_tokens
from tests.conftest import InProcessCli
from tests.fakes.model_server import ModelServer, RecordedRequest
from tests.fakes.scripted_models import code

MODEL = "qwen2.5:3b"
FIRST_QUESTION = "Where are invoice totals computed?"
FIRST_ANSWER = "compute_total_cents_q7 does it, in src/billing/invoice.py:17 (walrus-31)"


def sent_text(request: RecordedRequest) -> str:
    return json.dumps(request.messages, ensure_ascii=False)


def ask(cli: InProcessCli, server: ModelServer, repo: Path, *args: str) -> Any:
    return cli("-m", MODEL, "--root", str(repo), "--json", *args, server=server)


def answer_next(server: ModelServer, answer: str) -> None:
    server.script(MODEL, [code(f"final_answer({answer!r})")])


# -- the terminal ---------------------------------------------------------------------------


def test_continue_sends_the_earlier_question_and_answer(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    answer_next(model_server, FIRST_ANSWER)
    first = ask(cli, model_server, billing_repo, FIRST_QUESTION)
    assert first.returncode == 0, first.stderr
    session = json.loads(first.stdout)["session"]
    assert session
    first_requests = len(model_server.chat_requests())

    answer_next(model_server, "It is called from nowhere else.")
    follow_up = ask(cli, model_server, billing_repo, "--continue", "and where is it called?")

    assert follow_up.returncode == 0, follow_up.stderr
    assert json.loads(follow_up.stdout)["session"] == session  # the same conversation
    request = model_server.chat_requests()[first_requests]
    text = sent_text(request)
    assert FIRST_QUESTION in text and "walrus-31" in text  # the earlier turn reached the model
    assert text.index(FIRST_QUESTION) < text.index("and where is it called?")
    # The first run saw no earlier conversation.
    assert "Earlier in this conversation" not in sent_text(model_server.chat_requests()[0])

    listed = cli("sessions", "--root", str(billing_repo), "--json")
    (only,) = json.loads(listed.stdout)["conversations"]
    assert only["id"] == session and only["turns"] == 2
    assert only["last_question"] == "and where is it called?"


def test_named_session_is_created_then_continued_and_kept_apart(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    answer_next(model_server, "Totals: invoice.py (otter-12)")
    named = ask(cli, model_server, billing_repo, "--session", "billing", "Which file has totals?")
    answer_next(model_server, "Taxes: tax.py (heron-55)")
    plain = ask(cli, model_server, billing_repo, "Which file has taxes?")
    assert named.returncode == 0 and plain.returncode == 0, named.stderr + plain.stderr
    assert json.loads(named.stdout)["session"] == "billing"
    assert json.loads(plain.stdout)["session"] != "billing"  # every run records its own
    before = len(model_server.chat_requests())

    answer_next(model_server, "done")
    again = ask(cli, model_server, billing_repo, "--session", "billing", "And its tests?")

    assert again.returncode == 0, again.stderr
    text = sent_text(model_server.chat_requests()[before])
    assert "otter-12" in text and "heron-55" not in text  # only that conversation's turns


def test_continue_and_session_errors(cli: InProcessCli, billing_repo: Path) -> None:
    nothing = cli("--root", str(billing_repo), "--continue", "and then?")
    assert nothing.returncode == 2
    assert "no earlier conversation" in nothing.stderr
    bad = cli("--root", str(billing_repo), "--session", "../etc", "hello there")
    assert bad.returncode == 2 and "not a valid conversation name" in bad.stderr
    both = cli("--root", str(billing_repo), "--continue", "--session", "x", "hello there")
    assert both.returncode == 2 and "cannot be used together" in both.stderr


def test_sessions_list_and_clear(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path
) -> None:
    for name in ("alpha", "beta", "gamma"):
        answer_next(model_server, f"answer for {name}")
        done = ask(cli, model_server, billing_repo, "--session", name, f"question {name}?")
        assert done.returncode == 0, done.stderr

    listing = cli("sessions", "--root", str(billing_repo))
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["gamma", "beta", "alpha"]  # newest first
    assert "1 turn" in lines[0] and "question gamma?" in lines[0] and "ago" in lines[0]

    removed = cli("sessions", "clear", "beta", "--root", str(billing_repo))
    assert removed.returncode == 0 and "beta" in removed.stdout
    ids = [c["id"] for c in json.loads(cli("sessions", "--root", str(billing_repo), "--json")
                                       .stdout)["conversations"]]  # fmt: skip
    assert ids == ["gamma", "alpha"]
    missing = cli("sessions", "clear", "beta", "--root", str(billing_repo))
    assert missing.returncode == 2 and "no conversation 'beta'" in missing.stderr

    cleared = cli("sessions", "clear", "--root", str(billing_repo))
    assert cleared.returncode == 0 and "Removed 2 conversations" in cleared.stdout
    assert "No conversations" in cli("sessions", "--root", str(billing_repo)).stdout


def test_another_repository_does_not_see_the_conversation(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, make_repo
) -> None:
    other = make_repo({"README.md": "# other\n"}, name="other")
    answer_next(model_server, FIRST_ANSWER)
    first = ask(cli, model_server, billing_repo, "--session", "shared", FIRST_QUESTION)
    assert first.returncode == 0, first.stderr

    assert "No conversations" in cli("sessions", "--root", str(other)).stdout
    assert cli("--root", str(other), "--continue", "and then?").returncode == 2
    assert cli("sessions", "clear", "shared", "--root", str(other)).returncode == 2
    before = len(model_server.chat_requests())
    answer_next(model_server, "fresh")
    fresh = ask(cli, model_server, other, "--session", "shared", "What is here?")
    assert fresh.returncode == 0, fresh.stderr
    assert "walrus-31" not in sent_text(model_server.chat_requests()[before])

    # A file claiming another root, under this root's name, is not this repository's.
    store = ConversationStore(other)
    planted = json.loads(store._path("shared").read_text())
    planted["id"] = "planted"
    planted["root"] = str(billing_repo.resolve())
    store._path("planted").write_text(json.dumps(planted))
    assert store.get("planted") is None
    assert [c.id for c in store.list()] == ["shared"]
    assert ConversationStore(billing_repo).get("shared").turns[0].answer == FIRST_ANSWER


def test_store_is_outside_the_repository_and_private(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, hermetic_env: Path
) -> None:
    answer_next(model_server, FIRST_ANSWER)
    first = ask(cli, model_server, billing_repo, FIRST_QUESTION)
    assert first.returncode == 0, first.stderr
    session = json.loads(first.stdout)["session"]

    directory = hermetic_env / ".local" / "state" / "local-brain" / "conversations"
    (saved,) = directory.glob(f"*-{session}.json")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert json.loads(saved.read_text())["root"] == str(billing_repo.resolve())
    assert not [p for p in billing_repo.rglob("*") if session in p.name]

    # A state directory inside the repository is refused: the answer stands, unsaved.
    answer_next(model_server, "still answered")
    inside = cli("-m", MODEL, "--root", str(billing_repo), "--json", "again?",
                 server=model_server, env={"XDG_STATE_HOME": str(billing_repo / "state")})  # fmt: skip
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["session"] is None
    assert "not saved" in inside.stderr and "inside the repository" in inside.stderr
    assert not (billing_repo / "state").exists()


# -- the store's bounds and the compaction ---------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_store_bounds_turns_characters_age_and_count(tmp_path: Path) -> None:
    clock = Clock()
    repo = tmp_path / "repo"
    repo.mkdir()
    store = ConversationStore(repo, tmp_path / "state", clock)

    talk = store.start()
    for number in range(conversations.MAX_TURNS + 5):
        clock.now += 1
        store.add_turn(talk, f"question {number}", f"answer {number}")
    kept = store.get(talk.id)
    assert kept is not None and len(kept.turns) == conversations.MAX_TURNS
    assert kept.turns[-1].question == f"question {conversations.MAX_TURNS + 4}"

    big = store.start("big")
    for number in range(6):
        store.add_turn(big, f"q{number}", "x" * 50_000)
    turns = store.get("big").turns
    assert sum(len(t.question) + len(t.answer) for t in turns) <= conversations.MAX_CHARS
    assert turns[-1].question == "q5" and len(turns[-1].answer) < 50_000  # cut, kept

    clock.now += conversations.MAX_AGE_S + 1
    fresh = store.add_turn(store.start("fresh"), "new?", "new.")
    assert [c.id for c in store.list()] == [fresh.id]  # the old ones are gone...
    assert len(list((tmp_path / "state").glob("*.json"))) == 1  # ...from the disk too
    assert store.get(talk.id) is None

    for number in range(conversations.MAX_CONVERSATIONS + 3):
        clock.now += 1
        store.add_turn(store.start(f"c{number}"), "q", "a")
    listed = store.list()
    assert len(listed) == conversations.MAX_CONVERSATIONS
    assert listed[0].id == f"c{conversations.MAX_CONVERSATIONS + 2}"


def test_earlier_turns_are_compacted_newest_first() -> None:
    turns = [Turn(f"question {n}", f"answer {n} " + "detail " * 400, float(n)) for n in range(8)]

    roomy = earlier_turns_block(turns, 100_000)
    assert "answer 7 " + "detail " * 400 in roomy  # the newest answer whole
    assert "answer 0 " + "detail " * 400 not in roomy  # older answers shortened...
    assert "Answer 1: answer 0 detail" in roomy and "[…]" in roomy  # ...but there
    assert roomy.index("Question 1:") < roomy.index("Question 8:")  # oldest first

    tight = earlier_turns_block(turns, 1_200)
    assert "Question 8: question 7" in tight and "Question 1:" not in tight
    assert "earlier question(s) left out" in tight
    assert text_tokens(tight) <= 1_200
    assert earlier_turns_block(turns, 10) == ""


def test_a_long_conversation_is_compacted_to_the_window(
    cli: InProcessCli, model_server: ModelServer, billing_repo: Path, tmp_path: Path
) -> None:
    store = ConversationStore(billing_repo)
    talk = store.start("long")
    for number in range(6):
        answer = f"answer-{number}-start " + "filler text " * 400 + f"answer-{number}-end"
        store.add_turn(talk, f"question-{number}?", answer)
    config = tmp_path / "small.yaml"
    config.write_text("local_brain:\n  num_ctx: 4096\n")
    answer_next(model_server, "short")

    done = ask(cli, model_server, billing_repo, "--config", str(config),
               "--session", "long", "and the next step?")  # fmt: skip

    assert done.returncode == 0, done.stderr
    (request,) = model_server.chat_requests()
    text = sent_text(request)
    assert request.num_ctx == 4096
    assert "question-5?" in text and "answer-5-start" in text  # the newest turn is there...
    assert "answer-5-end" not in text  # ...its answer cut to fit
    assert "question-0?" not in text and "left out" in text  # the oldest left out
    assert "and the next step?" in text
    assert request.prompt_tokens_total is not None and request.prompt_tokens_total < 4096
    assert len(store.get("long").turns) == 7


def test_session_names_are_checked() -> None:
    from local_brain.errors import UsageError

    for good in ("notes", "a.b_c-1", "x" * 64):
        assert conversations.check_name(good) == good
    for bad in ("", "../x", "a/b", "x" * 65, "..", "with space"):
        with pytest.raises(UsageError):
            conversations.check_name(bad)


# -- MCP ------------------------------------------------------------------------------------


mcp = pytest.importorskip("mcp")


def mcp_calls(repo: Path, env: dict[str, str], steps: Any) -> list[Any]:
    """Spawn `local-brain mcp --root REPO`; ``steps(call)`` makes the calls (it may use one
    result in the next call)."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from tests.test_e2e import LOCAL_BRAIN

    async def go() -> list[Any]:
        parameters = StdioServerParameters(
            command=LOCAL_BRAIN, args=["mcp", "--root", str(repo)], env={**os.environ, **env}
        )
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            return await steps(client)

    return asyncio.run(go())


def text_of(result: Any) -> str:
    return "\n".join(part.text for part in result.content if hasattr(part, "text"))


@pytest.mark.slow
def test_mcp_follow_up_with_session_and_structured_result(
    model_server: ModelServer, billing_repo: Path
) -> None:
    model_server.script(
        MODEL,
        [
            code('print(search_code(pattern="compute_total_cents_q7"))'),
            code(f"final_answer({FIRST_ANSWER!r})"),
            code('final_answer("It is called by nobody (kiwi-77)")'),
        ],
    )
    env = {"OLLAMA_API_BASE": model_server.url, "LOCAL_BRAIN_MODEL": MODEL}

    async def steps(client: Any) -> list[Any]:
        first = await client.call_tool("ask", {"prompt": FIRST_QUESTION})
        session = first.structured_content["session"]
        follow = await client.call_tool(
            "ask", {"prompt": "and where is it called?", "session": session}
        )
        unknown = await client.call_tool("ask", {"prompt": "hm?", "session": "nope1234"})
        return [first, follow, unknown]

    first, follow, unknown = mcp_calls(billing_repo, env, steps)

    assert not first.is_error, text_of(first)
    document = first.structured_content
    session = document["session"]
    assert document["answer"] == FIRST_ANSWER
    assert document["steps"] == 2 and document["fallbacks"] == []
    assert MODEL in document["usage"] and document["usage"][MODEL]["requests"] == 2
    (citation,) = [c for c in document["citations"] if "invoice.py" in json.dumps(c)]
    assert citation["exists"] and citation["seen"] and not citation["problem"]  # checked
    assert text_of(first).rstrip().endswith(f"session: {session}")

    assert not follow.is_error, text_of(follow)
    assert follow.structured_content["session"] == session
    assert text_of(follow).rstrip().endswith(f"session: {session}")
    text = sent_text(model_server.chat_requests()[2])  # the follow-up's first request
    assert FIRST_QUESTION in text and "walrus-31" in text

    assert unknown.is_error
    assert text_of(unknown) == (
        "ask: no conversation 'nope1234' for this repository (start one by asking without session)"
    )
    assert len(model_server.chat_requests()) == 3  # the unknown session asked no model
