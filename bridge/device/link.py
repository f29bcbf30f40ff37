# SPDX-License-Identifier: GPL-3.0-or-later
"""Which network interface leads to the borescope: the check a forged source address cannot pass.

Why this exists
---------------
A UDP source address proves nothing. The daemon's sockets are bound to 0.0.0.0, Linux accepts a
datagram for any local address on any interface (the weak host model), and the loose reverse-path
filter desktops set (``rp_filter=2``) lets through a packet whose source is reachable by *any*
route. So a host on the PC's Wi-Fi or office LAN can send "from 192.168.10.123:8030" and, with the
source check alone, put a picture on the camera. What it cannot fake is the interface its packet
arrives on: that is the one fact the kernel reports (``IP_PKTINFO``, the arrival ifindex of every
datagram) that the sender does not write.

:class:`DeviceLink` knows which interface that must be and re-resolves it when it changes:

* With ``--interface``: that interface, by name. Its index changes when a USB adapter is
  replugged, so the name is looked up again.
* Without: the interface the kernel routes ``device_ip`` through, asked from the kernel itself
  over rtnetlink (``RTM_GETROUTE``, what ``ip route get`` does; bridge.core.rtnetlink has the
  bytes). That answer is exact where the alternatives guess: ``/proc/net/route`` lists only the
  main table (not the local table that sends 127.0.0.1 via ``lo``, nor policy routing), and
  mapping a connected socket's source address back to an interface is ambiguous when two adapters
  hold the same 192.168.10.100 and wrong when the outgoing interface has no address of its own.
* A route through a gateway does not count: the borescope sits on a link of ours. Before its
  adapter appears the kernel would route 192.168.10.123 via the default gateway, i.e. the LAN, and
  accepting the LAN then is exactly the attack.

While no interface qualifies (no route yet, adapter unplugged) nothing claiming to be the device is
accepted.

The same answer decides whether anything may be *sent* to the device (:attr:`DeviceLink.direct`,
issue 18): started where no borescope is plugged in, the kernel would send the heartbeats and
polls via the LAN's gateway, to whichever host answers to 192.168.10.123 out there. Direct means
what accepting means, on-link and no gateway, and with ``--interface`` also that the kernel
would send out of that interface (asked with RTA_OIF when the sends leave by it, bound or with
IP_PKTINFO, as such a datagram's route is looked up). The session sends with MSG_DONTROUTE as
well, so the kernel itself refuses a gateway between two of these checks.

When the process is short of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM: a flood
on some other socket), the question cannot be asked, which says nothing about the route: the
last answer stands, with one warning a minute, so the video goes on instead of every datagram
being refused as arriving on the wrong interface.

One object per daemon instance, so a second instance on a second adapter is a second
object with its own ``--interface``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Protocol

from bridge.core.ratelimit import RateLimiter
from bridge.core.rtnetlink import Route, decode_route_reply, encode_route_request
from bridge.errors import BridgeError

log = logging.getLogger(__name__)

RESOLVE_EVERY_S = 1.0  # routine re-check: a route or an adapter can change under us
# Sooner on demand (a datagram on another interface), but not more often: under a flood of
# forgeries that is at most 100 route lookups a second, each one netlink round trip.
RESOLVE_GAP_S = 0.01
NETLINK_TIMEOUT_S = 1.0  # the kernel answers at once; this only bounds a broken netlink

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Python 3.11 does not export it
PKTINFO_CMSG_SPACE = socket.CMSG_SPACE(12)  # struct in_pktinfo: ifindex, spec_dst, addr
_I32 = struct.Struct("=i")  # struct in_pktinfo's ipi_ifindex
# A lookup failing with these says the process is short of resources, not where the route goes.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class NetlinkUnavailable(BridgeError):
    """The kernel cannot be asked at all (a sandbox without AF_NETLINK): say so, do not guess."""


class _NoResources(Exception):
    """A lookup could not be made for lack of descriptors or memory: keep the last answer."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror)
        self.error = error


def _check_resources(exc: OSError) -> None:
    if exc.errno in RESOURCE_ERRNOS:
        raise _NoResources(exc) from None


