"""The command line a newcomer meets (issue #16, part A): every message true and helpful.

In-process through the ``cli`` fixture where possible; the installed command where the
process boundary is the point (pipes, a terminal, imports of a fresh interpreter).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import InProcessCli
from tests.fakes.model_server import Fault, ModelServer, closed_port_url
from tests.fakes.scripted_models import code
from tests.test_e2e import LOCAL_BRAIN


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("local-brain: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# -- 1. --transcript ---------------------------------------------------------------------


def test_transcript_where_no_file_can_be_created_fails_before_the_run(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [code('final_answer("x is 1")')])

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "--transcript", "/sys/run.jsonl",
                 "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 2
    assert "--transcript /sys/run.jsonl: cannot create a file in /sys" in one_error_line(
        result.stderr
    )
    assert model_server.chat_requests() == []  # no model time spent on a run that cannot end


def test_transcript_failing_at_the_end_still_prints_the_answer(
    cli: InProcessCli, model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    place = tmp_path / "out"
    place.mkdir()

    def vanish_then_answer(request: object) -> str:
        shutil.rmtree(place)  # the transcript's directory goes away during the run
        return code('final_answer("x is 1, in a.py")')

    model_server.responder = vanish_then_answer

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "--transcript",
                 str(place / "run.jsonl"), "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "x is 1, in a.py" in result.stdout
    assert "the transcript could not be written to" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


# -- 2. options before subcommands, mistyped commands -------------------------------------


def test_options_before_a_subcommand_go_to_the_subcommand(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    shown = cli("--json", "config", "show", server=model_server)
    doctor = cli("--json", "doctor", "--root", str(repo), server=model_server)
    listed = cli("--root", str(repo), "tools", server=model_server)
    models = cli("-m", "qwen3:30b", "models", server=model_server)

    assert shown.returncode == 0, shown.stderr
    assert isinstance(json.loads(shown.stdout), dict)
    assert "checks" in json.loads(doctor.stdout), doctor.stderr
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("read_file(") or "search_code(" in listed.stdout
    assert "--root does not apply to `tools`" in listed.stderr
    assert models.returncode == 0, models.stderr
    assert "qwen2.5:3b" in models.stdout
    assert model_server.chat_requests() == []  # none of them was a question to the model


@pytest.mark.parametrize(
    ("typed", "meant"),
    [(["modles"], "models"), (["confg", "show"], "config"), (["doctr"], "doctor"),
     (["--json", "tols"], "tools")],
)  # fmt: skip
def test_a_word_one_edit_from_a_command_is_a_typo(
    cli: InProcessCli, model_server: ModelServer, make_repo, typed: list[str], meant: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli("--root", str(repo), *typed, server=model_server)

    assert result.returncode == 2
    wanted = f"no such command '{typed[-1] if typed[0] == '--json' else typed[0]}': "
    assert wanted + f"did you mean '{meant}'?" in one_error_line(result.stderr)
    assert model_server.chat_requests() == []


def test_a_one_word_question_still_runs(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [code('final_answer("a.py sets x")')] * 2)

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "summarize", server=model_server)
    forced = cli("-m", "qwen2.5:3b", "--root", str(repo), "--", "modles", server=model_server)

    assert result.returncode == 0, result.stderr
    assert "a.py sets x" in result.stdout
    assert forced.returncode == 0, forced.stderr  # `--`: a question, whatever it looks like
    assert "modles" in json.dumps(model_server.chat_requests()[-1].messages)


# -- 8. NO_COLOR and TERM=dumb keep progress on a terminal --------------------------------

COLOUR = re.compile(rb"\x1b\[[0-9;]*(?:3[0-7]|9[0-7]|38;[0-9;]+)m")


def run_on_terminal(repo: Path, server: ModelServer, env: dict[str, str]) -> tuple[int, bytes]:
    """Run the installed command with stderr on a pseudo-terminal; (status, what it drew)."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [LOCAL_BRAIN, "-m", "qwen2.5:3b", "--root", str(repo), "Q?"],
        env={**os.environ, "OLLAMA_API_BASE": server.url, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=child,
    )
    os.close(child)
    drawn = bytearray()
    while True:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            drawn += chunk
        elif process.poll() is not None:
            break
    os.close(main)
    process.communicate(timeout=60)
    return process.returncode, bytes(drawn)


