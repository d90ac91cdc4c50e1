"""Landlock for the sandbox child: read-only access to a few directories, nothing else.

A small ctypes binding (no maintained package covers ABI 6): every file-system right the
kernel's ABI knows is handled, so with no rule granting it nothing may be written, created,
removed, executed, truncated or ioctl'd anywhere, and files may be read only beneath the
given paths; with ABI >= 4 no TCP port may be bound or connected; with ABI >= 6 the child
may not signal processes outside its own Landlock domain nor reach abstract Unix sockets.
"""

from __future__ import annotations

import ctypes
import os
import sys

# x86_64 and aarch64 share these numbers.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_ABI1 = (1 << 13) - 1  # EXECUTE ... MAKE_SYM: the thirteen rights of ABI 1
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    if sys.platform != "linux":
        return 0
    version = _libc().syscall(
        _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION
    )
    return max(0, int(version))


def handled_rights(abi: int) -> tuple[int, int, int]:
    """(file-system rights, network rights, scopes) that this ABI lets us restrict."""
    fs = _FS_ABI1
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    if abi >= 5:
        fs |= _FS_IOCTL_DEV
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    return fs, net, scoped


def restrict(abi: int, readable_paths: list[str]) -> bool:
    """Apply the ruleset to the calling thread (the child has no others). False if the
    kernel refused it."""
    libc = _libc()
    fs, net, scoped = handled_rights(abi)
    attr = _RulesetAttr(fs, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset_fd = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset_fd < 0:
        return False
    try:
        for path in readable_paths:
            _allow_reading(libc, ruleset_fd, path)
        return libc.syscall(_SYS_RESTRICT_SELF, ruleset_fd, 0) == 0
    finally:
        os.close(ruleset_fd)


def _allow_reading(libc: ctypes.CDLL, ruleset_fd: int, path: str) -> None:
    try:
        path_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        rights = _FS_READ_FILE | (_FS_READ_DIR if os.path.isdir(path) else 0)
        rule = _PathBeneathAttr(rights, path_fd)
        libc.syscall(_SYS_ADD_RULE, ruleset_fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
    finally:
        os.close(path_fd)