class RouteLookup(Protocol):
    """`route_to`'s shape, for tests to stand in a routing table."""

    def __call__(self, device_ip: str, oif: int | None = None, /) -> Route: ...


def route_to(device_ip: str, oif: int | None = None) -> Route:
    """Ask the kernel how it would send to ``device_ip`` (out of `oif` if given); OSError with
    its errno if it would not.

    Unprivileged, one request and one answer; the unit allows AF_NETLINK for this alone.
    """
    seq = int.from_bytes(os.urandom(4), "little")
    try:
        s = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPERM, errno.EACCES, errno.EPROTONOSUPPORT):
            raise NetlinkUnavailable(
                f"cannot ask the kernel which interface leads to {device_ip}: netlink sockets "
                f"are not allowed here ({exc.strerror}). Allow them (the unit's "
                "RestrictAddressFamilies= needs AF_NETLINK) or name the interface with --interface"
            ) from None
        raise
    with s:
        s.settimeout(NETLINK_TIMEOUT_S)
        s.sendto(encode_route_request(device_ip, seq, oif), (0, 0))
        for _ in range(8):  # answers to anything else (there is nothing else) are skipped
            answer = decode_route_reply(s.recv(65536), seq)
            if isinstance(answer, Route):
                return answer
            if isinstance(answer, int):
                raise OSError(answer, os.strerror(answer))
    raise OSError(errno.EPROTO, "no answer to the route request")


