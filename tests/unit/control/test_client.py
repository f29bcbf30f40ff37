# SPDX-License-Identifier: GPL-3.0-or-later
"""The control client: clear errors when no daemon runs, which socket it picks, a full accept
queue waited for in the kernel, and a reply it reads only so much of."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.control.client import find_socket, request
from bridge.control.server import ControlServer
from bridge.errors import ControlError


def echo_handler(msg: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "echo": msg}


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


def test_a_leftover_socket_nobody_listens_on_is_passed_over(tmp_path: Path) -> None:
    """A daemon killed with SIGKILL leaves its socket file: it must not make the live one
    ambiguous; alone, it is still the one named (connecting says nothing listens)."""
    live = str(tmp_path / "live.sock")
    dead = str(tmp_path / "dead.sock")
    with socket.socket(socket.AF_UNIX) as leftover:
        leftover.bind(dead)  # bound, never listening
        server = ControlServer(live, echo_handler)
        server.start()
        try:
            assert find_socket(None, [dead, live]) == live
        finally:
            server.stop()
        assert find_socket(None, [dead]) == dead
        with pytest.raises(ControlError, match=r"nothing listens on .*: start the demo"):
            request(dead, {"cmd": "status"}, timeout=2, hint="start the demo")


def test_the_hint_ends_the_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match=r"looked at .*nope.sock\): do this"):
        find_socket(None, [str(tmp_path / "nope.sock")], hint="do this")
