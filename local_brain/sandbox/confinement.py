"""Operating-system confinement of the sandbox child, applied by the child to itself after
it has imported everything it needs. Each layer holds on its own; together:

1. a parent-death signal, so the child never outlives local-brain;
2. as root, a switch to an unprivileged user (``nobody``) with no supplementary groups;
3. rlimits: no core files, no file growth, bounded memory and descriptors, no new processes;
4. ``no_new_privs``, then Landlock (``landlock``): read-only access beneath the Python
   installation, no TCP, and (ABI >= 6) no signals or abstract sockets outside the child;
5. a seccomp allow-list (``seccomp``): no process creation, exec, sockets, io_uring,
   permission or ownership changes, ptrace, and no opening of files for writing.

The parent puts the child in its own session and process group and kills the group when
the step ends. ``confine()`` returns the layers that could not be applied so the parent can
warn once that containment is reduced.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
import sys

from local_brain.sandbox import landlock, seccomp

MEMORY_LIMIT_BYTES = 2 * 1024**3
OPEN_FILES_LIMIT = 64
UNPRIVILEGED_ID = 65534  # nobody / nogroup

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38


def die_with_parent(parent_pid: int) -> None:
    """Ask for SIGKILL when the parent dies, and exit now if it already has."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def confine(readable_paths: list[str], parent_pid: int) -> list[str]:
    """Confine the calling process for good. Returns the layers that could not be applied."""
    missing: list[str] = []
    if not _drop_privileges():
        missing.append("an unprivileged user (running as root could not switch to nobody)")
    die_with_parent(parent_pid)  # a change of user clears the parent-death signal
    _set_rlimits()
    if sys.platform != "linux":
        return [*missing, f"Landlock and seccomp (not available on {platform.system()})"]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return [*missing, "no_new_privs (so neither Landlock nor seccomp)"]
    abi = landlock.abi_version()
    if abi < 1:
        missing.append("Landlock (not supported by this kernel)")
    elif not landlock.restrict(abi, readable_paths):
        missing.append("Landlock (the kernel refused the ruleset)")
    else:
        if abi < 4:
            missing.append(f"Landlock network rules (kernel ABI {abi} < 4)")
        if abi < 6:
            missing.append(f"Landlock signal scoping (kernel ABI {abi} < 6)")
    if not seccomp.install(os.getpid()):
        missing.append("seccomp allow-list")
    return missing


def _drop_privileges() -> bool:
    """As root, become nobody (no groups). True when not root to begin with."""
    if os.geteuid() != 0:
        return True
    try:
        os.setgroups([])
        os.setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
        os.setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    except (OSError, AttributeError):
        return False
    return os.geteuid() != 0


def _set_rlimits() -> None:
    for limit, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_AS, MEMORY_LIMIT_BYTES),
        (resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT),
        (resource.RLIMIT_NPROC, 0),
    ):
        try:
            _soft, hard = resource.getrlimit(limit)
            wanted = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (wanted, wanted))
        except (ValueError, OSError):
            continue
