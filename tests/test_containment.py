"""The sandbox child's operating-system layer, attacked as if the interpreter were beaten.

Every attack runs through ``tests.attacks.escape``: native Python in the child with the real
builtins. What must hold is the OS layer alone (seccomp allow-list, Landlock, an
unprivileged user, rlimits, its own session killed after each step) and the framed channel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_brain.sandbox import SandboxError, SandboxExecutor, landlock, readable_python_paths
from local_brain.sandbox.executor import MAX_DEFINITIONS_CHARS
from tests.attacks import assert_escaped, escape

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="confinement needs Linux")


def attempt(label: str, statement: str) -> str:
    """Native source that runs ``statement`` and prints ``label: ok`` or the error's name."""
    body = "\n".join("    " + line for line in statement.splitlines())
    return (
        f"try:\n{body}\n    print({label!r} + ': ok')\n"
        f"except BaseException as error:\n    print({label!r} + ': ' + type(error).__name__)\n"
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxExecutor]:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".env").write_text("TOKEN=sk-live-containment\n")
    executor = SandboxExecutor(
        authorized_imports=[],
        step_timeout=5,
        max_print_outputs_length=20_000,
        workspace_root=repo,
        tool_time=3,
    )
    executor.send_tools(
        {
            "echo": lambda text="": f"echo:{text}",
            "slow_tool": lambda seconds=1.0: time.sleep(float(seconds)) or "slept",
            "final_answer": lambda answer: answer,
        }
    )
    yield executor
    executor.cleanup()


def run_native(sandbox: SandboxExecutor, source: str) -> str:
    logs = sandbox(escape(source)).logs
    assert_escaped(logs)
    return logs


def session_members(session: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    members.append(int(entry.name))
            except OSError:
                continue
    return members


def test_files_outside_cannot_change(sandbox: SandboxExecutor, tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_text("original")
    target.chmod(0o644)
    before = target.stat()
    logs = run_native(
        sandbox,
        "import os\n"
        + attempt("chmod", f"os.chmod({str(target)!r}, 0o777)")
        + attempt("chown", f"os.chown({str(target)!r}, 1, 1)")
        + attempt("utime", f"os.utime({str(target)!r}, (0, 0))")
        + attempt("setxattr", f"os.setxattr({str(target)!r}, 'user.x', b'1')")
        + attempt("write", f"open({str(target)!r}, 'a').write('x')")
        + attempt("rename", f"os.rename({str(target)!r}, {str(target)!r} + '.moved')")
        + attempt("unlink", f"os.unlink({str(target)!r})")
        + attempt("mkdir", f"os.mkdir({str(tmp_path / 'made')!r})"),
    )
    for label in ("chmod", "chown", "utime", "setxattr", "write", "rename", "unlink", "mkdir"):
        assert f"{label}: ok" not in logs, logs
    after = target.stat()
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (
        before.st_mode,
        before.st_uid,
        before.st_mtime_ns,
    )
    assert target.read_text() == "original" and not (tmp_path / "made").exists()


def test_no_signal_reaches_another_process(sandbox: SandboxExecutor) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        logs = run_native(
            sandbox,
            "import os, signal\n"
            + attempt("kill", f"os.kill({victim.pid}, signal.SIGKILL)")
            + attempt("killpg", f"os.killpg(os.getpgid({victim.pid}), signal.SIGKILL)")
            + attempt("kill_parent", "os.kill(os.getppid(), signal.SIGTERM)")
            + attempt("kill_all", "os.kill(-1, signal.SIGKILL)"),
        )
        assert ": ok" not in logs.split("\n", 1)[1], logs
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_no_socket_of_any_kind_not_even_through_io_uring(sandbox: SandboxExecutor) -> None:
    logs = run_native(
        sandbox,
        "import socket, ctypes\n"
        + attempt("udp", "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)")
        + attempt("unix", "socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)")
        + attempt("tcp", "socket.create_connection(('127.0.0.1', 9), timeout=1)")
        + attempt("pair", "socket.socketpair()")
        + attempt(
            "io_uring",
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "params = ctypes.create_string_buffer(120)\n"
            "fd = libc.syscall(425, 8, params)\n"  # io_uring_setup (same on aarch64)
            "if fd < 0:\n    raise OSError(ctypes.get_errno(), 'io_uring_setup failed')",
        ),
    )
    assert ": ok" not in logs.split("\n", 1)[1], logs


def test_nothing_outlives_the_step(sandbox: SandboxExecutor) -> None:
    logs = run_native(
        sandbox,
        "import os, threading\n"
        + attempt("fork", "pid = os.fork()\nif pid == 0:\n    os.setsid()\n    os._exit(0)")
        + attempt("thread", "threading.Thread(target=print).start()")
        + attempt("exec", "os.execv('/bin/true', ['true'])")
        + attempt("spawn", "os.posix_spawn('/bin/sleep', ['sleep', '60'], {})")
        + "print('session', os.getsid(0))",
    )
    assert ": ok" not in logs.split("\n", 1)[1], logs
    session = int(logs.split("session ")[1].split()[0])
    assert session != os.getsid(0)  # its own session, not ours
    assert session_members(session) == []  # killed with its group when the step ended


def test_child_runs_unprivileged_and_cannot_read_the_repository(
    sandbox: SandboxExecutor,
) -> None:
    root = sandbox.workspace_root
    logs = run_native(
        sandbox,
        "import os\nprint('uid', os.getuid(), os.geteuid(), os.getgroups())\n"
        + attempt("read_secret", f"open({str(root / '.env')!r}).read()")
        + attempt("list_repo", f"os.listdir({str(root)!r})")
        + attempt("read_passwd", "open('/etc/passwd').read()")
        + attempt("ptrace", "import ctypes\nassert ctypes.CDLL(None).ptrace(16, 1, 0, 0) == 0"),
    )
    assert ": ok" not in logs.split("\n", 2)[2], logs
    if os.geteuid() == 0:
        assert "uid 65534 65534 []" in logs


def test_readable_paths_never_hold_the_repository(tmp_path: Path, monkeypatch) -> None:
    """A directory holding the repository on sys.path (or PYTHONPATH) must not be readable."""
    repo = tmp_path / "work" / "repo"
    repo.mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path), str(tmp_path / "work"), str(repo)])
    readable = [Path(path) for path in readable_python_paths(repo)]
    assert readable
    for path in readable:
        assert not (path == repo or path in repo.parents or repo in path.parents), path


