# SPDX-License-Identifier: GPL-3.0-or-later
"""SocketFactory's --interface binding and the receive buffer request, with fake sockets."""

from __future__ import annotations

import errno
import socket
import sys
from typing import Any

import pytest

from bridge.device.sockets import (
    ReceiveBuffer,
    SocketFactory,
    send_on_interface,
    set_receive_buffer,
)
from bridge.errors import BridgeError


class Refuses:
    """A socket whose SO_BINDTODEVICE fails with `err` (EPERM: Linux before 5.7, no CAP_NET_RAW)."""

    def __init__(self, err: int = errno.EPERM) -> None:
        self.err = err

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        if option == socket.SO_BINDTODEVICE:
            raise OSError(self.err, "refused")


def test_bindtodevice_refused_falls_back_to_the_arrival_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    f = SocketFactory("127.0.0.1", "lo")
    with caplog.at_level("INFO", logger="bridge.device.sockets"):
        assert f.bind_to_device(Refuses(), "lo") is False  # type: ignore[arg-type]
        assert f.bind_to_device(Refuses(), "lo") is False  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1  # said once, not per socket
    assert "accepting only datagrams that arrive on lo" in lines[0]
    assert "AmbientCapabilities" not in lines[0]


def test_a_missing_interface_says_what_to_do() -> None:
    f = SocketFactory("127.0.0.1", "nosuchif0")
    with pytest.raises(BridgeError, match="ip link"):
        f.bind_to_device(Refuses(errno.ENODEV), "nosuchif0")  # type: ignore[arg-type]
    with pytest.raises(BridgeError, match="cannot bind to interface nosuchif0"):
        f.bind_to_device(Refuses(errno.EINVAL), "nosuchif0")  # type: ignore[arg-type]


class Buffer:
    """A socket whose kernel grants at most `limit` bytes (doubled, as Linux reports it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.granted = 0

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.granted = 2 * min(value, self.limit)

    def getsockopt(self, level: int, option: int) -> int:
        return self.granted


def test_receive_buffer_reports_a_cap(caplog: pytest.LogCaptureFixture) -> None:
    rb = ReceiveBuffer()
    with caplog.at_level("WARNING", logger="bridge.device.sockets"):
        set_receive_buffer(Buffer(1 << 30), 4 << 20, rb)  # type: ignore[arg-type]
        assert (rb.requested, rb.effective, rb.capped) == (4 << 20, 8 << 20, False)
        set_receive_buffer(Buffer(212992), 4 << 20, rb, quiet=True)  # type: ignore[arg-type]
        assert (rb.effective, rb.capped) == (2 * 212992, True)
        assert caplog.records == []  # quiet: a re-bind does not repeat the warning
        set_receive_buffer(Buffer(212992), 4 << 20, rb)  # type: ignore[arg-type]
    assert [r.getMessage().split(": large")[0] for r in caplog.records] == [
        "receive buffer: 208 KiB of the 4 MiB asked for (capped by net.core.rmem_max)"
    ]


def test_one_receive_buffer_figure_in_plain_words() -> None:
    from bridge.device.sockets import describe_receive_buffer, human_bytes

    assert describe_receive_buffer(8 << 20, 8 << 20) == "8 MiB, as asked"
    assert describe_receive_buffer(16 << 20, 8 << 20) == "8 MiB, as asked"
    assert describe_receive_buffer(212992, 8 << 20) == "208 KiB of the 8 MiB asked for"
    assert (human_bytes(1536), human_bytes(512), human_bytes(3 << 19)) == (
        "1.5 KiB",
        "512 bytes",
        "1.5 MiB",
    )


class Records:
    """A socket that remembers how each datagram was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def sendto(self, data: bytes, flags: int, addr: tuple[str, int]) -> None:
        self.sent.append(("sendto", (data, flags, addr)))

    def sendmsg(self, buffers: list[bytes], anc: list[Any], flags: int, addr: Any) -> None:
        self.sent.append(("sendmsg", (buffers, anc, flags, addr)))


def test_unbound_sends_name_the_interface_on_each_datagram() -> None:
    f = SocketFactory("192.168.10.123", "usb1")
    s = Records()
    f.send(s, b"hb", ("192.168.10.123", 8030), 7, socket.MSG_DONTROUTE)  # type: ignore[arg-type]
    ((how, (buffers, anc, flags, addr)),) = s.sent
    assert (how, buffers, flags, addr) == (
        "sendmsg",
        [b"hb"],
        socket.MSG_DONTROUTE,
        ("192.168.10.123", 8030),
    )
    # struct in_pktinfo: ipi_ifindex 7, ipi_spec_dst and ipi_addr left to the kernel.
    assert anc == [(socket.IPPROTO_IP, 8, (7).to_bytes(4, sys.byteorder) + bytes(8))]


def test_bound_or_routed_sends_are_plain() -> None:
    bound = SocketFactory("192.168.10.123", "usb1")
    bound.bound_to_device = True
    routed = SocketFactory("192.168.10.123", None)
    for f in (bound, routed):
        s = Records()
        f.send(s, b"hb", ("192.168.10.123", 8030), 7, 0)  # type: ignore[arg-type]
        assert s.sent == [("sendto", (b"hb", 0, ("192.168.10.123", 8030)))]
    assert bound.sends_pinned and not routed.sends_pinned


def test_a_datagram_sent_on_an_interface_arrives() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        send_on_interface(tx, b"ping", rx.getsockname(), socket.if_nametoindex("lo"))
        assert rx.recv(16) == b"ping"
        with pytest.raises(OSError) as exc:  # an index no interface has
            send_on_interface(tx, b"ping", rx.getsockname(), 2**31 - 1)
        assert exc.value.errno in (errno.ENODEV, errno.ENXIO)
