# SPDX-License-Identifier: GPL-3.0-or-later
"""Control server: one JSON line each way, mode 0660, handlers answering at once or with a
future, and fixed limits that a slow, buggy or hostile client cannot get around (issue 10,
item 2)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from support.flood import SlowFlood, cpu_seconds
from support.paths import REPO
from support.waiting import wait_for

from bridge.control.client import request
from bridge.control.server import ControlServer, Reply
from bridge.control.wire import MAX_CONNECTIONS, REPLY_DEADLINE_S, REQUEST_DEADLINE_S
from bridge.errors import ControlError


def echo_handler(msg: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "echo": msg}


def test_request_reply_and_socket_mode(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "control.sock")
    server = ControlServer(path, echo_handler)
    server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        reply = request(path, {"cmd": "status", "x": [1, 2]}, timeout=5)
        assert reply == {"ok": True, "echo": {"cmd": "status", "x": [1, 2]}}
    finally:
        server.stop()
    assert not os.path.exists(path)


def test_garbage_request_gets_an_error_reply(tmp_path: Path) -> None:
    path = str(tmp_path / "control.sock")
    server = ControlServer(path, echo_handler)
    server.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(b"not json\n")
            data = s.makefile("rb").readline()
        assert b'"ok": false' in data
    finally:
        server.stop()


def test_handler_exception_becomes_error_reply(tmp_path: Path) -> None:
    def broken(msg: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("kaputt")

    path = str(tmp_path / "control.sock")
    server = ControlServer(path, broken)
    server.start()
    try:
        reply = request(path, {"cmd": "status"}, timeout=5)
        assert reply["ok"] is False and "kaputt" in reply["error"]
        # the accept loop survived
        assert request(path, {"cmd": "status"}, timeout=5)["ok"] is False
    finally:
        server.stop()


def test_a_reply_that_is_not_json_becomes_an_error_reply(tmp_path: Path) -> None:
    def sloppy(msg: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "when": object()} if msg["cmd"] == "bad" else {"ok": True}

    path = str(tmp_path / "control.sock")
    server = ControlServer(path, sloppy)
    server.start()
    try:
        reply = request(path, {"cmd": "bad"}, timeout=5)
        assert reply["ok"] is False and "internal error" in reply["error"]
        assert request(path, {"cmd": "good"}, timeout=5) == {"ok": True}
    finally:
        server.stop()


def test_slow_handler_does_not_block_others(tmp_path: Path) -> None:
    """A handler that needs time answers with a future; others are served meanwhile."""
    slow: Future[Reply] = Future()
    asked = threading.Event()

    def handler(msg: dict[str, Any]) -> Reply | Future[Reply]:
        if msg["cmd"] == "slow":
            asked.set()
            return slow
        return {"ok": True, "cmd": msg["cmd"]}

    path = str(tmp_path / "control.sock")
    server = ControlServer(path, handler)
    server.start()
    try:
        results: list[dict[str, Any]] = []
        t = threading.Thread(target=lambda: results.append(request(path, {"cmd": "slow"}, 10)))
        t.start()
        assert asked.wait(5)
        assert request(path, {"cmd": "fast"}, timeout=5)["cmd"] == "fast"
        assert results == []
        slow.set_result({"ok": True, "cmd": "slow"})  # from this thread: it wakes the server
        t.join(10)
        assert results == [{"ok": True, "cmd": "slow"}]
    finally:
        server.stop()


def test_slow_snapshot_futures_do_not_block_status(tmp_path: Path) -> None:
    """More snapshot requests wait than the old pool had threads, yet status answers at once;
    the loop's tick (here: a stepped clock and `expire`) answers them at their deadline."""
    from bridge.capture.snapshots import SnapshotResult, Snapshots, SnapshotWriter

    now = [0.0]
    snaps = Snapshots(
        SnapshotWriter(str(tmp_path / "snaps")),
        state=lambda: "quiet",
        clock=lambda: now[0],
        per_second=None,  # the subject here is waiting, not the rate limit
    )

    def handler(msg: dict[str, Any]) -> Reply | Future[Reply]:
        if msg["cmd"] != "snapshot":
            return {"ok": True, "waiting": snaps.waiting}
        reply: Future[Reply] = Future()
        req = snaps.request("control", wait_s=5.0)

        def answered(result: SnapshotResult) -> None:
            reply.set_result({"ok": result.path is not None, "error": result.error})

        req.add_done_callback(answered)
        return reply

    waiters = 20
    threads_before = threading.active_count()
    with serving(tmp_path, handler) as server:
        replies: list[dict[str, Any]] = []
        clients = [
            threading.Thread(
                target=lambda: replies.append(request(server.path, {"cmd": "snapshot"}, 30))
            )
            for _ in range(waiters)
        ]
        for c in clients:
            c.start()
        wait_for(lambda: snaps.waiting == waiters, what="the waiting snapshots")
        t0 = time.monotonic()
        assert request(server.path, {"cmd": "status"}, timeout=5) == {
            "ok": True,
            "waiting": waiters,
        }
        assert time.monotonic() - t0 < 2
        # The status connection closes just after its reply is handed to the kernel.
        wait_for(lambda: server.connections == waiters, what="only the waiting connections")
        assert threading.active_count() <= threads_before + 1 + waiters  # no handler threads
        snaps.expire()  # not yet due: nothing answered
        assert replies == [] and snaps.waiting == waiters
        now[0] = 5.0
        snaps.expire()
        for c in clients:
            c.join(10)
    assert len(replies) == waiters
    assert all(
        not r["ok"] and "no complete frame arrived within 5 s" in r["error"] for r in replies
    )


