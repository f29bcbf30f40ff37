# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge doctor --capture SECONDS`: what the scope says, for a bug report.

For a scope that does not work, or one nobody has described yet, the most useful thing a user
can paste is what it sends. This listens for SECONDS: it sends the start packet to every video
port the model table knows (at the addresses the kernel routes directly, never through a
gateway), connects to TCP 7060, polls GetRemoteKey in both known lengths and asks for the
resolution list (reads only), and prints the header fields of what comes back and the control
replies in hex. It never prints picture data: of a video packet only its header is shown.

The summariser (:class:`Capture`) is pure and fed bytes; :func:`run_capture` does the I/O.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from bridge.core import framing_b, framing_c
from bridge.core.control import OP_GET_RESOLUTIONS, encode_key_poll, encode_request
from bridge.core.detect import framing_of
from bridge.core.models import Framing
from bridge.core.protocol import FRAGMENT_HEADER_LEN, HEARTBEAT, STOP
from bridge.device.link import DeviceLink
from bridge.device.probe import Plan

MAX_LINES_PER_SOURCE = 8  # header lines printed per source: enough to see the pattern
_A_FIELDS = struct.Struct("<BBBBIHHHH4s4s")  # magic..size, then bytes 16-19 and 20-23
HEARTBEAT_S = 0.5
POLL_S = 0.2


def describe(datagram: bytes) -> str:
    """One line of header fields for a video datagram; never its payload."""
    kind = framing_of(datagram, len(datagram))
    if kind == Framing.A and len(datagram) >= FRAGMENT_HEADER_LEN:
        _, flag, fmt, fid, total, w, h, index, size, b16, b20 = _A_FIELDS.unpack_from(datagram)
        return (
            f"A type={flag} format={fmt} frame={fid} total={total} bytes8-11={w}x{h} "
            f"index={index} size={size} bytes16-23={b16.hex()}{b20.hex()} len={len(datagram)}"
        )
    if kind == Framing.B and len(datagram) >= framing_b.HEADER_LEN:
        f = framing_b.HEADER.unpack_from(datagram)
        return (
            f"B seq={f[2]} orient={f[3]:#010x} len-field={f[4]} invert-flag={f[5]} "
            f"kind={f[7]} frame={f[8]} total={f[9]} chunk={f[10]} last={f[11]} size={f[12]} "
            f"frame-no={f[13]} {f[14]}x{f[15]} key={f[16]} len={len(datagram)}"
        )
    return f"? {len(datagram)} bytes starting {datagram[:8].hex()}"


def describe_tcp(stream: bytes) -> list[str]:
    """The C headers found in a TCP byte stream (the bytes between them are not shown)."""
    out = []
    pos = stream.find(framing_c.START)
    while pos >= 0 and pos + len(framing_c.START) + framing_c.HEADER_LEN <= len(stream):
        f = framing_c.HEADER.unpack_from(stream, pos + len(framing_c.START))
        out.append(
            f"C head={f[0].hex()} size={f[1]} fields={f[2]},{f[3]},{f[4]},{f[5]},{f[6]} "
            f"{f[7]}x{f[8]}"
        )
        pos = stream.find(framing_c.START, pos + 1)
    return out


