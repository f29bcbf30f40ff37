# SPDX-License-Identifier: GPL-3.0-or-later
"""The web port's connection limits: our own accept loop in front of aiohttp (issue 18, item 1).

Why: aiohttp's sites take every connection asyncio accepts and keep one that never finishes its
request forever; a local user's flood of such connections used up the service's descriptors,
and then the video (whose route check opens a netlink socket), snapshots and the control socket
failed with it, while asyncio logged a traceback for every failed accept(). So the listening
socket is served here instead, and every connection is counted from accept() to close:

- At most ``MAX_CONNECTIONS`` at once, and ``MAX_PER_PEER`` from one address. A connection over
  either cap takes the place of the oldest one of that peer (or of anyone) that has not yet
  sent a complete request head; when every place is busy with a request it is closed at once,
  unanswered. A flood thus costs its own older connections, never a viewer's stream, and a
  real client's request (whose head arrives at once) gets in even while the flood goes on.
- A request head must arrive within ``HEADER_TIMEOUT_S`` of the connect; after a response,
  aiohttp closes a keep-alive connection idle for ``KEEPALIVE_S`` (its ``keepalive_timeout``,
  which both 3.8.4 and the newest 3.x take), and that covers a slow second request as well.
- accept() failing for lack of descriptors or memory pauses accepting for ``ACCEPT_PAUSE_S``
  with one warning a minute, instead of a traceback per attempt.

Only public asyncio API: ``loop.add_reader`` on the listening socket and
``loop.connect_accepted_socket`` with a protocol that wraps aiohttp's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from bridge.core.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
MAX_PER_PEER = 64
HEADER_TIMEOUT_S = 5.0
KEEPALIVE_S = 5.0
ACCEPT_BATCH = 64  # connections taken per loop turn, so the viewers' writes are not starved
ACCEPT_PAUSE_S = 1.0
RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
HEAD_END = b"\r\n\r\n"
_LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger: on, 0 s

ProtocolFactory = Callable[[], asyncio.Protocol]


class _Conn:
    """One accepted connection's place in the table."""

    __slots__ = ("closed", "peer", "pending", "sock", "tail", "timer", "transport")

    def __init__(self, peer: str, sock: socket.socket) -> None:
        self.peer = peer
        self.sock = sock
        self.transport: asyncio.BaseTransport | None = None
        self.pending = True  # no complete request head yet: the first to give way
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.tail = b""  # the last bytes seen, for a head end split across reads


