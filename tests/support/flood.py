# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile control-socket clients for the tests: many slow connections, as a buggy script or a
hostile group member would open them, and the /proc readings that show what the daemon spends.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import resource
import selectors
import socket
import time
from typing import Self


def raise_fd_limit(wanted: int) -> None:
    """Let this (test) process hold `wanted` descriptors, up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class ForkedFlood:
    """A flood in a forked process of its own, as a runaway script or a hostile user would run
    it: the server sees another peer, and the test's own clients do not queue for this process's
    GIL behind it. Started on entering, stopped (killed if need be) on leaving; what it has done
    is counted in shared memory, read live."""

    def __init__(self, name: str) -> None:
        self._ctx = multiprocessing.get_context("fork")
        self._connects, self._closed = self._ctx.RawValue("q"), self._ctx.RawValue("q")
        self._stop = self._ctx.Event()
        self._proc = self._ctx.Process(target=self._child, name=name, daemon=True)

    @property
    def connects(self) -> int:
        return int(self._connects.value)

    @property
    def closed_by_server(self) -> int:
        return int(self._closed.value)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def __enter__(self) -> Self:
        self._proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)

    def wait_connects(self, n: int, timeout: float = 30.0) -> None:
        """Until the flood has connected `n` times; fails if its process ends or time is up."""
        end = time.monotonic() + timeout
        while self.connects < n:
            if not self._proc.is_alive():
                raise AssertionError(f"the flood process ended (exit code {self._proc.exitcode})")
            if time.monotonic() > end:
                raise AssertionError(f"flood connected only {self.connects} of {n} times")
            time.sleep(0.05)

    def _child(self) -> None:
        raise NotImplementedError


class SlowFlood(ForkedFlood):
    """`count` connections that each send one space per `trickle_s` and never a newline.

    With `reconnect`, every connection the server closes is opened again: at most
    `reconnect_per_s` a second on average (a token bucket on the monotonic clock, so the rate
    holds however often the loop turns), or as fast as it can with None.
    Connections refused with EAGAIN (the server's accept queue is full) are retried.
    """

    def __init__(
        self,
        path: str,
        count: int = 2000,
        trickle_s: float = 1.0,
        reconnect: bool = True,
        reconnect_per_s: int | None = 1000,
    ) -> None:
        self.path = path
        self.count = count
        self.trickle_s = trickle_s
        self.reconnect = reconnect
        self.reconnect_per_s = reconnect_per_s
        super().__init__("flood")
        self._eagain = self._ctx.RawValue("q")

    @property
    def eagain(self) -> int:
        return int(self._eagain.value)

    def _child(self) -> None:
        raise_fd_limit(self.count + 1000)
        self._run()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        next_send: dict[socket.socket, float] = {}
        pass_s = 0.1
        rate = self.reconnect_per_s
        burst = self.count if rate is None else max(1.0, rate * pass_s)
        tokens, last = float(self.count), time.monotonic()  # the first `count` at once
        opened_once = 0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if rate is None:
                    tokens = burst
                else:  # the bucket holds `burst`, or more while the first `count` last
                    tokens = min(max(tokens, burst), tokens + (now - last) * rate)
                last = now
                while len(next_send) < self.count and tokens >= 1:
                    if not self.reconnect and opened_once >= self.count:
                        break
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
                    try:
                        s.connect(self.path)
                    except BlockingIOError:
                        s.close()
                        self._eagain.value += 1
                        break
                    except OSError:
                        s.close()
                        break
                    tokens -= 1
                    opened_once += 1
                    self._connects.value += 1
                    next_send[s] = now
                    sel.register(s, selectors.EVENT_READ)
                for s, due in list(next_send.items()):
                    if now >= due:
                        try:
                            s.send(b" ")
                            next_send[s] = now + self.trickle_s
                        except OSError:
                            self._drop(sel, next_send, s)
                for key, _ in sel.select(pass_s):
                    # Any reply is the server's error before it closes: gone.
                    s = key.fileobj  # type: ignore[assignment]
                    assert isinstance(s, socket.socket)
                    with contextlib.suppress(OSError):
                        s.recv(65536)
                    self._closed.value += 1
                    self._drop(sel, next_send, s)
        finally:
            for s in list(next_send):
                self._drop(sel, next_send, s)
            sel.close()

    @staticmethod
    def _drop(
        sel: selectors.BaseSelector, next_send: dict[socket.socket, float], s: socket.socket
    ) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(s)
        next_send.pop(s, None)
        s.close()


# ---- what a process spends, from /proc ---------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """Threads and VmRSS (KiB) of a process."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Threads", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---- the web port ------------------------------------------------------------------------------

PARTIAL_REQUEST = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class WebFlood(ForkedFlood):
    """`count` TCP connections to 127.0.0.1:`port`, each a request whose headers never end: the
    request line at once, then one header byte every `trickle_s`.

    Run in a forked child that drops to `user` (another uid, as a hostile local user), after
    raising its own descriptor limit while it still may. Every connection the server closes
    (EOF or reset) is counted and opened again, at most `reconnect_per_s` a second. The flood
    stops by itself after `duration_s`, whatever the test does.
    """

    def __init__(
        self,
        port: int,
        count: int = 1100,
        trickle_s: float = 1.0,
        reconnect_per_s: int = 500,
        user: str = "nobody",
        duration_s: float = 90.0,
    ) -> None:
        self.port = port
        self.count = count
        self.trickle_s = trickle_s
        self.reconnect_per_s = reconnect_per_s
        self.user = user
        self.duration_s = duration_s
        super().__init__("web-flood")
        self._open = self._ctx.RawValue("q")

    @property
    def open(self) -> int:
        return int(self._open.value)

    def _child(self) -> None:
        import pwd

        raise_fd_limit(self.count + 200)
        pw = pwd.getpwnam(self.user)
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        self._run()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        connecting: set[socket.socket] = set()
        next_send: dict[socket.socket, float] = {}
        tokens, last = float(self.count), time.monotonic()
        end = last + self.duration_s
        try:
            while not self._stop.is_set() and time.monotonic() < end:
                now = time.monotonic()
                tokens = min(max(tokens, 50.0), tokens + (now - last) * self.reconnect_per_s)
                last = now
                while len(connecting) + len(next_send) < self.count and tokens >= 1:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
                    err = s.connect_ex(("127.0.0.1", self.port))
                    if err not in (0, errno.EINPROGRESS):
                        s.close()
                        break
                    tokens -= 1
                    connecting.add(s)
                    sel.register(s, selectors.EVENT_WRITE)
                for s, due in list(next_send.items()):
                    if now >= due:
                        try:
                            s.send(b"X")
                            next_send[s] = now + self.trickle_s
                        except OSError:
                            self._closed.value += 1
                            self._drop(sel, connecting, next_send, s)
                for key, _events in sel.select(0.05):
                    s = key.fileobj  # type: ignore[assignment]
                    assert isinstance(s, socket.socket)
                    if s in connecting:
                        connecting.discard(s)
                        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            self._drop(sel, connecting, next_send, s)
                            continue
                        self._connects.value += 1
                        try:
                            s.send(PARTIAL_REQUEST)
                        except OSError:
                            self._closed.value += 1
                            self._drop(sel, connecting, next_send, s)
                            continue
                        sel.modify(s, selectors.EVENT_READ)
                        next_send[s] = now + self.trickle_s
                        continue
                    # Readable: the server's EOF, a reset, or an error reply before its close.
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self._closed.value += 1
                        self._drop(sel, connecting, next_send, s)
                self._open.value = len(next_send)
        finally:
            for s in list(connecting) + list(next_send):
                self._drop(sel, connecting, next_send, s)
            sel.close()

    @staticmethod
    def _drop(
        sel: selectors.BaseSelector,
        connecting: set[socket.socket],
        next_send: dict[socket.socket, float],
        s: socket.socket,
    ) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(s)
        connecting.discard(s)
        next_send.pop(s, None)
        s.close()
