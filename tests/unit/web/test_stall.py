# SPDX-License-Identifier: GPL-3.0-or-later
"""The stall rule with a stepped clock, and the kernel's numbers on a real TCP connection."""

from __future__ import annotations

import socket
from typing import Any

from bridge.web.stall import StallDetector, socket_progress


def test_stalled_only_after_stall_s_of_pending_data_with_nothing_taken() -> None:
    d = StallDetector(5.0)
    assert d.observe(0.0, pending=0, taken=100) is False
    assert d.observe(100.0, pending=0, taken=100) is False  # idle for long: nothing waits
    assert d.observe(101.0, pending=500, taken=100) is False  # data begins to wait
    assert d.observe(105.9, pending=500, taken=100) is False
    assert d.observe(106.0, pending=500, taken=100) is True


def test_any_byte_taken_restarts_the_count() -> None:
    d = StallDetector(5.0)
    d.observe(0.0, pending=1000, taken=0)
    assert d.observe(4.0, pending=2000, taken=10) is False  # a slow reader, still reading
    assert d.observe(8.9, pending=2000, taken=10) is False
    assert d.observe(9.0, pending=2000, taken=10) is True


def test_nothing_pending_resets() -> None:
    d = StallDetector(5.0)
    d.observe(0.0, pending=10, taken=0)
    assert d.observe(4.0, pending=0, taken=10) is False
    assert d.observe(6.0, pending=10, taken=10) is False  # waiting again since 6.0
    assert d.observe(10.9, pending=10, taken=10) is False
    assert d.observe(11.0, pending=10, taken=10) is True


class Transport:
    """The parts of an asyncio transport that socket_progress reads."""

    def __init__(self, sock: socket.socket, buffered: int = 0) -> None:
        self.sock, self.buffered = sock, buffered

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.buffered


def test_a_peer_that_never_reads_shows_pending_bytes_and_no_progress() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn, _ = server.accept()
        with peer, conn:
            conn.setblocking(False)
            t = Transport(conn, buffered=7)
            progress = socket_progress(t)
            assert progress == (7, 0)
            sent = 0
            try:
                while True:
                    sent += conn.send(b"x" * 65536)
            except BlockingIOError:
                pass  # the peer's window and our send buffer are full
            progress = socket_progress(t)
            assert progress is not None
            pending, taken = progress
            assert pending > 7 and taken < sent
            assert socket_progress(t) == (pending, taken)  # nothing moves while nobody reads


def test_no_tcp_no_verdict() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert socket_progress(Transport(a)) is None
