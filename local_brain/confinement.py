"""Operating-system confinement for the process that runs model-written code (Linux).

Applied by the sandbox child to itself, after it has imported everything it needs:

- Landlock (a small ctypes binding; no maintained package fits): no file may be opened for
  writing, created, removed or executed anywhere, no file may be read outside the Python
  installation, and (ABI >= 4) no TCP connection may be made or accepted;
- seccomp: creating any socket fails (UDP and Unix sockets included);
- rlimits: no core files, bounded memory and open files, no file growth.

Each layer is best effort on its own; ``confine()`` reports what could not be applied so the
parent can print one warning when containment is reduced.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import struct
import sys

# x86_64 and aarch64 share these numbers for the Landlock calls.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1  # ABI 4

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

MEMORY_LIMIT_BYTES = 2 * 1024**3
OPEN_FILES_LIMIT = 64


class _RulesetAttr(ctypes.Structure):
    _fields_ = (("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64))


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    if sys.platform != "linux":
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(0, int(version))


def confine(readable_paths: list[str]) -> list[str]:
    """Confine the calling process for good. Returns the layers that could not be applied."""
    missing: list[str] = []
    _set_rlimits()
    if sys.platform != "linux":
        return [f"Landlock and seccomp (not available on {platform.system()})"]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return ["no_new_privs (so neither Landlock nor seccomp)"]
    abi = landlock_abi()
    if abi < 1:
        missing.append("Landlock (not supported by this kernel)")
    else:
        if not _apply_landlock(libc, abi, readable_paths):
            missing.append("Landlock (the kernel refused the ruleset)")
        elif abi < 4:
            missing.append(f"Landlock network rules (kernel ABI {abi} < 4)")
    if not _deny_sockets(libc):
        missing.append("seccomp socket filter")
    return missing


def _set_rlimits() -> None:
    for limit, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_AS, MEMORY_LIMIT_BYTES),
        (resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT),
    ):
        try:
            _soft, hard = resource.getrlimit(limit)
            wanted = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (wanted, wanted))
        except (ValueError, OSError):
            continue


def _apply_landlock(libc: ctypes.CDLL, abi: int, readable_paths: list[str]) -> bool:
    handled_fs = (
        _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_READ_DIR | _FS_REMOVE_DIR
        | _FS_REMOVE_FILE | _FS_MAKE_CHAR | _FS_MAKE_DIR | _FS_MAKE_REG | _FS_MAKE_SOCK
        | _FS_MAKE_FIFO | _FS_MAKE_BLOCK | _FS_MAKE_SYM
    )  # fmt: skip
    if abi >= 2:
        handled_fs |= _FS_REFER
    if abi >= 3:
        handled_fs |= _FS_TRUNCATE
    if abi >= 5:
        handled_fs |= _FS_IOCTL_DEV
    handled_net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    attr = _RulesetAttr(handled_fs, handled_net)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 4 else 8
    ruleset_fd = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset_fd < 0:
        return False
    try:
        for path in readable_paths:
            try:
                path_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                is_dir = os.path.isdir(path)
                rule = _PathBeneathAttr(_FS_READ_FILE | (_FS_READ_DIR if is_dir else 0), path_fd)
                libc.syscall(
                    _SYS_LANDLOCK_ADD_RULE, ruleset_fd, _LANDLOCK_RULE_PATH_BENEATH,
                    ctypes.byref(rule), 0,
                )  # fmt: skip
            finally:
                os.close(path_fd)
        return libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset_fd, 0) == 0
    finally:
        os.close(ruleset_fd)


def _deny_sockets(libc: ctypes.CDLL) -> bool:
    """A seccomp filter making socket() and socketpair() fail with EPERM."""
    arch = {"x86_64": (0xC000003E, 41, 53), "aarch64": (0xC00000B7, 198, 199)}.get(
        platform.machine()
    )
    if arch is None:
        return False
    audit_arch, nr_socket, nr_socketpair = arch
    ld_abs, jeq, ret = 0x20, 0x15, 0x06
    allow, deny_eperm, kill = 0x7FFF0000, 0x00050001, 0x80000000
    instructions = [
        (ld_abs, 0, 0, 4),  # A = seccomp_data.arch
        (jeq, 1, 0, audit_arch),
        (ret, 0, 0, kill),
        (ld_abs, 0, 0, 0),  # A = seccomp_data.nr
        (jeq, 0, 1, nr_socket),
        (ret, 0, 0, deny_eperm),
        (jeq, 0, 1, nr_socketpair),
        (ret, 0, 0, deny_eperm),
        (ret, 0, 0, allow),
    ]
    program = b"".join(struct.pack("HBBI", *instruction) for instruction in instructions)
    buffer = ctypes.create_string_buffer(program)

    class _SockFprog(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    fprog = _SockFprog(len(instructions), ctypes.cast(buffer, ctypes.c_void_p))
    return libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0
