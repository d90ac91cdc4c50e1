"""Team mode end to end: a manager model delegating to helpers on a worker model.

The scripted server tells the models apart by the model name in each request.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import InProcessCli
from tests.fakes.model_server import ModelServer, RecordedRequest
from tests.test_e2e import code, last_observation

MANAGER = "qwen3:30b"
WORKER = "qwen2.5:3b"
TOOL_NAMES = (
    "search_code",
    "list_definitions",
    "read_file",
    "git_status",
    "git_diff",
    "git_log",
    "git_changed_files",
    "list_directory",
    "file_info",
)


def system_prompt(request: RecordedRequest) -> str:
    return str(request.messages[0]["content"])


def offered_tools(request: RecordedRequest) -> set[str]:
    prompt = system_prompt(request)
    return {name for name in TOOL_NAMES if f"- {name}(" in prompt}


def finish_with_observation(request: RecordedRequest) -> str:
    return code(f"final_answer({last_observation(request)!r})")


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {
            "src/auth/session.py": "import time\n\n\nclass Session:\n    pass\n\n\n"
            "def verify_token_x9(token):\n    return bool(token)\n",
            "docs/OWNERS.txt": "owner: team-falcon-77\n",
        },
        commits=[
            ("Expire tokens after one hour (walnut-12)", {"src/auth/expiry.py": "TTL = 3600\n"})
        ],
    )


def test_manager_delegates_and_facts_reach_the_answer(
    cli: InProcessCli, model_server: ModelServer, repo: Path
) -> None:
    model_server.script(
        MANAGER,
        [
            code(
                'print(code_search(task="Where is verify_token_x9 defined?"))\n'
                'print(git_ops(task="Last commits?"))\n'
                'print(file_explorer(task="Who owns the docs?"))'
            )
        ],
    )
    model_server.script(
        WORKER,
        [
            code('print(search_code(pattern="verify_token_x9"))'),
            code('final_answer(search_code(pattern="verify_token_x9"))'),
            code("final_answer(git_log(max_count=3))"),
            code('final_answer(read_file("docs/OWNERS.txt"))'),
        ],
    )
    model_server.responder = finish_with_observation

    result = cli(
        "--manager", MANAGER, "--worker", WORKER, "--root", str(repo), "-v",
        "Where is auth and what changed?", server=model_server,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "src/auth/session.py:8:" in result.stdout  # from code_search
    assert "Expire tokens after one hour (walnut-12)" in result.stdout  # from git_ops
    assert "team-falcon-77" in result.stdout  # from file_explorer

    manager_requests = model_server.chat_requests(MANAGER)
    worker_requests = model_server.chat_requests(WORKER)
    assert len(manager_requests) == 2
    assert len(worker_requests) == 4
    assert len(model_server.chat_requests()) == 6  # no request went to any other model

    manager_prompt = system_prompt(manager_requests[0])
    assert "code_search(task: str)" in manager_prompt
    assert "git_ops(task: str)" in manager_prompt and "file_explorer(task: str)" in manager_prompt
    assert offered_tools(manager_requests[0]) == set()  # the manager has no repository tools

    helper_tools = {frozenset(offered_tools(request)) for request in worker_requests}
    assert helper_tools == {
        frozenset({"search_code", "list_definitions", "read_file"}),
        frozenset({"git_status", "git_diff", "git_log", "git_changed_files"}),
        frozenset({"read_file", "list_directory", "file_info"}),
    }
    # -v shows the delegation with the helper's model, and helper steps indented.
    assert f"→ code_search on {WORKER}: Where is verify_token_x9 defined?" in result.stderr
    assert "    [git_ops] step 1" in result.stderr


def test_helper_step_limit_is_reported_as_failure(
    cli: InProcessCli, model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    config = tmp_path / "team.yaml"
    config.write_text("local_brain:\n  agents:\n    code_search: {max_steps: 2}\n")
    model_server.script(MANAGER, [code('print(code_search(task="Find the login handler"))')])
    model_server.script(WORKER, [code('print("still searching")')] * 2)
    model_server.responder = finish_with_observation

    result = cli(
        "--config", str(config), "--manager", MANAGER, "--worker", WORKER, "--root", str(repo),
        "Where is login?", server=model_server,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "code_search FAILED: no answer within its 2 steps" in result.stdout
    assert len(model_server.chat_requests(WORKER)) == 2
    # The failure, not a dump of the helper's log, is what the manager saw.
    report = last_observation(model_server.chat_requests(MANAGER)[-1])
    assert "still searching" not in report


def test_per_helper_model_from_config(
    cli: InProcessCli, model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    config = tmp_path / "team.yaml"
    config.write_text(
        "local_brain:\n  manager: qwen3:30b\n  worker: qwen2.5:3b\n"
        "  agents:\n    git_ops: {model: llama3.2}\n"
    )
    model_server.script(
        MANAGER,
        [code('print(git_ops(task="Latest commit?"))\nprint(code_search(task="verify_token_x9"))')],
    )
    model_server.script("llama3.2", [code("final_answer(git_log(max_count=1))")])
    model_server.script(WORKER, [code('final_answer(search_code(pattern="verify_token_x9"))')])
    model_server.responder = finish_with_observation

    result = cli(
        "--multi-agent", "--config", str(config), "--root", str(repo), "--json", "Q?",
        server=model_server,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert "walnut-12" in document["answer"] and "session.py:8" in document["answer"]
    assert (document["manager"], document["worker"]) == (MANAGER, WORKER)
    assert set(document["usage"]) == {MANAGER, WORKER, "llama3.2"}
    assert document["usage"]["llama3.2"]["requests"] == 1
    git_prompt = system_prompt(model_server.chat_requests("llama3.2")[0])
    assert "- git_log(" in git_prompt and "- search_code(" not in git_prompt


def test_unknown_helper_in_config_is_a_config_error(
    cli: InProcessCli, tmp_path: Path, repo: Path
) -> None:
    config = tmp_path / "team.yaml"
    config.write_text("local_brain:\n  agents:\n    web_search: {model: x}\n")

    result = cli("--config", str(config), "--multi-agent", "-m", "x", "--root", str(repo), "Q?")

    assert result.returncode == 2
    assert "web_search" in result.stderr and "no such helper" in result.stderr
