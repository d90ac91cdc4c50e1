"""A seccomp allow-list for the sandbox child (x86_64 and aarch64), as a classic BPF program.

Default deny: a system call not listed fails with EPERM (``clone3`` with ENOSYS). What is
allowed is what CPython and the message loop need once everything is imported: memory,
reading already-permitted files (Landlock decides which), the two pipes, clocks, and exit.
Some allowed calls are narrowed by their arguments:

- ``open``/``openat`` only without write, create, truncate or append flags (so no file can
  be written even where Landlock is missing); ``openat2`` is refused;
- ``kill``/``tkill``/``tgkill`` and ``prlimit64`` only on the child itself;
- ``fcntl`` only to duplicate descriptors and get/set their flags (no ``F_SETOWN``, which
  would let SIGIO reach another process); ``ioctl`` only for a few harmless requests.

Not allowed, among others: process or thread creation (``clone``, ``fork``, ``vfork``),
``execve``, sockets of any kind, io_uring, chmod/chown/utime/xattr, ptrace and
``process_vm_*``, ``prctl``, mounting, namespaces, BPF and keyrings.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

# name: (x86_64, aarch64); None where the architecture has no such call.
_SYSCALLS: dict[str, tuple[int | None, int | None]] = {
    "read": (0, 63), "write": (1, 64), "readv": (19, 65), "writev": (20, 66),
    "pread64": (17, 67), "close": (3, 57), "close_range": (436, 436), "lseek": (8, 62),
    "fstat": (5, 80), "newfstatat": (262, 79), "statx": (332, 291), "stat": (4, None),
    "lstat": (6, None), "statfs": (137, 43), "fstatfs": (138, 44), "access": (21, None),
    "faccessat": (269, 48), "faccessat2": (439, 439), "getdents64": (217, 61),
    "readlink": (89, None), "readlinkat": (267, 78), "getcwd": (79, 17), "chdir": (80, 49),
    "fchdir": (81, 50), "dup": (32, 23), "dup2": (33, None), "dup3": (292, 24),
    "mmap": (9, 222), "munmap": (11, 215), "mprotect": (10, 226), "mremap": (25, 216),
    "brk": (12, 214), "madvise": (28, 233), "rt_sigaction": (13, 134),
    "rt_sigprocmask": (14, 135), "rt_sigreturn": (15, 139), "sigaltstack": (131, 132),
    "getpid": (39, 172), "gettid": (186, 178), "getppid": (110, 173), "getuid": (102, 174),
    "geteuid": (107, 175), "getgid": (104, 176), "getegid": (108, 177),
    "getgroups": (115, 158), "getresuid": (118, 148), "getresgid": (120, 150),
    "getpgrp": (111, None), "getpgid": (121, 155), "getsid": (124, 156),
    "clock_gettime": (228, 113), "clock_getres": (229, 114), "clock_nanosleep": (230, 115),
    "nanosleep": (35, 101), "gettimeofday": (96, 169), "getrandom": (318, 278),
    "exit": (60, 93), "exit_group": (231, 94), "futex": (202, 98),
    "set_robust_list": (273, 99), "rseq": (334, 293), "set_tid_address": (218, 96),
    "sched_yield": (24, 124), "sched_getaffinity": (204, 123), "arch_prctl": (158, None),
    "restart_syscall": (219, 128), "poll": (7, None), "ppoll": (271, 73),
    "select": (23, None), "pselect6": (270, 72), "sysinfo": (99, 179), "uname": (63, 160),
    "getrlimit": (97, 163), "getrusage": (98, 165), "times": (100, 153),
}  # fmt: skip
_NARROWED: dict[str, tuple[int | None, int | None]] = {
    "open": (2, None), "openat": (257, 56), "openat2": (437, 437), "kill": (62, 129),
    "tkill": (200, 130), "tgkill": (234, 131), "prlimit64": (302, 261), "fcntl": (72, 25),
    "ioctl": (16, 29), "clone3": (435, 435),
}  # fmt: skip
_ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}

# open(2) flags that write or create: O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, __O_TMPFILE
# (the same values on x86_64 and aarch64).
_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000 | 0o20000000
_FCNTL_ALLOWED = (
    0,
    1,
    2,
    3,
    4,
    1030,
)  # F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC
# TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX
_IOCTL_ALLOWED = (0x5401, 0x5413, 0x541B, 0x5421, 0x5450, 0x5451)

_LD_W_ABS, _JEQ_K, _JSET_K, _RET_K = 0x20, 0x15, 0x45, 0x06
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_OFFSET_NR, _OFFSET_ARCH = 0, 4
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2

Instruction = tuple[int, int, int, int]


def _arg(index: int) -> int:
    """Offset of the low 32 bits of argument ``index`` in seccomp_data (little-endian)."""
    return 16 + 8 * index


def _deny(code: int = errno.EPERM) -> Instruction:
    return (_RET_K, 0, 0, _RET_ERRNO | code)


def _allow() -> Instruction:
    return (_RET_K, 0, 0, _RET_ALLOW)


def _one_of(offset: int, values: tuple[int, ...]) -> list[Instruction]:
    """Allow when the 32-bit word at ``offset`` is one of ``values``, else deny."""
    block: list[Instruction] = [(_LD_W_ABS, 0, 0, offset)]
    for value in values:
        block += [(_JEQ_K, 0, 1, value), _allow()]
    return [*block, _deny()]


def _narrowed_block(name: str, pid: int) -> list[Instruction]:
    if name == "open":
        return [(_LD_W_ABS, 0, 0, _arg(1)), (_JSET_K, 0, 1, _WRITE_FLAGS), _deny(), _allow()]
    if name == "openat":
        return [(_LD_W_ABS, 0, 0, _arg(2)), (_JSET_K, 0, 1, _WRITE_FLAGS), _deny(), _allow()]
    if name in ("openat2",):
        return [_deny(errno.ENOSYS)]
    if name == "clone3":
        return [_deny(errno.ENOSYS)]  # so a thread library falls back to clone, refused too
    if name in ("kill", "tkill", "tgkill"):
        return _one_of(_arg(0), (pid,))
    if name == "prlimit64":
        return _one_of(_arg(0), (0, pid))
    if name == "fcntl":
        return _one_of(_arg(1), _FCNTL_ALLOWED)
    if name == "ioctl":
        return _one_of(_arg(1), _IOCTL_ALLOWED)
    raise ValueError(name)


def build_filter(machine: str, pid: int) -> list[Instruction] | None:
    """The BPF program for this architecture and process, or None if unsupported."""
    if machine not in _ARCHES:
        return None
    column, audit_arch = _ARCHES[machine]
    program: list[Instruction] = [
        (_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        (_JEQ_K, 1, 0, audit_arch),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _OFFSET_NR),
    ]
    for name, numbers in _NARROWED.items():
        number = numbers[column]
        if number is None:
            continue
        block = _narrowed_block(name, pid)
        # Not this call: skip the block. Blocks end in returns, so the accumulator (which
        # a block overwrites with an argument) is only ever compared to numbers before it.
        program += [(_JEQ_K, 0, len(block), number), *block]
    for numbers in _SYSCALLS.values():
        number = numbers[column]
        if number is not None:
            program += [(_JEQ_K, 0, 1, number), _allow()]
    program.append(_deny())
    return program


def install(pid: int) -> bool:
    """Install the allow-list for the calling process (after ``PR_SET_NO_NEW_PRIVS``)."""
    program = build_filter(platform.machine(), pid)
    if program is None:
        return False
    raw = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(raw)

    class _SockFprog(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    fprog = _SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0