def test_a_future_that_fails_or_is_done_already_is_answered(tmp_path: Path) -> None:
    def handler(msg: dict[str, Any]) -> Future[Reply]:
        answer: Future[Reply] = Future()
        if msg["cmd"] == "fail":
            answer.set_exception(RuntimeError("kaputt"))
        else:
            answer.set_result({"ok": True})
        return answer

    with serving(tmp_path, handler) as server:
        reply = request(server.path, {"cmd": "fail"}, timeout=5)
        assert (
            reply["ok"] is False
            and "internal error" in reply["error"]
            and "kaputt" in reply["error"]
        )
        assert request(server.path, {"cmd": "done"}, timeout=5) == {"ok": True}
        wait_for(lambda: server.connections == 0, what="both connections to be closed")


def test_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path: Path) -> None:
    path = str(tmp_path / "control.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # file left behind, nobody listening
    first = ControlServer(path, echo_handler)
    first.start()
    try:
        second = ControlServer(path, echo_handler)
        with pytest.raises(ControlError, match="already running"):
            second.start()
        assert request(path, {"cmd": "status"}, timeout=5)["ok"] is True
    finally:
        first.stop()


@contextlib.contextmanager
def serving(tmp_path: Path, handler: Any = echo_handler, **kw: Any) -> Iterator[ControlServer]:
    server = ControlServer(str(tmp_path / "control.sock"), handler, **kw)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def raw_exchange(path: str, payload: bytes, timeout: float = 10) -> bytes:
    """Send `payload` as is (from a thread: the server may stop reading), return the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)

        def send() -> None:
            with contextlib.suppress(OSError):
                s.sendall(payload)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        data = b""
        while b"\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        sender.join(timeout)
        return data


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"cmd": "st\xff\xfeatus"}\n', "not UTF-8"),
        (b"[" * 4096 + b"\n", "nested too deeply"),
        (b"[" * 2000 + b"]" * 2000 + b"\n", "nested too deeply"),
        (b'{"cmd": "' + b"x" * (1 << 20) + b'"}\n', "too long"),
        (b"\n", "not JSON"),
    ],
    ids=["text", "array", "not-utf8", "brackets", "balanced-deep", "1MiB", "empty"],
)
def test_every_malformed_request_gets_an_error_reply(
    tmp_path: Path, payload: bytes, expected: str
) -> None:
    seen: list[dict[str, Any]] = []

    def handler(msg: dict[str, Any]) -> dict[str, Any]:
        seen.append(msg)
        return {"ok": True}

    with serving(tmp_path, handler) as server:
        reply = json.loads(raw_exchange(server.path, payload))
        assert reply["ok"] is False and expected in reply["error"]
        # The server lives on and answers the next, well-formed request.
        assert request(server.path, {"cmd": "status"}, timeout=5) == {"ok": True}
    assert seen == [{"cmd": "status"}]


def test_a_trickling_request_is_cut_at_one_deadline_for_the_whole_request(
    tmp_path: Path,
) -> None:
    """One byte every 0.3 s never trips a per-read timeout; the whole-request deadline does."""
    with serving(tmp_path) as server, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(server.path)
        s.setblocking(False)
        t0 = time.monotonic()
        reply = b""
        while b"\n" not in reply and time.monotonic() - t0 < 30:
            with contextlib.suppress(OSError):
                s.send(b" ")
            time.sleep(0.3)
            with contextlib.suppress(BlockingIOError):
                reply += s.recv(4096)
        elapsed = time.monotonic() - t0
        assert b"incomplete" in reply
        assert elapsed < REQUEST_DEADLINE_S + 5  # generous: the point is "not for hours"
        wait_for(lambda: server.connections == 0, what="the connection to be closed")


def test_a_client_that_never_reads_its_reply_is_closed(tmp_path: Path) -> None:
    big = "x" * (4 << 20)  # far more than a socket buffer holds

    def handler(msg: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "blob": big} if msg["cmd"] == "big" else {"ok": True}

    with serving(tmp_path, handler) as server:
        lazy = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(8)]
        try:
            for s in lazy:
                s.connect(server.path)
                s.sendall(b'{"cmd": "big"}\n')  # and never read
            wait_for(lambda: server.connections == 8, what="eight lazy readers")
            # Meanwhile everyone else is served.
            assert request(server.path, {"cmd": "quick"}, timeout=5) == {"ok": True}
            t0 = time.monotonic()
            wait_for(lambda: server.connections == 0, what="the lazy readers to be closed")
            assert time.monotonic() - t0 < REPLY_DEADLINE_S + 5
        finally:
            for s in lazy:
                s.close()


def test_flood_of_slow_reconnecting_clients_does_not_starve_a_good_one(tmp_path: Path) -> None:
    """2000 parallel slow clients that reconnect flat out when dropped; a normal client still
    gets in."""
    threads_before = threading.active_count()
    with serving(tmp_path) as server:
        with SlowFlood(server.path, count=2000, trickle_s=1.0, reconnect_per_s=None) as flood:
            flood.wait_connects(2000)
            answered = 0
            for i in range(20):
                t0 = time.monotonic()
                assert request(server.path, {"cmd": "status", "n": i}, timeout=5)["ok"]
                assert time.monotonic() - t0 < 5
                answered += 1
                assert server.connections <= MAX_CONNECTIONS
            assert answered == 20
            assert flood.closed_by_server > 0  # the flood was really cut back
            assert server.evicted > 0 or flood.eagain > 0
            # Threads: the server's one plus the flood's, never one per connection.
            assert threading.active_count() <= threads_before + 1 + 1
        wait_for(lambda: server.connections == 0, what="the flood's connections to be closed")


def test_a_full_table_evicts_the_peer_holding_the_most_connections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The oldest unfinished connection is spared when another process holds the rest: the
    flood evicts only itself. Deadlines are frozen so nothing but eviction closes anything."""
    with serving(tmp_path, max_connections=8, clock=lambda: 0.0) as server:
        mine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            mine.connect(server.path)
            mine.sendall(b" ")  # unfinished, and the oldest in the table
            wait_for(lambda: server.connections == 1, what="our slow connection")
            with SlowFlood(server.path, count=20, trickle_s=1.0, reconnect_per_s=None) as flood:
                wait_for(lambda: server.evicted >= 200, what="the flood to be evicted")
                assert flood.closed_by_server >= 100
                mine.setblocking(False)
                with pytest.raises(BlockingIOError):  # no "dropped" error, no EOF: still open
                    mine.recv(4096)
                assert server.connections <= 8
                flood_pid = flood.pid
        finally:
            mine.close()
    assert f"of pid {flood_pid} " in caplog.text  # the log names who filled the table


ACCEPT_SPIN_SERVER = """
import os, resource, sys, time
from bridge.control.server import ControlServer
server = ControlServer(sys.argv[1], lambda m: {"ok": True})
server.start()
# Leave room for a few connections only: accept() fails with EMFILE long before the cap.
used = len(os.listdir("/proc/self/fd"))
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 6, hard))
print("ready", flush=True)
time.sleep(120)
"""


def test_accept_failing_with_emfile_backs_off_instead_of_spinning(tmp_path: Path) -> None:
    path = str(tmp_path / "control.sock")
    proc = subprocess.Popen(
        [sys.executable, "-c", ACCEPT_SPIN_SERVER, path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with SlowFlood(path, count=200, trickle_s=1.0, reconnect=False) as flood:
            flood.wait_connects(50)
            time.sleep(0.5)
            before, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(3.0)
            used = cpu_seconds(proc.pid) - before
            window = time.monotonic() - t0
        # A spinning accept loop burns the whole window; backing off costs next to nothing.
        assert used < 0.5 * window, f"{used:.2f} s of CPU in {window:.2f} s"
        # Once the flood is gone the server recovers and answers.
        assert request(path, {"cmd": "status"}, timeout=10) == {"ok": True}
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert "cannot accept connections" in err and "pausing" in err
