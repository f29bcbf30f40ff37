# SPDX-License-Identifier: GPL-3.0-or-later
"""One daemon per control socket: an flock(2) taken before anything touches the device."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os

from bridge.control.sockdir import prepare_socket_dir
from bridge.errors import BridgeError

log = logging.getLogger(__name__)


def lock_instance(control_socket: str) -> int:
    """Be the only daemon for this control socket; returns the lock's fd (close it to let go).

    An exclusive flock(2) on ``<control socket>.lock``, held for the life of the process
    (the kernel drops it when the process dies, so a crash leaves nothing stale). A second
    daemon fails here, before it binds a socket or sends a packet: it cannot send STOP to
    the stream the first one is showing, nor take over the first one's control socket.
    """
    path = control_socket + ".lock"
    # The socket's directory, made and checked exactly as the control server does (private
    # and owner-checked in a shared place such as /tmp), before the lock file goes into it.
    prepare_socket_dir(os.path.dirname(path) or ".")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise BridgeError(
            f"cannot create the lock file {path}: {exc.strerror} "
            "(choose another place with --control-socket)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (pid {int(os.pread(fd, 32, 0).decode().strip())})"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise BridgeError(
                f"another borescope-bridge is already running{holder} with control socket "
                f"{control_socket}; stop it first "
                "(`borescope-bridge status` shows it) or give this one another "
                "--control-socket"
            ) from None
        raise BridgeError(f"cannot lock {path}: {exc.strerror}") from None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