def arrival_ifindex(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The arrival interface from a recvmsg's IP_PKTINFO control message, None if absent."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 4:
            return int(_I32.unpack_from(data)[0])
    return None


def interface_name(ifindex: int | None) -> str:
    """A name for a log line; the index itself when the interface is gone already."""
    if ifindex is None:
        return "an unknown interface"
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return f"interface #{ifindex}"


# ---- the object the session asks -----------------------------------------------------------


class DeviceLink:
    """The interface that leads to the device; ``accepts(ifindex)`` is the arrival check,
    ``direct`` whether sending to the device is allowed."""

    def __init__(
        self,
        device_ip: str,
        interface: str | None = None,
        *,
        route: RouteLookup = route_to,
        name_to_index: Callable[[str], int] = socket.if_nametoindex,
        index_to_name: Callable[[int], str] = socket.if_indextoname,
    ) -> None:
        self.device_ip = device_ip
        self.interface = interface
        self.ifindex: int | None = None
        # The ifindex as IP_PKTINFO carries it (native int32, first in struct in_pktinfo), so the
        # receive loop compares bytes instead of unpacking every datagram's control message.
        self.pktinfo_prefix: bytes | None = None
        self.name: str | None = None
        self.reason = "not resolved yet"  # why ifindex is None, for the log
        self.unavailable: str | None = None  # set when the route cannot be asked for at all
        self.changes = 0
        # The kernel would send to the device directly (no gateway, the right interface).
        self.direct = False
        self.indirect_reason = "not resolved yet"  # why not direct, for the log
        # The session's sends leave by `interface` (SO_BINDTODEVICE, or IP_PKTINFO per datagram).
        self.bound = False
        self._route = route
        self._name_to_index = name_to_index
        self._index_to_name = index_to_name
        self._resolved_at: float | None = None
        self.resource_failures = 0  # lookups skipped for lack of descriptors or memory
        self._warn = RateLimiter(60.0)

    def resolve(self, now: float) -> bool:
        """Look the interface up again; True when the answer changed (then it is logged)."""
        self._resolved_at = now
        try:
            ifindex, name, reason = self._lookup()
            direct, indirect_reason = self._direct(ifindex, reason)
        except _NoResources as exc:
            self._keep_last_answer(exc.error, now)
            return False
        self.direct, self.indirect_reason = direct, indirect_reason
        if ifindex == self.ifindex:
            self.name = name if ifindex is not None else None
            self.reason = reason
            return False
        old = self.ifindex
        self.ifindex, self.name, self.reason = ifindex, name, reason
        self.pktinfo_prefix = None if ifindex is None else _I32.pack(ifindex)
        self.changes += 1
        if ifindex is None:
            log.info(
                "no interface leads to %s (%s): nothing claiming to be it is accepted",
                self.device_ip,
                reason,
            )
        elif old is None:
            log.info("accepting the borescope's datagrams only on %s", name)
        else:
            log.info("the borescope is now reached via %s (#%d)", name, ifindex)
        return True

    def _keep_last_answer(self, error: OSError, now: float) -> None:
        self.resource_failures += 1
        ok, suppressed = self._warn.allow("resources", now)
        if ok:
            log.warning(
                "cannot check which interface leads to %s (%s): keeping the last answer (%s) "
                "until it can (%d more since the last warning). The process is short of "
                "descriptors or memory; if this repeats, raise the service's LimitNOFILE=",
                self.device_ip,
                error.strerror,
                self.name or f"none: {self.reason}",
                suppressed,
            )

    def _lookup(self) -> tuple[int | None, str | None, str]:
        if self.interface:
            try:
                return self._name_to_index(self.interface), self.interface, ""
            except OSError as exc:
                _check_resources(exc)
                return None, None, f"no interface named {self.interface}"
        try:
            r = self._route(self.device_ip)
        except NetlinkUnavailable as exc:
            self.unavailable = str(exc)
            return None, None, "netlink sockets are not allowed"
        except OSError as exc:
            _check_resources(exc)
            return None, None, f"no route: {exc.strerror}"
        try:
            name = self._index_to_name(r.ifindex)
        except OSError:
            name = f"#{r.ifindex}"
        if r.gateway is not None:
            return None, None, f"routed via the gateway {r.gateway} on {name}, not a direct link"
        return r.ifindex, name, ""

    def _direct(self, ifindex: int | None, reason: str) -> tuple[bool, str]:
        """Whether the kernel sends to the device directly, and if not, why not.

        Without --interface the lookup has asked exactly that (a gateway route gives no
        ifindex). With it, the named interface existing is not enough: ask the route, out of it
        when the session's sends leave by it, else as an unbound socket's sends go.
        """
        if ifindex is None:
            return False, reason
        if not self.interface:
            return True, ""
        try:
            r = self._route(self.device_ip, ifindex) if self.bound else self._route(self.device_ip)
        except NetlinkUnavailable:
            # No way to ask: --interface works without netlink, as ever. MSG_DONTROUTE still
            # keeps every send on-link, and a bound socket on the named interface.
            return True, ""
        except OSError as exc:
            _check_resources(exc)
            return False, f"no route: {exc.strerror}"
        if r.gateway is not None:
            return False, f"routed via the gateway {r.gateway}, not a direct link"
        if r.ifindex != ifindex:
            try:
                other = self._index_to_name(r.ifindex)
            except OSError:
                other = f"#{r.ifindex}"
            return False, f"routed via {other}, not {self.interface}"
        return True, ""

    def maybe_resolve(self, now: float) -> None:
        """The routine re-check, every RESOLVE_EVERY_S (call it from a timer)."""
        if self._resolved_at is None or now - self._resolved_at >= RESOLVE_EVERY_S:
            self.resolve(now)

    def arrived_here(self, ancdata: list[tuple[int, int, bytes]], now: float) -> bool:
        """`accepts` for a recvmsg's control messages; the common case costs a bytes compare."""
        if ancdata:
            level, kind, data = ancdata[0]
            if (
                kind == IP_PKTINFO
                and level == socket.IPPROTO_IP
                and data[:4] == self.pktinfo_prefix
            ):
                return True
        return self.accepts(arrival_ifindex(ancdata), now)

    def accepts(self, ifindex: int | None, now: float) -> bool:
        """Whether a datagram that arrived on `ifindex` came over the device's link.

        A mismatch first re-resolves (at most every RESOLVE_GAP_S), because a replugged adapter's
        first answers arrive on its new index before the routine re-check has seen it.
        """
        if ifindex is not None and ifindex == self.ifindex:
            return True
        if self._resolved_at is None or now - self._resolved_at >= RESOLVE_GAP_S:
            self.resolve(now)
            return ifindex is not None and ifindex == self.ifindex
        return False