@pytest.mark.parametrize(
    "env", [{"NO_COLOR": "1", "TERM": "xterm-256color"}, {"TERM": "dumb"}], ids=["NO_COLOR", "dumb"]
)
def test_no_color_and_dumb_terminals_keep_a_plain_progress_display(
    model_server: ModelServer, make_repo, env: dict[str, str]
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [code("print(1)"), code('final_answer("done")')])
    if "NO_COLOR" not in env:
        env = {**env, "NO_COLOR": ""}

    status, drawn = run_on_terminal(repo, model_server, env)

    assert status == 0, drawn
    assert not COLOUR.search(drawn), drawn
    if env["TERM"] == "dumb":
        assert b"[agent] step 1" in drawn  # one plain line per step
        assert b"\x1b[" not in drawn  # nothing a dumb terminal cannot show
    else:
        assert b"local-brain \xc2\xb7" in drawn  # the live view, uncoloured


# -- 9. a reader that leaves early --------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["tools"], ["--help"], ["config", "show"], ["tool", "list_directory"]]
)
def test_a_closed_pipe_exits_0(make_repo, args: list[str]) -> None:
    repo = make_repo({f"f{i}.py": "x = 1\n" for i in range(50)})
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: EPIPE for sure
    completed = subprocess.run(
        [LOCAL_BRAIN, *args], cwd=repo, stdin=subprocess.DEVNULL, stdout=write_end,
        stderr=subprocess.PIPE, text=True, timeout=60,
    )  # fmt: skip
    os.close(write_end)

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""


