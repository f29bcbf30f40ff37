# SPDX-License-Identifier: GPL-3.0-or-later
"""The local control socket behind `borescope-bridge snapshot` and `borescope-bridge status`.

Protocol: the client sends one JSON object on one line (``{"cmd": "status"}`` or
``{"cmd": "snapshot", "timeout": 5}``), the daemon answers one JSON line
(``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``) and closes.
The socket file is mode 0660: the owner and the group (desktop users the packaging
adds to it) may ask for snapshots; nobody else can.

Theory of operation. Anyone who may connect may also misbehave (a buggy script, a
hostile group member), so nothing a client does can hold the daemon's resources for long:

- One thread (``control``) owns every connection: a selector, non-blocking reads and writes.
  A connection costs one fd and at most ``MAX_REQUEST_BYTES`` of buffer, never a thread.
- At most ``MAX_CONNECTIONS`` connections are open at once. When a new one arrives and the
  table is full, one connection that has not finished sending its request (or is not reading
  its reply) is dropped: the oldest of the peer holding the most connections (counted by uid,
  then by pid, from ``SO_PEERCRED``), read once more first in case its request has just
  arrived. A flood of slow clients that keep reconnecting so only ever evicts itself, however
  fast it reconnects, while a well-behaved client, with one connection whose request is
  complete the moment it is sent, goes on to a handler.
- Each request has one deadline for the whole request (``REQUEST_DEADLINE_S`` from accept
  to its newline, however the bytes trickle in) and one for the whole reply
  (``REPLY_DEADLINE_S``). A client that never reads its reply is closed at that deadline.
- Complete requests run on a fixed pool of ``workers`` handler threads. A handler may wait
  (a snapshot waits for its frame); the daemon bounds how many such waits run at once.
- When ``accept()`` fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the
  listening socket is left alone for a growing pause instead of spinning on it.
- Every malformed request (not UTF-8, not JSON, not an object, nested too deeply, too long,
  incomplete at its deadline) is answered ``{"ok": false, "error": ...}``.

Sockets in a directory that others may write to (the ``/tmp`` fallback without
``XDG_RUNTIME_DIR``): the directory must be a real directory, ours, mode 0700, or the daemon
and the clients refuse it (as ssh-agent and tmux do), so another local user can neither take
the socket's place nor answer in the daemon's name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import pwd
import queue
import selectors
import socket
import stat
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.core.ratelimit import RateLimiter
from bridge.errors import ControlError

log = logging.getLogger(__name__)

# A request is one short JSON line; anything longer is refused, not buffered.
MAX_REQUEST_BYTES = 4096
# The client reads at most this much of a reply (status is about 2 KiB).
MAX_REPLY_BYTES = 256 * 1024
# Open connections at once; each costs one fd and at most MAX_REQUEST_BYTES of memory.
MAX_CONNECTIONS = 64
# From accept to the request's newline, however slowly the bytes come.
REQUEST_DEADLINE_S = 2.0
# From the handler's answer to the last byte of it handed to the kernel.
REPLY_DEADLINE_S = 2.0
# Handler threads; a snapshot request occupies one while it waits for its frame.
DEFAULT_WORKERS = 8
# Kernel queue of connections not yet accepted; beyond it clients see EAGAIN and retry.
LISTEN_BACKLOG = 64
# New connections taken per loop turn, so reads and deadlines are never starved by accepts.
ACCEPT_BATCH = 16
# Pause on accept() failing for lack of resources: doubles from the first to the last value.
ACCEPT_BACKOFF_MIN_S = 0.05
ACCEPT_BACKOFF_MAX_S = 1.0
SOCKET_MODE = 0o660
# A snapshot waits for the next complete frame; a live stream delivers one within 1/30 s.
DEFAULT_SNAPSHOT_TIMEOUT_S = 5.0
# `snapshot --timeout` and the request's "timeout": seconds, more than 0, at most this.
MAX_SNAPSHOT_TIMEOUT_S = 300.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]

NOT_RUNNING_HINT = (
    "is borescope-bridge running? Start it with `borescope-bridge run` "
    "(or try `borescope-bridge demo`), or check the service with "
    "`systemctl status borescope-bridge`"
)

_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def parse_request(line: bytes) -> dict[str, Any] | str:
    """One request line to its object, or the sentence that says why it is not one."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "request is not UTF-8 text"
    try:
        msg = json.loads(text)
    except RecursionError:
        return "request is nested too deeply"
    except ValueError:
        return "request is not JSON (send one JSON object on one line)"
    if not isinstance(msg, dict):
        return "request is not a JSON object"
    return msg


