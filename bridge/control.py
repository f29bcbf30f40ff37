# SPDX-License-Identifier: GPL-3.0-or-later
"""The local control socket behind `borescope-bridge snapshot` and `borescope-bridge status`.

Protocol: the client sends one JSON object on one line (``{"cmd": "status"}`` or
``{"cmd": "snapshot", "timeout": 5}``), the daemon answers one JSON line
(``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``) and closes.
The socket file is mode 0660: the owner and the group (desktop users the packaging
adds to it) may ask for snapshots; nobody else can.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from typing import Any

from bridge.errors import ControlError

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
SOCKET_MODE = 0o660
# A snapshot waits for the next complete frame; a live stream delivers one within 1/30 s.
DEFAULT_SNAPSHOT_TIMEOUT_S = 5.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]

NOT_RUNNING_HINT = (
    "is borescope-bridge running? Start it with `borescope-bridge run` "
    "(or try `borescope-bridge demo`), or check the service with "
    "`systemctl status borescope-bridge`"
)


class ControlServer:
    """Accept loop on its own thread; each request is handled on a short-lived thread."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Bind the socket (refusing to steal one a live daemon is using) and start serving."""
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise ControlError(
                f"cannot create the control socket directory {directory}: {exc.strerror} "
                "(choose another place with --control-socket)"
            ) from None
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            old_umask = os.umask(0o117)
            try:
                sock.bind(self.path)
            finally:
                os.umask(old_umask)
            os.chmod(self.path, SOCKET_MODE)
            sock.listen(16)
        except OSError as exc:
            sock.close()
            raise ControlError(
                f"cannot create the control socket {self.path}: {exc.strerror} "
                "(choose another place with --control-socket)"
            ) from None
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        log.info("control socket at %s", self.path)

    def _remove_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(
                f"{self.path} exists and is not a socket; remove it or choose another "
                "--control-socket"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            return
        finally:
            probe.close()
        raise ControlError(
            f"another borescope-bridge is already running with control socket {self.path}; "
            "stop it first or give this one another --control-socket"
        )

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            threading.Thread(
                target=self._handle, args=(conn,), name="control-client", daemon=True
            ).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2.0)
            try:
                request = _read_line(conn)
                try:
                    msg = json.loads(request)
                    if not isinstance(msg, dict):
                        raise ValueError("not an object")
                except ValueError:
                    reply: dict[str, Any] = {"ok": False, "error": "request is not a JSON object"}
                else:
                    conn.settimeout(None)
                    try:
                        reply = self.handler(msg)
                    except Exception as exc:  # a bug must not kill the accept loop
                        log.exception("control request %r failed", msg)
                        reply = {"ok": False, "error": f"internal error: {exc}"}
                    conn.settimeout(2.0)
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError as exc:
                log.debug("control client went away: %s", exc)


def _read_line(conn: socket.socket) -> bytes:
    buf = bytearray()
    while b"\n" not in buf:
        chunk = conn.recv(MAX_REQUEST_BYTES)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST_BYTES:
            raise OSError(errno.EMSGSIZE, "request too long")
    return bytes(buf.split(b"\n", 1)[0])


def request(path: str, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request to the daemon at `path` and return its reply; ControlError says why not."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise ControlError(f"no control socket at {path}: {NOT_RUNNING_HINT}") from None
        except ConnectionRefusedError:
            raise ControlError(
                f"nothing listens on {path} (a daemon that stopped uncleanly?): {NOT_RUNNING_HINT}"
            ) from None
        except PermissionError:
            raise ControlError(
                f"permission denied on {path}: add yourself to the socket's group "
                f"(`ls -l {path}`, then `sudo usermod -aG GROUP $USER` and log in again) "
                "or run as root"
            ) from None
        except OSError as exc:
            raise ControlError(f"cannot connect to {path}: {exc.strerror}") from None
        try:
            sock.sendall(json.dumps(msg).encode() + b"\n")
            buf = bytearray()
            while b"\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            raise ControlError(
                f"the daemon at {path} did not answer within {timeout:g} s"
            ) from None
        except OSError as exc:
            raise ControlError(f"talking to the daemon at {path} failed: {exc.strerror}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(bytes(buf).split(b"\n", 1)[0])
    except ValueError:
        raise ControlError(f"the daemon at {path} sent an unreadable reply") from None
    if not isinstance(reply, dict):
        raise ControlError(f"the daemon at {path} sent an unreadable reply")
    return reply


def find_socket(explicit: str | None, candidates: list[str]) -> str:
    """The socket to talk to: the explicit one, else the single existing candidate."""
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
    if len(existing) == 1:
        return existing[0]
    if len(existing) > 1:
        raise ControlError(
            "several borescope-bridge daemons are running; pick one with --socket: "
            + ", ".join(existing)
        )
    raise ControlError(
        f"no borescope-bridge control socket found (looked at {', '.join(candidates)}): "
        f"{NOT_RUNNING_HINT}"
    )