def test_head_in_a_pipefail_pipeline_succeeds(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    command = f"set -o pipefail; {LOCAL_BRAIN} tools | head -1"
    for _ in range(3):
        completed = subprocess.run(
            ["bash", "-c", command], cwd=repo, capture_output=True, text=True, timeout=60
        )
        assert completed.returncode == 0, completed.stderr
        assert len(completed.stdout.splitlines()) == 1 and completed.stderr == ""


# -- 11. what can be known at once is known at once ---------------------------------------

IMPORTS_AFTER = """
import sys, time
from local_brain.cli import main
started = time.monotonic()
try:
    main(sys.argv[1:])
except SystemExit as done:
    code = done.code
print(code, "litellm" in sys.modules, "smolagents" in sys.modules,
      round(time.monotonic() - started, 2))
"""


def run_fresh(repo: Path, *args: str, api_base: str) -> tuple[int, bool, bool, float, str]:
    completed = subprocess.run(
        [sys.executable, "-c", IMPORTS_AFTER, "--root", str(repo), *args, "Q?"],
        env={**os.environ, "OLLAMA_API_BASE": api_base}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    status, litellm, smolagents, seconds = completed.stdout.split()
    return int(status), litellm == "True", smolagents == "True", float(seconds), completed.stderr


@pytest.mark.parametrize(
    ("model", "status", "message"),
    [
        ("qwen 2.5", 2, "invalid model name"),
        ("nosuch:7b", 3, "does not have nosuch:7b"),
        ("ollama_chat/nosuch:7b", 3, "does not have nosuch:7b"),
    ],
)
def test_a_bad_model_fails_before_the_model_stack_loads(
    model_server: ModelServer, make_repo, model: str, status: int, message: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    code_, litellm, smolagents, seconds, stderr = run_fresh(
        repo, "-m", model, api_base=model_server.url
    )

    assert code_ == status, stderr
    assert message in one_error_line(stderr)
    assert not litellm and not smolagents
    assert seconds < 5  # generous: it takes a fraction of a second
    assert model_server.chat_requests() == []


def test_no_server_with_a_named_model_fails_at_once(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    code_, litellm, _, seconds, stderr = run_fresh(
        repo, "-m", "qwen2.5:3b", api_base=closed_port_url()
    )

    assert code_ == 3
    assert "cannot reach the Ollama server" in one_error_line(stderr)
    assert "ollama serve" in stderr
    assert not litellm and seconds < 5


# -- 13. input -----------------------------------------------------------------------------


def run_with_stdin(repo: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [LOCAL_BRAIN, "--root", str(repo), "-m", "qwen2.5:3b", *args],
        input=data, capture_output=True, timeout=60,
        env={**os.environ, "OLLAMA_API_BASE": closed_port_url()},
    )  # fmt: skip


def test_binary_stdin_is_refused(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    with_nul = run_with_stdin(repo, b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40, "why?")
    undecodable = run_with_stdin(repo, bytes(range(128, 256)) * 100, "why?")

    for completed in (with_nul, undecodable):
        assert completed.returncode == 2
        assert "binary data" in one_error_line(completed.stderr.decode())


def test_an_empty_question_with_piped_context_is_a_usage_error(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    completed = run_with_stdin(repo, b"diff --git a/a.py b/a.py\n", "")

    assert completed.returncode == 2
    assert "the question is empty" in one_error_line(completed.stderr.decode())


def test_help_documents_the_input_limits_and_defaults(cli: InProcessCli) -> None:
    shown = " ".join(cli("--help").stdout.split())

    assert "20,000 characters" in shown and "100,000" in shown
    assert "(default: 15)" in shown and "(default: 30)" in shown


# -- 15. wording and polish ------------------------------------------------------------------


def test_click_errors_in_plain_words(cli: InProcessCli, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")

    steps = cli("--max-steps", "x", "Q?")
    timeout = cli("--step-timeout", "abc", "Q?")
    root = cli("--root", str(a_file), "Q?")

    assert "'x' is not a whole number" in one_error_line(steps.stderr)
    assert "'abc' is not a number" in one_error_line(timeout.stderr)
    assert f"'{a_file}' is a file, not a directory" in one_error_line(root.stderr)
    assert "range" not in steps.stderr + timeout.stderr


def test_tool_argument_errors_use_the_right_article(cli: InProcessCli, make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli("tool", "read_file", "path=a.py", "start_line=abc", "--root", str(repo))

    assert result.returncode == 1
    assert "start_line must be an integer" in result.stdout


def test_one_step_is_singular_and_verbose_shows_no_phantom_step(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [code("print(1)")])  # a step, but no answer

    result = cli("-m", "qwen2.5:3b", "--max-steps", "1", "-v", "--root", str(repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 1
    assert "no answer after 1 step (" in one_error_line(result.stderr)
    assert "step limit reached after 1 step\n" in result.stderr
    assert "step 2 (0.0s" not in result.stderr  # the limit marker is not a step that ran
    assert "Traceback" not in result.stderr  # -v: an ordinary outcome, not a bug


def test_verbose_backend_failure_has_no_traceback(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [Fault.status(500, "boom")] * 6)

    result = cli("-m", "qwen2.5:3b", "-v", "--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 3
    one_error_line(result.stderr)


def complete(cli: InProcessCli, line: str) -> list[str]:
    words = line.split(" ")
    result = cli(env={"_LOCAL_BRAIN_COMPLETE": "bash_complete", "COMP_WORDS": line,
                      "COMP_CWORD": str(len(words) - 1)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [item.split(",", 1)[1] for item in result.stdout.splitlines()]


def test_completion_lists_help_once_and_completes_tool_names(cli: InProcessCli) -> None:
    options = complete(cli, "local-brain --")
    tools = complete(cli, "local-brain tool rea")

    assert options.count("--help") == 1 and "--max-steps" in options
    assert tools == ["read_file"]


# -- 18. Ctrl-C ----------------------------------------------------------------------------

STUCK_THREAD_RUN = """
import sys, threading, time
threading.Thread(target=time.sleep, args=(600,), name="stuck-library-thread").start()
from local_brain.cli import main
main(sys.argv[1:])
"""


def test_ctrl_c_does_not_wait_for_library_threads(model_server: ModelServer, make_repo) -> None:
    """litellm keeps non-daemon worker threads (its logging pool); Click turns Ctrl-C into
    Abort. An interrupted run must not wait for such a thread at interpreter shutdown."""
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [Fault.hang(120)])
    process = subprocess.Popen(
        [sys.executable, "-c", STUCK_THREAD_RUN, "-m", "qwen2.5:3b", "--root", str(repo), "Q?"],
        env={**os.environ, "OLLAMA_API_BASE": model_server.url}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not model_server.chat_requests() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130
    assert "interrupted" in one_error_line(stderr)


GUARDED_CLEANUP_THAT_BLOCKS = """
import sys, time
from local_brain.exiting import InterruptGuard
with InterruptGuard(grace_s=float(sys.argv[1])):
    try:
        print("ready", flush=True)
        time.sleep(600)
    finally:
        time.sleep(600)  # cleanup stuck on a lock a library thread holds
"""


@pytest.mark.parametrize("second_ctrl_c", [False, True])
def test_ctrl_c_ends_the_process_even_when_cleanup_blocks(second_ctrl_c: bool) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", GUARDED_CLEANUP_THAT_BLOCKS, "2" if not second_ctrl_c else "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    if second_ctrl_c:
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130
    assert stderr.count("local-brain: error: interrupted") == 1
    assert time.monotonic() - started < 15
