# SPDX-License-Identifier: GPL-3.0-or-later
"""The local control socket behind `borescope-bridge snapshot` and `borescope-bridge status`.

The wire format is in bridge.control.wire, the socket directory's safety in
bridge.control.sockdir, which connection a full table drops in bridge.control.eviction.
The socket file is mode 0660: the owner and the group (desktop users the packaging adds to
it) may ask for snapshots; nobody else can.

Theory of operation. Anyone who may connect may also misbehave (a buggy script, a
hostile group member), so nothing a client does can hold the daemon's resources for long:

- One thread (``control``) owns every connection: a selector, non-blocking reads and writes.
  A connection costs one fd and at most ``MAX_REQUEST_BYTES`` of buffer, never a thread.
- At most ``MAX_CONNECTIONS`` connections are open at once; a full table drops one
  unfinished connection of the peer holding the most (bridge.control.eviction).
- Each request has one deadline for the whole request (``REQUEST_DEADLINE_S`` from accept
  to its newline, however the bytes trickle in) and one for the whole reply
  (``REPLY_DEADLINE_S``). A client that never reads its reply is closed at that deadline.
- A complete request goes to the handler on this same thread. The handler answers at once
  with a reply, or with a future of one when the answer takes time (a snapshot waits for its
  frame); the thread that completes the future wakes the selector, which then sends the
  reply. Waiting therefore holds no thread: what bounds the waits is whoever makes the
  futures (the daemon's snapshots refuse beyond their limit), and a connection with a
  handler is never dropped to make room.
- When ``accept()`` fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the
  listening socket is left alone for a growing pause instead of spinning on it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import selectors
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from bridge.control.eviction import Eviction, Peer
from bridge.control.sockdir import prepare_socket_dir
from bridge.control.wire import (
    MAX_CONNECTIONS,
    MAX_REQUEST_BYTES,
    REPLY_DEADLINE_S,
    REQUEST_DEADLINE_S,
    encode_reply,
    parse_request,
)
from bridge.core.ratelimit import RateLimiter
from bridge.errors import ControlError

log = logging.getLogger(__name__)

# Kernel queue of connections not yet accepted; beyond it clients see EAGAIN and retry.
LISTEN_BACKLOG = 64
# New connections taken per loop turn, so reads and deadlines are never starved by accepts.
ACCEPT_BATCH = 16
# Pause on accept() failing for lack of resources: doubles from the first to the last value.
ACCEPT_BACKOFF_MIN_S = 0.05
ACCEPT_BACKOFF_MAX_S = 1.0
SOCKET_MODE = 0o660

Reply = dict[str, Any]
# Called on the control thread: it must not block; what takes time is returned as a future.
Handler = Callable[[dict[str, Any]], Reply | Future[Reply]]

_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

READING, HANDLING, WRITING, CLOSED = "reading", "handling", "writing", "closed"

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_of(sock: socket.socket) -> Peer:
    """The connection's peer as the kernel says; pid 0, uid -1 when it cannot."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return Peer(0, -1)
    pid, uid, _ = _UCRED.unpack(raw)
    return Peer(pid, uid)


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    deadline: float
    peer: Peer
    phase: str = READING
    buf: bytearray = field(default_factory=bytearray)
    out: memoryview | None = None

    @property
    def evictable(self) -> bool:
        return self.phase != HANDLING


