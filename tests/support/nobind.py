# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a command where SO_BINDTODEVICE is refused, as Linux before 5.7 refuses it without
CAP_NET_RAW: `python nobind.py COMMAND ARGS...`.

A seccomp filter makes setsockopt(SOL_SOCKET, SO_BINDTODEVICE) fail with EPERM for this process
and everything it executes; every other system call is untouched. So a test run as root still
takes the daemon's unprivileged path (IP_PKTINFO on each send), refused by the kernel itself.
Exit status 3 where the filter cannot be installed (another architecture, no seccomp).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

# (AUDIT_ARCH_*, __NR_setsockopt) of the architectures the tests run on.
ARCHES = {"x86_64": (0xC000003E, 54), "aarch64": (0xC00000B7, 208)}
SOL_SOCKET, SO_BINDTODEVICE = 1, 25
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
# Offsets in struct seccomp_data: nr, arch, then args[] from 16 (the low word first on these).
NR, ARCH, ARG1, ARG2 = 0, 4, 24, 32


def program(audit_arch: int, nr_setsockopt: int) -> bytes:
    """The BPF: EPERM for setsockopt(any, SOL_SOCKET, SO_BINDTODEVICE, ...), allow the rest."""
    ins = [
        (LD_W_ABS, 0, 0, ARCH),
        (JEQ_K, 0, 7, audit_arch),
        (LD_W_ABS, 0, 0, NR),
        (JEQ_K, 0, 5, nr_setsockopt),
        (LD_W_ABS, 0, 0, ARG1),
        (JEQ_K, 0, 3, SOL_SOCKET),
        (LD_W_ABS, 0, 0, ARG2),
        (JEQ_K, 0, 1, SO_BINDTODEVICE),
        (RET_K, 0, 0, RET_ERRNO | errno.EPERM),
        (RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(struct.pack("=HBBI", *i) for i in ins)


def install() -> None:
    arch = ARCHES.get(platform.machine())
    if arch is None:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {platform.machine()}")
    code = program(*arch)
    filters = ctypes.create_string_buffer(code)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Prog(len(code) // 8, ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


if __name__ == "__main__":
    try:
        install()
    except OSError as exc:
        print(f"nobind: cannot install the seccomp filter: {exc}", file=sys.stderr)
        sys.exit(3)
    os.execvp(sys.argv[1], sys.argv[1:])
