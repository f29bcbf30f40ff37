# SPDX-License-Identifier: GPL-3.0-or-later
"""Framing C's transport: one TCP connection to the scope's port 7060, read into StreamC.

The scope needs no start packet: it writes frames as soon as a client connects. The socket
is non-blocking and lives in the session's selector; a failed connect shows up as a readable
socket whose read raises, so one EVENT_READ registration covers connecting, data and loss.
Like the UDP sends, the connection never goes through a gateway (SO_DONTROUTE) and, with
--interface, is bound to that interface.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Sequence

from bridge.core.framing_c import StreamC
from bridge.core.reassembly import Frame

log = logging.getLogger(__name__)

READ_BYTES = 65536
RECONNECT_S = 1.0  # between connection attempts while the scope does not accept


class TcpStream:
    """One connection at a time to ``addr``; ``parser`` keeps its counters across reconnects."""

    def __init__(self, addr: tuple[str, int], interface: str | None, parser: StreamC) -> None:
        self.addr = addr
        self.interface = interface
        self.parser = parser
        self.sock: socket.socket | None = None
        self.connects = 0
        self.failures = 0
        self.next_attempt = 0.0
        self._buf = bytearray(READ_BYTES)

    def due(self, now: float) -> bool:
        """No connection, and time for the next attempt."""
        return self.sock is None and now >= self.next_attempt

    def open(self, now: float) -> socket.socket | None:
        """Start a non-blocking connect; the socket to watch for reading, None if it failed."""
        self.next_attempt = now + RECONNECT_S
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE, 1)
            if self.interface:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
            s.setblocking(False)
            err = s.connect_ex(self.addr)
        except OSError as exc:
            s.close()
            self.failures += 1
            log.debug("TCP connect to %s:%d: %s", *self.addr, exc.strerror)
            return None
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.failures += 1
            log.debug("TCP connect to %s:%d: %s", *self.addr, errno.errorcode.get(err, err))
            return None
        self.sock = s
        self.connects += 1
        return s

    def read(self, now: float) -> Sequence[Frame] | None:
        """Frames from what arrived; None when the connection failed or closed (then close)."""
        s = self.sock
        if s is None:
            return None
        try:
            n = s.recv_into(self._buf)
        except (BlockingIOError, InterruptedError):
            return ()
        except OSError as exc:
            log.debug("TCP %s:%d: %s", *self.addr, exc.strerror)
            self.failures += 1
            return None
        if n == 0:
            log.debug("TCP %s:%d closed by the scope", *self.addr)
            return None
        return self.parser.feed(self._buf, now, n)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.parser.reset()