def test_a_virtual_environment_inside_the_repository_stays_readable(
    tmp_path: Path, monkeypatch
) -> None:
    repo = tmp_path / "repo"
    venv = repo / ".venv"
    site = venv / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "path", [*sys.path, str(site), str(repo)])
    readable = [Path(path) for path in readable_python_paths(repo)]
    assert site in readable and venv in readable
    assert repo not in readable and not any(path in repo.parents for path in readable)


# -- the channel ---------------------------------------------------------------------------


def test_half_a_frame_cannot_hang_the_parent(sandbox: SandboxExecutor) -> None:
    started = time.monotonic()
    with pytest.raises(SandboxError, match="step timeout"):
        sandbox(escape("import os, time\nos.write(1, b'\\x00\\x00')\ntime.sleep(60)"))
    assert time.monotonic() - started < 15
    assert "echo:after" in sandbox('print(echo("after"))').logs


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\xff\xff\xff" + b"x" * 100_000,  # a frame claiming 4 GB
        b"not json at all",
        b"[]",
        b'{"op": "nope"}',
        b'{"op": "call", "call": 7, "tool": "echo"}',  # fields missing
        b'{"op": "call", "call": 7, "tool": "echo", "args": [], "kwargs": {}}',  # out of order
        b'{"op": "ready", "missing": []}',  # not expected during a step
    ],
    ids=["huge", "not-json", "not-object", "unknown-op", "bad-call", "call-order", "stray-op"],
)
def test_a_malformed_frame_fails_the_step_and_nothing_shifts(
    sandbox: SandboxExecutor, frame: bytes
) -> None:
    if not frame.startswith(b"\xff"):
        frame = len(frame).to_bytes(4, "big") + frame
    with pytest.raises(SandboxError, match="broke the sandbox protocol"):
        sandbox(escape(f"import os, time\nos.write(1, {frame!r})\ntime.sleep(60)"))
    assert sandbox('print(echo("next"))').logs.strip() == "echo:next"


