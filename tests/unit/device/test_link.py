# SPDX-License-Identifier: GPL-3.0-or-later
"""DeviceLink: the route question to the running kernel, and which interface the session trusts.

The decisions (gateway, replug, no route yet) with the lookups injected, because a test cannot
make this machine's routing table say each of them; the wire format itself is
tests/unit/core/test_rtnetlink.py's.
"""

from __future__ import annotations

import errno
import socket

import pytest

from bridge.core.rtnetlink import Route
from bridge.device.link import (
    RESOLVE_EVERY_S,
    RESOLVE_GAP_S,
    DeviceLink,
    NetlinkUnavailable,
    arrival_ifindex,
    route_to,
)


def test_the_running_kernel_routes_loopback_via_lo() -> None:
    """The local table (which /proc/net/route does not show) sends 127.0.0.1 over lo."""
    assert route_to("127.0.0.1") == Route(socket.if_nametoindex("lo"), None)


def loopback_ancillary() -> list[tuple[int, int, bytes]]:
    """The control messages of one real datagram over lo, received with IP_PKTINFO on."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO
        rx.bind(("127.0.0.1", 0))
        tx.sendto(b"x", rx.getsockname())
        _, anc, _, _ = rx.recvmsg(16, socket.CMSG_SPACE(12))
    return anc


def test_pktinfo_gives_the_arrival_interface() -> None:
    anc = loopback_ancillary()
    assert arrival_ifindex(anc) == socket.if_nametoindex("lo")
    assert arrival_ifindex([]) is None


class Routes:
    """A routing table a test can change: device_ip -> Route, or an errno."""

    def __init__(self, answer: Route | int) -> None:
        self.answer = answer
        self.asked = 0
        self.oifs: list[int | None] = []

    def __call__(self, ip: str, oif: int | None = None) -> Route:
        self.asked += 1
        self.oifs.append(oif)
        if isinstance(self.answer, int):
            raise OSError(self.answer, "no route")
        return self.answer


def names(index: int) -> str:
    return f"if{index}"


def test_the_routed_interface_is_trusted_and_a_replug_is_followed() -> None:
    table = Routes(Route(5, None))
    link = DeviceLink("192.168.10.123", route=table, index_to_name=names)
    assert link.resolve(0.0)
    assert (link.ifindex, link.name) == (5, "if5")
    assert link.accepts(5, RESOLVE_GAP_S / 4) and not link.accepts(3, RESOLVE_GAP_S / 4)
    table.answer = Route(9, None)  # unplugged and back: a new index
    assert not link.accepts(9, RESOLVE_GAP_S / 2)  # within RESOLVE_GAP_S of the lookup: refused
    assert link.accepts(9, RESOLVE_GAP_S)  # the mismatch re-resolves, the new index is trusted
    assert not link.accepts(5, 2 * RESOLVE_GAP_S)
    assert link.changes == 2


def test_a_mismatch_re_resolves_at_most_every_gap() -> None:
    table = Routes(Route(5, None))
    link = DeviceLink("192.168.10.123", route=table, index_to_name=names)
    link.resolve(0.0)
    for i in range(100):  # a flood on another interface
        assert not link.accepts(3, 1.0 + i * RESOLVE_GAP_S / 10)
    assert table.asked <= 1 + 100 // 10 + 1
    link.maybe_resolve(1.0 + 11 * RESOLVE_GAP_S)
    before = table.asked
    link.maybe_resolve(1.0 + 11 * RESOLVE_GAP_S + RESOLVE_EVERY_S / 2)
    assert table.asked == before  # the routine check waits its interval


def test_a_route_via_a_gateway_is_no_link_to_the_device() -> None:
    """Before the adapter appears the device's address goes to the default gateway: the LAN."""
    link = DeviceLink("192.168.10.123", route=Routes(Route(4, "192.0.2.1")), index_to_name=names)
    link.resolve(0.0)
    assert link.ifindex is None
    assert "gateway 192.0.2.1 on if4" in link.reason
    assert not link.accepts(4, 1.0)


def test_no_route_yet_accepts_nothing_until_there_is_one() -> None:
    table = Routes(errno.ENETUNREACH)
    link = DeviceLink("192.168.10.123", route=table, index_to_name=names)
    link.resolve(0.0)
    assert link.ifindex is None and "no route" in link.reason
    assert not link.accepts(None, 1.0) and not link.accepts(7, 2.0)
    table.answer = Route(7, None)  # DHCP done
    link.maybe_resolve(2.0 + RESOLVE_EVERY_S)
    assert link.accepts(7, 3.5)


def test_a_named_interface_is_looked_up_by_name_every_time() -> None:
    index = {"enx1": 4}

    def lookup(name: str) -> int:
        if name not in index:
            raise OSError(errno.ENODEV, "No such device")
        return index[name]

    link = DeviceLink("192.168.10.123", "enx1", route=Routes(errno.EPERM), name_to_index=lookup)
    link.resolve(0.0)
    assert (link.ifindex, link.name) == (4, "enx1")
    del index["enx1"]
    link.resolve(1.0)
    assert link.ifindex is None and "no interface named enx1" in link.reason
    index["enx1"] = 11
    assert link.accepts(11, 2.0)


