"""Hostile model output end to end: attack code arrives from the scripted model server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import InProcessCli
from tests.fakes.model_server import Fault, ModelServer
from tests.test_e2e import code, run_cli

SECRET = "sk-live-HUNTER2-credential"


@pytest.mark.slow  # spawns the installed command
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

    # Subprocess: a sandbox attack, delivered through the installed command as users run it.
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


def test_endless_loop_is_stopped_by_step_timeout(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(
        None,
        [code("import time\nwhile True:\n    time.sleep(0.5)"), code('final_answer("recovered")')],
    )

    result = cli("-m", "qwen2.5:3b", "--step-timeout", "2", "--root", str(repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "recovered"
    second = model_server.chat_requests()[1].last_text
    assert "step timeout (2 s)" in second


def test_repository_is_not_modified(
    cli: InProcessCli, model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(
        None,
        [code('print(git_status())\nprint(git_diff())\nprint(list_directory(pattern="**"))'),
         code('final_answer("ok")')],
    )  # fmt: skip
    transcript = tmp_path / "t.jsonl"

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "--transcript", str(transcript),
                 "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    last = json.loads(transcript.read_text().splitlines()[-1])
    assert last["repository_unmodified"] is True


NETWORK_AUDIT = """
import atexit, json, sys
log, args = sys.argv[1], sys.argv[2:]
seen = []
def hook(event, details):
    if event == "socket.connect":
        seen.append(["connect", repr(details[1])])
    elif event == "socket.getaddrinfo":
        seen.append(["resolve", str(details[0])])
sys.addaudithook(hook)
atexit.register(lambda: open(log, "w").write(json.dumps(seen)))
sys.argv = ["local-brain", *args]
from local_brain.cli import main
main()
"""


@pytest.mark.slow  # spawns the installed command
def test_only_the_model_endpoint_is_contacted(
    model_server: ModelServer, make_repo, tmp_path
) -> None:
    """No price lists, telemetry or hub look-ups, even from a repo whose .env points elsewhere."""
    repo = make_repo(
        {"a.py": "x = 1\n", ".env": "HTTP_PROXY=http://10.9.9.9:3128\nHF_HUB_OFFLINE=0\n"}
    )
    model_server.script(
        "qwen3:30b", [code('print(code_search(task="x"))'), code('final_answer("ok")')]
    )
    model_server.script("qwen2.5:3b", [code('final_answer(search_code(pattern="x"))')])
    log = tmp_path / "network.json"

    # Subprocess: an audit hook cannot be removed, and must see a fresh interpreter's imports.
    completed = subprocess.run(
        [sys.executable, "-c", NETWORK_AUDIT, str(log), "--manager", "qwen3:30b",
         "--worker", "qwen2.5:3b", "Q?"],
        cwd=repo, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OLLAMA_API_BASE": model_server.url},
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    contacts = json.loads(log.read_text())
    assert contacts, "the audit hook saw no connection at all"
    for kind, target in contacts:
        if kind == "connect":
            assert target == repr(("127.0.0.1", model_server.port)), contacts
        else:
            assert target in ("127.0.0.1", "localhost"), contacts


@pytest.mark.slow  # spawns the installed command
def test_every_attack_fails_when_the_model_sends_it(model_server: ModelServer, make_repo) -> None:
    """The sandbox suite's attacks, delivered as model replies through the real agent loop."""
    from tests.test_sandbox import ATTACKS

    marker = Path("/tmp/lb_marker")
    marker.unlink(missing_ok=True)
    repo = make_repo({"a.py": "x = 1\n"})
    attacks = [attack.replace("echo", "read_file") for attack in ATTACKS.values()]
    model_server.script(None, [code(attack) for attack in attacks] + [code('final_answer("ok")')])

    # Subprocess: a sandbox attack, delivered through the installed command as users run it.
    result = run_cli("-m", "qwen2.5:3b", "--max-steps", str(len(attacks) + 1), "--root",
                     str(repo), "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    observations = [request.last_text for request in model_server.chat_requests()[1:]]
    assert len(observations) == len(attacks)
    for attack, observation in zip(attacks, observations, strict=True):
        assert "Error" in observation or "error" in observation, (attack, observation)
        assert "environ" not in observation.lower() or "not allowed" in observation


def test_team_mode_faults(cli: InProcessCli, model_server: ModelServer, make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    # The helper's model is down: the helper reports a failure, the manager still answers.
    model_server.script("qwen3:30b", [code('print(code_search(task="x"))')])
    model_server.script("qwen2.5:3b", [Fault.status(500, "boom")] * 4)
    model_server.responder = lambda request: code(
        f"final_answer({request.last_text.split('Execution logs:')[-1].strip()[:200]!r})"
    )
    helper_down = cli("--manager", "qwen3:30b", "--worker", "qwen2.5:3b", "--root", str(repo),
                      "Q?", server=model_server)  # fmt: skip

    assert helper_down.returncode == 0, helper_down.stderr
    assert "code_search FAILED" in helper_down.stdout

    # The manager's model is down: the run ends with exit 3.
    model_server.clear_script()
    model_server.responder = None
    model_server.script("qwen3:30b", [Fault.status(500, "boom")] * 4)
    manager_down = cli("--manager", "qwen3:30b", "--worker", "qwen2.5:3b", "--root",
                       str(repo), "Q?", server=model_server)  # fmt: skip
    assert manager_down.returncode == 3
    assert "Traceback" not in manager_down.stderr


def test_very_long_prompt_is_cut_with_a_notice(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [code('final_answer("ok")')])

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "why? " * 20_000, server=model_server)

    assert result.returncode == 0, result.stderr
    assert "prompt was cut" in result.stderr
    assert len(json.dumps(model_server.chat_requests()[0].messages)) < 60_000
