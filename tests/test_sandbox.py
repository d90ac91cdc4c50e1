"""The sandbox: model-written code runs confined in a child, reaching tools only through us."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_brain.code_policy import CodePolicyError, check_code
from local_brain.sandbox import SandboxError, SandboxExecutor, readable_python_paths

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="confinement tests need Linux")


def slow_tool(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[SandboxExecutor]:
    reduced: list[list[str]] = []
    sandbox = SandboxExecutor(
        authorized_imports=[],
        step_timeout=3,
        max_print_outputs_length=5000,
        workspace_root=tmp_path,
        on_reduced=reduced.append,
    )
    sandbox.send_tools(
        {
            "echo": lambda text="": f"echo:{text}",
            "final_answer": lambda answer: answer,
            "slow_tool": slow_tool,
        }
    )
    yield sandbox
    sandbox.cleanup()
    assert reduced == []  # full containment on this machine


def test_tools_are_forwarded_and_state_persists(executor: SandboxExecutor) -> None:
    first = executor('x = 41\nprint(echo("hi"))')
    assert "echo:hi" in first.logs and not first.is_final_answer
    second = executor('final_answer(f"answer {x + 1}")')
    assert second.is_final_answer and second.output == "answer 42"


def test_time_in_forwarded_calls_does_not_count(executor: SandboxExecutor) -> None:
    assert "slept" in executor("print(slow_tool(4))").logs  # longer than the 3 s step timeout


def test_an_endless_loop_is_killed_and_the_next_step_works(executor: SandboxExecutor) -> None:
    started = time.monotonic()
    with pytest.raises(SandboxError, match="step timeout"):
        executor("import time\nwhile True:\n    time.sleep(0.5)")
    assert time.monotonic() - started < 15
    assert "echo:again" in executor('print(echo("again"))').logs


def test_memory_bomb_fails_without_taking_us_down(executor: SandboxExecutor) -> None:
    with pytest.raises(SandboxError):
        executor('blob = "a" * (10 ** 10)')
    assert "echo:alive" in executor('print(echo("alive"))').logs


def test_child_environment_is_scrubbed(executor: SandboxExecutor, monkeypatch) -> None:
    executor("y = 1")
    assert executor.next_child_pid is not None
    environ = Path(f"/proc/{executor.next_child_pid}/environ").read_bytes().decode()
    assert "HOME=" not in environ and "PATH=" not in environ
    assert set(environ.strip("\0").split("\0")) <= {
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONIOENCODING=utf-8",
    }


ATTACKS = {
    "open_write": 'open("/tmp/lb_marker", "w").write("x")',
    "import_os": 'import os\nos.system("touch /tmp/lb_marker")',
    "dunder_import": '__import__("os").system("touch /tmp/lb_marker")',
    "generator_frame": "g = (i for i in [1])\nprint(g.gi_frame.f_locals)",
    "format_globals": 'print("{0.__globals__}".format(echo))',
    "format_on_variable": 't = "{0.__globals__}"\nprint(t.format(echo))',
    "format_map": 'print("{x.__class__}".format_map({"x": 1}))',
    "getattr": 'print(getattr(echo, "__globals__"))',
    "subclasses": "print(().__class__.__base__.__subclasses__())",
    "dunder_name": "print(__builtins__)",
    "closure": "print(echo.__closure__)",
    "exec": 'exec("import os")',
    "eval": 'eval("1")',
    "compile": 'compile("1", "x", "eval")',
    "globals": "print(globals())",
    "vars": "print(vars())",
    "type_new": 'type("X", (), {})',
    "subprocess": 'import subprocess\nsubprocess.run(["touch", "/tmp/lb_marker"])',
    "socket": 'import socket\nsocket.create_connection(("127.0.0.1", 1))',
    "pathlib": 'import pathlib\npathlib.Path("/tmp/lb_marker").write_text("x")',
    "sys_modules": "import sys\nprint(sys.modules)",
    "builtins_module": "import builtins\nbuiltins.open",
    "shutil": 'import shutil\nshutil.rmtree("/tmp")',
    "ctypes": "import ctypes",
    "nested_function_frame": "def f():\n    yield 1\nprint(f().gi_frame)",
    "tb_frame": "try:\n    1/0\nexcept Exception as e:\n    print(e.__traceback__.tb_frame)",
    "coroutine_frame": "async def f():\n    pass\nprint(f().cr_frame)",
    "global_statement": "def f():\n    global x\n    x = 1",
}


@pytest.mark.parametrize("code", ATTACKS.values(), ids=ATTACKS.keys())
def test_attacks_fail(executor: SandboxExecutor, code: str) -> None:
    marker = Path("/tmp/lb_marker")
    marker.unlink(missing_ok=True)
    with pytest.raises(SandboxError):
        executor(code)
    assert not marker.exists()


@pytest.mark.parametrize(
    "code",
    [
        'print("{} and {}".format(1, 2))',
        'print("{name}".format(name="x"))',
        "import re\nprint(re.findall(r'\\d', 'a1b2'))",
        "rows = [l for l in 'a\\nb'.splitlines()]\nprint(len(rows))",
        'print(f"{3:>4}")',
    ],
)
def test_ordinary_code_is_allowed(code: str) -> None:
    check_code(code)


def test_policy_names_what_it_refuses() -> None:
    with pytest.raises(CodePolicyError, match="gi_frame"):
        check_code("g.gi_frame")


CONFINED_PROBE = """
import json, os, socket, subprocess, sys
sys.path.insert(0, sys.argv[1])
from local_brain.sandbox.confinement import confine
missing = confine(json.loads(sys.argv[2]), os.getppid())
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "allowed"
    except Exception as error:
        results[name] = type(error).__name__
attempt("write", lambda: open(sys.argv[3], "w").write("x"))
attempt("read_outside", lambda: open("/etc/hostname").read())
attempt("exec", lambda: subprocess.run(["/bin/true"]))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 9)))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
attempt("mkdir", lambda: os.mkdir(sys.argv[3] + ".d"))
print(json.dumps({"missing": missing, "results": results}))
"""


def test_operating_system_confinement(tmp_path: Path) -> None:
    """Even code that got past the interpreter could not write, run, connect or read."""
    target = tmp_path / "written.txt"
    source = str(Path(__file__).resolve().parents[1])
    completed = subprocess.run(
        [sys.executable, "-c", CONFINED_PROBE, source,
         json.dumps([*readable_python_paths(tmp_path), source]), str(target)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(completed.stdout)
    assert report["missing"] == []
    assert all(outcome != "allowed" for outcome in report["results"].values()), report
    assert not target.exists() and not Path(str(target) + ".d").exists()


def test_repository_is_not_readable_by_the_child(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    readable = readable_python_paths(repo)
    assert all(not Path(path).is_relative_to(repo) for path in readable)
    assert all(not repo.is_relative_to(path) for path in readable)
    assert sysconfig.get_path("stdlib") in readable


def test_lazily_loaded_standard_library_still_works_when_confined(
    executor: SandboxExecutor,
) -> None:
    """strptime and codecs load modules on first use; the confined child (nobody, under
    Landlock) can no longer read them, so they are loaded before confinement."""
    logs = executor(
        'import datetime, stat, time\n'
        'print(datetime.datetime.strptime("2024-01-02", "%Y-%m-%d").day, time.strptime("2024", "%Y").tm_year)\n'
        'print("é".encode("cp1252"), "x".encode("idna"), "é".encode("utf-16"), stat.S_ISDIR(0o40000))'
    ).logs  # fmt: skip
    assert "2 2024" in logs and "b'\\xe9' b'x'" in logs and "True" in logs