def encode_reply(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply).encode() + b"\n"


# ---- the socket directory ----------------------------------------------------------------------


def _writable_by_others(directory: str) -> bool:
    """True for a directory where others may create names (/tmp, /dev/shm)."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _shared_parent(directory: str) -> bool:
    """True when others may write to the directory that holds `directory`."""
    return _writable_by_others(os.path.dirname(os.path.abspath(directory)) or "/")


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_private_dir(directory: str, trusted_uids: tuple[int, ...], what_to_do: str) -> None:
    """Refuse a socket directory that another user could control. Never follows a symlink."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        raise ControlError(f"{directory} does not exist: {what_to_do}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ControlError(
            f"{directory} is a symbolic link, not a directory: another user may be trying to "
            f"intercept borescope-bridge's control socket. Remove it (`rm {directory}`); "
            + what_to_do
        )
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(
            f"{directory} exists and is not a directory: remove it (`rm {directory}`); "
            + what_to_do
        )
    if st.st_uid not in trusted_uids:
        raise ControlError(
            f"{directory} belongs to {_user_name(st.st_uid)}, not to you: another user may be "
            "trying to intercept borescope-bridge's control socket. Have it removed "
            f"(`sudo rm -r {directory}`); " + what_to_do
        )
    if st.st_mode & 0o077:
        raise ControlError(
            f"{directory} has mode {stat.S_IMODE(st.st_mode):04o}, open to other users; it "
            f"must be 0700: `chmod 700 {directory}`, or remove it; " + what_to_do
        )


def prepare_socket_dir(directory: str) -> None:
    """Create the daemon's socket directory; in a shared parent, private (0700) and checked."""
    if _shared_parent(directory):
        try:
            os.mkdir(directory, 0o700)  # never follows a symlink in the last component
        except FileExistsError:
            pass
        except OSError as exc:
            raise ControlError(
                f"cannot create the control socket directory {directory}: {exc.strerror} "
                "(choose another place with --control-socket)"
            ) from None
        check_private_dir(
            directory,
            (os.geteuid(),),
            "or set XDG_RUNTIME_DIR, or choose another place with --control-socket",
        )
        return
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise ControlError(
            f"cannot create the control socket directory {directory}: {exc.strerror} "
            "(choose another place with --control-socket)"
        ) from None


# ---- the server --------------------------------------------------------------------------------

