"""Faults and bad input: each ends with its documented exit code and one clear line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import InProcessCli
from tests.fakes.model_server import Fault, ModelServer
from tests.test_e2e import LOCAL_BRAIN, code, run_cli


def assert_one_clear_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("local-brain: error:")]
    assert len(errors) == 1, stderr


@pytest.mark.parametrize(
    "fault",
    [Fault.garbage(), Fault.truncated(), Fault.disconnect()],
    ids=["garbage", "truncated", "disconnect"],
)
def test_broken_responses_exit_3(
    cli: InProcessCli, model_server: ModelServer, make_repo, fault: Fault
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [fault] * 6)

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 3, result.stderr
    assert_one_clear_error(result.stderr)


def test_step_limit_reports_partial_usage(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, ["I believe the answer is in a.py."] * 3)  # never writes code

    result = cli("-m", "qwen2.5:3b", "--max-steps", "3", "--json", "--root", str(repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 1
    assert_one_clear_error(result.stderr)
    document = json.loads(result.stdout)
    assert document["exit_code"] == 1 and document["answer"] is None
    reported = model_server.total_usage()
    assert document["usage"]["qwen2.5:3b"]["prompt_tokens"] == reported.prompt_tokens
    assert document["usage"]["qwen2.5:3b"]["requests"] == 3
    assert "usage: qwen2.5:3b 3 req" in result.stderr


def default_sigint() -> None:
    """In the child: SIGINT handled as in a terminal. A process started with SIGINT ignored
    keeps ignoring it, and a suite run as a background job (`cmd &` in a script) has it
    ignored, which its children would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_exits_130(model_server: ModelServer, make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [Fault.hang(60)])
    # Subprocess: SIGINT to a real process, and the exit status its handler leaves behind.
    process = subprocess.Popen(
        [LOCAL_BRAIN, "-m", "qwen2.5:3b", "--root", str(repo), "Q?"],
        env={**os.environ, "OLLAMA_API_BASE": model_server.url},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 60
    while not model_server.chat_requests() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 130
    assert stdout == ""
    assert "interrupted" in stderr
    assert_one_clear_error(stderr)


def test_root_and_home_are_refused_unless_explicit(cli: InProcessCli, hermetic_env: Path) -> None:
    from_root = cli("Q?", cwd=Path("/"))
    from_home = cli("Q?", cwd=hermetic_env)

    for result in (from_root, from_home):
        assert result.returncode == 2
        assert "refusing to explore" in result.stderr and "--root" in result.stderr
        assert_one_clear_error(result.stderr)


@pytest.mark.slow
def test_many_runs_at_once(model_server: ModelServer, make_repo) -> None:
    repo = make_repo({"src/app.py": "def handler_z3():\n    pass\n"})
    model_server.responder = lambda request: code('final_answer(search_code(pattern="handler_z3"))')

    # Subprocess: concurrent runs; in-process runs would share sys.stdout and litellm globals.
    def one_run(_: int) -> subprocess.CompletedProcess[str]:
        return run_cli("-m", "qwen2.5:3b", "--root", str(repo), "Q?", server=model_server)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one_run, range(4)))

    for result in results:
        assert result.returncode == 0, result.stderr
        assert "src/app.py:1:" in result.stdout
    assert len(model_server.chat_requests()) == 4


PEAK_MEMORY = """
import resource, subprocess, sys
completed = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(completed.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(completed.stdout[:2000])
"""


@pytest.mark.slow
def test_huge_files_are_read_with_bounded_memory(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    with open(repo / "huge.bin", "wb") as handle:  # sparse: 2 GB on paper, nothing on disk
        handle.truncate(2 * 1024**3)
    with open(repo / "one_line.txt", "wb") as handle:
        handle.write(b"needle " + b"x" * (150 * 1024**2) + b"\n")
    calls = [
        ["read_file", "path=huge.bin"],
        ["file_info", "path=huge.bin"],
        ["read_file", "path=one_line.txt"],
        ["file_info", "path=one_line.txt"],
        ["search_code", "pattern=needle"],
        ["list_directory"],
    ]
    for call in calls:
        # Subprocess: peak memory (ru_maxrss) is measured per process.
        completed = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, LOCAL_BRAIN, "tool", *call, "--root", str(repo)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        status, peak_kb = map(int, completed.stdout.split("\n", 1)[0].split())
        assert peak_kb < 300 * 1024, (call, peak_kb)
        assert status in (0, 1), call
        if call == ["read_file", "path=one_line.txt"]:
            assert "line truncated" in completed.stdout
        if call == ["read_file", "path=huge.bin"]:
            assert "binary file" in completed.stdout
