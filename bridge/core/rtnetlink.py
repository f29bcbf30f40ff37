# SPDX-License-Identifier: GPL-3.0-or-later
"""The one rtnetlink exchange the daemon needs, as bytes: RTM_GETROUTE for a host, and the answer.

What ``ip route get DEVICE_IP`` asks the kernel. Pure, so the wire format is tested against a
captured kernel answer and arbitrary bytes without a netlink socket; bridge.device.link sends
the request and reads the reply.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

# <linux/socket.h>, <linux/netlink.h>, <linux/rtnetlink.h>: stable kernel ABI values.
AF_INET = 2
NLMSG_ERROR = 2
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
NLM_F_REQUEST = 1
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_VIA = 18  # a gateway of another family (an IPv4 route via an IPv6 next hop)
AF_INET6 = 10

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
# family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")  # length, type
_I32 = struct.Struct("=i")
_U32 = struct.Struct("=I")


@dataclass(frozen=True, slots=True)
class Route:
    """The kernel's answer for one destination: outgoing interface and gateway (None: on-link)."""

    ifindex: int
    gateway: str | None


def encode_route_request(device_ip: str, seq: int, oif: int | None = None) -> bytes:
    """An RTM_GETROUTE request for one IPv4 destination (``ip route get DEVICE_IP``).

    With `oif`, the route a socket bound to that interface would take (``... oif DEV``).
    """
    attr = _RTATTR.pack(_RTATTR.size + 4, RTA_DST) + ipaddress.IPv4Address(device_ip).packed
    if oif is not None:
        attr += _RTATTR.pack(_RTATTR.size + 4, RTA_OIF) + _U32.pack(oif)
    body = _RTMSG.pack(AF_INET, 32, 0, 0, 0, 0, 0, 0, 0) + attr
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST, seq, 0) + body


def decode_route_reply(data: bytes, seq: int) -> Route | int | None:
    """The route in a reply, a positive errno the kernel answered, or None if not our answer."""
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, kind, _flags, got_seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            return None
        end = off + length
        body = off + _NLMSGHDR.size
        if got_seq == seq:
            if kind == NLMSG_ERROR and body + _I32.size <= end:
                (err,) = _I32.unpack_from(data, body)
                return -err if err < 0 else None
            if kind == RTM_NEWROUTE and body + _RTMSG.size <= end:
                return _route_attrs(data, body + _RTMSG.size, end)
        off += (length + 3) & ~3
    return None


def _route_attrs(data: bytes, off: int, end: int) -> Route | None:
    ifindex: int | None = None
    gateway: str | None = None
    while off + _RTATTR.size <= end:
        alen, atype = _RTATTR.unpack_from(data, off)
        if alen < _RTATTR.size or off + alen > end:
            break
        value = data[off + _RTATTR.size : off + alen]
        if atype == RTA_OIF and len(value) == 4:
            (ifindex,) = _U32.unpack(value)
        elif atype == RTA_GATEWAY and len(value) == 4:
            gateway = str(ipaddress.IPv4Address(value))
        elif atype == RTA_VIA and len(value) >= 2:
            gateway = _via(value)
        off += (alen + 3) & ~3
    return None if ifindex is None else Route(ifindex, gateway)


def _via(value: bytes) -> str:
    """RTA_VIA's struct rtvia (family, address) as text; any next hop is a gateway all the same."""
    family = int.from_bytes(value[:2], "little")
    addr = value[2:]
    if family == AF_INET6 and len(addr) == 16:
        return str(ipaddress.IPv6Address(addr))
    if family == AF_INET and len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    return f"a gateway of address family {family}"