READING, HANDLING, WRITING, CLOSED = "reading", "handling", "writing", "closed"


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection, as the kernel says (SO_PEERCRED)."""

    pid: int
    uid: int

    @classmethod
    def of(cls, sock: socket.socket) -> Peer:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        except OSError:
            return cls(0, -1)
        pid, uid, _ = _UCRED.unpack(raw)
        return cls(pid, uid)


_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    deadline: float
    peer: Peer
    phase: str = READING
    buf: bytearray = field(default_factory=bytearray)
    out: memoryview | None = None


class ControlServer:
    """Serves `handler(msg) -> reply` on a Unix socket, within fixed limits (module docstring)."""

    def __init__(
        self,
        path: str,
        handler: Handler,
        workers: int = DEFAULT_WORKERS,
        max_connections: int = MAX_CONNECTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.handler = handler
        self.workers = workers
        self.max_connections = max_connections
        self.clock = clock
        self.evicted = 0
        self.accept_failures = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._pool: list[threading.Thread] = []
        self._jobs: queue.SimpleQueue[tuple[_Conn, dict[str, Any]] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Conn, bytes]] = queue.SimpleQueue()
        self._conns: dict[int, _Conn] = {}  # in accept order: the first is the oldest
        # Open connections per peer uid and pid, kept as they open and close: counting them
        # on every eviction costs a flat-out flood's control thread about a quarter more.
        self._by_uid: Counter[int] = Counter()
        self._by_pid: Counter[int] = Counter()
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
            old_umask = os.umask(0o117)
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
        self._pool = [
            threading.Thread(target=self._work, name=f"control-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in self._pool:
            t.start()
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
        for _ in self._pool:
            self._jobs.put(None)
        self._pool = []
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
        """One turn of the loop: events, finished handlers, deadlines, the accept pause."""
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
                conn, data = self._done.get_nowait()
            except queue.Empty:
                break
            self._send_reply(conn, data)
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
            conn = _Conn(sock, self.clock() + REQUEST_DEADLINE_S, Peer.of(sock))
            self._conns[sock.fileno()] = conn
            self._by_uid[conn.peer.uid] += 1
            self._by_pid[conn.peer.pid] += 1
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
        """Free one place in a full table (module docstring); False if every one is handling."""
        while len(self._conns) >= self.max_connections:
            victim = self._eviction_candidate()
            if victim is None:
                return False
            if victim.phase == READING:
                self._read(victim)  # its request may be complete by now: then it is spared
                if victim.phase != READING:
                    continue
            self._evict(victim)
        return True

    def _eviction_candidate(self) -> _Conn | None:
        """The oldest unfinished connection of the peer that holds the most connections."""
        best: _Conn | None = None
        best_share = (0, 0)
        for conn in self._conns.values():  # oldest first: ties go to the oldest
            if conn.phase == HANDLING:
                continue
            share = (self._by_uid[conn.peer.uid], self._by_pid[conn.peer.pid])
            if best is None or share > best_share:
                best, best_share = conn, share
        return best

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
                self._by_pid[conn.peer.pid],
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
        self._jobs.put((conn, parsed))

    def _reply(self, conn: _Conn, reply: dict[str, Any]) -> None:
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
            self._by_uid[conn.peer.uid] -= 1
            self._by_pid[conn.peer.pid] -= 1
            if not self._by_pid[conn.peer.pid]:
                del self._by_pid[conn.peer.pid]
            if not self._by_uid[conn.peer.uid]:
                del self._by_uid[conn.peer.uid]
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

    # ---- the handler pool -------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            conn, msg = job
            try:
                data = encode_reply(self.handler(msg))
            except Exception as exc:  # a bug must not kill the worker
                log.exception("control request %r failed", msg)
                data = encode_reply({"ok": False, "error": f"internal error: {exc}"})
            if self._stopping.is_set():
                continue
            self._done.put((conn, data))
            self._wake()


# ---- the client --------------------------------------------------------------------------------


def check_client_socket(path: str) -> None:
    """Before connecting: a socket that another user could have planted is refused.

    In a directory whose parent others may write to (the /tmp fallback), the directory must
    be ours (or root's) with mode 0700; a socket right in such a directory must be ours.
    """
    trusted = (os.geteuid(), 0)
    directory = os.path.dirname(os.path.abspath(path))
    if _writable_by_others(directory):
        with contextlib.suppress(FileNotFoundError):  # connecting says what is missing
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or st.st_uid not in trusted:
                raise ControlError(
                    f"{path} belongs to {_user_name(st.st_uid)}, not to you, in a directory "
                    "that other users may write to: it may be an impostor; pass the socket "
                    "of your own daemon with --socket"
                )
    if _shared_parent(directory):
        check_private_dir(directory, trusted, "then start the daemon again, or pass --socket")


def _connect(path: str, deadline: float, timeout: float) -> socket.socket:
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
        raise _connect_error(path, exc, timeout) from None
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


def _connect_error(path: str, exc: OSError, timeout: float) -> ControlError:
    if isinstance(exc, FileNotFoundError):
        return ControlError(f"no control socket at {path}: {NOT_RUNNING_HINT}")
    if isinstance(exc, ConnectionRefusedError):
        return ControlError(
            f"nothing listens on {path} (a daemon that stopped uncleanly?): {NOT_RUNNING_HINT}"
        )
    if isinstance(exc, PermissionError):
        return ControlError(
            f"permission denied on {path}: add yourself to the socket's group "
            f"(`ls -l {path}`, then `sudo usermod -aG GROUP $USER` and log in again) "
            "or run as root"
        )
    if isinstance(exc, TimeoutError):
        return ControlError(f"the daemon at {path} did not answer within {timeout:g} s")
    return ControlError(f"cannot connect to {path}: {exc.strerror}")


def request(path: str, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request to the daemon at `path` and return its reply; ControlError says why not.

    `timeout` bounds the whole exchange: waiting for a busy socket, sending, the reply.
    """
    check_client_socket(path)
    deadline = time.monotonic() + timeout
    sock = _connect(path, deadline, timeout)
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
