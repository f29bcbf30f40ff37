# SPDX-License-Identifier: GPL-3.0-or-later
"""Control socket: one JSON line each way, mode 0660, clear errors when no daemon runs."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.control import ControlServer, find_socket, request
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
