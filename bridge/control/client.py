# SPDX-License-Identifier: GPL-3.0-or-later
"""The client side of the control socket: `borescope-bridge snapshot`, `status` and `url`.

One request per connection, with one timeout for the whole exchange: waiting for a busy
socket, sending, the reply. Before connecting, a socket that another user could have planted
is refused (bridge.control.sockdir).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import time
from typing import Any

from bridge.control.sockdir import check_client_socket
from bridge.control.wire import MAX_REPLY_BYTES, NOT_RUNNING_HINT
from bridge.errors import ControlError


def connect(
    path: str, deadline: float, timeout: float, hint: str = NOT_RUNNING_HINT
) -> socket.socket:
    """Connect, waiting (within the deadline) while the daemon's accept queue is full.

    The wait is the kernel's: a blocking connect() on a Unix socket sleeps in the listener's
    queue of waiting connectors until an accept() frees a place, bounded by SO_SNDTIMEO. A
    client that polled instead would lose every freed place to a flood that retries faster.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        _set_send_timeout(sock, max(deadline - time.monotonic(), 0.001))
        sock.connect(path)
    except BlockingIOError:
        sock.close()
        raise ControlError(
            f"the daemon at {path} is too busy to take a connection within {timeout:g} s "
            "(its queue of new connections stayed full); try again, and see "
            "`borescope-bridge status` or the daemon's log"
        ) from None
    except OSError as exc:
        sock.close()
        raise _connect_error(path, exc, timeout, hint) from None
    return sock


def _set_send_timeout(sock: socket.socket, seconds: float) -> None:
    """SO_SNDTIMEO in the struct timeval of this platform (two 32- or 64-bit fields; the
    kernel's own answer says which). Never 0: that would mean no limit."""
    size = len(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))
    whole, micros = divmod(max(round(seconds * 1_000_000), 1), 1_000_000)
    sock.setsockopt(
        socket.SOL_SOCKET,
        socket.SO_SNDTIMEO,
        struct.pack("qq" if size == 16 else "ii", whole, micros),
    )


def _connect_error(path: str, exc: OSError, timeout: float, hint: str) -> ControlError:
    if isinstance(exc, FileNotFoundError):
        return ControlError(f"no control socket at {path}: {hint}")
    if isinstance(exc, ConnectionRefusedError):
        return ControlError(f"nothing listens on {path} (a daemon that stopped uncleanly?): {hint}")
    if isinstance(exc, PermissionError):
        return ControlError(
            f"permission denied on {path}: add yourself to the socket's group "
            f"(`ls -l {path}`, then `sudo usermod -aG GROUP $USER` and log in again) "
            "or run as root"
        )
    if isinstance(exc, TimeoutError):
        return ControlError(f"the daemon at {path} did not answer within {timeout:g} s")
    return ControlError(f"cannot connect to {path}: {exc.strerror}")


def request(
    path: str, msg: dict[str, Any], timeout: float, hint: str = NOT_RUNNING_HINT
) -> dict[str, Any]:
    """Send one request to the daemon at `path` and return its reply; ControlError says why not.

    `timeout` bounds the whole exchange: waiting for a busy socket, sending, the reply. `hint`
    ends the error when no daemon listens there: what to start.
    """
    check_client_socket(path)
    deadline = time.monotonic() + timeout
    sock = connect(path, deadline, timeout, hint)
    buf = bytearray()
    try:
        try:
            sock.sendall(json.dumps(msg).encode() + b"\n")
            while b"\n" not in buf:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > MAX_REPLY_BYTES:
                    raise ControlError(
                        f"the daemon at {path} sent a reply longer than {MAX_REPLY_BYTES} bytes; "
                        "is that really borescope-bridge?"
                    )
        except TimeoutError:
            raise ControlError(
                f"the daemon at {path} did not answer within {timeout:g} s"
            ) from None
        except OSError as exc:
            if not buf:
                raise ControlError(
                    f"talking to the daemon at {path} failed: {exc.strerror}"
                ) from None
    finally:
        sock.close()
    try:
        reply = json.loads(bytes(buf).split(b"\n", 1)[0])
    except (ValueError, RecursionError):
        raise ControlError(f"the daemon at {path} sent an unreadable reply") from None
    if not isinstance(reply, dict):
        raise ControlError(f"the daemon at {path} sent an unreadable reply")
    return reply


def is_listening(path: str) -> bool:
    """False only for a socket file nobody listens on (a daemon killed before it could remove
    it): such a leftover must not make a live daemon ambiguous."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # there but busy or not ours to open: connecting will say why
    return True


def find_socket(explicit: str | None, candidates: list[str], hint: str = NOT_RUNNING_HINT) -> str:
    """The socket to talk to: the explicit one, else the single existing candidate (leftovers
    nobody listens on are passed over when another one is live)."""
    if explicit:
        return explicit
    existing = []
    for p in candidates:
        try:
            if stat.S_ISSOCK(os.stat(p).st_mode):
                existing.append(p)
        except PermissionError:
            existing.append(p)  # there, but not ours to see: connecting explains the group
        except OSError:
            continue
    if len(existing) > 1:
        live = [p for p in existing if is_listening(p)]
        existing = live or existing
    if len(existing) == 1:
        return existing[0]
    if len(existing) > 1:
        raise ControlError(
            "several borescope-bridge daemons are running; pick one with --socket: "
            + ", ".join(existing)
        )
    raise ControlError(
        f"no borescope-bridge control socket found (looked at {', '.join(candidates)}): {hint}"
    )