class ConnectionLimiter:
    """Accepts on `sock` for `factory` (aiohttp's ``runner.server``) within the limits above."""

    def __init__(
        self,
        factory: ProtocolFactory,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_per_peer: int = MAX_PER_PEER,
        header_timeout_s: float = HEADER_TIMEOUT_S,
    ) -> None:
        self.factory = factory
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self.header_timeout_s = header_timeout_s
        self.refused = 0  # closed at accept: every place busy with a request
        self.evicted = 0  # pending connections that gave their place to a newer one
        self.timed_out = 0  # no request head within header_timeout_s
        self.accept_failures = 0
        self._conns: dict[_Conn, None] = {}
        self._pending: dict[_Conn, None] = {}  # in accept order: the first is the oldest
        self._per_peer: dict[str, dict[_Conn, None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._warn = RateLimiter(60.0)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def connections(self) -> int:
        return len(self._conns)

    def stats(self) -> dict[str, int]:
        return {
            "connections": len(self._conns),
            "refused": self.refused,
            "evicted": self.evicted,
            "timed_out": self.timed_out,
            "accept_failures": self.accept_failures,
        }

    def start(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """Serve the (bound, listening, non-blocking) `sock` on `loop`, from its thread."""
        self._loop, self._sock = loop, sock
        loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting, close the listening socket and abort every connection."""
        loop, sock = self._loop, self._sock
        self._sock = None
        if loop is not None and sock is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(sock.fileno())
            sock.close()
        for conn in list(self._conns):
            self._abort(conn)

    # ---- accepting ------------------------------------------------------------------------

    def _accept(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None:
            return
        for _ in range(ACCEPT_BATCH):
            try:
                client, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in RESOURCE_ERRNOS:
                    self._pause(exc)
                    return
                continue  # ECONNABORTED and the like: that client is gone already
            peer = str(addr[0]) if isinstance(addr, tuple) else str(addr)
            if not self._make_room(peer):
                self.refused += 1
                self._reset(client)
                continue
            client.setblocking(False)
            conn = _Conn(peer, client)
            self._conns[conn] = None
            self._pending[conn] = None
            self._per_peer.setdefault(peer, {})[conn] = None
            conn.timer = loop.call_later(self.header_timeout_s, self._expire, conn)
            task = loop.create_task(
                loop.connect_accepted_socket(lambda c=conn: _Counted(self, c), client)  # type: ignore[misc]
            )
            self._tasks.add(task)
            task.add_done_callback(lambda t, c=conn: self._connected(t, c))  # type: ignore[misc]

    def _make_room(self, peer: str) -> bool:
        """Whether `peer` may have one more connection, evicting a pending one if need be."""
        mine = self._per_peer.get(peer, {})
        if len(mine) >= self.max_per_peer:
            victim = next((c for c in mine if c.pending), None)
        elif len(self._conns) >= self.max_connections:
            victim = next(iter(self._pending), None)
        else:
            return True
        if victim is None:
            return False
        self.evicted += 1
        self._abort(victim)
        return True

    def _connected(self, task: asyncio.Task[Any], conn: _Conn) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is not None:
            self._release(conn)
            conn.sock.close()

    def _pause(self, exc: OSError) -> None:
        """Out of descriptors or memory: stop watching the listening socket for a while."""
        loop, sock = self._loop, self._sock
        assert loop is not None and sock is not None
        self.accept_failures += 1
        loop.remove_reader(sock.fileno())
        loop.call_later(ACCEPT_PAUSE_S, self._resume)
        ok, suppressed = self._warn.allow("accept", time.monotonic())
        if ok:
            log.warning(
                "web page: cannot accept connections (%s); new ones wait %g s each time "
                "(%d more times since the last warning). The video and the control socket are "
                "not affected; if this repeats, raise the service's LimitNOFILE=",
                exc.strerror,
                ACCEPT_PAUSE_S,
                suppressed,
            )

    def _resume(self) -> None:
        if self._loop is not None and self._sock is not None:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    @staticmethod
    def _reset(client: socket.socket) -> None:
        """Close at once with a reset: no FIN handshake, no TIME_WAIT kept for it."""
        with contextlib.suppress(OSError):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        client.close()

    # ---- one connection's life ------------------------------------------------------------

    def _expire(self, conn: _Conn) -> None:
        conn.timer = None
        if conn.pending and not conn.closed:
            self.timed_out += 1
            self._abort(conn)

    def _head_seen(self, conn: _Conn) -> None:
        conn.pending = False
        self._pending.pop(conn, None)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    def _abort(self, conn: _Conn) -> None:
        """Close `conn` now; its place is free at once (connection_lost comes later)."""
        if conn.transport is not None:
            transport = conn.transport
            self._release(conn)
            transport.abort()  # type: ignore[attr-defined]
        else:  # still being wrapped: the transport is aborted as it appears
            self._release(conn)

    def _release(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._conns.pop(conn, None)
        self._pending.pop(conn, None)
        mine = self._per_peer.get(conn.peer)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self._per_peer[conn.peer]


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, seen through by the limiter: it notes when the
    request head is complete and frees the place when the connection is gone."""

    def __init__(self, limiter: ConnectionLimiter, conn: _Conn) -> None:
        self.limiter = limiter
        self.conn = conn
        self.inner = limiter.factory()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.transport = transport
        self.inner.connection_made(transport)
        if self.conn.closed:
            transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn.pending:
            seen = conn.tail + data
            if HEAD_END in seen:
                self.limiter._head_seen(conn)
            else:
                conn.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.limiter._release(self.conn)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
