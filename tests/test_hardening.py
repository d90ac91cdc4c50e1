"""Hostile model output end to end: attack code arrives from the scripted model server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.model_server import ModelServer
from tests.test_e2e import code, run_cli

SECRET = "sk-live-HUNTER2-credential"


def test_attack_steps_fail_and_leak_nothing(model_server: ModelServer, make_repo, tmp_path) -> None:
    marker = tmp_path / "pwned"
    repo = make_repo({"a.py": "x = 1\n", ".env": f"TOKEN={SECRET}\n"})
    attacks = [
        f'open("{marker}", "w").write("x")',
        "g = (i for i in [1])\nprint(g.gi_frame.f_locals)",
        'print("{0.__globals__[os].environ}".format(read_file))',
        f'import os\nos.system("touch {marker}")',
        'print(read_file("../../../../etc/passwd"))',
        'print(search_code(pattern="HUNTER2"))',
    ]
    model_server.script(None, [code(attack) for attack in attacks] + [code('final_answer("done")')])

    result = run_cli("-m", "qwen2.5:3b", "--root", str(repo), "Q?", server=model_server,
                     env={"MY_API_KEY": SECRET})  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert not marker.exists()
    sent = json.dumps([request.body for request in model_server.requests])
    assert SECRET not in sent and SECRET not in result.stdout + result.stderr
    observations = [request.last_text for request in model_server.chat_requests()[1:]]
    assert "not allowed" in observations[0] or "Error" in observations[0]
    assert "0 matches" in observations[5]
    assert "outside the repository root" in observations[4]


def test_endless_loop_is_stopped_by_step_timeout(model_server: ModelServer, make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [code("while True:\n    pass"), code('final_answer("recovered")')])

    result = run_cli("-m", "qwen2.5:3b", "--step-timeout", "2", "--root", str(repo), "Q?",
                     server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "recovered"
    second = model_server.chat_requests()[1].last_text
    assert "step timeout (2 s)" in second


def test_repository_is_not_modified(model_server: ModelServer, make_repo, tmp_path: Path) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(
        None,
        [code('print(git_status())\nprint(git_diff())\nprint(list_directory(pattern="**"))'),
         code('final_answer("ok")')],
    )  # fmt: skip
    transcript = tmp_path / "t.jsonl"

    result = run_cli("-m", "qwen2.5:3b", "--root", str(repo), "--transcript", str(transcript),
                     "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    last = json.loads(transcript.read_text().splitlines()[-1])
    assert last["repository_unmodified"] is True