def test_an_extra_done_frame_never_becomes_the_next_observation(sandbox: SandboxExecutor) -> None:
    forged = {
        "op": "done", "output": None, "logs": "FORGED", "is_final_answer": False,
        "variables": {}, "definitions": [], "dropped": [],
    }  # fmt: skip
    body = json.dumps(forged).encode()
    first = sandbox(escape(f"import os\nos.write(1, {len(body).to_bytes(4, 'big') + body!r})"))
    assert first.logs == "FORGED"  # the child owns its own step's output, nothing more
    assert sandbox('print(echo("second"))').logs.strip() == "echo:second"
    assert sandbox('print(echo("third"))').logs.strip() == "echo:third"


def test_endless_output_is_bounded(sandbox: SandboxExecutor) -> None:
    with pytest.raises(SandboxError):
        sandbox(escape("import os\nwhile True:\n    os.write(1, b'\\x7f' * 65536)"))
    assert "echo:ok" in sandbox('print(echo("ok"))').logs


# -- tool time -------------------------------------------------------------------------


def test_tool_time_per_step_is_capped(sandbox: SandboxExecutor) -> None:
    started = time.monotonic()
    logs = sandbox(
        "for i in range(100):\n"
        "    try:\n"
        "        slow_tool(1)\n"
        "    except Exception as error:\n"
        "        print('stopped:', error)\n"
        "        break\n"
    ).logs
    assert "tool time for this step is used up (3 s)" in logs or "did not finish" in logs
    assert time.monotonic() - started < 10
    assert "slept" in sandbox("print(slow_tool(1))").logs  # a new step, a new budget


def test_a_call_that_overruns_the_tool_budget_is_abandoned(sandbox: SandboxExecutor) -> None:
    started = time.monotonic()
    logs = sandbox("try:\n    slow_tool(30)\nexcept Exception as error:\n    print(error)").logs
    assert "did not finish within the step's tool time" in logs
    assert time.monotonic() - started < 10


# -- state between steps ---------------------------------------------------------------


def test_data_imports_and_functions_survive_a_step_other_objects_are_named(
    sandbox: SandboxExecutor,
) -> None:
    first = sandbox(
        "import re\nrows = {'a': (1, 2), 's': {3}}\n"
        "def double(x):\n    return 2 * x\n"
        "g = (i for i in range(3))"
    )
    assert "g will not exist in the next step" in first.logs
    second = sandbox("print(rows['a'], rows['s'], double(21), re.sub('a', 'b', 'aa'))")
    assert second.logs.strip() == "(1, 2) {3} 42 bb"


def test_carried_definitions_are_capped() -> None:
    from local_brain.sandbox.executor import merge_definitions

    many = [f"x{i} = {'1' * 1000}" for i in range(200)]
    merged = merge_definitions([], many)
    assert sum(map(len, merged)) <= MAX_DEFINITIONS_CHARS
    assert merged[-1] == many[-1]


# -- each layer on its own -------------------------------------------------------------

LAYER_PROBE = """
import json, os, socket, sys
sys.path[:0] = [sys.argv[1]]
from local_brain.sandbox import landlock, seccomp
layer, target, victim = sys.argv[2], sys.argv[3], int(sys.argv[4])
import ctypes
ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # no_new_privs
if layer == "landlock":
    applied = landlock.restrict(landlock.abi_version(), json.loads(sys.argv[5]))
else:
    applied = seccomp.install(os.getpid())
results = {"applied": applied}
def attempt(name, action):
    try:
        action()
        results[name] = "allowed"
    except BaseException as error:
        results[name] = type(error).__name__
attempt("write", lambda: open(target, "w").write("x"))
attempt("read_outside", lambda: open("/etc/hostname").read())
attempt("chmod", lambda: os.chmod(target + ".existing", 0o777))
attempt("socket_udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1))
def fork():
    if os.fork() == 0:
        os._exit(0)
attempt("fork", fork)
attempt("signal", lambda: os.kill(victim, 15))
attempt("exec", lambda: os.execv("/bin/true", ["true"]))
print(json.dumps(results))
"""


