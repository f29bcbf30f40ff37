# SPDX-License-Identifier: GPL-3.0-or-later
"""Which stream and event clients take nothing while data waits for them.

A viewer that stops reading keeps its slot while our bytes sit in socket buffers: waiting for a
write to block would take megabytes of buffers to fill first (or forever, for a listener that
only gets small events). So each long-lived response is watched from outside its handler:

- *pending*: the bytes that left our handler but not the machine towards the client's kernel:
  the transport's buffer plus the kernel's send queue (SIOCOUTQ: unsent and unacknowledged);
- *taken*: the bytes the client's kernel has acknowledged (``tcpi_bytes_acked`` of TCP_INFO).

A client with bytes pending whose taken count has not moved for ``stall_s`` is stalled,
measured from the moment data started to wait (a closed window, a vanished phone). The rule,
`StallDetector`, is pure and stepped by the caller's clock; `socket_progress` reads the kernel.

What TCP cannot tell: a client whose kernel acknowledges everything (its receive buffer still
has room) but whose application never reads. For the stream that room fills within a few
frames; event listeners get too little data to ever fill it, so their slots are given to the
newest listener when all are taken (`bridge.web.server`).
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any

# struct tcp_info (linux/tcp.h, append-only): tcpi_bytes_acked is the __u64 at offset 120.
_TCP_INFO_LEN = 136
_BYTES_ACKED_OFFSET = 120


class StallDetector:
    """Stalled: data pending and no byte taken for `stall_s`, counted from when it began."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._since: float | None = None  # when data began to wait, or was last taken
        self._taken: int | None = None

    def observe(self, now: float, pending: int, taken: int) -> bool:
        """One look at the connection; True once it is stalled."""
        if pending <= 0:
            self._since, self._taken = None, taken
            return False
        if self._since is None or self._taken is None or taken != self._taken:
            self._since, self._taken = now, taken
            return False
        return now - self._since >= self.stall_s


def socket_progress(transport: Any) -> tuple[int, int] | None:
    """(pending, taken) bytes of a TCP transport; None where the kernel cannot say."""
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        return None
    try:
        outq = struct.unpack(
            "i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        )[0]
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except (OSError, ValueError):
        return None
    if len(info) < _BYTES_ACKED_OFFSET + 8:
        return None  # a kernel older than 4.1
    (acked,) = struct.unpack_from("Q", info, _BYTES_ACKED_OFFSET)
    return transport.get_write_buffer_size() + outq, acked


async def watch(
    transport: Any, stall_s: float, on_stall: Callable[[], None], every_s: float = 0.5
) -> None:
    """Call `on_stall()` once the client is stalled, then return; cancel it when the response
    ends. Where the kernel cannot say (not TCP), it watches nothing."""
    loop = asyncio.get_running_loop()
    detector = StallDetector(stall_s)
    while not transport.is_closing():
        progress = socket_progress(transport)
        if progress is None:
            return
        if detector.observe(loop.time(), *progress):
            on_stall()
            return
        await asyncio.sleep(every_s)
