# SPDX-License-Identifier: GPL-3.0-or-later
"""Control socket: one JSON line each way, mode 0660, clear errors when no daemon runs, and
fixed limits that a slow, buggy or hostile client cannot get around (issue 10, item 2)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.flood import SlowFlood, cpu_seconds
from support.waiting import wait_for

import bridge.app.daemon
import bridge.capture.recorder
import bridge.cli.demo
import bridge.cli.main

# Loaded before any fork: the children below run as other users, who may not be able to read
# this interpreter's standard library (under /root in some setups), only what is imported.
import bridge.core.buttons
import bridge.core.reassembly
import bridge.device.session
import bridge.pixels.decode
from bridge.control.server import (
    MAX_CONNECTIONS,
    REPLY_DEADLINE_S,
    REQUEST_DEADLINE_S,
    ControlServer,
    find_socket,
    request,
)
from bridge.errors import ControlError

REPO = Path(__file__).resolve().parents[3]


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
    gate = threading.Event()

    def handler(msg: dict[str, Any]) -> dict[str, Any]:
        if msg["cmd"] == "slow":
            gate.wait(5)
        return {"ok": True, "cmd": msg["cmd"]}

    path = str(tmp_path / "control.sock")
    server = ControlServer(path, handler)
    server.start()
    try:
        results: list[dict[str, Any]] = []
        t = threading.Thread(target=lambda: results.append(request(path, {"cmd": "slow"}, 10)))
        t.start()
        assert request(path, {"cmd": "fast"}, timeout=5)["cmd"] == "fast"
        gate.set()
        t.join(10)
        assert results == [{"ok": True, "cmd": "slow"}]
    finally:
        server.stop()


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


def test_no_daemon_error_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ControlError) as info:
        request(str(tmp_path / "missing.sock"), {"cmd": "status"}, timeout=2)
    msg = str(info.value)
    assert "is borescope-bridge running?" in msg
    assert "systemctl status" in msg


def test_find_socket_picks_the_existing_candidate(tmp_path: Path) -> None:
    path = str(tmp_path / "control.sock")
    server = ControlServer(path, echo_handler)
    server.start()
    try:
        assert find_socket(None, [str(tmp_path / "nope.sock"), path]) == path
        assert find_socket("/explicit.sock", [path]) == "/explicit.sock"
    finally:
        server.stop()
    with pytest.raises(ControlError, match="is borescope-bridge running"):
        find_socket(None, [path])


# ---- malformed and hostile requests (issue 10, item 2) ------------------------------------------


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
            flood.wait_open(2000)
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
            # Threads: the server's fixed ones plus the flood's, never one per connection.
            assert threading.active_count() <= threads_before + 1 + server.workers + 1
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


def test_client_waits_for_a_full_accept_queue_instead_of_failing(tmp_path: Path) -> None:
    """A full listen backlog is waited for (in the kernel) within the client's timeout."""
    path = str(tmp_path / "busy.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    filler: list[socket.socket] = []
    try:
        while True:  # fill the backlog until the kernel says EAGAIN
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            try:
                s.connect(path)
            except BlockingIOError:
                s.close()
                break
            filler.append(s)
        with pytest.raises(ControlError, match="too busy"):
            request(path, {"cmd": "status"}, timeout=0.5)

        def serve_later() -> None:
            time.sleep(0.5)
            for _ in range(len(filler) + 1):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(0.2)
                    with contextlib.suppress(OSError):
                        if conn.recv(4096).endswith(b"\n"):
                            conn.sendall(b'{"ok": true, "late": true}\n')

        t = threading.Thread(target=serve_later, daemon=True)
        t.start()
        assert request(path, {"cmd": "status"}, timeout=10) == {"ok": True, "late": True}
        t.join(10)
    finally:
        for s in filler:
            s.close()
        listener.close()


def test_client_caps_the_reply_it_reads(tmp_path: Path) -> None:
    path = str(tmp_path / "liar.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def endless() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            while True:
                conn.sendall(b"x" * 65536)

    t = threading.Thread(target=endless, daemon=True)
    t.start()
    try:
        with pytest.raises(ControlError, match="longer than"):
            request(path, {"cmd": "status"}, timeout=10)
    finally:
        listener.close()


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
            flood.wait_open(50)
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


# ---- the /tmp fallback directory against another local user (issue 10, item 3) -----------------

VICTIM_UID = 54321  # a uid without an account: nothing in /etc changes, nobody else owns files
ATTACKER_UID = 65534  # nobody


def spawn_as(uid: int, fn: Any, out: Path, env: dict[str, str | None] | None = None) -> int:
    """Run `fn()` in a forked child as `uid` (no groups); its stdout+stderr go to `out`."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        rc = 99
        try:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for k, v in (env or {}).items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            rc = int(fn() or 0)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(rc)
    os.close(fd)
    return pid


def reap(pid: int, timeout: float = 30) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish within {timeout} s")


def run_as(uid: int, argv: list[str], out: Path, env: dict[str, str | None]) -> tuple[int, str]:
    rc = reap(spawn_as(uid, lambda: bridge.cli.main.main(argv), out, env))
    return rc, out.read_text()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A fresh sticky, world-writable directory: what /tmp is, without touching /tmp's names."""
    if os.geteuid() != 0:
        pytest.skip("playing two local users needs root")
    base = Path(tempfile.mkdtemp(prefix="borescope-test-", dir="/tmp"))
    base.chmod(0o1777)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def victim_env(base: Path) -> dict[str, str | None]:
    return {
        "TMPDIR": str(base),
        "XDG_RUNTIME_DIR": None,
        "RUNTIME_DIRECTORY": None,
        "STATE_DIRECTORY": None,
        "INVOCATION_ID": None,
        "NOTIFY_SOCKET": None,
        "HOME": str(base),
    }


def victim_run_argv(base: Path, port: int) -> list[str]:
    config = base / "config.toml"
    config.write_text("# empty: everything is a flag\n")
    config.chmod(0o644)
    return [
        "run",
        "--config",
        str(config),
        "--device-ip",
        "127.0.0.1",
        "--stream-port",
        str(port),
        "--event-port",
        str(port),
        "--wait",
        "0",
        "--camera",
        "none",
        "--snapshot-dir",
        str(base / "victim-snaps"),
        "--http",
        "off",
    ]


def quiet_port() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def test_fallback_dir_is_created_private_and_used(shared_tmp: Path) -> None:
    from bridge.app.config import fallback_control_socket

    env = victim_env(shared_tmp)
    expected = shared_tmp / f"borescope-bridge-{VICTIM_UID}" / "control.sock"
    quiet, port = quiet_port()
    argv = victim_run_argv(shared_tmp, port)
    with quiet:
        daemon = spawn_as(VICTIM_UID, lambda: bridge.cli.main.main(argv), shared_tmp / "d.log", env)
        try:
            wait_for(lambda: expected.exists(), what="the daemon's socket")
            st = os.lstat(expected.parent)
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == VICTIM_UID
            assert stat.S_IMODE(st.st_mode) == 0o700

            def victim_status() -> dict[str, Any]:
                rc, out = run_as(
                    VICTIM_UID,
                    ["status", "--json", "--socket", str(expected)],
                    shared_tmp / "c.log",
                    env,
                )
                assert rc == 0, out
                reply: dict[str, Any] = json.loads(out)
                return reply

            # The socket is served before the loop's first turn: "starting" until then.
            wait_for(lambda: victim_status()["state"] == "waiting for device", what="its state")
        finally:
            os.kill(daemon, 15)
            assert reap(daemon) == 0, (shared_tmp / "d.log").read_text()
    # What the victim's processes compute for themselves is that same path.
    got = shared_tmp / "computed"
    rc = reap(
        spawn_as(VICTIM_UID, lambda: print(fallback_control_socket()), got, env),
    )
    assert rc == 0 and got.read_text().strip() == str(expected)


IMPOSTOR_REPLY = b'{"ok": true, "path": "https://evil.example/x.jpg"}\n'


def impostor(directory: Path, marker: Path, name: str = "control.sock") -> int:
    """The attacker's fake daemon: answers every client with a URL to open."""
    if not directory.exists():
        directory.mkdir()
        directory.chmod(0o777)
    path = directory / name
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    path.chmod(0o777)
    s.listen(8)
    (directory / f"{name}.ready").touch()
    while True:
        conn, _ = s.accept()
        marker.touch()
        with conn:
            conn.sendall(IMPOSTOR_REPLY)


@pytest.mark.parametrize("how", ["owned-by-attacker", "symlink-to-attacker"])
def test_a_directory_planted_by_another_user_is_refused(shared_tmp: Path, how: str) -> None:
    env = victim_env(shared_tmp)
    planted = shared_tmp / f"borescope-bridge-{VICTIM_UID}"
    target = planted if how == "owned-by-attacker" else shared_tmp / "attacker-dir"
    marker = shared_tmp / "attacker-was-contacted"
    attacker = spawn_as(ATTACKER_UID, lambda: impostor(target, marker), shared_tmp / "a.log")
    try:
        wait_for(lambda: (target / "control.sock.ready").exists(), what="the impostor")
        if how == "symlink-to-attacker":
            # Planted by the attacker too (a symlink in a sticky directory belongs to them).
            reap(spawn_as(ATTACKER_UID, lambda: planted.symlink_to(target), shared_tmp / "l.log"))
            assert planted.is_symlink() and os.lstat(planted).st_uid == ATTACKER_UID
        before = sorted(os.listdir(target))

        # The daemon refuses to put its socket there.
        quiet, port = quiet_port()
        with quiet:
            rc, out = run_as(
                VICTIM_UID, victim_run_argv(shared_tmp, port), shared_tmp / "d.log", env
            )
        assert rc == 1, out
        assert str(planted) in out and "Traceback" not in out
        if how == "symlink-to-attacker":
            assert "symbolic link" in out
        else:
            assert "belongs to" in out and "uid 65534" in out
        assert "XDG_RUNTIME_DIR" in out  # what to do instead
        assert sorted(os.listdir(target)) == before  # nothing created or chmod-ed in there
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o777

        # The clients refuse to talk to what sits there, before connecting.
        for cmd in (["snapshot"], ["status"]):
            rc, out = run_as(
                VICTIM_UID,
                [*cmd, "--socket", str(planted / "control.sock")],
                shared_tmp / "c.log",
                env,
            )
            assert rc == 1, out
            assert "evil.example" not in out and str(planted) in out
        assert not marker.exists(), "a client connected to the impostor"
    finally:
        os.kill(attacker, 9)
        os.waitpid(attacker, 0)


def test_our_own_directory_with_an_open_mode_is_refused(shared_tmp: Path) -> None:
    env = victim_env(shared_tmp)
    planted = shared_tmp / f"borescope-bridge-{VICTIM_UID}"
    reap(spawn_as(VICTIM_UID, lambda: os.mkdir(planted, 0o755), shared_tmp / "m.log"))
    planted.chmod(0o755)
    quiet, port = quiet_port()
    with quiet:
        rc, out = run_as(VICTIM_UID, victim_run_argv(shared_tmp, port), shared_tmp / "d.log", env)
    assert rc == 1, out
    assert f"chmod 700 {planted}" in out
    assert os.listdir(planted) == []


def test_a_socket_planted_right_in_a_shared_directory_is_refused(shared_tmp: Path) -> None:
    marker = shared_tmp / "attacker-was-contacted"
    planted = shared_tmp / "borescope.sock"
    attacker = spawn_as(
        ATTACKER_UID, lambda: impostor(shared_tmp, marker, planted.name), shared_tmp / "a.log"
    )
    try:
        wait_for(lambda: (shared_tmp / "borescope.sock.ready").exists(), what="the impostor")
        rc, out = run_as(
            VICTIM_UID,
            ["snapshot", "--socket", str(planted)],
            shared_tmp / "c.log",
            victim_env(shared_tmp),
        )
        assert rc == 1 and "evil.example" not in out and "not to you" in out, out
        assert not marker.exists()
    finally:
        os.kill(attacker, 9)
        os.waitpid(attacker, 0)
