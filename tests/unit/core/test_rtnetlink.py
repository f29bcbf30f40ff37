# SPDX-License-Identifier: GPL-3.0-or-later
"""rtnetlink's route question and answer as bytes: a real kernel answer and arbitrary input."""

from __future__ import annotations

import errno
import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.rtnetlink import Route, decode_route_reply, encode_route_request

# The kernel's RTM_NEWROUTE for 192.168.10.123, routed via the gateway 192.0.2.1 on ifindex 4,
# answering sequence 7 (captured on Linux 6.18 from encode_route_request's request).
ROUTED_VIA_GATEWAY = bytes.fromhex(
    "70000000180000000700000052780000"  # nlmsghdr: 112 bytes, RTM_NEWROUTE, seq 7, port id
    "02200000fe0000010002000"  # rtmsg: AF_INET, /32, table 254 (main), unicast, RTM_F_CLONED
    "0"
    "08000f00fe000000"  # RTA_TABLE 254
    "08000100c0a80a7b"  # RTA_DST 192.168.10.123
    "0800040004000000"  # RTA_OIF 4
    "08000700c0000202"  # RTA_PREFSRC 192.0.2.2
    "08000500c0000201"  # RTA_GATEWAY 192.0.2.1
    "0800190000000000"  # RTA_UID 0
    "24000c0002000000d06601000000000000000000000000000000000000000000"  # RTA_CACHEINFO
    "00000000"
)


def test_request_is_an_rtm_getroute_for_one_host() -> None:
    req = encode_route_request("192.168.10.123", 7)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags, seq, pid) == (len(req), 26, 1, 7, 0)
    assert req[16:20] == bytes([socket.AF_INET, 32, 0, 0])
    assert req[28:] == bytes.fromhex("08000100") + socket.inet_aton("192.168.10.123")


def test_captured_kernel_answer_decodes() -> None:
    assert len(ROUTED_VIA_GATEWAY) == 112
    assert decode_route_reply(ROUTED_VIA_GATEWAY, 7) == Route(4, "192.0.2.1")
    assert decode_route_reply(ROUTED_VIA_GATEWAY, 8) is None  # someone else's answer


def test_kernel_error_is_an_errno() -> None:
    err = struct.pack("=IHHII", 36, 2, 0, 9, 0) + struct.pack("=i", -errno.ENETUNREACH)
    assert decode_route_reply(err + bytes(16), 9) == errno.ENETUNREACH


@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_any_bytes_decode_or_are_ignored(data: bytes, seq: int) -> None:
    assert decode_route_reply(data, seq) is None or isinstance(
        decode_route_reply(data, seq), Route | int
    )


@given(st.binary(max_size=120))
def test_truncated_captures_never_raise(tail: bytes) -> None:
    for cut in range(0, len(ROUTED_VIA_GATEWAY), 7):
        decode_route_reply(ROUTED_VIA_GATEWAY[:cut] + tail, 7)


def test_request_with_an_outgoing_interface_asks_as_a_bound_socket() -> None:
    req = encode_route_request("192.168.10.123", 7, oif=5)
    assert struct.unpack_from("=I", req)[0] == len(req)
    assert req[28:] == (
        bytes.fromhex("08000100") + socket.inet_aton("192.168.10.123")
        + bytes.fromhex("08000400") + struct.pack("=I", 5)
    )  # fmt: skip


def test_a_next_hop_of_another_family_is_a_gateway_too() -> None:
    """RTA_VIA instead of RTA_GATEWAY: an IPv4 route via an IPv6 next hop (RFC 5549)."""
    via = struct.pack("=HH", 4 + 2 + 16, 18) + struct.pack("=H", socket.AF_INET6)
    via += socket.inet_pton(socket.AF_INET6, "fe80::1")
    oif = struct.pack("=HHI", 8, 4, 3)
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 0, 0, 1, 0) + oif + via
    msg = struct.pack("=IHHII", 16 + len(body), 24, 0, 5, 0) + body
    assert decode_route_reply(msg, 5) == Route(3, "fe80::1")
