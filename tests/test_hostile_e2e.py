"""A hostile clone and a protocol-breaking child, end to end through the installed CLI."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import pytest

from tests.attacks import escape
from tests.fakes.model_server import ModelServer
from tests.test_e2e import code, run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="FIFOs and /dev/zero need Linux"),
]


def test_a_hostile_clone_cannot_stall_or_redirect_a_run(
    model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"src/app.py": "def handler():\n    return 'pong'\n", "docs/x.md": "x\n"})
    (repo / ".gitignore").symlink_to("/dev/zero")
    os.mkfifo(repo / "docs" / ".ignore")
    (repo / "src" / ".rgignore").symlink_to("/dev/zero")
    (repo / ".git" / "index").unlink()
    (repo / ".git" / "index").symlink_to("/dev/zero")
    marker = tmp_path / "ran"
    for name in ("git", "rg"):
        program = repo / name
        program.write_text(f"#!/bin/sh\ntouch {marker}\n")
        program.chmod(0o755)
    steps = "\n".join(
        [
            'print(search_code(pattern="pong"))',
            'print(list_directory(pattern="' + "*" * 200 + 'x"))',
            'print(list_directory(path="src", pattern="**/*.py"))',
            "print(git_status())",
        ]
    )
    model_server.script(None, [code(steps), code('final_answer("survived")')])
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()

    result = run_cli("-m", "qwen2.5:3b", "--root", str(repo), "Q?", server=model_server,
                     cwd=repo, env={"PATH": ":" + os.environ["PATH"]}, timeout=180)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "survived"
    assert time.monotonic() - started < 120
    assert "Traceback" not in result.stderr
    assert not marker.exists(), "a program committed to the repository ran"
    observation = model_server.chat_requests()[1].last_text
    assert "src/app.py:2: return 'pong'" in observation  # search works despite the rules
    assert "no entries match" in observation and "src/ (1 entry)\napp.py" in observation
    assert "git tools refused" in observation and ".git/index is a symlink" in observation
    peak_kib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    assert peak_kib < 1024 * 1024, f"a process of the run peaked at {peak_kib} KiB"


def test_a_child_that_breaks_the_protocol_fails_one_step(
    model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    forged = "import os, time\nos.write(1, b'\\xff\\xff\\xff\\xff' + b'{' * 65536)\ntime.sleep(60)"
    model_server.script(None, [code(escape(forged)), code('final_answer("recovered")')])

    result = run_cli("-m", "qwen2.5:3b", "--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "recovered"
    observation = model_server.chat_requests()[1].last_text
    assert "broke the sandbox protocol" in observation
    assert "{{{{" not in observation
