# SPDX-License-Identifier: GPL-3.0-or-later
"""How the session's UDP sockets are made and send: arrival interface reported, sends leaving by
--interface, and a receive buffer large enough for a frame's burst.

Every datagram carries the index of the interface it arrived on (IP_PKTINFO), which the
session checks against bridge.device.link.DeviceLink. That is the receive half of keeping two
borescopes apart when both are 192.168.10.123 behind two adapters that both hold
192.168.10.100/24; the send half is choosing the adapter. SO_BINDTODEVICE does that where it is
permitted (Linux 5.7 for a process without CAP_NET_RAW, and only once per socket); where it is
not, every send names the interface itself: IP_PKTINFO's ``ipi_ifindex`` on sendmsg() is the
outgoing interface of that one datagram, which needs no privilege on any kernel.

A frame arrives as a burst of datagrams faster than one thread can always drain them; what the
buffer cannot hold is lost, and a lost fragment costs the whole frame. Unprivileged processes are
capped by net.core.rmem_max, which is why the granted size is reported (status, doctor) and not
assumed.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from dataclasses import dataclass

from bridge.device.link import IP_PKTINFO
from bridge.errors import BridgeError

log = logging.getLogger(__name__)

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux value; Python does not export it
# struct in_pktinfo as sendmsg() takes it: ipi_ifindex, then ipi_spec_dst and ipi_addr (zero: the
# kernel picks the source address of the chosen interface).
_IN_PKTINFO = struct.Struct("=i4s4s")


def send_on_interface(
    s: socket.socket, data: bytes, addr: tuple[str, int], ifindex: int, flags: int = 0
) -> None:
    """Send one datagram out of interface `ifindex`, whatever the routing table prefers.

    Unprivileged, per datagram: the kernel looks the route up as if the socket were bound to
    that interface. OSError as sendto() raises it (ENODEV/ENXIO once the interface is gone).
    """
    pktinfo = _IN_PKTINFO.pack(ifindex, bytes(4), bytes(4))
    s.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], flags, addr)


@dataclass
class ReceiveBuffer:
    """What SO_RCVBUF the kernel granted; `capped` when net.core.rmem_max cut the request."""

    requested: int = 0
    effective: int = 0
    capped: bool = False
    rmem_max: int | None = None


def human_bytes(n: int) -> str:
    """A byte count as people read it: 8 MiB, 208 KiB, 512 bytes."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return (
                f"{value:.0f} {unit}"
                if value >= 10 or value == int(value)
                else f"{value:.1f} {unit}"
            )
    return f"{n} bytes"


def describe_receive_buffer(usable: int, asked: int) -> str:
    """The one receive-buffer figure that run, status and doctor all give: what the socket may
    hold, against what the daemon asks for. (SO_RCVBUF reads back double the usable size: the
    kernel counts its bookkeeping too; that doubled number is for no one.)"""
    if usable >= asked:
        return f"{human_bytes(asked)}, as asked"
    return f"{human_bytes(usable)} of the {human_bytes(asked)} asked for"


def read_rmem_max() -> int | None:
    try:
        with open("/proc/sys/net/core/rmem_max") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def set_receive_buffer(s: socket.socket, want: int, rb: ReceiveBuffer, quiet: bool = False) -> None:
    """Ask for `want` bytes on `s` and record the outcome in `rb`; warn when capped unless quiet."""
    rb.requested = want
    rb.rmem_max = read_rmem_max()
    try:
        # Privileged processes may exceed net.core.rmem_max; everyone else is capped by it.
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, want)
    except OSError:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
        except OSError as exc:
            log.warning("cannot set the receive buffer to %d bytes: %s", want, exc.strerror)
    rb.effective = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # The kernel doubles the value it grants (bookkeeping overhead).
    rb.capped = rb.effective < 2 * want
    if rb.capped and not quiet:
        log.warning(
            "receive buffer: %s (capped by net.core.rmem_max): large frames may be lost; "
            "raise it with `sudo sysctl -w net.core.rmem_max=%d` (the package and make install "
            "ship a sysctl.d file for this)",
            describe_receive_buffer(rb.effective // 2, want),
            want,
        )


class SocketFactory:
    """Makes the session's UDP sockets, bound to `interface` (--interface) when one is given and
    the kernel permits it; `send` makes their datagrams leave by that interface either way."""

    def __init__(self, device_ip: str, interface: str | None) -> None:
        self.device_ip = device_ip
        self.interface = interface
        self.bound_to_device = False  # SO_BINDTODEVICE took effect (else: arrival check only)
        self._refused_logged = False

    def udp_socket(self) -> socket.socket:
        """A non-blocking socket on an ephemeral port; BridgeError when --interface is wrong."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            # Every datagram then carries the index of the interface it arrived on.
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            if self.interface:
                self.bound_to_device = self.bind_to_device(s, self.interface)
            s.bind(("0.0.0.0", 0))
        except BaseException:
            s.close()
            raise
        s.setblocking(False)
        return s

    @property
    def sends_pinned(self) -> bool:
        """Every send leaves by `interface` (bound, or IP_PKTINFO on each datagram)."""
        return self.interface is not None

    def send(
        self, s: socket.socket, data: bytes, addr: tuple[str, int], ifindex: int | None, flags: int
    ) -> None:
        """sendto(), out of `ifindex` (the interface's current index) when the socket is not
        bound to it; OSError as sendto() raises it."""
        if self.interface and not self.bound_to_device and ifindex is not None:
            send_on_interface(s, data, addr, ifindex, flags)
        else:
            s.sendto(data, flags, addr)

    def bind_to_device(self, s: socket.socket, interface: str) -> bool:
        """SO_BINDTODEVICE, so sends leave by `interface` even when two adapters share a subnet.

        Unprivileged SO_BINDTODEVICE works since Linux 5.7; older kernels need CAP_NET_RAW, which
        the unit does not grant (its CapabilityBoundingSet= is empty). It is not what keeps
        forged datagrams out (the arrival check is), and `send` names the outgoing interface on
        each datagram without it (IP_PKTINFO). False in that case.
        """
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise BridgeError(
                    f"no network interface named {interface!r} (see `ip link`; --interface)"
                ) from None
            if exc.errno in (errno.EPERM, errno.EACCES):
                if not self._refused_logged:
                    self._refused_logged = True
                    log.info(
                        "binding to %s is not permitted here (SO_BINDTODEVICE needs Linux 5.7 or "
                        "CAP_NET_RAW): accepting only datagrams that arrive on %s, and naming "
                        "%s on every datagram sent to %s (IP_PKTINFO)",
                        interface,
                        interface,
                        interface,
                        self.device_ip,
                    )
                return False
            raise BridgeError(f"cannot bind to interface {interface}: {exc.strerror}") from None
        return True