def test_no_netlink_is_reported_not_guessed() -> None:
    def sandboxed(ip: str, oif: int | None = None) -> Route:
        raise NetlinkUnavailable(
            "cannot ask the kernel ... RestrictAddressFamilies= needs AF_NETLINK"
        )

    link = DeviceLink("192.168.10.123", route=sandboxed)
    link.resolve(0.0)
    assert link.ifindex is None
    assert link.unavailable is not None and "AF_NETLINK" in link.unavailable


def test_link_without_injection_uses_the_kernel() -> None:
    link = DeviceLink("127.0.0.1")
    link.resolve(0.0)
    assert link.name == "lo"


def test_arrived_here_reads_the_control_message() -> None:
    anc = loopback_ancillary()
    lo = socket.if_nametoindex("lo")
    here = DeviceLink("127.0.0.1", route=Routes(Route(lo, None)))
    here.resolve(0.0)
    assert here.arrived_here(anc, 0.0)
    elsewhere = DeviceLink("127.0.0.1", route=Routes(Route(lo + 1000, None)))
    elsewhere.resolve(0.0)
    assert not elsewhere.arrived_here(anc, 1.0)
    assert not here.arrived_here([], 1.0)  # no control message: no proof, refused


def test_only_a_direct_route_lets_anything_be_sent() -> None:
    """Issue 18: the device's address via the LAN's gateway is a stranger's host."""
    table = Routes(Route(4, "192.0.2.1"))
    link = DeviceLink("192.168.10.123", route=table, index_to_name=names)
    link.resolve(0.0)
    assert not link.direct and "gateway 192.0.2.1" in link.indirect_reason
    table.answer = errno.ENETUNREACH
    link.resolve(1.0)
    assert not link.direct and "no route" in link.indirect_reason
    table.answer = Route(7, None)  # the borescope's adapter appeared
    link.resolve(2.0)
    assert link.direct and link.indirect_reason == ""


def test_loopback_is_direct() -> None:
    link = DeviceLink("127.0.0.1")
    link.resolve(0.0)
    assert link.direct


def test_a_named_interface_must_also_be_where_the_route_goes() -> None:
    table = Routes(Route(4, None))
    link = DeviceLink(
        "192.168.10.123", "enx1", route=table, name_to_index={"enx1": 4}.__getitem__,
        index_to_name=names,
    )  # fmt: skip
    link.resolve(0.0)
    assert link.direct and table.oifs == [None]  # unbound sockets go where the table says
    table.answer = Route(2, None)  # the table prefers another adapter in the same subnet
    link.resolve(1.0)
    assert not link.direct and link.indirect_reason == "routed via if2, not enx1"
    assert link.ifindex == 4  # accepting is by name, as ever
    table.answer = Route(4, "192.0.2.1")
    link.resolve(2.0)
    assert not link.direct and "gateway 192.0.2.1" in link.indirect_reason


def test_bound_sockets_are_asked_for_out_of_the_named_interface() -> None:
    table = Routes(Route(4, None))
    link = DeviceLink("192.168.10.123", "enx1", route=table, name_to_index=lambda n: 4)
    link.bound = True
    link.resolve(0.0)
    assert link.direct and table.oifs == [4]


def test_a_named_interface_without_netlink_still_sends() -> None:
    """--interface is the advice when netlink is not allowed; MSG_DONTROUTE still holds."""

    def sandboxed(ip: str, oif: int | None = None) -> Route:
        raise NetlinkUnavailable("netlink sockets are not allowed")

    link = DeviceLink("192.168.10.123", "enx1", route=sandboxed, name_to_index=lambda n: 4)
    link.resolve(0.0)
    assert link.direct and link.unavailable is None


def test_out_of_descriptors_keeps_the_last_answer(caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE or ENFILE on the route check says nothing about the route: the video goes on."""
    table = Routes(Route(5, None))
    link = DeviceLink("192.168.10.123", route=table, index_to_name=names)
    link.resolve(0.0)
    for i, err in enumerate([errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM] * 5):
        table.answer = err
        with caplog.at_level("WARNING"):
            assert not link.resolve(1.0 + i)
        assert (link.ifindex, link.name, link.direct) == (5, "if5", True)
        assert link.accepts(5, 1.5 + i) and not link.accepts(3, 1.5 + i)
    assert link.resource_failures >= 20
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings  # one a minute, not one a second
    assert "keeping the last answer (if5)" in warnings[0] and "LimitNOFILE=" in warnings[0]
    table.answer = errno.ENETUNREACH  # a real answer again: no route, nothing accepted
    link.maybe_resolve(100.0)
    assert link.ifindex is None and not link.direct


def test_out_of_descriptors_keeps_a_named_interface_and_its_route() -> None:
    index = {"enx1": 4}
    failing = {"name": False}

    def lookup(name: str) -> int:
        if failing["name"]:
            raise OSError(errno.EMFILE, "Too many open files")
        return index[name]

    table = Routes(Route(4, None))
    link = DeviceLink("192.168.10.123", "enx1", route=table, name_to_index=lookup)
    link.resolve(0.0)
    assert link.direct
    failing["name"] = True
    link.resolve(1.0)
    failing["name"] = False
    table.answer = errno.ENFILE
    link.resolve(2.0)
    assert (link.ifindex, link.direct) == (4, True)
    assert link.resource_failures == 2
