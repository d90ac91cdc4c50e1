"""Escaped model code against the installed CLI: the scripted model sends the attacks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.attacks import assert_escaped, escape
from tests.fakes.model_server import ModelServer
from tests.test_containment import attempt, session_members
from tests.test_e2e import LOCAL_BRAIN, code, run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="confinement needs Linux"),
]

SECRET = "sk-live-ESCAPED-credential"


def test_escaped_code_changes_nothing_signals_nobody_and_leaves_nothing(
    model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n", ".env": f"TOKEN={SECRET}\n"})
    outside = tmp_path / "outside.txt"
    outside.write_text("original")
    outside.chmod(0o644)
    before = outside.stat()
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    native = (
        "import os, signal, socket\n"
        + attempt("chmod", f"os.chmod({str(outside)!r}, 0o777)")
        + attempt("utime", f"os.utime({str(outside)!r}, (0, 0))")
        + attempt("chown", f"os.chown({str(outside)!r}, 1, 1)")
        + attempt("setxattr", f"os.setxattr({str(outside)!r}, 'user.x', b'1')")
        + attempt("kill", f"os.kill({victim.pid}, signal.SIGKILL)")
        + attempt("udp", "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)")
        + attempt("unix", "socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)")
        + attempt(
            "io_uring",
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "if libc.syscall(425, 8, ctypes.create_string_buffer(120)) < 0:\n"
            "    raise OSError(ctypes.get_errno(), 'io_uring_setup failed')",
        )
        + attempt("fork", "pid = os.fork()\nif pid == 0:\n    os.setsid()\n    os._exit(0)")
        + attempt("read_secret", f"print(open({str(repo / '.env')!r}).read())")
        + attempt("environ", "assert 'MY_API_KEY' in os.environ")
        + "print('session', os.getsid(0))\n"
    )
    model_server.script(None, [code(escape(native)), code('final_answer("done")')])
    try:
        # A directory holding the repository on the Python path must not open it up.
        result = run_cli("-m", "qwen2.5:3b", "--root", str(repo), "Q?", server=model_server,
                         env={"MY_API_KEY": SECRET, "PYTHONPATH": str(repo.parent)})  # fmt: skip
        assert victim.poll() is None, "an unrelated process was signalled"
    finally:
        victim.kill()
        victim.wait()

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert "Traceback" not in result.stderr
    observation = model_server.chat_requests()[1].last_text
    assert_escaped(observation)
    assert not re.search(r"\b[a-z_]+: ok", observation), observation
    after = outside.stat()
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    sent = json.dumps([request.body for request in model_server.requests])
    assert SECRET not in sent and SECRET not in result.stdout + result.stderr
    session = int(re.search(r"session (\d+)", observation).group(1))
    assert session_members(session) == []


def test_the_child_dies_with_local_brain(model_server: ModelServer, make_repo) -> None:
    """Killed with SIGKILL mid-step, local-brain leaves no sandbox process behind."""
    repo = make_repo({"a.py": "x = 1\n"})
    native = "import os, time\nprint('session', os.getsid(0), flush=True)\ntime.sleep(120)"
    model_server.script(None, [code(escape(native)), code('final_answer("never")')])
    env = {**os.environ, "OLLAMA_API_BASE": model_server.url}
    process = subprocess.Popen(
        [LOCAL_BRAIN, "-m", "qwen2.5:3b", "--step-timeout", "100", "--root", str(repo), "Q?"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        children = _wait_for_sandbox_children(process.pid)
        assert children, "no sandbox child appeared"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            Path(f"/proc/{pid}").exists() for pid in children
        ):
            time.sleep(0.1)
        alive = [pid for pid in children if _is_running(pid)]
        assert alive == [], f"sandbox children outlived local-brain: {alive}"
    finally:
        if process.poll() is None:
            process.kill()


def _wait_for_sandbox_children(parent: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(re.search(r"PPid:\s+(\d+)", status).group(1))
            if ppid == parent and b"local_brain.sandbox.child" in cmdline:
                found.append(int(entry.name))
        if found:
            time.sleep(1.0)  # let the step's child start its code
            return found
        time.sleep(0.1)
    return []


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