@dataclass
class Capture:
    """What was seen, per source; pure (fed by run_capture or by tests)."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    replies: list[str] = field(default_factory=list)

    def video(self, source: str, datagram: bytes) -> None:
        self.counts[source] += 1
        lines = self.lines.setdefault(source, [])
        if len(lines) < MAX_LINES_PER_SOURCE:
            lines.append(describe(datagram))

    def tcp(self, source: str, stream: bytes) -> None:
        self.counts[source] += 1
        lines = self.lines.setdefault(source, [])
        for line in describe_tcp(stream):
            if len(lines) < MAX_LINES_PER_SOURCE:
                lines.append(line)

    def control(self, source: str, sent: bytes, reply: bytes) -> None:
        if len(self.replies) < 2 * MAX_LINES_PER_SOURCE:
            self.replies.append(f"{source}: {sent.hex()} -> {reply.hex()}")

    def report(self, seconds: float, tried: list[str]) -> str:
        out = [f"capture of {seconds:g} s; tried: {', '.join(tried) or 'nothing (no direct link)'}"]
        if not self.counts and not self.replies:
            out.append("nothing answered")
        for source, lines in self.lines.items():
            out.append(f"video from {source}: {self.counts[source]} packets/reads; first headers:")
            out.extend(f"  {line}" for line in lines)
        if self.replies:
            out.append("control replies (request -> reply):")
            out.extend(f"  {line}" for line in self.replies)
        return "\n".join(out) + "\n"


def run_capture(plan: Plan, interface: str | None, seconds: float) -> str:
    """Listen for ``seconds`` at every directly routed address of the plan; the report."""
    cap = Capture()
    tried: list[str] = []
    now = time.monotonic()
    addresses = []
    for address in plan.addresses:
        link = DeviceLink(address, interface)
        link.resolve(now)
        if link.direct:
            addresses.append(address)
    sel = selectors.DefaultSelector()
    video = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcps: list[socket.socket] = []
    targets = [(a, p) for a in addresses for p in plan.udp_ports.get(a, ())]
    sent: dict[tuple[str, int, int], bytes] = {}
    try:
        for s in (video, control):
            s.bind(("0.0.0.0", 0))
            s.setblocking(False)
        sel.register(video, selectors.EVENT_READ, "video")
        sel.register(control, selectors.EVENT_READ, "control")
        tried += [f"UDP {a}:{p}" for a, p in targets]
        if plan.tcp_port is not None:
            for a in addresses:
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                t.setsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE, 1)
                t.setblocking(False)
                t.connect_ex((a, plan.tcp_port))
                sel.register(t, selectors.EVENT_READ, f"TCP {a}:{plan.tcp_port}")
                tcps.append(t)
                tried.append(f"TCP {a}:{plan.tcp_port}")
        end = now + seconds
        next_hb = next_poll = now
        seq = 1
        while (now := time.monotonic()) < end:
            if now >= next_hb:
                for target in targets:
                    with contextlib.suppress(OSError):
                        video.sendto(HEARTBEAT, socket.MSG_DONTROUTE, target)
                next_hb = now + HEARTBEAT_S
            if now >= next_poll:
                for a in addresses:
                    requests = [encode_key_poll(seq, 4), encode_key_poll(seq + 1, 1)]
                    if seq == 1:
                        requests.append(encode_request(seq + 2, OP_GET_RESOLUTIONS))
                    for i, request in enumerate(requests):
                        sent[(a, plan.event_port, (seq + i) & 0xFFFF)] = request
                        with contextlib.suppress(OSError):
                            control.sendto(request, socket.MSG_DONTROUTE, (a, plan.event_port))
                seq += 3
                next_poll = now + POLL_S
            for key, _ in sel.select(min(0.1, max(0.0, end - now))):
                _receive(key, cap, sent, sel)
    finally:
        for target in targets:
            with contextlib.suppress(OSError):
                video.sendto(STOP, socket.MSG_DONTROUTE, target)
        sel.close()
        for s in (video, control, *tcps):
            s.close()
    return cap.report(seconds, tried)


def _receive(
    key: selectors.SelectorKey,
    cap: Capture,
    sent: dict[tuple[str, int, int], bytes],
    sel: selectors.BaseSelector,
) -> None:
    s = key.fileobj
    assert isinstance(s, socket.socket)
    try:
        if key.data == "video":
            data, addr = s.recvfrom(65536)
            cap.video(f"{addr[0]}:{addr[1]}", data)
        elif key.data == "control":
            data, addr = s.recvfrom(2048)
            seq = struct.unpack_from("<I", data, 6)[0] & 0xFFFF if len(data) >= 10 else -1
            cap.control(f"{addr[0]}:{addr[1]}", sent.get((addr[0], addr[1], seq), b""), data)
        else:
            data = s.recv(65536)
            if not data:
                sel.unregister(s)
                return
            cap.tcp(key.data, data)
    except OSError:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(s)