def probe_layer(layer: str, tmp_path: Path) -> dict[str, object]:
    target = tmp_path / "written"
    (tmp_path / "written.existing").write_text("x")
    source = str(Path(__file__).resolve().parents[1])
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        completed = subprocess.run(
            [sys.executable, "-c", LAYER_PROBE, source, layer, str(target), str(victim.pid),
             json.dumps([*readable_python_paths(tmp_path), source])],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert victim.poll() is None, "the victim was signalled"
    finally:
        victim.kill()
        victim.wait()
    assert not target.exists()
    return json.loads(completed.stdout)


@pytest.mark.skipif(landlock.abi_version() < 1, reason="the kernel has no Landlock")
def test_landlock_alone(tmp_path: Path) -> None:
    report = probe_layer("landlock", tmp_path)
    assert report["applied"] is True
    assert report["write"] != "allowed" and report["read_outside"] != "allowed"
    assert report["exec"] != "allowed"
    if landlock.abi_version() >= 4:
        assert report["tcp"] != "allowed"
    if landlock.abi_version() >= 6:
        assert report["signal"] != "allowed"


@pytest.mark.skipif(
    os.uname().machine not in ("x86_64", "aarch64"), reason="no seccomp table for this CPU"
)
def test_seccomp_alone(tmp_path: Path) -> None:
    report = probe_layer("seccomp", tmp_path)
    assert report["applied"] is True
    for name in ("write", "chmod", "socket_udp", "tcp", "fork", "signal", "exec"):
        assert report[name] != "allowed", (name, report)
    assert report["read_outside"] == "allowed"  # reading is Landlock's job


# -- what a hostile child sends back -----------------------------------------------------


def done(**fields: object) -> dict[str, object]:
    frame: dict[str, object] = {
        "op": "done", "output": None, "logs": "", "is_final_answer": False,
        "variables": {}, "definitions": [], "dropped": [],
    }  # fmt: skip
    frame.update(fields)
    return frame


def test_nested_tags_unpack_in_linear_time() -> None:
    from local_brain.sandbox import protocol

    value: object = [1]
    for _ in range(30):
        value = {"$set": [value, [1]]}
    started = time.monotonic()
    assert isinstance(protocol.unpack(value), list)
    assert time.monotonic() - started < 1
    deeper: object = [1]
    for _ in range(100):
        deeper = {"$set": [deeper]}
    with pytest.raises(protocol.ProtocolError):
        protocol.unpack(deeper)
    for bad in ({"$dict": [[1]]}, {"$bytes": "a"}, {"$tuple": 5}, {"$bytes": 5}):
        with pytest.raises(protocol.ProtocolError):
            protocol.unpack(bad)


def test_a_forged_call_with_explosive_arguments_is_refused_quickly(
    sandbox: SandboxExecutor,
) -> None:
    value: object = [1]
    for _ in range(40):
        value = {"$set": [value, [1]]}
    call = {"op": "call", "call": 1, "tool": "echo", "args": [value], "kwargs": {}}
    body = json.dumps(call).encode()
    started = time.monotonic()
    with pytest.raises(SandboxError):
        sandbox(escape(f"import os, time\nos.write(1, {len(body).to_bytes(4, 'big') + body!r})\n"
                       "time.sleep(30)"))  # fmt: skip
    assert time.monotonic() - started < 10


def test_oversized_variables_from_a_child_are_dropped_not_carried(
    sandbox: SandboxExecutor,
) -> None:
    native = (
        "import json, os, time\n"
        f"frame = {done(variables={'small': 1})!r}\n"
        "frame['variables']['v'] = 'x' * (7 * 1024 * 1024)\n"
        "frame['logs'] = 'L' * 100_000\n"
        "body = json.dumps(frame).encode()\n"
        "os.write(1, len(body).to_bytes(4, 'big') + body)\n"
        "time.sleep(30)"
    )
    first = sandbox(escape(native))
    assert "v will not exist in the next step" in first.logs
    assert len(first.logs) < 25_000  # capped at max_print_outputs_length, not 100,000
    assert sandbox("print(small, echo('fine'))").logs.strip() == "1 echo:fine"
