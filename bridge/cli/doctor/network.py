# SPDX-License-Identifier: GPL-3.0-or-later
"""Doctor's network checks: the borescope's USB link, its address and route, receive buffers.

The only network traffic is one SETCMD poll to the borescope, and only when an RTL8152
interface holds an address in the borescope's subnet: doctor never sends anything on an
ordinary network.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct

from bridge.cli.doctor.context import FAIL, OK, WARN, Context, Finding
from bridge.cli.doctor.context import read_text as _read

DRIVER = "r8152"
USB_ID = ("0bda", "8152")
# What the daemon asks for with SO_RCVBUF; the shipped sysctl file sets 16 MiB.
RMEM_WANTED_BYTES = 8 * 1024 * 1024
SYSCTL_FIX = (
    "sudo sysctl -w net.core.rmem_max=16777216 (permanently: the Debian package or "
    "sudo make install, which ship 60-borescope-bridge.conf in sysctl.d)"
)
SIOCGIFADDR = 0x8915


def ipv4_addresses(iface: str) -> list[str]:
    """The interface's primary IPv4 address via SIOCGIFADDR (no netlink, no root)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = struct.pack("256s", iface.encode()[:15])
            res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)
        except OSError:
            return []
    return [socket.inet_ntoa(res[20:24])]


def probe_device(device_ip: str, event_port: int, timeout_s: float) -> bool:
    """One SETCMD poll to the event port; True if a well-formed RETCMD comes back from it."""
    from bridge.core import protocol

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        try:
            s.sendto(protocol.encode_setcmd(0), (device_ip, event_port))
            while True:
                data, addr = s.recvfrom(2048)
                if addr == (device_ip, event_port) and not isinstance(
                    protocol.decode_retcmd(data), protocol.Reject
                ):
                    return True
        except OSError:
            return False


def check_interfaces(ctx: Context) -> list[Finding]:
    """RTL8152 interfaces (driver r8152), their USB ids and IPv4 addresses."""
    base = ctx.path("sys/class/net")
    found: dict[str, list[str]] = {}
    try:
        entries = sorted(base.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        driver = entry / "device" / "driver"
        try:
            name = os.path.basename(os.readlink(driver))
        except OSError:
            continue
        if name == DRIVER:
            found[entry.name] = []
    if not found:
        return [
            Finding(
                "interface",
                WARN,
                "no network interface driven by r8152: is the borescope plugged in?",
                "plug the borescope in, then check: lsusb -d 0bda:8152; sudo dmesg | grep r8152",
            )
        ]
    lookup = ctx.addresses or ipv4_addresses
    net = ipaddress.ip_network(f"{ctx.device_ip}/24", strict=False)
    findings = []
    for iface in found:
        usb = ctx.path(f"sys/class/net/{iface}/device/..")
        ids = (_read(usb / "idVendor"), _read(usb / "idProduct"))
        id_note = (
            "" if ids == USB_ID else f" (USB id {ids[0]}:{ids[1]}, not the borescope's 0bda:8152)"
        )
        addrs = lookup(iface)
        found[iface] = addrs
        in_net = [a for a in addrs if ipaddress.ip_address(a) in net]
        if in_net:
            ctx.borescope_ifaces[iface] = in_net
            findings.append(
                Finding("interface", OK, f"{iface}: r8152, {', '.join(in_net)}{id_note}")
            )
        elif addrs:
            findings.append(
                Finding(
                    "interface",
                    WARN,
                    f"{iface}: r8152 with {', '.join(addrs)}, not in {net}: an ordinary USB "
                    f"Ethernet adapter, or not the borescope's network{id_note}",
                )
            )
        else:
            findings.append(
                Finding(
                    "interface",
                    WARN,
                    f"{iface}: r8152 without an IPv4 address yet "
                    f"(the borescope's DHCP server gives one in {net}){id_note}",
                    f"nmcli device connect {iface} (NetworkManager) "
                    f"or sudo networkctl reconfigure {iface}",
                )
            )
    return findings


def check_reachability(ctx: Context) -> list[Finding]:
    """One poll to the device, only when an r8152 interface sits in its subnet."""
    if not ctx.borescope_ifaces or not ctx.probe:
        return []
    prober = ctx.prober or probe_device
    where = f"{ctx.device_ip}:{ctx.event_port}"
    if prober(ctx.device_ip, ctx.event_port, ctx.probe_timeout_s):
        return [Finding("device", OK, f"the borescope answers at {where}")]
    return [
        Finding(
            "device",
            WARN,
            f"no borescope answers at {where}: not a borescope, still booting, or another "
            "program is polling it",
            "wait a few seconds and run doctor again; replug the borescope",
        )
    ]


def _default_routes(ctx: Context) -> list[tuple[str, int]]:
    """(interface, metric) of each IPv4 default route, lowest metric first."""
    text = _read(ctx.path("proc/net/route"))
    routes = []
    for line in (text or "").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        iface, dest, _gw, flags, _ref, _use, metric, mask = cols[:8]
        try:
            up = int(flags, 16) & 0x1
        except ValueError:
            continue
        if dest == "00000000" and mask == "00000000" and up:
            routes.append((iface, int(metric)))
    return sorted(routes, key=lambda r: r[1])


def check_default_route(ctx: Context) -> list[Finding]:
    """The borescope link must not carry the default route (it has no internet behind it)."""
    routes = _default_routes(ctx)
    bad = [r for r in routes if r[0] in ctx.borescope_ifaces]
    if not bad:
        return [Finding("default route", OK, "the default route does not use the borescope link")]
    iface = bad[0][0]
    fix = (
        f'sudo nmcli connection modify "$(nmcli -g GENERAL.CONNECTION device show {iface})" '
        f"ipv4.never-default yes && sudo nmcli device reapply {iface}; with systemd-networkd: "
        "install 50-borescope-bridge.network (UseGateway=no) from "
        "/usr/share/doc/borescope-bridge/examples (package) or share/borescope-bridge"
    )
    status = FAIL if routes[0][0] == iface else WARN
    detail = (
        "carries your default route: internet traffic goes to the borescope"
        if status == FAIL
        else ("has a default route (a lower-metric one wins for now)")
    )
    return [Finding("default route", status, f"{iface} {detail}", fix)]


def check_rmem(ctx: Context) -> list[Finding]:
    """net.core.rmem_max high enough for a 1080p frame burst."""
    text = _read(ctx.path("proc/sys/net/core/rmem_max"))
    if text is None or not text.isdigit():
        return [Finding("rmem_max", WARN, "cannot read net.core.rmem_max", SYSCTL_FIX)]
    from bridge.device.sockets import describe_receive_buffer

    value = int(text)
    figure = f"receive buffer: {describe_receive_buffer(value, RMEM_WANTED_BYTES)}"
    if value >= RMEM_WANTED_BYTES:
        return [Finding("rmem_max", OK, f"{figure} (net.core.rmem_max = {value})")]
    return [
        Finding(
            "rmem_max",
            WARN,
            f"{figure}: net.core.rmem_max = {value} caps it, and large frames will be lost",
            SYSCTL_FIX,
        )
    ]