class ControlServer:
    """Serves `handler(msg) -> reply or future` on a Unix socket, within fixed limits
    (module docstring)."""

    def __init__(
        self,
        path: str,
        handler: Handler,
        max_connections: int = MAX_CONNECTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.handler = handler
        self.max_connections = max_connections
        self.clock = clock
        self.evicted = 0
        self.accept_failures = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        # Futures completed on other threads, for the control thread to answer.
        self._done: queue.SimpleQueue[tuple[_Conn, Future[Reply]]] = queue.SimpleQueue()
        self._conns: dict[int, _Conn] = {}  # in accept order: the first is the oldest
        self._eviction = Eviction()
        self._sel: selectors.BaseSelector | None = None
        self._wake_r, self._wake_w = -1, -1
        self._wake_lock = threading.Lock()  # no wake-up byte into a closed (reused) fd
        self._stopping = threading.Event()
        self._backoff_s = 0.0
        self._accept_resume_at: float | None = None
        self._warn = RateLimiter(30.0)

    def start(self) -> None:
        """Bind the socket (refusing to steal one a live daemon is using) and start serving."""
        prepare_socket_dir(os.path.dirname(self.path) or ".")
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            # bind() creates the file with 0777 & ~umask: 0660, no chmod (which follows links).
            old_umask = os.umask(0o777 & ~SOCKET_MODE)
            try:
                sock.bind(self.path)
            finally:
                os.umask(old_umask)
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            raise ControlError(
                f"cannot create the control socket {self.path}: {exc.strerror} "
                "(choose another place with --control-socket)"
            ) from None
        sock.setblocking(False)
        self._sock = sock
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        log.info("control socket at %s", self.path)

    def _remove_stale(self) -> None:
        try:
            st = os.lstat(self.path)
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
        except BlockingIOError:
            pass  # a live daemon whose queue is full: certainly not stale
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
        self._wake()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        for conn in list(self._conns.values()):
            self._close(conn)
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    @property
    def connections(self) -> int:
        return len(self._conns)

    # ---- the selector thread ----------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                self._turn()
            except Exception:  # a bug here must not silently end the control socket
                ok, _ = self._warn.allow("serve", time.monotonic())
                if ok:
                    log.exception("control socket: unexpected error, continuing")
                time.sleep(0.05)

    def _turn(self) -> None:
        """One turn of the loop: events, completed futures, deadlines, the accept pause."""
        assert self._sel is not None
        for key, mask in self._sel.select(self._next_timeout(self.clock())):
            if key.fileobj is self._sock:
                self._accept()
            elif key.fileobj == self._wake_r:
                self._drain_wake()
            else:
                conn: _Conn = key.data
                if mask & selectors.EVENT_READ:
                    self._read(conn)
                if mask & selectors.EVENT_WRITE and conn.phase == WRITING:
                    self._write(conn)
        while True:
            try:
                conn, future = self._done.get_nowait()
            except queue.Empty:
                break
            if conn.phase == HANDLING:
                self._send_reply(conn, self._encode(conn, future))
        now = self.clock()
        self._expire(now)
        if self._accept_resume_at is not None and now >= self._accept_resume_at:
            self._accept_resume_at = None
            if self._sock is not None:
                self._sel.register(self._sock, selectors.EVENT_READ, None)

    def _next_timeout(self, now: float) -> float:
        due = [c.deadline for c in self._conns.values() if c.phase != HANDLING]
        if self._accept_resume_at is not None:
            due.append(self._accept_resume_at)
        if not due:
            return 1.0
        return max(0.0, min(min(due) - now, 1.0))

    def _accept(self) -> None:
        assert self._sock is not None and self._sel is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self._sock.accept()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    self._pause_accepting(exc)
                    return
                continue  # ECONNABORTED and the like: that client is gone
            self._backoff_s = 0.0
            sock.setblocking(False)
            if len(self._conns) >= self.max_connections and not self._make_room():
                self._send_error(
                    sock,
                    {
                        "ok": False,
                        "error": f"the daemon is busy: {len(self._conns)} requests are being "
                        "answered; try again in a moment",
                    },
                )
                sock.close()
                continue
            conn = _Conn(sock, self.clock() + REQUEST_DEADLINE_S, peer_of(sock))
            self._conns[sock.fileno()] = conn
            self._eviction.opened(conn.peer)
            self._sel.register(sock, selectors.EVENT_READ, conn)
            self._read(conn)  # a well-behaved client's request is usually already there

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of fds or memory: stop watching the listening socket for a while, not spin."""
        assert self._sel is not None and self._sock is not None
        self.accept_failures += 1
        self._backoff_s = min(max(self._backoff_s * 2, ACCEPT_BACKOFF_MIN_S), ACCEPT_BACKOFF_MAX_S)
        self._accept_resume_at = self.clock() + self._backoff_s
        self._sel.unregister(self._sock)
        ok, suppressed = self._warn.allow("accept", time.monotonic())
        if ok:
            log.warning(
                "control socket: cannot accept connections (%s); pausing %.2f s%s",
                exc.strerror,
                self._backoff_s,
                f" ({suppressed} more since the last message)" if suppressed else "",
            )

    def _make_room(self) -> bool:
        """Free one place in a full table (bridge.control.eviction); False if every one is
        with a handler."""
        while len(self._conns) >= self.max_connections:
            victim = self._eviction.candidate(self._conns.values())
            if victim is None:
                return False
            if victim.phase == READING:
                self._read(victim)  # its request may be complete by now: then it is spared
                if victim.phase != READING:
                    continue
            self._evict(victim)
        return True

    def _evict(self, conn: _Conn) -> None:
        self.evicted += 1
        ok, suppressed = self._warn.allow("evict", time.monotonic())
        if ok:
            log.warning(
                "control socket full (%d connections): dropping the oldest unfinished one of "
                "pid %d (uid %d), which holds %d of them%s",
                len(self._conns),
                conn.peer.pid,
                conn.peer.uid,
                self._eviction.held_by_pid(conn.peer.pid),
                f" ({suppressed} more since the last message)" if suppressed else "",
            )
        if conn.phase == READING:
            self._send_error(
                conn.sock,
                {
                    "ok": False,
                    "error": "dropped: the control socket is full and this request "
                    "was the oldest unfinished one of the client holding the most connections",
                },
            )
        self._close(conn)

    def _read(self, conn: _Conn) -> None:
        if conn.phase != READING:
            return
        try:
            chunk = conn.sock.recv(MAX_REQUEST_BYTES + 1 - len(conn.buf))
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if chunk:
            conn.buf += chunk
            end = conn.buf.find(b"\n")
            if end < 0:
                if len(conn.buf) > MAX_REQUEST_BYTES:
                    self._reply(
                        conn,
                        {
                            "ok": False,
                            "error": f"request too long (at most {MAX_REQUEST_BYTES} bytes)",
                        },
                    )
                return
            line = bytes(conn.buf[:end])
        elif conn.buf:
            line = bytes(conn.buf)  # the client shut down its side after the request
        else:
            self._close(conn)
            return
        parsed = parse_request(line)
        if isinstance(parsed, str):
            self._reply(conn, {"ok": False, "error": parsed})
            return
        conn.phase = HANDLING
        conn.buf = bytearray()
        assert self._sel is not None
        self._sel.unregister(conn.sock)
        self._handle(conn, parsed)

    def _handle(self, conn: _Conn, msg: dict[str, Any]) -> None:
        """Run the handler here; a future's reply is sent when it completes, wherever."""
        try:
            answer = self.handler(msg)
        except Exception as exc:  # a bug must not end the control thread
            log.exception("control request %r failed", msg)
            self._reply(conn, {"ok": False, "error": f"internal error: {exc}"})
            return
        if isinstance(answer, Future):
            answer.add_done_callback(lambda future: self._completed(conn, future))
            return
        self._send_reply(conn, self._encode_reply(msg, answer))

    def _completed(self, conn: _Conn, future: Future[Reply]) -> None:
        """On the completing thread (or this one, if it was done already): hand it over."""
        if self._stopping.is_set():
            return
        self._done.put((conn, future))
        self._wake()

    def _encode(self, conn: _Conn, future: Future[Reply]) -> bytes:
        try:
            reply = future.result(0)
        except Exception as exc:  # the future's maker failed, or cancelled it
            log.error("control request failed: %r", exc)
            return encode_reply({"ok": False, "error": f"internal error: {exc!r}"})
        return self._encode_reply(None, reply)

    @staticmethod
    def _encode_reply(msg: dict[str, Any] | None, reply: Reply) -> bytes:
        try:
            return encode_reply(reply)
        except (TypeError, ValueError, RecursionError) as exc:  # a bug in the handler
            log.exception("control request %r: reply not sendable", msg)
            return encode_reply({"ok": False, "error": f"internal error: {exc}"})

    def _reply(self, conn: _Conn, reply: Reply) -> None:
        self._send_reply(conn, encode_reply(reply))

    def _send_reply(self, conn: _Conn, data: bytes) -> None:
        if conn.phase == CLOSED:
            return
        assert self._sel is not None
        if conn.phase == READING:
            self._sel.unregister(conn.sock)
        conn.phase = WRITING
        conn.out = memoryview(data)
        conn.deadline = self.clock() + REPLY_DEADLINE_S
        self._write(conn)
        if conn.phase == WRITING:
            self._sel.register(conn.sock, selectors.EVENT_WRITE, conn)

    def _write(self, conn: _Conn) -> None:
        assert conn.out is not None
        try:
            while conn.out:
                n = conn.sock.send(conn.out)
                conn.out = conn.out[n:]
        except BlockingIOError:
            return
        except OSError:
            pass  # the client went away: nothing to tell it
        self._close(conn)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.phase != HANDLING]:
            if now < conn.deadline:
                continue
            if conn.phase == READING:
                got = f" ({len(conn.buf)} bytes, no newline)" if conn.buf else ""
                self._send_error(
                    conn.sock,
                    {
                        "ok": False,
                        "error": f"request incomplete after {REQUEST_DEADLINE_S:g} s{got}",
                    },
                )
            self._close(conn)

    @staticmethod
    def _send_error(sock: socket.socket, reply: dict[str, Any]) -> None:
        """Best effort, never blocking: the error goes out if the socket buffer takes it."""
        with contextlib.suppress(OSError):
            sock.send(encode_reply(reply))

    def _close(self, conn: _Conn) -> None:
        if conn.phase == CLOSED:
            return
        if self._sel is not None and conn.phase != HANDLING:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(conn.sock)
        if self._conns.pop(conn.sock.fileno(), None) is conn:
            self._eviction.closed(conn.peer)
        conn.phase = CLOSED
        conn.sock.close()

    def _wake(self) -> None:
        with self._wake_lock, contextlib.suppress(OSError):
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass
