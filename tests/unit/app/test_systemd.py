# SPDX-License-Identifier: GPL-3.0-or-later
"""Our own sd_notify: real datagrams on a real socket, with and without systemd-python."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.app.systemd import Notifier, _sd_notify


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_ready_reaches_a_path_socket(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    Notifier({"NOTIFY_SOCKET": path}).ready("waiting for device")
    assert sock.recv(4096) == b"READY=1\nSTATUS=waiting for device"


def test_abstract_namespace_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"borescope-test-{os.getpid()}"
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
        notifier.reloading()
        msg = sock.recv(4096).decode()
    assert msg.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert int(msg.rsplit("=", 1)[1]) > 0


def test_watchdog_pings_at_half_the_timeout(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert notifier.watchdog_interval_s == 2.0
    notifier.watchdog(100.0)
    notifier.watchdog(101.0)  # too soon: nothing sent
    notifier.watchdog(102.0)
    sock.settimeout(0.5)
    assert [sock.recv(64), sock.recv(64)] == [b"WATCHDOG=1", b"WATCHDOG=1"]
    with pytest.raises(TimeoutError):
        sock.recv(64)


def test_nothing_is_sent_without_a_socket(tmp_path: Path) -> None:
    assert not _sd_notify("READY=1", {})
    assert not _sd_notify("READY=1", {"NOTIFY_SOCKET": "relative/path"})
    assert not _sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert not Notifier({}).enabled


def test_ready_without_systemd_python(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    code = (
        "import sys; sys.modules['systemd'] = None\n"
        "from bridge.app.systemd import Notifier\n"
        "Notifier().ready('up')\n"
        "assert 'systemd.daemon' not in sys.modules\n"
    )
    env = dict(os.environ, NOTIFY_SOCKET=path)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"
